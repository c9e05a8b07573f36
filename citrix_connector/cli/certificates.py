"""enroll, renew, replace, revoke and run: the commands that change certificates."""

from __future__ import annotations

import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

import click

from ..errors import UsageError
from ..redaction import scrubber
from ..revocation import REVOCATION_REASONS

if TYPE_CHECKING:
    from ..config import Profile
    from ..lifecycle import Outcome


from .common import (
    _agent,
    _load_settings,
    _profile_command,
    dry_run_option,
    required_profiles_argument,
    workers_option,
)
from .context import Context
from .group import cli


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
@click.option(
    "--dry-run",
    is_flag=True,
    help="Say what would be revoked (order, serial) and where it is still bound; send and write nothing.",
)
@click.pass_obj
def revoke(ctx: Context, profiles: tuple[str, ...], reason: str, yes: bool, dry_run: bool) -> None:
    """Revoke each PROFILE's current certificate at SCM (--dry-run: only say what would be revoked)."""

    def ask(loaded: list[Profile]) -> None:
        if yes or dry_run:
            return
        if not sys.stdin.isatty():
            raise UsageError("revoke asks for confirmation: pass --yes for unattended use")
        names = ", ".join(p.name for p in loaded)
        click.confirm(f"Revoke the current certificate of {names} ({reason})?", abort=True, err=True)

    code = REVOCATION_REASONS[reason]
    _profile_command(
        ctx, profiles, lambda a, p: a.revoke(p, reason=reason, reason_code=code), confirm=ask, dry_run=dry_run
    )


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
        from ..lifecycle import worst_exit_code
        from ..monitoring import RunInfo, after_run, command_builder

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
