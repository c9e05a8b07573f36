"""Command lines printed in messages ("run `citrixagent ... replace PROFILE`"), complete enough to work
when typed: the scm.yaml and the state directory the command was given, absolute paths, quoted for
this platform's shell."""

from __future__ import annotations

import shlex
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

__all__ = ["CommandHint", "invoked_program", "quote_command"]


def quote_command(parts: Sequence[str]) -> str:
    """``parts`` as one command line for this platform's shell (POSIX sh, or cmd/PowerShell)."""
    if sys.platform == "win32":
        return subprocess.list2cmdline(list(parts))
    return " ".join(shlex.quote(p) for p in parts)


def invoked_program(argv0: str | None = None) -> tuple[str, ...]:
    """How this process was started, as the start of a command line that starts it again:
    ``python -m citrix_connector`` and ``python .../citrixagent.py`` (a checkout, perhaps with no
    ``citrixagent`` on PATH) as such, with this interpreter; anything else as ``citrixagent``."""
    path = Path(argv0 if argv0 is not None else (sys.argv[0] if sys.argv else ""))
    if path.name == "__main__.py" and path.parent.name == "citrix_connector":
        return (sys.executable, "-m", "citrix_connector")
    if path.name == "citrixagent.py":
        return (sys.executable, str(path.absolute()))
    return ("citrixagent",)


@dataclass(frozen=True)
class CommandHint:
    """Builds ``citrixagent --scm-config X --state-dir Y SUBCOMMAND [OPTIONS] PROFILE``."""

    scm_config: Path | None = None
    state_dir: Path | None = None
    program: tuple[str, ...] = ("citrixagent",)

    def __call__(self, subcommand: str, profile: str | Path | None = None, *options: str) -> str:
        parts = [*self.program]
        if self.scm_config is not None:
            parts += ["--scm-config", str(Path(self.scm_config).absolute())]
        if self.state_dir is not None:
            parts += ["--state-dir", str(Path(self.state_dir).absolute())]
        parts += [subcommand, *options]
        if profile is not None:
            parts.append(str(Path(profile).absolute()))
        return quote_command(parts)
