"""Shell completion: Click's bash protocol and our PowerShell class, through the real entry point."""

from __future__ import annotations

import os
import subprocess
import sys


def _complete(**env: str) -> list[str]:
    full = {k: v for k, v in os.environ.items() if not k.startswith(("COMP_", "_CITRIXAGENT"))}
    full.update(env)
    done = subprocess.run(
        [sys.executable, "-m", "citrix_connector"], capture_output=True, text=True, env=full, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.splitlines()


def test_bash_completes_commands_and_global_options_after_the_command() -> None:
    assert _complete(_CITRIXAGENT_COMPLETE="bash_complete", COMP_WORDS="citrixagent sch", COMP_CWORD="1") == [
        "plain,schedule",
        "plain,schema",
    ]
    words = "citrixagent status --js"
    got = _complete(_CITRIXAGENT_COMPLETE="bash_complete", COMP_WORDS=words, COMP_CWORD="2")
    assert got == ["plain,--json"]


def test_powershell_source_and_completion() -> None:
    source = "\n".join(_complete(_CITRIXAGENT_COMPLETE="powershell_source"))
    assert "Register-ArgumentCompleter -Native -CommandName citrixagent" in source
    assert "_CITRIXAGENT_COMPLETE" in source
    got = _complete(
        _CITRIXAGENT_COMPLETE="powershell_complete",
        COMP_WORDS="citrixagent run --work",
        COMP_INCOMPLETE="--work",
    )
    assert got == ["plain,--workers"]
