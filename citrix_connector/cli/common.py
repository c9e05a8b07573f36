"""Loading configs and profiles, building the Agent, printing rows: what the commands share."""

from __future__ import annotations

import gc
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import click

from .. import stopping
from ..errors import UsageError
from ..notify.names import DEFAULT_SETTINGS_FILE
from ..redaction import scrubber

if TYPE_CHECKING:
    from ..config import Profile, ScmConfig
    from ..lifecycle import Agent, Outcome
    from ..notify.settings import Settings


from .context import Context, _ensure_license, log

# ----------------------------------------------------------------------------------------- loading


def _load_scm(ctx: Context, *, required: bool, log_warnings: bool = True) -> ScmConfig | None:
    from ..config import load_scm_config

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
    for warning in config.warnings if log_warnings else ():
        log.warning("%s", warning)
    return config


def keep_out_of_gc() -> None:
    """Everything alive now (modules, the loaded profiles) is left alone by the garbage collector
    for the rest of the command: the profiles live that long, and scanning them again and again
    cost seconds at 10,000. The entry point gives them back to it when the command ends
    (``gc.unfreeze``), so an in-process caller leaks nothing."""
    gc.collect(0)  # the loading's own garbage first (one pass over what it allocated)
    gc.freeze()


def _load_profiles(
    args: Sequence[str], scm: ScmConfig | None, action: str = "nothing"
) -> tuple[list[Profile], list[Outcome]]:
    """Valid profiles, and a failed outcome (exit 2; ACTION the command's) for each invalid one.
    The checks are :func:`~citrix_connector.preflight.check_profile_files`, which validate shares."""
    from ..lifecycle import Outcome
    from ..preflight import check_profile_files

    profiles: list[Profile] = []
    bad: list[Outcome] = []
    checks = check_profile_files(args, scm)
    keep_out_of_gc()
    for check in checks:
        for warning in check.warnings:
            log.warning("%s", warning)
        if check.profile is not None:
            profiles.append(check.profile)
            continue
        assert check.error is not None
        bad.append(
            Outcome(
                check.path.stem,
                action if action in _ACTIONS else "nothing",  # type: ignore[arg-type]
                "failed",
                str(check.error),
                details={"config_problems": list(check.error.problems), "source": str(check.path)},
                exit_code=check.error.exit_code,
            )
        )
    return profiles, bad


#: the commands whose name is the action a refused profile's row shows
_ACTIONS = frozenset({"enroll", "renew", "replace", "revoke", "status", "run"})


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
    # a profile with several appliances has a row per appliance: the table then says which
    several = any(o.target is not None for o in outcomes)
    if several:
        headers.insert(1, "APPLIANCE")
    rows = []
    for o in outcomes:
        expires = (
            f"{o.expires} ({o.days_left}d)" if o.expires and o.days_left is not None else (o.expires or "-")
        )
        rows.append(
            [
                o.profile,
                *([o.appliance or "-"] if several else []),
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
    out: list[str] = []  # one write: a fleet's table is thousands of lines
    for row in [headers, *rows]:
        out.append("  ".join(str(cell).ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
    for o in outcomes:
        if o.message:
            who = f"{o.profile} on {o.appliance}" if o.target is not None else o.profile
            out.append(f"{who}: {o.message}")
        for line in o.plan if o.result == "planned" else []:
            out.append(f"  - {line}" if not line.startswith("  ") else f"    {line.strip()}")
        if o.action == "status":
            for key in (
                "next",
                "pending",
                "scm_status",
                "issued_serial",
                "link",
                "appliance_error",
                "scm_error",
                "last_check",
            ):
                value = o.details.get(key)
                if value and not (key == "issued_serial" and value == o.serial):
                    out.append(f"  {key.replace('_', ' ')}: {value}")
        out.extend(f"  {line}" for line in _verification_lines(o))
    click.echo("\n".join(out))


def _verification_lines(o: Outcome) -> list[str]:
    """Each VIP probed (and the HA secondary) of a row: ``vip: vs_www 127.0.0.1:443: ok: ...``."""
    if o.action == "status":
        lines = [f"vip: {line}" for line in o.details.get("probe_lines", [])]
        return lines + ([f"probe error: {o.details['probe_error']}"] if o.details.get("probe_error") else [])
    verification = o.details.get("verification")
    if not isinstance(verification, dict):
        return []
    lines = []
    for vip in verification.get("vips", []):
        sni = f" (SNI {vip['server_name']})" if vip.get("server_name") else ""
        lines.append(f"vip: {vip['vserver']} {vip['address']}{sni}: {vip['detail']}")
    ha = verification.get("ha")
    if isinstance(ha, dict):
        lines.append(f"secondary: {ha['detail']}")
    return lines


def _finish(ctx: Context, outcomes: Sequence[Outcome]) -> NoReturn:
    from ..lifecycle import worst_exit_code

    click_ctx = click.get_current_context(silent=True)
    from ..auditlog import log_outcomes

    log_outcomes(click_ctx.info_name if click_ctx and click_ctx.info_name else "-", outcomes)
    _print_outcomes(ctx, outcomes)
    sys.exit(worst_exit_code(outcomes))


def _make_agent(ctx: Context, scm: ScmConfig | None, **kwargs: Any) -> Agent:
    from ..lifecycle import Agent

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
    click_ctx = click.get_current_context(silent=True)
    command = click_ctx.info_name if click_ctx is not None and click_ctx.info_name else "nothing"
    profiles, bad = _load_profiles(profile_args, scm, command)
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
    passwords = [t.appliance.password for p in profiles for t in p.targets]
    scrubber.add(s.reveal() for s in [*secrets, *passwords])


def _load_settings(ctx: Context) -> Settings | None:
    from ..notify.settings import load_settings

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
