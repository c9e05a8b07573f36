"""Command line: parse, wire, format. The work happens in :mod:`citrix_connector.lifecycle`."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import click
from click.core import ParameterSource

from . import __version__, stopping
from .auditlog import JsonFormatter, RunFilter, log_outcomes, new_run_id
from .completion import register as register_powershell_completion
from .errors import EXIT_CONFIG, EXIT_FAILURE, CitrixAgentError, ConfigError, UsageError
from .notify.names import DEFAULT_SETTINGS_FILE, SETTINGS_ENV
from .private_files import make_private_dir
from .progress import WaitRenderer, subscribed
from .redaction import scrubber
from .revocation import REVOCATION_REASONS
from .state import StateStore, default_state_dir

# Light imports only at the top: ``--help`` and ``--version`` must not pay for requests, cryptography,
# YAML or the lifecycle (tests/test_fleet.py checks it). Commands import what they use when they run.
if TYPE_CHECKING:
    from .config import Profile, ScmConfig
    from .lifecycle import Agent, Outcome
    from .notify.settings import Settings

#: Exit code of `status` when some profile needs attention (the lifecycle's; repeated here so that the
#: CLI need not import the lifecycle to name it).
EXIT_ATTENTION = 5

log = logging.getLogger("citrixagent")
register_powershell_completion()

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
    run_id: str = field(default_factory=new_run_id)

    @property
    def store(self) -> StateStore:
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
    from .logfile import ExpectedErrorFormatter, PrivateRotatingFileHandler

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


# ----------------------------------------------------------------------------------------- licence


def _license_text() -> str:
    checkout = Path(__file__).resolve().parent.parent / "LICENSE.txt"
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


# ----------------------------------------------------------------------------------------- loading


def _load_scm(ctx: Context, *, required: bool) -> ScmConfig | None:
    from .config import load_scm_config

    path = ctx.scm_config_path
    if path is None:
        default = Path("scm.yaml")
        if default.exists():
            path = default
        elif required:
            raise UsageError(
                "no SCM configuration: pass --scm-config PATH (or put scm.yaml in the current directory)"
            )
        else:
            return None
    config = load_scm_config(path)
    for warning in config.warnings:
        log.warning("%s", warning)
    return config


def _load_profiles(args: Sequence[str], scm: ScmConfig | None) -> tuple[list[Profile], list[Outcome]]:
    from .config import check_profile_against_scm, expand_profile_paths, load_profile
    from .lifecycle import Outcome

    """Valid profiles, and a failed outcome (exit 2) for each invalid one."""
    if not args:
        raise UsageError("no profile given: name profile files or a directory of profiles")
    paths = expand_profile_paths([Path(a) for a in args])
    if not paths:
        raise UsageError(f"no *.yaml profiles found in {', '.join(args)}")
    profiles: list[Profile] = []
    bad: list[Outcome] = []
    names: dict[str, Path] = {}
    for path in paths:
        try:
            profile = load_profile(path)
            for warning in profile.warnings:
                log.warning("%s", warning)
            if scm is not None:
                checked = check_profile_against_scm(profile, scm)
                for problem in checked:
                    if not problem.is_error:
                        log.warning("%s", problem)
                if any(p.is_error for p in checked):
                    raise ConfigError([str(p) for p in checked if p.is_error])
            if profile.name in names:
                raise ConfigError(
                    f"{path}: name: profile name '{profile.name}' is also used by {names[profile.name]}"
                )
            names[profile.name] = path
            profiles.append(profile)
        except ConfigError as exc:
            bad.append(
                Outcome(
                    path.stem,
                    "nothing",
                    "failed",
                    str(exc),
                    details={"config_problems": list(exc.problems), "source": str(path)},
                    exit_code=exc.exit_code,
                )
            )
    return profiles, bad


# ----------------------------------------------------------------------------------------- output


def _print_outcomes(ctx: Context, outcomes: Sequence[Outcome]) -> None:
    # A profile that failed to load is reported like every other configuration error: one
    # `error: file:line: field: message` line per problem on stderr (and, with --json, in the JSON).
    for o in outcomes:
        for problem in o.details.get("config_problems", []):
            click.echo(f"error: {problem}", err=True)
    if ctx.json_output:
        click.echo(json.dumps([o.to_dict() for o in outcomes], indent=2))
        return
    outcomes = [o for o in outcomes if "config_problems" not in o.details]
    if not outcomes:
        return
    headers = ["PROFILE", "ACTION", "RESULT", "ORDER", "SERIAL", "EXPIRES", "CERTKEY", "VSERVERS"]
    rows = []
    for o in outcomes:
        expires = (
            f"{o.expires} ({o.days_left}d)" if o.expires and o.days_left is not None else (o.expires or "-")
        )
        rows.append(
            [
                o.profile,
                o.action,
                o.result,
                o.order_id or "-",
                o.serial or "-",  # whole: compared with what the NetScaler GUI and SCM show
                expires,
                o.certkey or "-",
                ",".join(o.vservers) or "-",
            ]
        )
    widths = [max(len(str(r[i])) for r in [headers, *rows]) for i in range(len(headers))]
    for row in [headers, *rows]:
        click.echo("  ".join(str(cell).ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
    for o in outcomes:
        if o.message:
            click.echo(f"{o.profile}: {o.message}")
        for line in o.plan if o.result == "planned" else []:
            click.echo(f"  - {line}" if not line.startswith("  ") else f"    {line.strip()}")
        if o.action == "status":
            for key in (
                "next",
                "pending",
                "scm_status",
                "issued_serial",
                "link",
                "appliance_error",
                "scm_error",
            ):
                value = o.details.get(key)
                if value and not (key == "issued_serial" and value == o.serial):
                    click.echo(f"  {key.replace('_', ' ')}: {value}")


def _finish(ctx: Context, outcomes: Sequence[Outcome]) -> NoReturn:
    from .lifecycle import worst_exit_code

    click_ctx = click.get_current_context(silent=True)
    log_outcomes(click_ctx.info_name if click_ctx and click_ctx.info_name else "-", outcomes)
    _print_outcomes(ctx, outcomes)
    sys.exit(worst_exit_code(outcomes))


def _make_agent(ctx: Context, scm: ScmConfig | None, **kwargs: Any) -> Agent:
    from .lifecycle import Agent

    # Every wait of the run (SCM issuance, retry back-off) ends early when a signal asks to stop.
    return Agent(scm, ctx.store, sleep=stopping.sleep, **kwargs)


def _agent(command: str) -> Callable[[Agent, list[Profile]], list[Outcome]]:
    """``Agent.<command>``, named without importing the lifecycle before a command runs."""

    def run(agent: Agent, profiles: list[Profile]) -> list[Outcome]:
        result: list[Outcome] = getattr(agent, command)(profiles)
        return result

    return run


def _profile_command(
    ctx: Context,
    profile_args: Sequence[str],
    run: Callable[[Agent, list[Profile]], list[Outcome]],
    *,
    scm_required: bool = True,
    lock: bool = True,
    confirm: Callable[[list[Profile]], None] | None = None,
    after: Callable[[list[Outcome], list[Profile]], None] | None = None,
    finish: Callable[[list[Outcome]], NoReturn] | None = None,
    **agent_kwargs: Any,
) -> NoReturn:
    ctx.store.check_usable(write=lock)  # journal, keys and lock: a config problem (exit 2) before any work
    _ensure_license(ctx)
    scm = _load_scm(ctx, required=scm_required)
    profiles, bad = _load_profiles(profile_args, scm)
    _scrub_secrets_of(scm, profiles)
    agent = _make_agent(ctx, scm, **agent_kwargs)
    outcomes: list[Outcome] = list(bad)
    if profiles and confirm is not None:
        confirm(profiles)  # after validation: a bad profile is reported before anything is asked
    if profiles:
        if lock:
            with ctx.store.lock():
                outcomes.extend(run(agent, profiles))
                if after is not None:
                    after(outcomes, profiles)  # still under the lock: it keeps state of its own
        else:
            outcomes.extend(run(agent, profiles))
    elif after is not None and lock:
        with ctx.store.lock():
            after(outcomes, profiles)
    if finish is not None:
        finish(outcomes)
    _finish(ctx, outcomes)


def _scrub_secrets_of(scm: ScmConfig | None, profiles: Sequence[Profile]) -> None:
    """The loaded secrets never leave the agent: the JSON log and notifications scrub them."""
    secrets = [s for s in (scm.password, scm.client_secret) if s is not None] if scm is not None else []
    scrubber.add(s.reveal() for s in [*secrets, *(p.appliance.password for p in profiles)])


def _load_settings(ctx: Context) -> Settings | None:
    from .notify.settings import load_settings

    """citrixagent.yaml: --settings / $CITRIXAGENT_SETTINGS, else ./citrixagent.yaml if present."""
    path = ctx.settings_path
    if path is None:
        default = Path(DEFAULT_SETTINGS_FILE)
        if not default.is_file():
            return None
        path = default
    settings = load_settings(path)
    scrubber.add(settings.secrets())
    return settings


# ----------------------------------------------------------------------------------------- commands

dry_run_option = click.option("--dry-run", is_flag=True, help="Print the plan; order nothing, write nothing.")
#: Kept in step with lifecycle.runner.MAX_WORKERS (the CLI does not import the lifecycle to show help).
MAX_WORKERS = 256
workers_option = click.option(
    "--workers",
    type=click.IntRange(1, MAX_WORKERS),
    default=None,
    help=f"Appliances worked on at once (default: one per appliance, at most {MAX_WORKERS}; the "
    "threads wait on the network, they do not compute).",
)
profiles_argument = click.argument("profiles", nargs=-1, type=click.Path())
#: enroll/renew/replace/revoke/run need at least one profile file or directory.
required_profiles_argument = click.argument("profiles", nargs=-1, required=True, type=click.Path())


def _apply_global(click_ctx: click.Context, param: click.Parameter, value: Any) -> Any:
    """A global option given after the command name: it overrides the one before (or its default)."""
    # Only what was typed after the command: an environment variable already reached the group's copy,
    # and must not override an option typed before the command.
    if param.name is None or click_ctx.get_parameter_source(param.name) is not ParameterSource.COMMANDLINE:
        return value
    obj = click_ctx.find_object(Context)
    if obj is None:  # the group always makes one; a command invoked on its own has none
        return value
    attribute = {"scm_config": "scm_config_path"}.get(param.name, param.name)
    setattr(obj, attribute, obj.verbose + value if param.name == "verbose" else value)
    if param.name in ("verbose", "log_file", "log_format"):
        obj.setup_output()
    return value


def _global_options(*, on_group: bool) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """The options every command takes, before or after its name (defined once, pip-tools style)."""
    extra: dict[str, Any] = {} if on_group else {"expose_value": False, "callback": _apply_global}
    options = [
        click.option(
            "--scm-config",
            type=click.Path(path_type=Path),
            envvar="CITRIXAGENT_SCM_CONFIG",
            help="scm.yaml with the SCM URL and credentials (default: ./scm.yaml).",
            **extra,
        ),
        click.option(
            "--state-dir",
            type=click.Path(path_type=Path),
            envvar="CITRIXAGENT_STATE_DIR",
            help="Where the state journal, local keys and the run lock live "
            f"(default: {default_state_dir()}).",
            **extra,
        ),
        click.option(
            "--log-file",
            type=click.Path(path_type=Path),
            envvar="CITRIXAGENT_LOG_FILE",
            help="Also log every decision and remote call (secrets redacted) to this rotating file.",
            **extra,
        ),
        click.option(
            "-v",
            "--verbose",
            count=True,
            help="Log to stderr, with request tracing (secrets redacted).",
            **extra,
        ),
        click.option(
            "--json", "json_output", is_flag=True, help="Machine-readable results on stdout.", **extra
        ),
        click.option(
            "--accept-license",
            is_flag=True,
            help=f"Accept LICENSE.txt (or set {LICENSE_ENV}=yes).",
            **extra,
        ),
        click.option(
            "--log-format",
            type=click.Choice(["text", "json"]),
            default="text",
            envvar="CITRIXAGENT_LOG_FORMAT",
            show_default=True,
            help="json: one JSON object per log event (run id, profile, action, result, ...).",
            **extra,
        ),
        click.option(
            "--settings",
            "settings_path",
            type=click.Path(path_type=Path),
            envvar=SETTINGS_ENV,
            help="Agent settings (notifications) file (default: ./citrixagent.yaml when present).",
            **extra,
        ),
        click.option(
            "--metrics-file",
            type=click.Path(path_type=Path),
            envvar="CITRIXAGENT_METRICS_FILE",
            help="After each run, write Prometheus metrics here (node_exporter textfile collector).",
            **extra,
        ),
    ]

    def decorate(f: Callable[..., Any]) -> Callable[..., Any]:
        # A function collects decorators bottom-up; an existing command appends in order.
        for option in options if isinstance(f, click.Command) else reversed(options):
            f = option(f)
        return f

    return decorate


class _Group(click.Group):
    """Commands get the global options too, so `citrixagent status --json` works like
    `citrixagent --json status`."""

    def add_command(self, cmd: click.Command, name: str | None = None) -> None:
        if not isinstance(cmd, click.Group):
            _global_options(on_group=False)(cmd)
        super().add_command(cmd, name)


@click.group(
    cls=_Group,
    epilog=EXIT_CODES_HELP,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110},
)
@click.version_option(__version__, prog_name="citrixagent")
@_global_options(on_group=True)
@click.pass_context
def cli(
    click_ctx: click.Context,
    scm_config: Path | None,
    state_dir: Path | None,
    log_file: Path | None,
    log_format: str,
    settings_path: Path | None,
    metrics_file: Path | None,
    verbose: int,
    json_output: bool,
    accept_license: bool,
) -> None:
    """citrixagent: NetScaler certificates issued, renewed and installed from Sectigo Certificate Manager.

    Global options may be given before or after the command name."""
    obj = Context(
        scm_config,
        state_dir or default_state_dir(),
        json_output,
        verbose,
        accept_license,
        log_file,
        settings_path=settings_path,
        metrics_file=metrics_file,
        log_format=log_format,
    )
    obj.setup_output()
    click_ctx.obj = obj
    click_ctx.call_on_close(obj.close)


@cli.command(short_help="Enroll and install a certificate per profile.")
@required_profiles_argument
@dry_run_option
@click.option(
    "--force", is_flag=True, help="Place a new order even if the profile already has a certificate."
)
@click.pass_obj
def enroll(ctx: Context, profiles: tuple[str, ...], dry_run: bool, force: bool) -> None:
    """Enroll a certificate for each PROFILE and install it (resumes a pending order)."""
    _profile_command(ctx, profiles, _agent("enroll"), dry_run=dry_run, force=force)


@cli.command(short_help="Renew at SCM and install (new order id).")
@required_profiles_argument
@dry_run_option
@click.pass_obj
def renew(ctx: Context, profiles: tuple[str, ...], dry_run: bool) -> None:
    """Renew each PROFILE's certificate at SCM (new order id, new key unless reuse_key) and install it."""
    _profile_command(ctx, profiles, _agent("renew"), dry_run=dry_run)


@cli.command(short_help="Replace (new key, same SCM order) and install.")
@required_profiles_argument
@dry_run_option
@click.pass_obj
def replace(ctx: Context, profiles: tuple[str, ...], dry_run: bool) -> None:
    """Replace each PROFILE's certificate (new key and CSR, same SCM order) and install it."""
    _profile_command(ctx, profiles, _agent("replace"), dry_run=dry_run)


@cli.command(short_help="Revoke the current certificate at SCM.")
@required_profiles_argument
@click.option(
    "--reason", type=click.Choice(sorted(REVOCATION_REASONS)), required=True, help="Revocation reason."
)
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@click.pass_obj
def revoke(ctx: Context, profiles: tuple[str, ...], reason: str, yes: bool) -> None:
    """Revoke each PROFILE's current certificate at SCM."""

    def ask(loaded: list[Profile]) -> None:
        if yes:
            return
        if not sys.stdin.isatty():
            raise UsageError("revoke asks for confirmation: pass --yes for unattended use")
        names = ", ".join(p.name for p in loaded)
        click.confirm(f"Revoke the current certificate of {names} ({reason})?", abort=True, err=True)

    code = REVOCATION_REASONS[reason]
    _profile_command(ctx, profiles, lambda a, p: a.revoke(p, reason=reason, reason_code=code), confirm=ask)


@cli.command(short_help="What is installed, pending and due, per profile.")
@profiles_argument
@workers_option
@click.pass_obj
@click.option(
    "--format",
    "output_format",
    type=click.Choice(["table", "nagios"]),
    default="table",
    show_default=True,
    help="nagios: one line with the worst state, exit 0 OK / 1 WARNING / 2 CRITICAL / 3 UNKNOWN.",
)
@click.option("--warning-days", type=click.IntRange(0, 3650), default=14, show_default=True)
@click.option("--critical-days", type=click.IntRange(0, 3650), default=7, show_default=True)
def status(
    ctx: Context,
    profiles: tuple[str, ...],
    workers: int | None,
    output_format: str,
    warning_days: int,
    critical_days: int,
) -> None:
    """One row per profile: installed certificate, SCM order, pending work, what `run` would do next.

    Without PROFILES: every profile the state directory has worked with.
    Exit 0 when nothing needs attention, 5 when some profile needs work
    (with --format nagios: the Nagios plugin exit codes instead)."""
    if output_format == "nagios":
        _nagios_status(ctx, profiles, warning_days, critical_days, workers)
    if not profiles:
        profiles = tuple(str(p) for p in ctx.store.recorded_sources())
        if not profiles:
            raise UsageError(f"no profile given, and the state directory {ctx.state_dir} knows none yet")
    _profile_command(ctx, profiles, _agent("status"), scm_required=False, lock=False, workers=workers)


def _nagios_status(
    ctx: Context, profiles: tuple[str, ...], warning_days: int, critical_days: int, workers: int | None
) -> NoReturn:
    from .nagios import UNKNOWN, nagios_check
    from .notify.memory import load_memory

    def finish(outcomes: list[Outcome]) -> NoReturn:
        check = nagios_check(
            outcomes,
            load_memory(ctx.state_dir).last_runs,
            warning_days=warning_days,
            critical_days=critical_days,
        )
        click.echo(check.line)
        sys.exit(check.code)

    try:
        if not profiles:
            profiles = tuple(str(p) for p in ctx.store.recorded_sources())
            if not profiles:
                raise UsageError(f"no profile given, and the state directory {ctx.state_dir} knows none yet")
        _profile_command(
            ctx, profiles, _agent("status"), scm_required=False, lock=False, finish=finish, workers=workers
        )
    except CitrixAgentError as exc:  # the plugin convention: anything that stops the check is UNKNOWN
        click.echo(" ".join(f"CITRIXAGENT UNKNOWN - {exc}".split()))
        sys.exit(UNKNOWN)


@cli.command(short_help="Scheduled entry point: the one right thing per profile.")
@required_profiles_argument
@dry_run_option
@workers_option
@click.pass_obj
def run(ctx: Context, profiles: tuple[str, ...], dry_run: bool, workers: int | None) -> None:
    """The scheduled entry point: for each profile do the one right thing (enroll, collect, renew,
    replace, redeploy, or nothing). PROFILES may be files or directories of *.yaml.

    Afterwards (not in a dry run): notifications per citrixagent.yaml and --metrics-file. Their
    failures are logged and retried on the next run; they never change the exit code."""
    settings = _load_settings(ctx)  # a bad settings file is a configuration error, before any work
    started, clock = datetime.now(timezone.utc), time.monotonic()

    def after(outcomes: list[Outcome], loaded: list[Profile]) -> None:
        if dry_run:
            return
        from .lifecycle import worst_exit_code
        from .monitoring import RunInfo, after_run, command_builder

        default_scm = Path("scm.yaml")
        scm_path = ctx.scm_config_path or (default_scm if default_scm.exists() else None)
        after_run(
            outcomes,
            {p.name: p for p in loaded},
            ctx.store,
            info=RunInfo(ctx.run_id, started, time.monotonic() - clock, worst_exit_code(outcomes)),
            settings=settings,
            metrics_file=ctx.metrics_file,
            command_for=command_builder(scm_path, ctx.state_dir),
            scrub=scrubber,
            now=datetime.now(timezone.utc),
        )

    _profile_command(ctx, profiles, _agent("run"), after=after, dry_run=dry_run, workers=workers)


@cli.command(short_help="Inventory the certificates on appliances and in SCM (read-only).")
@click.argument("sources", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--partition", "partitions", multiple=True, help="Only this admin partition (repeatable).")
@click.option(
    "--expiring-days",
    type=click.IntRange(1, 3650),
    default=30,
    show_default=True,
    help="Report certificates expiring within this many days.",
)
@click.option(
    "--write-profiles",
    "profiles_dir",
    type=click.Path(path_type=Path, file_okay=False),
    help="Write one ready profile per certkey bound to an SSL vserver into this directory.",
)
@click.option("--force", is_flag=True, help="With --write-profiles: overwrite existing files.")
@click.option(
    "--org-id", type=int, help="SCM organization: filters SCM's list; default for other CAs' profiles."
)
@click.option("--cert-type", help="Default SCM certificate profile (id or name) for other CAs' profiles.")
@click.option("--term", type=click.IntRange(1, 3650), help="Default term (days) for other CAs' profiles.")
@click.option(
    "--workers",
    type=click.IntRange(1, 64),
    default=8,
    show_default=True,
    help="Appliances read concurrently.",
)
@click.pass_obj
def discover(
    ctx: Context,
    sources: tuple[Path, ...],
    partitions: tuple[str, ...],
    expiring_days: int,
    profiles_dir: Path | None,
    force: bool,
    org_id: int | None,
    cert_type: str | None,
    term: int | None,
    workers: int,
) -> None:
    """Inventory every certkey on the appliances of SOURCES (appliances files or profiles/directories)
    and match them to SCM by serial; read-only. Findings need attention: exit 5; a target that could
    not be read: exit 1."""
    from datetime import datetime, timezone

    from .discovery.profiles import SectigoDefaults, write_profiles
    from .discovery.report import inventory_lines, written_lines
    from .discovery.runner import discover as run_discovery
    from .discovery.targets import load_targets

    _ensure_license(ctx)
    scm = _load_scm(ctx, required=False)
    targets, loaded = load_targets(list(sources), partitions=partitions)
    _scrub_secrets_of(scm, loaded)
    scrubber.add(t.password.reveal() for t in targets)  # the appliances file's passwords too
    inventory = run_discovery(
        targets,
        scm=scm,
        now=datetime.now(timezone.utc),
        expiring_days=expiring_days,
        workers=workers,
        org_id=org_id,
    )
    written = []
    if profiles_dir is not None:
        cert_profile: int | str | None = int(cert_type) if cert_type and cert_type.isdigit() else cert_type
        written = write_profiles(
            inventory,
            targets,
            profiles_dir,
            defaults=SectigoDefaults(org_id, cert_profile, term),
            force=force,
            existing_names={p.name: str(p.source) for p in loaded},
        )
    if ctx.json_output:
        data = inventory.to_dict()
        if profiles_dir is not None:
            data["profiles"] = [w.to_dict() for w in written]
        click.echo(json.dumps(data, indent=2))
    else:
        for line in inventory_lines(inventory):
            click.echo(line)
        if profiles_dir is not None:
            click.echo("")
            for line in written_lines(written):
                click.echo(line)
    if inventory.failed:
        sys.exit(EXIT_FAILURE)
    sys.exit(EXIT_ATTENTION if inventory.needs_attention else 0)


@cli.command(short_help="Check profiles and scm.yaml, no network.")
@profiles_argument
@click.pass_obj
def validate(ctx: Context, profiles: tuple[str, ...]) -> None:
    """Check profiles (and scm.yaml) without any network call."""
    from .config import check_profile_against_scm, expand_profile_paths, load_profile

    problems: list[str] = []
    scm: ScmConfig | None = None
    try:
        scm = _load_scm(ctx, required=False)
        if scm is not None:
            click.echo(f"ok  {scm.source} (SCM {scm.api} API)")
    except ConfigError as exc:
        problems.extend(exc.problems)
    if profiles:
        for path in expand_profile_paths([Path(p) for p in profiles]):
            try:
                profile = load_profile(path)
                extra = check_profile_against_scm(profile, scm) if scm is not None else []
                errors = [str(p) for p in extra if p.is_error]
                if errors:
                    raise ConfigError(errors)
                for warning in (*profile.warnings, *(p for p in extra if not p.is_error)):
                    click.echo(f"warning: {warning}", err=True)
                click.echo(
                    f"ok  {path} ({profile.name}: {profile.certificate.key.describe()}, "
                    f"{len(profile.vservers)} vserver(s))"
                )
            except ConfigError as exc:
                problems.extend(exc.problems)
    elif scm is None and not problems:
        raise UsageError("nothing to validate: name profiles, or pass --scm-config")
    for problem in problems:
        click.echo(f"error: {problem}", err=True)
    sys.exit(EXIT_CONFIG if problems else 0)


@cli.command(short_help="Print the cron line, systemd units and schtasks command for `run`.")
@required_profiles_argument
@click.option(
    "--workers", type=click.IntRange(1, 256), default=None, help="Passed to `run` (default: run's)."
)
@click.option(
    "--every", type=click.Choice(["hourly", "daily"]), default="daily", show_default=True, help="How often."
)
@click.option(
    "--at",
    "at",
    metavar="HH:MM",
    default=None,
    help="Time of day for daily runs (default: 03:MM, MM derived from this host's name); hourly: :MM.",
)
@click.option(
    "--env-file",
    type=click.Path(path_type=Path),
    default=None,
    help="A KEY=value file (mode 0600) with the secrets the configs name as ${KEY}.",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["all", "cron", "systemd", "schtasks"]),
    default="all",
    show_default=True,
)
@click.pass_obj
def schedule(
    ctx: Context,
    profiles: tuple[str, ...],
    workers: int | None,
    every: str,
    at: str | None,
    env_file: Path | None,
    fmt: str,
) -> None:
    """Print what runs `citrixagent run PROFILES` on a schedule: a cron line, a systemd service + timer
    pair and a Windows `schtasks` command, with the absolute paths of the executable, configs, state
    directory and log file given here. Nothing is installed."""
    import platform

    from .schedule import (
        ScheduleSpec,
        agent_command,
        cron_line,
        default_minute,
        schtasks_command,
        systemd_units,
    )

    hour, minute = 3, default_minute(platform.node())
    if at is not None:
        try:
            hour_text, minute_text = at.split(":") if ":" in at else ("0", at)
            hour, minute = int(hour_text), int(minute_text)
            if not (0 <= hour < 24 and 0 <= minute < 60):
                raise ValueError
        except ValueError:
            raise UsageError(f"--at: expected HH:MM (00:00 to 23:59), got {at!r}") from None
    scm_path = ctx.scm_config_path or (Path("scm.yaml") if Path("scm.yaml").exists() else None)
    spec = ScheduleSpec(
        command=agent_command(),
        profiles=tuple(Path(p).resolve() for p in profiles),
        scm_config=scm_path.resolve() if scm_path is not None else None,
        state_dir=ctx.state_dir.resolve(),
        log_file=ctx.log_file.resolve() if ctx.log_file is not None else None,
        workers=workers,
        env_file=env_file.resolve() if env_file is not None else None,
        every="hourly" if every == "hourly" else "daily",
        hour=hour,
        minute=minute,
    )
    sections: list[tuple[str, str]] = []
    if fmt in ("all", "cron"):
        title = "# cron (crontab -e; in /etc/cron.d/ add the user column):"
        sections.append((title, cron_line(spec)))
    if fmt in ("all", "systemd"):
        service, timer = systemd_units(spec)
        sections.append(("# /etc/systemd/system/citrixagent.service", service.rstrip()))
        title = "# /etc/systemd/system/citrixagent.timer  (then: systemctl enable --now citrixagent.timer)"
        sections.append((title, timer.rstrip()))
    if fmt in ("all", "schtasks"):
        sections.append(("REM Windows Task Scheduler (an elevated cmd.exe):", schtasks_command(spec)))
    click.echo("\n\n".join(f"{title}\n{body}" for title, body in sections))


@cli.command(short_help="Print the JSON Schema of a profile or of scm.yaml.")
@click.argument("kind", type=click.Choice(["profile", "scm"]))
def schema(kind: str) -> None:
    """Print the JSON Schema of a profile or of scm.yaml (for editors: see README)."""
    from .config.schema import schema_text

    click.echo(schema_text("profile" if kind == "profile" else "scm"), nl=False)


@cli.command(short_help="The whole job once, on the built-in sandbox.")
@click.option(
    "--api",
    type=click.Choice(["admin", "enrollment"]),
    default="admin",
    show_default=True,
    help="Which SCM API the demo talks to.",
)
@click.option(
    "--dir",
    "directory",
    type=click.Path(path_type=Path),
    default=None,
    help="Keep the sandbox files here (default: a temporary directory).",
)
@click.pass_obj
def demo(ctx: Context, api: str, directory: Path | None) -> None:
    """Run the whole job once on the built-in sandbox (simulated SCM + NetScaler)."""
    _ensure_license(ctx)
    from .demo import run_demo

    with tempfile.TemporaryDirectory(prefix="citrixagent-demo-") as tmp:
        code = run_demo(
            Path(directory) if directory else Path(tmp), api=api, json_output=ctx.json_output, echo=click.echo
        )
    sys.exit(code)


@cli.group(short_help="Notifications: send a test message.")
def notify() -> None:
    """Notifications by e-mail and webhook (configured in citrixagent.yaml)."""


@notify.command("test")
@click.pass_obj
def notify_test(ctx: Context) -> None:
    """Send a test message through every configured channel and report each (exit 1 if one failed)."""
    from .monitoring import run_context
    from .notify.service import Notifier

    settings = _load_settings(ctx)
    if settings is None or not settings.notify.channels:
        raise UsageError(
            "no notification channel configured: write notify.email and/or notify.webhooks in "
            f"citrixagent.yaml and pass it with --settings (or {SETTINGS_ENV})"
        )
    notifier = Notifier(
        settings.notify,
        ctx.state_dir,
        context=run_context(ctx.run_id, datetime.now(timezone.utc)),
        scrub=scrubber,
        command_for=lambda _sub, _source: "",
    )
    reports = notifier.test()
    if ctx.json_output:
        click.echo(json.dumps([{"channel": r.channel, "ok": r.ok, "detail": r.detail} for r in reports]))
    else:
        for r in reports:
            click.echo(f"{'ok    ' if r.ok else 'FAILED'}  {r.channel}: {r.detail}")
    sys.exit(0 if all(r.ok for r in reports) else EXIT_FAILURE)


@cli.group(short_help="The built-in simulated SCM and NetScaler.")
def sandbox() -> None:
    """The built-in simulated SCM and NetScaler."""


@sandbox.command("serve")
@click.option(
    "--dir",
    "directory",
    type=click.Path(path_type=Path),
    required=True,
    help="Where to write scm.yaml, the CA bundle and ready profiles.",
)
@click.option(
    "--appliances",
    type=click.IntRange(1, 256),
    default=1,
    show_default=True,
    help="How many simulated NetScalers to start in this process (one profile set each).",
)
@click.option(
    "--issue-after-polls",
    type=click.IntRange(0, 100),
    default=2,
    show_default=True,
    help="SCM answers 'being processed' this many times before issuing.",
)
@click.option(
    "--latency-ms",
    type=click.IntRange(0, 10_000),
    default=0,
    show_default=True,
    help="Delay added to every request, like a real network round trip.",
)
@click.option(
    "--issue-after-seconds",
    type=click.FloatRange(0, 3600),
    default=None,
    help="SCM issues this long after the order instead (time-based, like the real SCM).",
)
@click.option(
    "--brownfield",
    is_flag=True,
    help="Seed the first appliance and SCM with certificates the agent never installed (try `discover`).",
)
@click.option(
    "--notify",
    "with_notify",
    is_flag=True,
    help="Also start a mail catcher (SMTP) and a webhook receiver, write citrixagent.yaml for them, "
    "and print every notification they receive.",
)
@click.option(
    "--ha-pairs",
    type=click.IntRange(0, 8),
    default=0,
    show_default=True,
    help="Also start this many HA pairs (primary + secondary; config propagates, SSL files need a sync).",
)
@click.option(
    "--ha-file-sync-seconds",
    type=click.FloatRange(1, 86400),
    default=None,
    help="The HA pairs sync SSL files to the secondary this often (default: only on `hafiles` sync).",
)
def sandbox_serve(
    directory: Path,
    appliances: int,
    issue_after_polls: int,
    latency_ms: int,
    issue_after_seconds: float | None,
    brownfield: bool,
    with_notify: bool,
    ha_pairs: int,
    ha_file_sync_seconds: float | None,
) -> None:
    """Start the simulated SCM (both APIs) and NetScaler(s) until interrupted (Ctrl-C)."""
    from .sandbox.world import Sandbox

    world = Sandbox(
        directory,
        appliances=appliances,
        issue_after_polls=issue_after_polls,
        issue_after_seconds=issue_after_seconds,
        latency=latency_ms / 1000,
        brownfield=brownfield,
        ha_pairs=ha_pairs,
        ha_file_sync_seconds=ha_file_sync_seconds,
    )
    with contextlib.ExitStack() as stack:
        stack.enter_context(world)
        sinks = _start_notify_sinks(world, stack) if with_notify else None
        click.echo("citrixagent sandbox running (Ctrl-C to stop)")
        for line in [*world.describe(), *(sinks.describe() if sinks else [])]:
            click.echo(line)
        if brownfield:
            click.echo(
                f"\nBrownfield: export SANDBOX_ADC_PASSWORD=... (see {world.appliances_yaml}), then: "
                f"citrixagent --accept-license --scm-config {world.scm_yaml} discover {world.appliances_yaml}"
            )
        settings = f"--settings {sinks.settings_path} " if sinks else ""
        click.echo(
            f"\nTry: citrixagent --accept-license --scm-config {world.scm_yaml} {settings}enroll "
            f"{world.profile_path('lb-profile')}"
        )
        if sinks:
            click.echo(f"     citrixagent --settings {sinks.settings_path} notify test")
        sys.stdout.flush()
        try:
            # A wait with a timeout, in a loop: an untimed wait cannot be interrupted by Ctrl-C on Windows.
            # Ctrl-C / SIGTERM set the stop request (see _stop_on_signals).
            shown = (0, 0)
            while not stopping.stop_requested():
                time.sleep(0.2)
                if sinks:
                    shown = _print_received(sinks, shown)
        except KeyboardInterrupt:
            pass
        stopping.reset()  # Ctrl-C is how the sandbox is meant to stop: exit 0
        click.echo("stopping")


def _start_notify_sinks(world: Any, stack: contextlib.ExitStack) -> Any:
    from .sandbox.mailcatcher import mail_catcher_available
    from .sandbox.notifysinks import NotifySinks

    if not mail_catcher_available():
        raise UsageError("the mail catcher needs aiosmtpd: pip install 'citrixagent[sandbox]'")
    return stack.enter_context(NotifySinks(world))


def _print_received(sinks: Any, shown: tuple[int, int]) -> tuple[int, int]:
    """Print the mails and webhook payloads that arrived since the last call."""
    mails, payloads = sinks.mail.messages, sinks.webhook.payloads
    for mail in mails[shown[0] :]:
        click.echo(f"\n=== mail from {mail.sender} to {', '.join(mail.recipients)}: {mail.subject}")
        click.echo(mail.text.rstrip())
    for payload in payloads[shown[1] :]:
        click.echo(f"\n=== webhook {payload.get('summary', '')}")
        click.echo(json.dumps(payload, indent=2))
    sys.stdout.flush()
    return len(mails), len(payloads)


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
    with _stop_on_signals():
        _main(argv)


def _main(argv: Sequence[str] | None) -> None:
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


__all__ = ["EXIT_ATTENTION", "cli", "main"]

if __name__ == "__main__":
    main()
