"""The run's context (options, output, licence), shared by every command."""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import click

from ..errors import UsageError
from ..private_files import make_private_dir
from ..redaction import scrubber

if TYPE_CHECKING:  # imported where used: `--help` does not need them
    from ..progress import WaitRenderer
    from ..state import StateStore


def _new_run_id() -> str:
    from ..auditlog import new_run_id

    return new_run_id()

#: Exit code of `status` when some profile needs attention (the lifecycle's; repeated here so that the
#: CLI need not import the lifecycle to name it).
EXIT_ATTENTION = 5

log = logging.getLogger("citrixagent")

EXIT_CODES_HELP = """\b
Exit codes:
  0  success, or nothing to do
  1  a profile failed at run time (SCM or NetScaler refused, unreachable, ...)
  2  usage or configuration error (bad YAML, unknown key, bad value, licence not accepted)
  3  another citrixagent run holds the lock
  4  a certificate is still pending at SCM (order saved; run again to resume)
  5  status: at least one profile needs attention; discover: a finding needs attention
  130  stopped by Ctrl-C (journal consistent, pending orders kept for the next run)
  143  stopped by SIGTERM (likewise)
"""

LICENSE_ENV = "CITRIXAGENT_ACCEPT_LICENSE"


@dataclass
class Context:
    scm_config_path: Path | None
    state_dir: Path
    json_output: bool
    verbose: int
    accept_license: bool
    log_file: Path | None = None
    progress: WaitRenderer | None = None
    _progress_subscription: contextlib.ExitStack | None = None
    settings_path: Path | None = None
    metrics_file: Path | None = None
    log_format: str = "text"
    run_id: str = field(default_factory=_new_run_id)

    @property
    def store(self) -> StateStore:
        from ..state import StateStore

        return StateStore(self.state_dir)

    def setup_output(self) -> None:
        """Logging to stderr (and the log file), and progress of SCM waits on stderr."""
        _setup_logging(self.verbose, self.log_file, self.log_format, self.run_id)
        http = sys.modules.get("citrix_connector.http")  # not imported yet: nothing was warned about
        if http is not None:
            http.reset_insecure_warnings()  # verify_tls: false is warned about once per host and run
        self.close()
        if self.log_format == "json":
            return  # stderr carries JSON lines only (log shippers read it): no progress lines
        from ..progress import WaitRenderer, subscribed

        # With -v the log lines say it all; a live line would be torn by them.
        self.progress = WaitRenderer(sys.stderr, live=False if self.verbose else None)
        self._progress_subscription = contextlib.ExitStack()
        self._progress_subscription.enter_context(subscribed(self.progress))

    def close(self) -> None:
        if self._progress_subscription is not None:
            self._progress_subscription.close()
            self._progress_subscription = None
        if self.progress is not None:
            self.progress.close()
            self.progress = None


# ----------------------------------------------------------------------------------------- logging


def _setup_logging(verbose: int, log_file: Path | None, log_format: str = "text", run_id: str = "-") -> None:
    from ..auditlog import JsonFormatter, RunFilter
    from ..logfile import ExpectedErrorFormatter, PrivateRotatingFileHandler

    json_format = log_format == "json"
    root = logging.getLogger("citrixagent")
    root.setLevel(logging.DEBUG)
    root.propagate = False
    for handler in list(root.handlers):
        root.removeHandler(handler)
        handler.close()  # a log file left open stays locked on Windows
    stderr = logging.StreamHandler(sys.stderr)
    stderr.setLevel(logging.DEBUG if verbose else logging.WARNING)
    text_format = logging.Formatter("%(levelname)s %(message)s")
    stderr.setFormatter(JsonFormatter(scrubber) if json_format else text_format)
    stderr.addFilter(RunFilter(run_id, scrubber))
    root.addHandler(stderr)
    if log_file is not None:
        try:  # the file and its directory private from creation (0600/0700, any umask)
            make_private_dir(log_file.parent)
            handler = PrivateRotatingFileHandler(
                log_file, maxBytes=1_000_000, backupCount=5, encoding="utf-8"
            )
        except OSError as exc:
            raise UsageError(f"cannot open the log file {log_file}: {exc.strerror or exc}") from None
        handler.setLevel(logging.DEBUG)
        # tracebacks only for unexpected errors, not for every refused or failed profile
        handler.setFormatter(
            JsonFormatter(scrubber)
            if json_format
            else ExpectedErrorFormatter("%(asctime)s %(levelname)s %(name)s %(message)s")
        )
        handler.addFilter(RunFilter(run_id, scrubber))
        root.addHandler(handler)
    # Records below every handler's level are not even made: a run without -v or a log file skips
    # the debug traces of each request (formatting and redacting them cost more than the request).
    root.setLevel(min(h.level for h in root.handlers))


# ----------------------------------------------------------------------------------------- licence


def _license_text() -> str:
    checkout = Path(__file__).resolve().parents[2] / "LICENSE.txt"
    if checkout.exists():
        return checkout.read_text(encoding="utf-8")
    try:  # installed: the licence file travels in the distribution's metadata
        from importlib.metadata import PackageNotFoundError, distribution

        for file in distribution("citrixagent").files or []:
            if file.name == "LICENSE.txt":
                return file.read_text(encoding="utf-8")
    except (PackageNotFoundError, OSError):
        pass
    return "citrixagent licence terms: see LICENSE.txt in the distribution."


def _ensure_license(ctx: Context) -> None:
    store = ctx.store
    if store.license_accepted():
        return
    if ctx.accept_license or os.environ.get(LICENSE_ENV, "").strip().lower() in {"yes", "y", "true", "1"}:
        store.record_license_acceptance()
        return
    if sys.stdin.isatty():
        click.echo(_license_text(), err=True)
        try:
            accepted = click.confirm("Do you accept these licence terms?", default=False, err=True)
        except click.exceptions.Abort:  # Ctrl-D / end of input: not accepted
            accepted = False
        if accepted:
            store.record_license_acceptance()
            return
        raise UsageError(
            "the licence terms (LICENSE.txt) were not accepted; citrixagent does nothing without them"
        )
    raise UsageError(
        "the licence terms (LICENSE.txt) have not been accepted yet: run once interactively, or pass "
        f"--accept-license, or set {LICENSE_ENV}=yes for unattended runs"
    )
