"""What happens after a ``run`` once its outcomes are known: the audit events, the notification memory
and channels, the metrics file. Wired by the CLI; nothing here changes the run's exit code or loses
its work -- every failure is logged and the next run tries again.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from .config import Profile
from .errors import CitrixAgentError
from .hints import CommandHint, invoked_program
from .lifecycle import Outcome
from .metrics import RunFacts, write_metrics
from .notify.render import RunContext
from .notify.service import ChannelReport, Notifier
from .notify.settings import NotifySettings, Settings
from .notify.views import build_views
from .state import StateStore

__all__ = ["RunInfo", "after_run", "command_builder", "host_name", "run_context"]

log = logging.getLogger("citrixagent")


@dataclass(frozen=True)
class RunInfo:
    run_id: str
    started: datetime
    duration_seconds: float
    exit_code: int


def host_name() -> str:
    return socket.gethostname() or "localhost"


def run_context(run_id: str, now: datetime) -> RunContext:
    return RunContext(run_id, host_name(), now.astimezone(timezone.utc).isoformat(timespec="seconds"))


def command_builder(scm_config: Path | None, state_dir: Path) -> Callable[[str, str | None], str]:
    """``(subcommand, profile file) -> the exact command line`` a person runs by hand: the same
    command line the run's own hints print (:class:`~citrix_connector.hints.CommandHint`)."""
    hint = CommandHint(scm_config, state_dir, invoked_program())

    def build(subcommand: str, source: str | None) -> str:
        return hint(subcommand, source) if source else hint(subcommand) + " PROFILE.yaml"

    return build


def after_run(
    outcomes: Sequence[Outcome],
    profiles: Mapping[str, Profile],
    store: StateStore,
    *,
    info: RunInfo,
    settings: Settings | None,
    metrics_file: Path | None,
    command_for: Callable[[str, str | None], str],
    scrub: Callable[[str], str],
    now: datetime,
) -> list[ChannelReport]:
    """Audit events, notifications, metrics. Never raises (a failure here is logged, not fatal)."""
    reports: list[ChannelReport] = []
    try:
        views = build_views(outcomes, profiles, store)
        notifier = Notifier(
            settings.notify if settings is not None else NotifySettings(),
            store.root,
            context=run_context(info.run_id, now),
            scrub=scrub,
            command_for=command_for,
        )
        reports = notifier.after_run(views, now)
        if metrics_file is not None:
            from .notify.memory import load_memory

            memory = load_memory(store.root)
            facts = RunFacts(
                started=info.started,
                finished=now,
                duration_seconds=info.duration_seconds,
                exit_code=info.exit_code,
                failed_streaks={name: s.failed for name, s in memory.streaks.items()},
                channels_up={r.channel: r.ok for r in reports},
            )
            write_metrics(metrics_file, views, facts)
    except CitrixAgentError as exc:
        log.error("%s", exc)
    except Exception:  # a bug here must not cost the run its exit code
        log.exception("internal error after the run (notifications/metrics); the run itself is unaffected")
    return reports
