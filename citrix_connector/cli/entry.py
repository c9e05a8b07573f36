"""The entry point: signals, exit codes and one-line errors around the Click group."""

from __future__ import annotations

import contextlib
import gc
import os
import signal
import sys
import threading
from collections.abc import Iterator, Sequence
from typing import Any

import click

from .. import stopping
from ..errors import EXIT_CONFIG, EXIT_FAILURE, CitrixAgentError, ConfigError
from . import certificates, readonly, sandbox, tools, validate  # noqa: F401  (they register their commands)
from .context import log
from .group import cli

__all__ = ["cli", "main"]

# ----------------------------------------------------------------------------------------- main


@contextlib.contextmanager
def _stop_on_signals() -> Iterator[None]:
    """SIGINT (Ctrl-C) and SIGTERM (systemd, Task Scheduler's End) ask the run to stop at its next wait:
    the journal stays consistent, pending orders are kept; a second signal stops at once."""
    stopping.reset()
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous: dict[int, Any] = {}

    def handler(signum: int, frame: object) -> None:
        if stopping.stop_requested():
            raise KeyboardInterrupt
        stopping.request_stop(signum)
        click.echo(
            "stopping: waits end now, the journal is kept consistent (signal again to stop at once)",
            err=True,
        )

    for name in ("SIGINT", "SIGTERM"):
        signum = getattr(signal, name, None)
        if signum is not None:
            previous[signum] = signal.signal(signum, handler)
    try:
        yield
    finally:
        for signum, old in previous.items():
            signal.signal(signum, old)


def _exit_status(rc: int) -> int:
    """130 after Ctrl-C, 143 after SIGTERM (the shell convention, 128 + signal), else ``rc``."""
    signum = stopping.requested_by()
    return 128 + signum if signum is not None else rc


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point: run the CLI, turning our errors into one line and an exit code."""
    try:
        with _stop_on_signals():
            _main(argv)
    finally:
        gc.unfreeze()  # what the command kept out of the collector's sight (cli.common.keep_out_of_gc)


def _main(argv: Sequence[str] | None) -> None:
    if os.environ.get("_CITRIXAGENT_COMPLETE"):  # Click's completion protocol: only then PowerShell's
        from ..completion import register

        register()
    args = list(sys.argv[1:] if argv is None else argv)
    verbose = any(a in ("-v", "--verbose") or (a.startswith("-v") and set(a[1:]) == {"v"}) for a in args)
    try:
        try:
            rc = cli.main(args=args, prog_name="citrixagent", standalone_mode=False)
        except SystemExit as exc:  # the commands exit with their result code
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else EXIT_FAILURE)
            sys.exit(_exit_status(code))
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(EXIT_FAILURE)
    except click.UsageError as exc:  # one line, like every other error
        command = exc.ctx.command_path if exc.ctx is not None else "citrixagent"
        click.echo(f"error: {exc.format_message()} (see '{command} --help')", err=True)
        sys.exit(exc.exit_code if exc.exit_code else EXIT_CONFIG)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code if exc.exit_code else EXIT_CONFIG)
    except CitrixAgentError as exc:
        if verbose:
            log.exception("error")
        for line in exc.problems if isinstance(exc, ConfigError) else [str(exc)]:
            click.echo(f"error: {line}", err=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        sys.exit(_exit_status(130))
    except Exception as exc:  # a bug: one line unless -v
        if verbose:
            raise
        click.echo(f"internal error: {type(exc).__name__}: {exc} (run with -v for the traceback)", err=True)
        sys.exit(EXIT_FAILURE)
    sys.exit(_exit_status(rc if isinstance(rc, int) else 0))
