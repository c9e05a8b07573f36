"""Command line: parse, wire, format. The work happens in :mod:`citrix_connector.lifecycle`.

One module per command family; every command registers itself on the group of :mod:`.group`.
Light imports only at import time: ``--help`` and ``--version`` must not pay for requests,
cryptography, YAML or the lifecycle (tests/test_fleet.py checks it). Commands import what they use
when they run.
"""

from __future__ import annotations

from ..completion import register as _register_powershell_completion
from . import certificates, readonly, sandbox, tools, validate  # noqa: F401  (they register their commands)
from .common import MAX_WORKERS
from .context import EXIT_ATTENTION, EXIT_CODES_HELP
from .entry import main
from .group import cli

_register_powershell_completion()

__all__ = ["EXIT_ATTENTION", "EXIT_CODES_HELP", "MAX_WORKERS", "cli", "main"]
