"""A run's outcomes + the journal -> one :class:`ProfileView` per profile (what notifications, metrics
and the audit log need to know), built once after the run: from the journal facts each row carries
(:class:`~citrix_connector.lifecycle.outcome.JournalFacts`), the journal read again only for a row
whose step ended before reading it."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta, timezone

from ..config import Profile
from ..errors import CitrixAgentError, describe_remote_code
from ..lifecycle import Outcome
from ..lifecycle.outcome import JournalFacts
from ..state import StateStore
from .conditions import ProfileView

__all__ = ["build_views", "parse_time"]

log = logging.getLogger("citrixagent.notify")


def parse_time(text: str) -> datetime:
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def _renew_at(profile: Profile | None, journal: JournalFacts) -> datetime | None:
    if profile is None or journal.not_after is None or journal.not_before is None:
        return None
    not_after = parse_time(journal.not_after)
    renewal = profile.renewal
    if renewal.percent_of_lifetime is not None:
        not_before = parse_time(journal.not_before)
        return not_before + (not_after - not_before) * (renewal.percent_of_lifetime / 100)
    return not_after - timedelta(days=renewal.days_before_expiry)


def _journal(outcome: Outcome, profile: Profile | None, store: StateStore) -> JournalFacts | None:
    """What the row's step saw in the journal, or (a step that ended before reading it) the journal
    read now; None without a profile or when it cannot be read."""
    if outcome.journal is not None or profile is None:
        return outcome.journal
    try:
        return JournalFacts.of(store.load(profile.name))
    except CitrixAgentError as exc:  # the run reported it already; the view goes without
        log.debug("notify: state of %s unreadable: %s", profile.name, exc)
        return None


def _remote_code(outcome: Outcome) -> str | None:
    error = outcome.details.get("error")
    return describe_remote_code(error) if isinstance(error, dict) else None


def build_views(
    outcomes: Sequence[Outcome], profiles: Mapping[str, Profile], store: StateStore
) -> list[ProfileView]:
    views = []
    for outcome in outcomes:
        profile = profiles.get(outcome.profile)
        journal = _journal(outcome, profile, store)
        not_after: datetime | None = None
        serial = outcome.serial
        if journal is not None and journal.not_after is not None:
            not_after = parse_time(journal.not_after)
            serial = journal.serial
        elif outcome.details.get("installed_expires"):
            not_after = parse_time(str(outcome.details["installed_expires"]))
        vservers = tuple(outcome.vservers) or (
            tuple(v.name for v in profile.vservers) if profile is not None else ()
        )
        declined = dict(journal.declined) if journal is not None and journal.declined else None
        views.append(
            ProfileView(
                profile=outcome.profile,
                source=str(profile.source) if profile is not None else outcome.details.get("source"),
                appliance=outcome.appliance,
                vservers=vservers,
                action=outcome.action,
                result=outcome.result,
                message=outcome.message,
                remote_code=_remote_code(outcome),
                order_id=outcome.order_id,
                serial=serial,
                pending_order=journal.pending_order if journal is not None else None,
                declined=declined,
                not_after=not_after,
                renew_at=_renew_at(profile, journal) if journal is not None else None,
            )
        )
    return views
