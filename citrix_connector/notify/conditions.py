"""What needs a person, and what each channel has already been told. Pure functions, no I/O.

A run gives one :class:`ProfileView` per profile (built from its outcome and journal). The streak
counters (:class:`Streaks`) carry over between runs; :func:`conditions_for` turns a view into the
conditions that hold now, and :func:`diff` compares them with what one channel was told before, so
each condition is sent once per threshold or per failure streak, and once more when it clears.

Two condition families per profile, each under one key so a change of kind is one message:

* ``run:<profile>``: ``failed`` (on N runs in a row), ``blocked`` (SCM declined the order; unattended
  runs wait for a person), ``pending`` (still pending after the collect deadline on N runs in a row);
* ``expiry:<profile>``: the certificate, with no order pending, has crossed a warning threshold
  (level = the threshold, or ``expired``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

__all__ = [
    "Condition",
    "Delivered",
    "Event",
    "ProfileView",
    "Streaks",
    "Thresholds",
    "conditions_for",
    "days_left",
    "diff",
    "info_events",
    "update_streaks",
]

Kind = Literal["failed", "blocked", "pending", "expiry"]
CommandFor = Callable[[str, "str | None"], str]  # (subcommand, profile source) -> the command line

SUMMARY_ACTIONS = frozenset({"enroll", "collect", "renew", "replace", "redeploy"})


@dataclass(frozen=True)
class ProfileView:
    """One profile after a run: what happened, and what its journal says now."""

    profile: str
    source: str | None
    appliance: str
    vservers: tuple[str, ...]
    action: str
    result: str
    message: str
    remote_code: str | None = None  # e.g. "SCM code -62 (HTTP 400)"
    order_id: str | None = None
    serial: str | None = None
    pending_order: str | None = None
    declined: Mapping[str, Any] | None = None
    not_after: datetime | None = None
    renew_at: datetime | None = None  # when the profile's renewal window opens for this certificate


@dataclass(frozen=True)
class Thresholds:
    failed_after_runs: int = 1
    pending_after_runs: int = 3
    expiry_days: tuple[int, ...] = (30, 14, 7, 1)


@dataclass
class Streaks:
    """Per profile, carried across runs: consecutive failed / pending runs."""

    failed: int = 0
    pending: int = 0
    since: str | None = None  # when the current streak began (ISO)


@dataclass(frozen=True)
class Condition:
    key: str
    kind: Kind
    level: str
    profile: str
    title: str  # one line
    what: str  # what is wrong, with the remote's code
    next: str  # what the agent will do next
    command: str  # the exact command to run by hand
    appliance: str = ""
    vservers: tuple[str, ...] = ()
    data: Mapping[str, Any] = field(default_factory=dict)

    def record(self, at: str) -> dict[str, Any]:
        return {
            "level": self.level,
            "kind": self.kind,
            "profile": self.profile,
            "title": self.title,
            "at": at,
        }


@dataclass(frozen=True)
class Event:
    status: Literal["problem", "resolved", "info"]
    profile: str
    title: str
    condition: Condition | None = None
    detail: str = ""  # resolved: how it cleared; info: what was done
    data: Mapping[str, Any] = field(default_factory=dict)


Delivered = dict[str, dict[str, Any]]  # condition key -> Condition.record() of what a channel was told


def days_left(not_after: datetime, now: datetime) -> int:
    """Whole days until ``not_after`` (negative once expired)."""
    return math.floor((not_after - now).total_seconds() / 86400)


def update_streaks(previous: Streaks | None, view: ProfileView, at: str) -> Streaks:
    """The counters after this run: a failed or pending run extends its streak, anything else ends it."""
    before = previous or Streaks()
    if view.result == "failed":
        return Streaks(failed=before.failed + 1, since=before.since if before.failed else at)
    if view.result == "pending":
        return Streaks(pending=before.pending + 1, since=before.since if before.pending else at)
    return Streaks()


def _runs(n: int) -> str:
    return "1 run" if n == 1 else f"{n} runs in a row"


def _run_condition(
    view: ProfileView, streaks: Streaks, limits: Thresholds, command_for: CommandFor
) -> Condition | None:
    code = f" ({view.remote_code})" if view.remote_code else ""
    data: dict[str, Any] = {"order_id": view.order_id, "since": streaks.since}
    if view.declined is not None:
        order = view.declined.get("order_id")
        kind = str(view.declined.get("kind") or "enroll")
        reason = str(view.declined.get("message") or view.message)
        return Condition(
            f"run:{view.profile}",
            "blocked",
            "blocked",
            view.profile,
            f"{view.profile}: blocked: SCM declined {kind} order {order}",
            f"SCM declined or revoked {kind} order {order} before it could be collected: {reason}",
            "scheduled runs do not order again for this profile until a person acts; fix the cause in "
            f"SCM, then {kind} by hand",
            command_for(kind if kind in ("enroll", "renew", "replace") else "enroll", view.source),
            view.appliance,
            view.vservers,
            data={**data, "order_id": order, "declined_at": view.declined.get("at")},
        )
    if view.result == "failed" and streaks.failed >= limits.failed_after_runs:
        pending = (
            f"; SCM order {view.pending_order} stays pending and is collected then, never ordered twice"
            if view.pending_order
            else ""
        )
        return Condition(
            f"run:{view.profile}",
            "failed",
            "failed",
            view.profile,
            f"{view.profile}: failed" + (f" on {_runs(streaks.failed)}" if streaks.failed > 1 else ""),
            f"{view.message}{code}",
            f"the next scheduled run tries again{pending}",
            command_for("run", view.source),
            view.appliance,
            view.vservers,
            data={**data, "runs": streaks.failed, "remote_code": view.remote_code},
        )
    if view.result == "pending" and streaks.pending >= limits.pending_after_runs:
        order = view.pending_order or view.order_id
        return Condition(
            f"run:{view.profile}",
            "pending",
            "pending",
            view.profile,
            f"{view.profile}: SCM order {order} still pending after {_runs(streaks.pending)}",
            f"SCM has not issued order {order} within the collect deadline on {_runs(streaks.pending)}"
            f" (pending since {streaks.since}): {view.message}",
            f"each run collects order {order} as soon as SCM issues it; nothing is ordered again. Check "
            "the order in SCM (approval, domain validation)",
            command_for("run", view.source),
            view.appliance,
            view.vservers,
            data={**data, "order_id": order, "runs": streaks.pending},
        )
    return None


def _expiry_condition(
    view: ProfileView, now: datetime, limits: Thresholds, command_for: CommandFor
) -> Condition | None:
    if view.not_after is None or view.pending_order is not None or not limits.expiry_days:
        return None
    left = days_left(view.not_after, now)
    crossed = [d for d in limits.expiry_days if left <= d]
    if not crossed:
        return None
    level = "expired" if left < 0 else str(min(crossed))
    expires = view.not_after.strftime("%Y-%m-%d %H:%M UTC")
    if left < 0:
        title = f"{view.profile}: certificate EXPIRED on {expires}"
    else:
        title = f"{view.profile}: certificate expires in {left} day{'s' if left != 1 else ''} ({expires})"
    if view.renew_at is not None and view.renew_at > now:
        nxt = (
            f"the agent renews it from {view.renew_at.strftime('%Y-%m-%d')} (the profile's renewal window);"
            " renew by hand to do it sooner"
        )
    else:
        nxt = (
            "its renewal window is open but it has not been renewed: each run tries again; "
            "see the run's error, or renew by hand"
        )
    return Condition(
        f"expiry:{view.profile}",
        "expiry",
        level,
        view.profile,
        title,
        f"certificate serial {view.serial or '?'} is served until {expires} and no renewal is pending",
        nxt,
        command_for("renew", view.source),
        view.appliance,
        view.vservers,
        data={"days_left": left, "not_after": view.not_after.isoformat(), "serial": view.serial},
    )


def conditions_for(
    view: ProfileView, streaks: Streaks, now: datetime, limits: Thresholds, command_for: CommandFor
) -> list[Condition]:
    found = [
        _run_condition(view, streaks, limits, command_for),
        _expiry_condition(view, now, limits, command_for),
    ]
    return [c for c in found if c is not None]


def _how_resolved(record: Mapping[str, Any], view: ProfileView | None) -> str:
    if view is None:
        return "cleared"
    if str(record.get("kind")) == "expiry":
        if view.not_after is not None:
            return f"the certificate was renewed: now expires {view.not_after.strftime('%Y-%m-%d')}"
        return "the certificate is no longer within a warning threshold"
    if view.result == "pending":
        return f"the run no longer fails: order {view.pending_order or view.order_id} is pending at SCM"
    return f"the last run ended {view.action} {view.result}" + (f": {view.message}" if view.message else "")


def diff(
    delivered: Mapping[str, Mapping[str, Any]],
    current: Sequence[Condition],
    seen: Mapping[str, ProfileView],
    at: str,
    *,
    resolved: bool = True,
) -> tuple[list[Event], Delivered]:
    """Events one channel still has to hear, and what it will have been told once they are sent.

    A condition is sent when it is new or its level changed (a lower expiry threshold, failed to
    blocked...); one this channel was told about that no longer holds is "resolved", but only for
    profiles ``seen`` in this run (a profile left out of a run keeps its conditions).
    """
    events: list[Event] = []
    after: Delivered = {}
    keys = {c.key for c in current}
    for condition in current:
        told = delivered.get(condition.key)
        if told is not None and told.get("level") == condition.level:
            after[condition.key] = dict(told)
            continue
        events.append(Event("problem", condition.profile, condition.title, condition))
        after[condition.key] = condition.record(at)
    for key, told in delivered.items():
        if key in keys:
            continue
        profile = str(told.get("profile", key.partition(":")[2]))
        if profile not in seen:
            after[key] = dict(told)
            continue
        if resolved:
            events.append(
                Event(
                    "resolved",
                    profile,
                    str(told.get("title", key)),
                    detail=_how_resolved(told, seen[profile]),
                    data={"kind": told.get("kind"), "since": told.get("at")},
                )
            )
    return events, after


def info_events(views: Iterable[ProfileView]) -> list[Event]:
    """The optional summary: what this run enrolled, collected, renewed, replaced or redeployed."""
    events = []
    for view in views:
        if view.result != "ok" or view.action not in SUMMARY_ACTIONS:
            continue
        expires = f", expires {view.not_after.strftime('%Y-%m-%d')}" if view.not_after else ""
        on = f" on {', '.join(view.vservers)}" if view.vservers else ""
        events.append(
            Event(
                "info",
                view.profile,
                f"{view.profile}: {view.action} ok",
                detail=f"serial {view.serial or '?'}{expires}, installed on {view.appliance}{on}",
                data={"action": view.action, "serial": view.serial, "order_id": view.order_id},
            )
        )
    return events
