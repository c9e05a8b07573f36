"""`citrixagent schedule`: the printed cron line really runs; systemd and schtasks texts carry the paths."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from citrix_connector.sandbox.world import SCM_PASSWORD, Sandbox
from citrix_connector.schedule import ScheduleSpec, cron_line, schtasks_command, systemd_units
from citrix_connector.state import StateStore


def _spec(**kw: object) -> ScheduleSpec:
    base: dict[str, object] = {
        "command": ("/opt/citrix agent/bin/citrixagent",),
        "profiles": (Path("/etc/citrixagent/profiles"),),
        "scm_config": Path("/etc/citrixagent/scm.yaml"),
        "state_dir": Path("/var/lib/citrixagent"),
        "log_file": Path("/var/log/citrixagent/agent.log"),
        "minute": 7,
    }
    base.update(kw)
    return ScheduleSpec(**base)  # type: ignore[arg-type]


def test_cron_line_quotes_paths_and_sources_the_env_file() -> None:
    line = cron_line(_spec(env_file=Path("/etc/citrixagent/env")))
    when, command = line.split(" ", 5)[:5], line.split(" ", 5)[5]
    assert when == ["7", "3", "*", "*", "*"]
    assert command.startswith("set -a && . /etc/citrixagent/env && set +a && exec ")
    quoted = "'/opt/citrix agent/bin/citrixagent' --accept-license --scm-config /etc/citrixagent/scm.yaml"
    assert quoted in command
    assert command.endswith("run /etc/citrixagent/profiles >/dev/null")
    assert cron_line(_spec(every="hourly")).startswith("7 * * * * ")


def test_systemd_units() -> None:
    service, timer = systemd_units(_spec(env_file=Path("/etc/citrixagent/env"), workers=8))
    assert 'ExecStart="/opt/citrix agent/bin/citrixagent" --accept-license' in service
    assert "run --workers 8 /etc/citrixagent/profiles" in service
    assert "EnvironmentFile=/etc/citrixagent/env" in service and "SuccessExitStatus=4" in service
    assert "OnCalendar=*-*-* 03:07:00" in timer and "Persistent=true" in timer


def test_schtasks_command_escapes_inner_quotes() -> None:
    spec = _spec(
        command=(r"C:\Program Files\citrixagent\Scripts\citrixagent.exe",),
        profiles=(Path(r"C:\citrixagent\profiles"),),
        scm_config=None,
        state_dir=None,
        log_file=None,
    )
    cmd = schtasks_command(spec)
    assert cmd.startswith('schtasks /Create /F /TN "citrixagent" /SC DAILY /ST 03:07 /RU SYSTEM')
    assert r'/TR "\"C:\Program Files\citrixagent\Scripts\citrixagent.exe\" --accept-license run' in cmd


@pytest.mark.skipif(sys.platform == "win32", reason="runs the cron line with /bin/sh")
def test_printed_cron_line_runs_as_printed(world: Sandbox, tmp_path: Path) -> None:
    """The cron line `schedule` prints, run by /bin/sh as cron would, enrolls the profile."""
    scm = yaml.safe_load(Path(world.scm_yaml).read_text())
    scm["password"] = "${SANDBOX_SCM_PASSWORD}"
    scm_yaml = tmp_path / "scm.yaml"
    scm_yaml.write_text(yaml.safe_dump(scm))
    env_file = tmp_path / "env"
    env_file.write_text(f"SANDBOX_SCM_PASSWORD={SCM_PASSWORD}\n")
    env_file.chmod(0o600)
    state, log = tmp_path / "state", tmp_path / "agent.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("CITRIXAGENT_")}
    printed = subprocess.run(
        [sys.executable, "-m", "citrix_connector", "--accept-license", "--scm-config", str(scm_yaml),
         "--state-dir", str(state), "--log-file", str(log), "schedule", "--format", "cron",
         "--env-file", str(env_file), str(world.profile_path("lb-profile"))],
        capture_output=True, text=True, env=env, check=True, cwd=tmp_path,
    ).stdout.strip().splitlines()
    line = printed[-1]
    command = line.split(" ", 5)[5]
    assert str(scm_yaml) in command and str(state) in command and str(log) in command
    if not Path(shlex.split(command.split("exec ", 1)[1])[0]).exists():  # the console script, or python
        pytest.fail(f"the printed executable does not exist: {command}")
    done = subprocess.run(["/bin/sh", "-c", command], capture_output=True, text=True, env=env, cwd="/")
    assert done.returncode == 0, done.stderr
    assert StateStore(state).load("lb-profile").current is not None
    assert "lb-profile" in log.read_text()
