"""The scheduler entries for `citrixagent run`: a cron line, a systemd service + timer, a schtasks command.

Pure text from a :class:`ScheduleSpec`, with every path absolute, so nobody hand-edits a schedule line.
"""

from __future__ import annotations

import hashlib
import shlex
import shutil
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

__all__ = ["Frequency", "ScheduleSpec", "agent_command", "cron_line", "schtasks_command", "systemd_units"]

Frequency = Literal["hourly", "daily"]


@dataclass(frozen=True)
class ScheduleSpec:
    command: tuple[str, ...]  # the agent's executable (and arguments to reach it), absolute
    profiles: tuple[Path, ...]
    scm_config: Path | None = None
    state_dir: Path | None = None
    log_file: Path | None = None
    workers: int | None = None
    env_file: Path | None = None  # KEY=value lines holding the secrets the configs name as ${KEY}
    every: Frequency = "daily"
    hour: int = 3
    minute: int = 17
    name: str = "citrixagent"

    def argv(self) -> list[str]:
        """The whole `run` command line."""
        args = [*self.command, "--accept-license"]
        for flag, path in (
            ("--scm-config", self.scm_config),
            ("--state-dir", self.state_dir),
            ("--log-file", self.log_file),
        ):
            if path is not None:
                args += [flag, str(path)]
        args.append("run")
        if self.workers is not None:
            args += ["--workers", str(self.workers)]
        return args + [str(p) for p in self.profiles]


def agent_command(executable: str = sys.executable) -> tuple[str, ...]:
    """How a scheduler starts this citrixagent: the console script beside the interpreter when there is
    one (a venv's bin/ or Scripts\\), else the interpreter with ``-m citrix_connector``."""
    bindir = Path(executable).parent
    for name in ("citrixagent", "citrixagent.exe"):
        script = bindir / name
        if script.is_file():
            return (str(script),)
    found = shutil.which("citrixagent")
    if found:
        return (str(Path(found).resolve()),)
    return (str(Path(executable)), "-m", "citrix_connector")


def default_minute(host: str) -> int:
    """A minute that differs from host to host, so a fleet of agents does not reach SCM all at once."""
    return int.from_bytes(hashlib.sha256(host.encode()).digest()[:2], "big") % 60


def cron_line(spec: ScheduleSpec) -> str:
    when = f"{spec.minute} * * * *" if spec.every == "hourly" else f"{spec.minute} {spec.hour} * * *"
    command = shlex.join(spec.argv())
    if spec.env_file is not None:  # cron runs the line with /bin/sh
        command = f"set -a && . {shlex.quote(str(spec.env_file))} && set +a && exec {command}"
    # The result table goes nowhere when a log file keeps the record; errors (stderr) still reach cron's mail.
    if spec.log_file is not None:
        command += " >/dev/null"
    return f"{when} {command}"


def systemd_units(spec: ScheduleSpec) -> tuple[str, str]:
    """(``NAME.service``, ``NAME.timer``) texts."""
    env = f"EnvironmentFile={spec.env_file}\n" if spec.env_file is not None else ""
    service = (
        "[Unit]\n"
        "Description=citrixagent: renew and install NetScaler certificates from Sectigo SCM\n"
        "Wants=network-online.target\n"
        "After=network-online.target\n\n"
        "[Service]\n"
        "Type=oneshot\n"
        f"{env}"
        f"ExecStart={_systemd_join(spec.argv())}\n"
        "# 0 done or nothing to do, 4 still pending at SCM (the next run resumes): not failures\n"
        "SuccessExitStatus=4\n"
        "UMask=0077\n"
    )
    calendar = f"*-*-* *:{spec.minute:02d}:00" if spec.every == "hourly" else (
        f"*-*-* {spec.hour:02d}:{spec.minute:02d}:00"
    )
    timer = (
        "[Unit]\n"
        f"Description=Run {spec.name}.service {spec.every}\n\n"
        "[Timer]\n"
        f"OnCalendar={calendar}\n"
        "Persistent=true\n"
        "RandomizedDelaySec=300\n\n"
        "[Install]\n"
        "WantedBy=timers.target\n"
    )
    return service, timer


def schtasks_command(spec: ScheduleSpec) -> str:
    """One ``schtasks /Create`` command (cmd.exe syntax) for Windows Task Scheduler, as SYSTEM."""
    inner = subprocess.list2cmdline(spec.argv())
    task_run = inner.replace('"', '\\"')  # schtasks /TR takes the command line inside one quoted string
    schedule = "/SC HOURLY" if spec.every == "hourly" else "/SC DAILY"
    start = f"/ST {spec.hour:02d}:{spec.minute:02d}" if spec.every == "daily" else f"/ST 00:{spec.minute:02d}"
    return f'schtasks /Create /F /TN "{spec.name}" {schedule} {start} /RU SYSTEM /RL HIGHEST /TR "{task_run}"'


def _systemd_join(argv: Sequence[str]) -> str:
    """systemd's ExecStart quoting: double quotes around words with spaces, % doubled."""
    words = []
    for word in argv:
        word = word.replace("%", "%%")
        if any(c in word for c in ' \t"\\\'') or not word:
            word = '"' + word.replace("\\", "\\\\").replace('"', '\\"') + '"'
        words.append(word)
    return " ".join(words)
