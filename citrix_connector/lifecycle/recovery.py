"""Finding the order a previous run was placing when it died or got no answer.

The write-ahead intent (``ProfileState.ordering``) says what was ordered, with which key and CSR, and
what SCM held before. On the next run, before anything else:

* an order SCM has is adopted and collected: where the API lists orders, a new order is the one
  whose comments carry the tag stamped on it, a renewal the one not listed before it was sent; for
  a replace, the replaced order's status;
* an order SCM never took (or one it took but whose id this API cannot tell) is dropped: its private
  key is removed at once, and ``run`` places that kind of order again (``ProfileState.reorder``);
  where SCM may hold it, the warning names the tag stamped on it so a person can find and revoke it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from ..config import Profile
from ..errors import ScmAuthError, ScmError, ScmRefusedError, UsageError
from ..scm import carries_tag
from ..state import OrderRecord, ProfileState
from ..wording import with_article
from .context import Context
from .outcome import OrderKind

log = logging.getLogger("citrixagent")


@dataclass(frozen=True)
class _Found:
    order_id: str | None  # the order to collect, or None
    received: bool | None = None  # None: SCM may or may not hold it (it cannot tell)
    reorder: OrderKind | None = None  # what to order again when not found


def recover_interrupted_order(ctx: Context, profile: Profile, state: ProfileState) -> None:
    """A previous run died while SCM was taking an order: adopt that order if SCM has it."""
    intent = state.ordering
    if intent is None or ctx.dry_run:
        return
    if state.pending is not None:  # cannot happen through this code; keep the known order
        state.ordering = None
        ctx.store.save(state)
        return
    api = ctx.scm.api_name
    if intent.api != api:
        raise UsageError(
            f"{profile.name}: a run was interrupted while placing an order through the SCM {intent.api} "
            f"API, but scm.yaml now configures the {api} API; run once with the "
            f"{intent.api} configuration so the order can be found"
        )
    found = _find(ctx, profile, state, intent)
    state.ordering = None
    if found.order_id is not None:
        intent.order_id = found.order_id
        intent.known_orders = None
        state.pending = intent
        state.reorder = None
        state.add_event("order-recovered", kind=intent.kind, order_id=found.order_id)
        log.warning(
            "%s: recovered %s order %s, which SCM received before a previous run was interrupted",
            profile.name,
            intent.kind,
            found.order_id,
        )
    else:
        discard_key(profile, state, intent)
        state.reorder = found.reorder
        event = "order-not-received" if found.received is False else "order-not-found"
        state.add_event(event, kind=intent.kind, tag=intent.tag, reorder=found.reorder)
    ctx.store.save(state)


def discard_key(profile: Profile, state: ProfileState, intent: OrderRecord) -> None:
    """Remove the local private key made for an order that will never be collected (not the key of
    the issued certificate, which a renewal with ``reuse_key`` shares)."""
    if intent.key_location != "local" or not intent.key_ref:
        return
    if state.current is not None and state.current.key_ref == intent.key_ref:
        return
    path = Path(intent.key_ref)
    if path.exists():
        path.unlink()
        log.info("%s: removed the private key of an order that will not be collected", profile.name)


def _find(ctx: Context, profile: Profile, state: ProfileState, intent: OrderRecord) -> _Found:
    caps = ctx.scm.capabilities
    previous = intent.previous_order_id
    if intent.kind == "replace" and previous:
        replaced = _replaced(ctx, profile, state, intent, previous)
        if replaced is not None:
            return replaced
    if caps.can_list_orders and intent.known_orders is not None:
        return _listed(ctx, profile, intent, intent.known_orders)
    tag = intent.tag if caps.can_list_orders and intent.kind == "enroll" else None
    if tag:
        tagged = _tagged(ctx, profile, state, intent, tag)
        if tagged is not None:
            return tagged
    where = _tag_note(ctx, intent)
    if caps.can_list_orders:
        log.warning(
            "%s: a previous run was interrupted while placing %s order, and the orders SCM holds for "
            "%s %s, so that order cannot be told apart now; if SCM received it, an extra order for %s "
            "placed around %s exists: check it in SCM%s",
            profile.name,
            with_article(intent.kind),
            intent.common_name,
            "cannot be listed" if tag else "could not be listed before it was sent",
            intent.common_name,
            intent.placed_at,
            where,
        )
    else:
        log.warning(
            "%s: a previous run was interrupted while placing %s order through the SCM %s API, "
            "which cannot list orders; if SCM received it, an extra order for %s placed around %s "
            "exists: check it in SCM%s and revoke it; ordering again",
            profile.name,
            with_article(intent.kind),
            intent.api,
            intent.common_name,
            intent.placed_at,
            where,
        )
    return _Found(None, None, intent.kind)


def _replaced(
    ctx: Context, profile: Profile, state: ProfileState, intent: OrderRecord, previous: str
) -> _Found | None:
    """What the replaced order's status tells about an interrupted replace (None: nothing)."""
    found = ctx.scm.status(previous)
    if ctx.scm.capabilities.replace_keeps_id:
        # replaced in place: the order went back to pending, or carries a new serial
        before = state.current.serial if state.current is not None else ""
        if found.state == "pending" or (found.state == "issued" and found.serial and found.serial != before):
            return _Found(previous)
        if found.state == "issued":
            return _Found(None, False, "replace")  # still the certificate from before
        return None
    if found.state == "issued":
        return _Found(None, False, "replace")  # a replace SCM took leaves the order "Replaced"
    if found.state == "replaced":
        log.warning(
            "%s: SCM replaced order %s before a previous run was interrupted, but the %s API cannot "
            "name the replacement, so it cannot be collected: ordering a new certificate instead; "
            "revoke the lost replacement in SCM%s",
            profile.name,
            previous,
            intent.api,
            _tag_note(ctx, intent),
        )
        return _Found(None, True, "enroll")
    return None


def _listed(ctx: Context, profile: Profile, intent: OrderRecord, known: list[str]) -> _Found:
    listed = ctx.scm.find_orders(common_name=intent.common_name)
    new = [i for i in listed if i not in known]
    if not new:
        return _Found(None, False, intent.kind)
    adopted = max(new, key=_age)  # the newest id
    others = [i for i in new if i != adopted]
    if others:
        log.warning(
            "%s: SCM also lists order(s) %s for %s, placed since the interrupted run: "
            "check them in SCM and revoke what is not needed",
            profile.name,
            ", ".join(others),
            intent.common_name,
        )
    return _Found(adopted)


#: how many orders for one name recovery reads through, at most (SCM pages them 200 at a time)
_LIST_ALL = 10_000


def _tagged(
    ctx: Context, profile: Profile, state: ProfileState, intent: OrderRecord, tag: str
) -> _Found | None:
    """The order SCM lists for the name whose comments carry the intent's tag (newest first;
    orders the journal already names are skipped), or not received; None when SCM forbids the list
    (HTTP 403: an API admin without the privilege to list certificates), so it cannot be told.
    Any other failure (busy, 5xx, no answer) propagates and keeps the intent: the next run looks
    again rather than ordering a second time."""
    try:
        listed = ctx.scm.find_orders(common_name=intent.common_name, limit=_LIST_ALL)
    except ScmRefusedError as exc:
        if isinstance(exc, ScmAuthError) or exc.status != 403:
            raise
        log.info("%s: SCM refused to list the orders for %s: %s", profile.name, intent.common_name, exc)
        return None
    if len(listed) >= _LIST_ALL:
        raise ScmError(
            f"{profile.name}: SCM lists {len(listed)} or more orders for {intent.common_name}; the "
            f"interrupted order cannot be looked for among them: find the one whose comments hold "
            f"{tag!r} in SCM"
        )
    known = {o.order_id for o in (state.current, state.pending) if o is not None}
    known |= {intent.previous_order_id} if intent.previous_order_id else set()
    for order_id in sorted(set(listed) - known, key=_age, reverse=True):
        try:
            comments = ctx.scm.status(order_id).comments
        except ScmRefusedError as exc:  # an order this account may not read (or gone): not ours
            if isinstance(exc, ScmAuthError) or exc.status not in (403, 404):
                raise
            continue
        if carries_tag(comments, tag):
            return _Found(order_id)
    return _Found(None, False, intent.kind)


def _age(order_id: str) -> tuple[int, str]:
    """Sort key of SCM's numeric order ids: a later order sorts higher."""
    return len(order_id), order_id


def _tag_note(ctx: Context, intent: OrderRecord) -> str:
    return tag_note(ctx, intent.kind, intent.tag)


def tag_note(ctx: Context, kind: str, tag: str | None) -> str:
    """Where the tag stamped on an order shows in SCM's UI, if the order carries one."""
    caps = ctx.scm.capabilities
    if not tag or (kind == "renew" and not caps.renew_takes_tag):
        return ""
    return f" (its {caps.tag_field} hold {tag!r})"
