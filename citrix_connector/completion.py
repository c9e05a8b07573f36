"""Shell completion for PowerShell (Click ships bash, zsh and fish; PowerShell is what Windows admins use).

`_CITRIXAGENT_COMPLETE=powershell_source citrixagent` prints a script that registers a native argument
completer; it calls citrixagent back with the command line typed so far, as Click's other shells do.
"""

from __future__ import annotations

import os
from typing import Any, ClassVar

from click.shell_completion import CompletionItem, ShellComplete, add_completion_class, split_arg_string

__all__ = ["PowerShellComplete", "register"]

_SOURCE_POWERSHELL = """\
Register-ArgumentCompleter -Native -CommandName %(prog_name)s -ScriptBlock {
    param($wordToComplete, $commandAst, $cursorPosition)
    $env:COMP_WORDS = $commandAst.ToString()
    $env:COMP_INCOMPLETE = $wordToComplete
    $env:%(complete_var)s = "powershell_complete"
    %(prog_name)s | ForEach-Object {
        $kind, $value = $_ -split ",", 2
        [System.Management.Automation.CompletionResult]::new($value, $value, 'ParameterValue', $value)
    }
    Remove-Item Env:%(complete_var)s, Env:COMP_WORDS, Env:COMP_INCOMPLETE
}
"""


class PowerShellComplete(ShellComplete):
    name: ClassVar[str] = "powershell"
    source_template: ClassVar[str] = _SOURCE_POWERSHELL

    def get_completion_args(self) -> tuple[list[str], str]:
        words = split_arg_string(os.environ.get("COMP_WORDS", ""))
        incomplete = os.environ.get("COMP_INCOMPLETE", "")
        args = words[1:]
        if incomplete and args and args[-1] == incomplete:
            args = args[:-1]
        return args, incomplete

    def format_completion(self, item: CompletionItem[Any]) -> str:
        return f"{item.type},{item.value}"


def register() -> None:
    add_completion_class(PowerShellComplete)
