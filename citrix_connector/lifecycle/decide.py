"""The one right thing ``run`` does for a profile now: a pure function of the profile, the journal,
what the appliance serves and the time (no I/O, no clock of its own; tested as a table)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from cryptography import x509

from ..config import Profile
from ..crypto import normalize_serial
from ..hints import CommandHint
from ..nitro.deploy import InstalledState
from ..state import ProfileState
from ..wording import with_article
from .outcome import Action, parse_iso

ADOPTED_KEY_PREFIX = "adopted:"  # IssuedRecord.key_ref of an adopted certificate (see .adopt)


@dataclass(frozen=True)
class Decision:
    action: Action
    reason: str
    #: a redeploy whose certificate is installed already: only the appliance's save is missing
    save_only: bool = False


_PLAIN = CommandHint()  # a hint without the command's own options (tests, plain callers)


def serving_current(profile: Profile, state: ProfileState, installed: InstalledState | None) -> bool:
    """The appliance serves the last issued certificate under the profile's certkey on every vserver
    of the profile (serials are normalised where they are read)."""
    if installed is None or state.current is None or not installed.serial:
        return False
    if installed.serial != state.current.serial:
        return False
    if not all(v.name in installed.bound_vservers for v in profile.vservers):
        return False
    return _link_problem(state, installed) is None


def issuer_serial(state: ProfileState) -> str | None:
    """The serial of the journal's certificate's issuer (the first of its chain), None without a chain
    (an adopted certificate, or one SCM sent without its chain)."""
    current = state.current
    if current is None or not current.chain_pem:
        return None
    return normalize_serial(x509.load_pem_x509_certificate(current.chain_pem[0].encode()).serial_number)


def _link_problem(state: ProfileState, installed: InstalledState) -> str | None:
    """Why the certkey's CA link is not the journal's issuer (None when it is, or nothing is known)."""
    expected = issuer_serial(state)
    if expected is None:
        return None
    if not installed.link:
        return "is not linked to its issuing CA's certkey"
    if installed.link_serial != expected:
        held = f"serial {installed.link_serial}" if installed.link_serial else "no certkey"
        return f"is linked to certkey {installed.link} ({held}), not to its issuing CA (serial {expected})"
    return None


def decide(
    profile: Profile,
    state: ProfileState,
    installed: InstalledState | None,
    now: datetime,
    *,
    hint: CommandHint = _PLAIN,
) -> Decision:
    """What ``run`` does: resume an order, wait for a person, order, re-install, or nothing.
    ``hint`` writes the command lines a reason tells a person to run."""
    return for_adopted(state, decide_plain(profile, state, installed, now, hint=hint))


def for_adopted(state: ProfileState, decision: Decision) -> Decision:
    """An adopted certificate (see :mod:`.adopt`) is never installed again (its key is on the
    appliance only) and is renewed only through its SCM order: without one, a new order is placed."""
    current = state.current
    if current is None or decision.action not in ("renew", "replace", "redeploy"):
        return decision
    adopted = current.key_ref.startswith(ADOPTED_KEY_PREFIX)
    if decision.action == "redeploy" and adopted:
        # an adopted certificate's key is on the appliance only: it cannot be installed again
        action: Action = "renew" if current.order_id else "enroll"
        return Decision(action, f"{decision.reason} (an adopted certificate: a new one is ordered)")
    if decision.action != "redeploy" and not current.order_id:
        return Decision(
            "enroll", f"{decision.reason}; no SCM order to {decision.action} (adopted): a new one is placed"
        )
    return decision


def renewal_due(profile: Profile, state: ProfileState, now: datetime) -> Decision | None:
    """A renewal when the journal's certificate is inside the profile's renewal window."""
    return _renewal_due(profile, state, now)


def decide_plain(
    profile: Profile,
    state: ProfileState,
    installed: InstalledState | None,
    now: datetime,
    *,
    hint: CommandHint = _PLAIN,
) -> Decision:
    """:func:`decide` before the rules for adopted certificates."""
    if state.pending is not None:
        return Decision("collect", f"SCM order {state.pending.order_id} is pending")
    if state.ordering is not None:
        return Decision(
            "collect",
            f"a run was interrupted while placing {with_article(state.ordering.kind)} order at SCM: "
            "the next run looks for that order there before ordering anything",
        )
    if state.declined is not None:
        declined = state.declined
        return Decision(
            "blocked",
            f"SCM declined or revoked {declined.get('kind')} order {declined.get('order_id')} before it "
            f"could be collected; fix the cause in SCM, then run `{hint(_by_hand(state), profile.source)}` "
            "by hand (scheduled runs do not order again on their own)",
        )
    current = state.current
    if current is None:
        if state.revoked:
            last = state.revoked[-1]
            return Decision("enroll", f"the last certificate (order {last.get('order_id')}) was revoked")
        return Decision("enroll", "no certificate enrolled yet")
    if state.reorder == "enroll":
        return Decision(
            "enroll", f"SCM order {current.order_id} was replaced by an order that cannot be found"
        )
    changed = _profile_change(profile, state)
    if changed is not None:
        return changed
    if state.reorder is not None:
        return Decision(
            state.reorder,
            f"a previous run was interrupted placing {with_article(state.reorder)} order SCM did not confirm",
        )
    due = _renewal_due(profile, state, now)
    if due is not None:
        return due
    if not serving_current(profile, state, installed):
        return Decision("redeploy", _not_served(profile, state, installed))
    if state.deployed is None or state.deployed.serial != current.serial:
        # e.g. an update the appliance applied but whose answer was lost: installed, never saved
        return Decision("redeploy", "the journal has no saved deployment of the last issued certificate")
    if not state.deployed.saved:
        return Decision("redeploy", "the last deployment was not saved on the appliance")
    return Decision("nothing", "certificate valid and installed")


def _by_hand(state: ProfileState) -> str:
    """The command that places a declined order's kind again (enroll when nothing was issued)."""
    kind = str((state.declined or {}).get("kind") or "enroll")
    return kind if state.current is not None and kind in ("renew", "replace") else "enroll"


def _not_served(profile: Profile, state: ProfileState, installed: InstalledState | None) -> str:
    """Why the appliance does not serve the journal's certificate, as seen (the reason of a redeploy)."""
    current = state.current
    assert current is not None
    certkey = profile.certificate.certkey_name
    order = f"order {current.order_id}, " if current.order_id else ""
    journal = f"the journal's certificate ({order}serial {current.serial})"
    if installed is None:
        return f"{journal} is not known to be installed: the appliance was not read"
    if not installed.serial:
        return f"{journal} is not on the appliance (it has no certkey {certkey})"
    if installed.serial != current.serial:
        return f"the appliance serves serial {installed.serial} under certkey {certkey}, not {journal}"
    unbound = [v.name for v in profile.vservers if v.name not in installed.bound_vservers]
    if unbound:
        return f"{journal} is installed but not bound to {', '.join(unbound)}"
    link = _link_problem(state, installed)
    return f"{journal} is installed but certkey {certkey} {link or 'is not served'}"


def decide_target(
    profile: Profile, state: ProfileState, target: str, installed: InstalledState | None
) -> Decision:
    """For one target of a profile with several appliances whose certificate needs no new order
    (``decide`` said redeploy): install it there, only save there, or nothing. ``profile`` is the
    profile as that target's (:meth:`~citrix_connector.config.Profile.for_target`); the reasons do
    not name the appliance (the target's row does)."""
    record = state.deployment(target)
    current = state.current
    assert current is not None
    if not serving_current(profile, state, installed):
        return Decision("redeploy", _not_served(profile, state, installed))
    if record is None or record.serial != current.serial:
        return Decision(
            "redeploy", "the journal has no saved deployment of the last issued certificate there"
        )
    if not record.saved:
        return Decision("redeploy", "the last deployment there was not saved", save_only=True)
    return Decision("nothing", "certificate valid and installed")


def _profile_change(profile: Profile, state: ProfileState) -> Decision | None:
    """A replace when the profile asks for other names or another key than the issued certificate."""
    current = state.current
    assert current is not None
    cert = profile.certificate
    wanted = {n.lower() for n in cert.subject_alt_names}
    have = {n.lower() for n in current.sans}
    if current.common_name.lower() != cert.common_name.lower() or wanted != have:
        return Decision("replace", "the profile's names differ from the issued certificate")
    if current.key_desc != cert.key.describe() or current.key_location != cert.key_location:
        return Decision(
            "replace",
            f"the profile's key ({cert.key.describe()}, {cert.key_location}) differs "
            f"from the issued certificate's ({current.key_desc}, {current.key_location})",
        )
    return None


def _renewal_due(profile: Profile, state: ProfileState, now: datetime) -> Decision | None:
    current = state.current
    assert current is not None
    not_after = parse_iso(current.not_after)
    renewal = profile.renewal
    if renewal.percent_of_lifetime is not None:
        not_before = parse_iso(current.not_before)
        lifetime = (not_after - not_before).total_seconds()
        threshold = not_before + timedelta(seconds=lifetime * renewal.percent_of_lifetime / 100)
        if now >= threshold:
            return Decision(
                "renew",
                f"{renewal.percent_of_lifetime:g}% of the certificate's lifetime has "
                f"passed (expires {not_after.date()})",
            )
    elif not_after - now <= timedelta(days=renewal.days_before_expiry):
        days = (not_after - now).days
        when = f"expires in {days} days" if days >= 0 else f"expired {-days} days ago"
        return Decision("renew", f"{when} (renewal window {renewal.days_before_expiry} days)")
    return None
