"""After a run: update the streaks, work out what each channel still has to hear, send one message per
channel, remember what was delivered. Also ``notify test``.

Nothing here can fail a run: every channel's failure is caught, logged and left for the next run (the
channel's memory is only advanced after it delivered), and the memory file is written even when every
channel failed, so the streak counters stay right.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from ..errors import CitrixAgentError
from .channels import send
from .conditions import Condition, Event, ProfileView, Thresholds, conditions_for, diff, info_events
from .conditions import update_streaks as _update
from .memory import ChannelMemory, LastRun, NotifyMemory, load_memory, save_memory
from .render import Message, RunContext, render, render_test
from .settings import EmailChannel, NotifySettings, WebhookChannel

__all__ = ["ChannelReport", "Notifier", "record_run"]

log = logging.getLogger("citrixagent.notify")

Sender = Callable[[EmailChannel | WebhookChannel, Message, str], None]


@dataclass(frozen=True)
class ChannelReport:
    channel: str
    ok: bool
    sent: bool  # False: nothing new to say
    detail: str = ""
    events: int = 0


def _default_sender(channel: EmailChannel | WebhookChannel, message: Message, run_id: str) -> None:
    send(channel, message, run_id=run_id)


def record_run(memory: NotifyMemory, views: Sequence[ProfileView], at: str) -> None:
    """The streaks and last results after this run (kept with or without notification channels)."""
    for view in views:
        memory.streaks[view.profile] = _update(memory.streaks.get(view.profile), view, at)
        memory.last_runs[view.profile] = LastRun(at, view.action, view.result, view.message)


def _info_record(event: Event) -> dict[str, Any]:
    return {"profile": event.profile, "title": event.title, "detail": event.detail, "data": dict(event.data)}


def _info_event(record: dict[str, Any]) -> Event:
    return Event(
        "info",
        str(record.get("profile", "")),
        str(record.get("title", "")),
        detail=str(record.get("detail", "")),
        data=dict(record.get("data") or {}),
    )


class Notifier:
    """Sends what needs a person through every configured channel. One per CLI invocation."""

    def __init__(
        self,
        settings: NotifySettings,
        state_dir: Path,
        *,
        context: RunContext,
        scrub: Callable[[str], str],
        command_for: Callable[[str, str | None], str],
        sender: Sender = _default_sender,
    ) -> None:
        self.settings = settings
        self.state_dir = Path(state_dir)
        self.context = context
        self.scrub = scrub
        self.command_for = command_for
        self.sender = sender

    @property
    def thresholds(self) -> Thresholds:
        s = self.settings
        return Thresholds(s.failed_after_runs, s.pending_after_runs, tuple(s.expiry_warning_days))

    def current_conditions(
        self, memory: NotifyMemory, views: Sequence[ProfileView], now: datetime
    ) -> list[Condition]:
        found: list[Condition] = []
        for view in views:
            streaks = memory.streaks.get(view.profile)
            assert streaks is not None  # record_run ran first
            found.extend(conditions_for(view, streaks, now, self.thresholds, self.command_for))
        return found

    def after_run(self, views: Sequence[ProfileView], now: datetime) -> list[ChannelReport]:
        """Update the memory with this run, notify every channel, save. Never raises."""
        at = self.context.at
        memory = load_memory(self.state_dir)
        record_run(memory, views, at)
        current = self.current_conditions(memory, views, now)
        seen = {v.profile: v for v in views}
        done = info_events(views) if self.settings.summary else []
        reports: list[ChannelReport] = []
        channels = self.settings.channels
        wanted = {c.channel_id for c in channels}
        for stale in [c for c in memory.channels if c not in wanted]:
            del memory.channels[stale]  # a channel removed from the settings
        for channel in channels:
            mem = memory.channels.setdefault(channel.channel_id, ChannelMemory())
            mem.queued_info.extend(_info_record(e) for e in done)
            events, delivered = diff(mem.delivered, current, seen, at, resolved=self.settings.resolved)
            events += [_info_event(r) for r in mem.queued_info]
            reports.append(self._deliver(channel, mem, events, delivered))
        try:
            save_memory(self.state_dir, memory)
        except OSError as exc:
            log.error("cannot save the notification memory in %s: %s", self.state_dir, exc)
        return reports

    def _deliver(
        self,
        channel: EmailChannel | WebhookChannel,
        mem: ChannelMemory,
        events: list[Event],
        delivered: dict[str, dict[str, Any]],
    ) -> ChannelReport:
        name = channel.channel_id
        if not events:
            mem.delivered = delivered  # e.g. conditions of profiles that left the run set are kept
            return ChannelReport(name, True, False, "nothing new")
        mem.last_attempt = self.context.at
        prefix = channel.subject_prefix if isinstance(channel, EmailChannel) else ""
        try:
            message = render(events, self.context, self.scrub, prefix)
            self.sender(channel, message, self.context.run_id)
        except CitrixAgentError as exc:
            mem.last_error = self.scrub(str(exc))
            log.error(
                "notification through %s failed (%d item(s) kept, retried on the next run): %s",
                name,
                len(events),
                mem.last_error,
            )
            return ChannelReport(name, False, False, mem.last_error, len(events))
        except Exception as exc:  # a bug in a channel must not cost the run its exit code
            mem.last_error = self.scrub(f"internal error: {type(exc).__name__}: {exc}")
            log.exception("notification through %s failed", name)
            return ChannelReport(name, False, False, mem.last_error, len(events))
        mem.delivered = delivered
        mem.queued_info.clear()
        mem.last_success = self.context.at
        mem.last_error = None
        log.info("notification sent through %s: %s", name, message.subject)
        return ChannelReport(name, True, True, message.subject, len(events))

    def test(self) -> list[ChannelReport]:
        """Send a test message through every channel; one report each (memory untouched)."""
        reports = []
        for channel in self.settings.channels:
            prefix = channel.subject_prefix if isinstance(channel, EmailChannel) else ""
            message = render_test(self.context, channel.channel_id, prefix)
            try:
                self.sender(channel, message, self.context.run_id)
            except CitrixAgentError as exc:
                reports.append(ChannelReport(channel.channel_id, False, False, self.scrub(str(exc))))
                continue
            reports.append(ChannelReport(channel.channel_id, True, True, _describe(channel)))
        return reports


def _describe(channel: EmailChannel | WebhookChannel) -> str:
    if isinstance(channel, EmailChannel):
        return (
            f"sent to {', '.join(channel.recipients)} via {channel.host}:{channel.effective_port} "
            f"({channel.security})"
        )
    return f"posted to webhook {channel.name}"
