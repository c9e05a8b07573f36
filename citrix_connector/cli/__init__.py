"""Command line: parse, wire, format. The work happens in :mod:`citrix_connector.lifecycle`.

One module per command family; every command registers itself on the group of :mod:`.group` when
:mod:`.entry` imports it. Light imports only at import time: ``--help`` and ``--version`` must not
pay for requests, cryptography, YAML or the lifecycle (tests/test_fleet.py checks it), and
``citrixagent --version`` alone is answered before Click and the commands are imported at all.
Commands import what they use when they run.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

from .. import __version__

__all__ = ["EXIT_ATTENTION", "EXIT_CODES_HELP", "MAX_WORKERS", "cli", "main"]


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point (see :func:`.entry.main`)."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args == ["--version"]:  # what Click's version option prints, without importing Click
        sys.stdout.write(f"citrixagent, version {__version__}\n")
        sys.stdout.flush()
        sys.exit(0)
    from .entry import main as run

    run(argv)


def __getattr__(name: str) -> Any:
    """``cli``, ``MAX_WORKERS``, ``EXIT_ATTENTION``, ``EXIT_CODES_HELP``: imported when first asked."""
    if name == "cli":
        from .entry import cli

        return cli
    if name == "MAX_WORKERS":
        from .common import MAX_WORKERS

        return MAX_WORKERS
    if name in ("EXIT_ATTENTION", "EXIT_CODES_HELP"):
        from . import context

        return getattr(context, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
