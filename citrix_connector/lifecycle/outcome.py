"""What happened to one profile, and the public row built from it once.

The steps of a command (ordering, install, status, revoke) return a :class:`Done`: the facts of
what they did, with a snapshot of the journal and the appliance taken when they did it
(:class:`RowFacts`). The runner turns each profile's final :class:`Done` into the public
:class:`Outcome` exactly once, after the appliance's config save (whose failure is one more fact).
A step that leaves the collection of an order for later returns a :class:`Deferred` instead: it never
reaches the public type.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Literal

from ..errors import (
    EXIT_CONFIG,
    EXIT_FAILURE,
    EXIT_OK,
    EXIT_PENDING,
    CitrixAgentError,
    PendingError,
    error_details,
)
from ..nitro.deploy import InstalledState
from ..state import ProfileState

log = logging.getLogger("citrixagent")

# "run": a `run` that failed before it could decide (e.g. the appliance could not be read)
Action = Literal[
    "enroll",
    "collect",
    "renew",
    "replace",
    "redeploy",
    "revoke",
    "nothing",
    "status",
    "blocked",
    "adopt",
    "run",
]
Result = Literal["ok", "nothing", "pending", "failed", "planned", "attention", "adopted"]
OrderKind = Literal["enroll", "renew", "replace"]

EXIT_ATTENTION = 5  # `status`: at least one profile needs work (documented in the CLI help and README)


def iso(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).isoformat(timespec="seconds")


def parse_iso(text: str) -> datetime:
    moment = datetime.fromisoformat(text)
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


@dataclass(frozen=True, slots=True)
class Outcome:
    """What happened to one profile: one row of the result table, one object of ``--json``."""

    profile: str
    action: Action
    result: Result
    message: str = ""
    appliance: str = ""
    order_id: str | None = None
    serial: str | None = None
    expires: str | None = None  # ISO date
    days_left: int | None = None
    certkey: str | None = None
    vservers: list[str] = field(default_factory=list)
    plan: list[str] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)
    exit_code: int = EXIT_OK
    #: a profile with several appliances: which entry of its ``appliances:`` this row is (0 = the
    #: first); None for a profile with one appliance
    target: int | None = None
    #: what the journal held when the row was made, for what runs after the rows (notifications,
    #: metrics) without reading every journal again; None when the step ended before reading it.
    #: Not part of the public row (``to_dict``).
    journal: JournalFacts | None = field(default=None, repr=False, compare=False)

    def to_dict(self) -> dict[str, Any]:
        row = dataclasses.asdict(self)
        del row["journal"]
        return row


def worst_exit_code(outcomes: Iterable[Outcome]) -> int:
    """The exit code of a whole command: config errors beat failures beat pending beat attention."""
    codes = {o.exit_code for o in outcomes}
    for code in (EXIT_CONFIG, EXIT_FAILURE, EXIT_PENDING, EXIT_ATTENTION):
        if code in codes:
            return code
    return EXIT_OK


@dataclass(frozen=True, slots=True)
class JournalFacts:
    """The journal's certificate, pending order and declined order of a profile at one moment."""

    serial: str | None = None  # the issued certificate's
    not_before: str | None = None  # ISO
    not_after: str | None = None
    pending_order: str | None = None
    declined: Mapping[str, Any] | None = None

    @classmethod
    def of(cls, state: ProfileState) -> JournalFacts:
        current, pending = state.current, state.pending
        return cls(
            current.serial if current is not None else None,
            current.not_before if current is not None else None,
            current.not_after if current is not None else None,
            pending.order_id if pending is not None else None,
            state.declined,
        )


@dataclass(frozen=True, slots=True)
class RowFacts:
    """The journal's and the appliance's view of a profile at the moment a step finished."""

    order_id: str | None = None
    serial: str | None = None
    expires: str | None = None
    days_left: int | None = None
    vservers: tuple[str, ...] = ()
    details: Mapping[str, Any] = field(default_factory=dict)
    journal: JournalFacts | None = None

    @classmethod
    def of(
        cls,
        state: ProfileState,
        installed: InstalledState | None,
        now: datetime,
        *,
        target: str | None = None,
    ) -> RowFacts:
        """The issued certificate (or the pending order's id), and what the appliance serves:
        ``days_left`` counts down to the appliance's certificate when it serves another one
        (``target``: the deployment record of that target of a profile with several appliances)."""
        current = state.current
        order_id = serial = expires = None
        days_left: int | None = None
        if current is not None:
            order_id, serial = current.order_id, current.serial
            not_after = parse_iso(current.not_after)
            expires = not_after.date().isoformat()
            days_left = (not_after - now).days
        if state.pending is not None:
            order_id = state.pending.order_id
        details: dict[str, Any] = {}
        vservers: tuple[str, ...] = ()
        if installed is not None:
            vservers = tuple(installed.bound_vservers)
            if installed.serial:
                details["installed_serial"] = installed.serial
            if installed.not_after is not None:
                details["installed_expires"] = installed.not_after.date().isoformat()
                # serials are normalised where they are read (crypto.cert_info, the NITRO client)
                if current is None or (installed.serial or "0") != current.serial:
                    days_left = (installed.not_after - now).days
        elif (deployed := state.deployment(target)) is not None:
            vservers = tuple(deployed.vservers)
        return cls(order_id, serial, expires, days_left, vservers, details, JournalFacts.of(state))

    @classmethod
    def served(
        cls,
        state: ProfileState,
        now: datetime,
        *,
        target: str,
        installed: InstalledState | None = None,
    ) -> RowFacts:
        """What one target of a profile with several appliances serves (its row's SERIAL, EXPIRES
        and VSERVERS): as read (``installed``), else its deployment record in the journal; nothing
        when it has none. ORDER stays the journal's (the order the row is about)."""
        facts = cls.of(state, installed, now, target=target)
        if installed is not None:
            serial = installed.serial
            not_after = installed.not_after if serial else None
            vservers = tuple(installed.bound_vservers) if serial else ()
        else:
            record = state.deployment(target)
            serial = record.serial if record is not None else None
            not_after = _issued_expiry(state, serial) if serial else None
            vservers = tuple(record.vservers) if record is not None else ()
        return dataclasses.replace(
            facts,
            serial=serial or None,
            expires=not_after.date().isoformat() if not_after is not None else None,
            days_left=(not_after - now).days if not_after is not None else None,
            vservers=vservers,
        )


def _issued_expiry(state: ProfileState, serial: str) -> datetime | None:
    """When the certificate with ``serial`` the journal issued expires (the last one, or an older one
    from its history); None when the journal no longer knows."""
    if state.current is not None and state.current.serial == serial:
        return parse_iso(state.current.not_after)
    for event in reversed(state.history):
        if event.get("event") == "issued" and event.get("serial") == serial and event.get("not_after"):
            return parse_iso(str(event["not_after"]))
    return None


@dataclass(frozen=True, slots=True)
class Done:
    """What a step did for one profile (internal; the runner makes the public row from it)."""

    action: Action
    result: Result
    message: str = ""
    facts: RowFacts = field(default_factory=RowFacts)
    plan: tuple[str, ...] = ()
    details: Mapping[str, Any] = field(default_factory=dict)
    exit_code: int = EXIT_OK

    @classmethod
    def failed(cls, action: Action, error: CitrixAgentError | str, exit_code: int = EXIT_FAILURE) -> Done:
        if isinstance(error, CitrixAgentError):  # the remote's own code travels with the row
            details = {"error": error_details(error)}
            return cls(action, "failed", str(error), details=details, exit_code=error.exit_code)
        return cls(action, "failed", error, exit_code=exit_code)

    @classmethod
    def of_exception(cls, profile: str, exc: Exception, attempted: Action | None) -> Done:
        """The row of a step that raised ``exc`` (never re-raised: one profile's failure, or a bug,
        must not stop the others of an unattended run). ``attempted`` names the action it was
        doing (a pending order: ``collect``, else ``nothing``, when unknown)."""
        if isinstance(exc, PendingError):
            facts = RowFacts(order_id=exc.order_id or None)
            return cls(attempted or "collect", "pending", str(exc), facts, exit_code=exc.exit_code)
        if isinstance(exc, CitrixAgentError):
            log.debug("profile %s failed", profile, exc_info=exc)
            return cls.failed(attempted or "nothing", exc)
        log.error("profile %s: internal error", profile, exc_info=exc)
        return cls.failed(attempted or "nothing", f"internal error: {type(exc).__name__}: {exc}")


@dataclass(frozen=True, slots=True)
class Deferred:
    """An order was placed (or found pending); its collection waits until every profile of the
    appliance has placed its order, so SCM's issuance delays overlap. ``why`` becomes the row's
    message when the collection has none of its own."""

    action: Action
    why: str = ""


Step = Done | Deferred


def build_outcome(
    profile: str,
    done: Done,
    *,
    appliance: str,
    certkey: str,
    save_error: CitrixAgentError | None = None,
    target: int | None = None,
) -> Outcome:
    """The one place a public row is made: from what happened, and whether the config save (if one
    was due) failed after it."""
    result, message, exit_code = done.result, done.message, done.exit_code
    if message.startswith(f"{profile}: "):  # the row already names the profile (errors name it too)
        message = message[len(profile) + 2 :]
    if save_error is not None and result == "ok":
        result, exit_code = "failed", save_error.exit_code
        message = f"deployed, but saving the configuration failed: {save_error}"
        done = dataclasses.replace(done, details={**done.details, "error": error_details(save_error)})
    facts = done.facts
    return Outcome(
        profile,
        done.action,
        result,
        message,
        appliance=appliance,
        order_id=facts.order_id,
        serial=facts.serial,
        expires=facts.expires,
        days_left=facts.days_left,
        certkey=certkey,
        vservers=list(facts.vservers),
        plan=list(done.plan),
        details={**facts.details, **done.details},
        exit_code=exit_code,
        target=target,
        journal=facts.journal,
    )
