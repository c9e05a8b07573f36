"""`sandbox serve`: the simulated SCM and NetScalers, until interrupted."""

from __future__ import annotations

import contextlib
import json
import sys
import time
from pathlib import Path
from typing import Any

import click

from .. import stopping
from ..errors import UsageError
from .group import cli


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
    help="How many standalone simulated NetScalers to start in this process. The ready profiles are for "
    "NetScaler #1 (and each HA pair); with two or more NetScalers and HA pairs in all, multi-profile.yaml "
    "covers every one of them with appliances: (on its own vserver, vs_multi_https).",
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
    from ..sandbox.world import Sandbox

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
    from ..sandbox.mailcatcher import mail_catcher_available
    from ..sandbox.notifysinks import NotifySinks

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
