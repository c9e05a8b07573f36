"""schedule, schema, demo and notify test: helpers around the agent."""

from __future__ import annotations

import json
import sys
import tempfile
from datetime import datetime, timezone
from pathlib import Path

import click

from ..errors import EXIT_FAILURE, UsageError
from ..notify.names import SETTINGS_ENV
from ..redaction import scrubber
from .common import _load_settings, required_profiles_argument
from .context import Context, _ensure_license
from .group import cli


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

    from ..schedule import (
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


@cli.command(short_help="Print the JSON Schema of a profile, scm.yaml or citrixagent.yaml.")
@click.argument("kind", type=click.Choice(["profile", "scm", "settings"]))
def schema(kind: str) -> None:
    """Print the JSON Schema of a profile, of scm.yaml or of the settings file citrixagent.yaml
    (the copies under schemas/ are the same; for editors: see README)."""
    if kind == "settings":
        from ..notify.settings import settings_schema_text

        click.echo(settings_schema_text(), nl=False)
        return
    from ..config.schema import schema_text

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
    from ..demo import run_demo

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
    from ..monitoring import run_context
    from ..notify.service import Notifier

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
