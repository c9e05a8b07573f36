"""``status`` (read-only: the journal, the appliance, SCM's view, what ``run`` would do) and
``revoke``."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

from ..config import Profile
from ..errors import EXIT_OK, CitrixAgentError, LoopbackOnlyError, ScmAlreadyRevokedError, UsageError
from ..nitro.deploy import InstalledState
from ..state import ProfileState
from .adopt import note_for, unrecorded
from .context import ApplianceSession, Context
from .decide import Decision, decide, decide_target
from .ordering import load
from .outcome import EXIT_ATTENTION, Done, RowFacts, iso
from .verify import last_check_failed, probe_installed


def status(
    ctx: Context,
    profile: Profile,
    session: ApplianceSession,
    *,
    state: ProfileState | None = None,
    target: str | None = None,
    ask_scm: bool = True,
    probe: bool = False,
) -> Done:
    """The row of a profile (or of one ``target`` of a profile with several appliances: ``profile``
    is then the profile as that target's, ``state`` its journal; ``ask_scm`` False: another target's
    row asked SCM already); ``probe``: also a TLS handshake to each of its VIPs (read-only)."""
    if state is None:
        state = load(ctx, profile, recover=False)
    details: dict[str, Any] = {}
    installed: InstalledState | None = None
    try:
        installed = session.installed(profile)
    except CitrixAgentError as exc:
        details["appliance_error"] = str(exc)
    # SCM is asked only about an order in flight (placed, not collected yet): an issued certificate's
    # facts are in the journal and on the appliance, so status of a settled fleet asks SCM nothing.
    order_id = state.pending.order_id if state.pending else None
    if order_id and ctx.scm_config is not None and ask_scm:
        try:
            scm_status = ctx.scm.status(order_id)
            details["scm_status"] = scm_status.status
            details["scm_state"] = scm_status.state
        except CitrixAgentError as exc:
            details["scm_error"] = str(exc)
    now = ctx.clock()
    decision = decide(profile, state, installed, now, hint=ctx.hint)
    if target is not None and decision.action == "redeploy":
        decision = decide_target(profile, state, target, installed)
    elif installed is not None and unrecorded(state, installed):
        decision = Decision(
            "adopt",
            f"{note_for(profile, installed)}: installed, never recorded; "
            f"`{ctx.hint('run', profile.source)}` adopts it",
        )
    details["next"] = decision.action
    details["next_reason"] = decision.reason
    details["pending"] = (
        f"{state.pending.kind} order {state.pending.order_id} placed {state.pending.placed_at}"
        if state.pending
        else None
    )
    details["link"] = installed.link if installed else None
    facts = RowFacts.of(state, installed, now, target=target)
    if installed is not None:
        # the row shows what the appliance serves (nothing: "-"); the journal's view stays in the details
        details["issued_serial"] = facts.serial
        served_expiry = installed.not_after.date().isoformat() if installed.not_after else None
        facts = dataclasses.replace(
            facts,
            serial=installed.serial,
            expires=served_expiry if installed.serial else None,
            days_left=facts.days_left if installed.serial else None,
        )
    probe_attention = _probe(profile, session, state, installed, details) if probe else False
    failed_check = last_check_failed(state, target)
    if failed_check:
        details["last_check"] = "failed after the last save: " + "; ".join(failed_check)
        if decision.action == "nothing":  # what the next run does: check again (as for a canary)
            details["next"] = "check"
            details["next_reason"] = "the check after the last save failed: the next run checks again"
    attention = (
        decision.action != "nothing"
        or "appliance_error" in details
        or "scm_error" in details
        or probe_attention
        or bool(failed_check)
    )
    return Done(
        "status",
        "attention" if attention else "ok",
        str(details["next_reason"]),
        facts,
        details=details,
        exit_code=EXIT_ATTENTION if attention else EXIT_OK,
    )


def _probe(
    profile: Profile,
    session: ApplianceSession,
    state: ProfileState,
    installed: InstalledState | None,
    details: dict[str, Any],
) -> bool:
    """``status --probe``: every VIP of the profile, for the serial the journal issued (or, for a
    certkey it never recorded, the one installed); True when a finding needs attention."""
    if installed is None or not installed.serial or profile.probe.mode == "off":
        off = profile.probe.mode == "off"
        details["probe_lines"] = [
            "none probed: probe is off in the profile" if off else "none probed: nothing installed"
        ]
        return False
    serial = state.current.serial if state.current is not None else installed.serial
    chain = state.current.chain_pem if state.current is not None else []
    try:
        reports = probe_installed(profile, session.view(), session.nitro.host, serial=serial, chain_pem=chain)
    except LoopbackOnlyError:
        raise
    except CitrixAgentError as exc:
        details["probe_error"] = f"the VIPs could not be read: {exc}"
        details["probe"], details["probe_lines"] = [], []
        return True
    details["probe"] = [r.to_dict() for r in reports]
    details["probe_lines"] = [r.line() for r in reports]
    return any(not r.ok and (r.status != "unreachable" or profile.probe.mode == "required") for r in reports)


def revoke(ctx: Context, profile: Profile, session: ApplianceSession, reason: str, reason_code: int) -> Done:
    """Revoke the journal's certificate at SCM (a dry run: say what would be revoked, send and write
    nothing); either way the row names the vservers the certificate is still bound to."""
    return revoke_targets(ctx, profile, [(profile, session)], reason, reason_code)[0]


def revoke_targets(
    ctx: Context,
    profile: Profile,
    targets: Sequence[tuple[Profile, ApplianceSession]],
    reason: str,
    reason_code: int,
) -> list[Done]:
    """:func:`revoke` of the one certificate, a row per target (``targets``: the profile as each
    target's, and its session) naming where it is still bound."""
    state = load(ctx, profile)
    current = state.current
    if current is None:
        raise UsageError(f"{profile.name}: nothing to revoke: no issued certificate is recorded for it")
    what = f"order {current.order_id} (serial {current.serial})"
    if ctx.dry_run:
        rows = []
        for one, session in targets:
            where, bound = _still_bound(ctx, one, session, current.serial, revoked=False)
            rows.append(
                Done(
                    "revoke",
                    "planned",
                    f"dry run: would revoke {what} at SCM with reason {reason}{where}; nothing sent",
                    RowFacts(current.order_id, current.serial, current.not_after[:10], vservers=bound),
                    plan=(f"revoke SCM {what}, reason {reason} (code {reason_code})",),
                )
            )
        return rows
    already = False
    try:
        ctx.scm.revoke(
            current.order_id,
            reason_code=reason_code,
            reason=f"{reason} (revoked by citrixagent for profile {profile.name})",
        )
    except ScmAlreadyRevokedError:  # the end state we want (e.g. a lost first answer)
        already = True
    state.revoked.append(
        {"order_id": current.order_id, "serial": current.serial, "reason": reason, "at": iso(ctx.clock())}
    )
    state.current = None
    state.add_event("revoked", order_id=current.order_id, serial=current.serial, reason=reason)
    ctx.store.save(state)
    message = f"{what} {'was already revoked at SCM' if already else 'revoked'} ({reason})"
    rows = []
    for one, session in targets:
        where, bound = _still_bound(ctx, one, session, current.serial, revoked=True)
        facts = RowFacts(current.order_id, current.serial, current.not_after[:10], vservers=bound)
        rows.append(Done("revoke", "ok", message + where, facts))
    return rows


def _still_bound(
    ctx: Context, profile: Profile, session: ApplianceSession, serial: str, *, revoked: bool
) -> tuple[str, tuple[str, ...]]:
    """Where the appliance still serves the certificate: the message's tail and the vservers."""
    try:
        installed = session.installed(profile)
    except CitrixAgentError as exc:
        return f"; could not check the appliance: {exc}", ()
    if installed is None or not installed.serial or installed.serial != serial:
        return f"; the appliance {session.node} does not serve it", ()
    bound = tuple(installed.bound_vservers)
    on = ", ".join(bound) or "no vserver"
    certkey = profile.certificate.certkey_name
    if not revoked:
        return f"; it is installed as {certkey} on {session.node}, bound to {on}", bound
    return (
        f"; WARNING: the revoked certificate is still installed as {certkey} and bound to {on}: run "
        f"`{ctx.hint('run', profile.source)}` to enroll and install a new one",
        bound,
    )
