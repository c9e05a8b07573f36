"""status (table and Nagios), discover and validate: the commands that only read."""

from __future__ import annotations

import json
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

import click

from ..errors import EXIT_FAILURE, CitrixAgentError, UsageError
from ..redaction import scrubber

if TYPE_CHECKING:
    from ..config import Profile
    from ..lifecycle import Agent, Outcome


from .common import _agent, _load_scm, _profile_command, _scrub_secrets_of, profiles_argument, workers_option
from .context import EXIT_ATTENTION, Context, _ensure_license
from .group import cli


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
@click.option(
    "--probe",
    is_flag=True,
    help="Also a TLS handshake to every vserver's VIP: the serial, chain, protocol and names served.",
)
def status(
    ctx: Context,
    profiles: tuple[str, ...],
    workers: int | None,
    output_format: str,
    warning_days: int,
    critical_days: int,
    probe: bool,
) -> None:
    """One row per profile: installed certificate, SCM order, pending work, what `run` would do next.

    Without PROFILES: every profile the state directory has worked with.
    Exit 0 when nothing needs attention, 5 when some profile needs work, a VIP with --probe included
    (with --format nagios: the Nagios plugin exit codes instead)."""
    if output_format == "nagios":
        _nagios_status(ctx, profiles, warning_days, critical_days, workers)
    if not profiles:
        profiles = tuple(str(p) for p in ctx.store.recorded_sources())
        if not profiles:
            raise UsageError(f"no profile given, and the state directory {ctx.state_dir} knows none yet")
    run = _probing_status if probe else _agent("status")
    _profile_command(ctx, profiles, run, scm_required=False, lock=False, workers=workers)


def _probing_status(agent: Agent, profiles: list[Profile]) -> list[Outcome]:
    return agent.status(profiles, probe=True)


def _nagios_status(
    ctx: Context, profiles: tuple[str, ...], warning_days: int, critical_days: int, workers: int | None
) -> NoReturn:
    from ..nagios import UNKNOWN, nagios_check
    from ..notify.memory import load_memory

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

    from ..discovery.profiles import SectigoDefaults, write_profiles
    from ..discovery.report import inventory_lines, written_lines
    from ..discovery.runner import discover as run_discovery
    from ..discovery.targets import load_targets

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
