"""Placing an SCM order (enroll, renew, replace) so that a crash never leads to a second one, and
finding the order a crashed run placed.

Write-ahead: the intent (key reference, CSR, the tag stamped on the order and, for a renewal or a
replacement, the orders SCM listed before) is journalled before the order is sent; SCM's order id
replaces it as soon as SCM answers. A run that finds an intent left behind looks for that order at
SCM (its order list, or the replaced order's status) before anything else happens.
"""

from __future__ import annotations

import logging
import secrets

from .. import crypto
from ..config import Profile, sectigo_for
from ..config.crosscheck import resolved_path
from ..errors import (
    ScmAlreadyReplacedError,
    ScmError,
    ScmNotDoneError,
    ScmOutcomeUnknownError,
    ScmUnsupportedError,
    UsageError,
)
from ..nitro.deploy import make_csr_on_appliance, make_key_on_appliance
from ..scm import EnrollRequest, capabilities_of
from ..state import OrderRecord, ProfileState
from .context import ApplianceSession, Context
from .install import read_local_key
from .outcome import Deferred, OrderKind, Step, iso
from .plan import plan_order
from .recovery import discard_key, recover_interrupted_order, tag_note
from .subject import appliance_subject

log = logging.getLogger("citrixagent")


def load(ctx: Context, profile: Profile, *, recover: bool = True) -> ProfileState:
    """The profile's journal; an order a crashed run was placing is looked for first."""
    state = ctx.store.load(profile.name)
    state.source = str(resolved_path(profile.source))
    if recover and state.ordering is not None:
        recover_interrupted_order(ctx, profile, state)
    return state


def order(
    ctx: Context,
    profile: Profile,
    state: ProfileState,
    session: ApplianceSession,
    kind: OrderKind,
    *,
    why: str = "",
) -> Step:
    """Make a key and CSR, journal the intent, place the order, journal its id; the collection is
    deferred (a dry run returns the plan instead)."""
    _check_renew_possible(ctx, profile, kind)
    session.preflight(profile.vservers)
    if ctx.dry_run:
        return plan_order(ctx, profile, state, session, kind)
    if (
        kind != "enroll"
        and state.current is not None
        and _replaced_already(ctx, profile, state.current.order_id)
    ):
        kind = "enroll"
    known_orders = (  # before a key exists
        _listed_orders(ctx, profile.certificate.common_name) if _needs_known_orders(kind) else None
    )
    intent = _intent(ctx, profile, state, session, kind, known_orders)
    # Write-ahead: the intent is journalled before the order is sent, so a run that dies while
    # SCM takes the order finds that order on the next run instead of placing a second one.
    state.ordering = intent
    ctx.store.save(state)
    try:
        order_id = _send_order(ctx, profile, intent)
    except ScmAlreadyReplacedError as exc:
        # replaced meanwhile (a run whose answer was lost, or by hand): nothing was ordered now
        state.ordering = None
        discard_key(profile, state, intent)
        if exc.replacement_id is not None:
            ctx.store.save(state)
            raise
        state.reorder = "enroll"
        ctx.store.save(state)
        log.warning("%s: %s; ordering a new certificate instead", profile.name, exc)
        return order(ctx, profile, state, session, "enroll", why=why)
    except ScmNotDoneError:
        # SCM refused it (4xx) or it was never sent: no order exists. Any other failure (sent, no
        # usable answer) keeps the intent: the order may exist and the next run looks for it.
        state.ordering = None
        discard_key(profile, state, intent)  # a private key for nothing: do not keep it
        ctx.store.save(state)
        raise
    except ScmOutcomeUnknownError:
        log.warning(
            "%s: the %s order may have reached SCM without an answer; the next run looks for it%s",
            profile.name,
            kind,
            tag_note(ctx, kind, intent.tag),
        )
        raise
    # The order id goes to the journal before anything else: a crash from here on resumes it.
    intent.order_id = order_id
    intent.known_orders = None
    state.pending = intent
    state.ordering = None
    state.declined = None
    state.reorder = None
    state.add_event("ordered", kind=kind, order_id=order_id, api=ctx.scm.api_name)
    ctx.store.save(state)
    log.info("%s: %s order %s placed at SCM", profile.name, kind, order_id)
    return Deferred(kind, why)


def _check_renew_possible(ctx: Context, profile: Profile, kind: OrderKind) -> None:
    """Say so before a key is made (on the appliance, that would be a write for nothing)."""
    config = ctx.scm_config
    if (
        kind == "renew"
        and config is not None
        and capabilities_of(config).renew_needs_profile_id
        and profile.sectigo.profile_id is None
        and config.profile_id is None
    ):
        raise UsageError(
            f"{profile.name}: renew needs profile_id in {config.source} or the profile's "
            "sectigo.profile_id (the SCM REST Enrollment API requires the certificate profile id to "
            "renew); or use replace"
        )


def _intent(
    ctx: Context,
    profile: Profile,
    state: ProfileState,
    session: ApplianceSession,
    kind: OrderKind,
    known_orders: list[str] | None,
) -> OrderRecord:
    """The key and CSR for the order (a new key unless a renewal reuses it), as the intent."""
    cert = profile.certificate
    stamp = ctx.clock().strftime("%Y%m%d%H%M%S")
    current = state.current
    if kind == "renew" and profile.renewal.reuse_key and current is not None:
        key_ref = current.key_ref
        csr_pem = _csr_for_existing_key(ctx, profile, session, key_ref, stamp)
    elif cert.key_location == "local":
        key = crypto.generate_private_key(cert.key)
        # a random suffix: two orders in the same second (or under a fixed clock) never collide
        key_path = ctx.store.new_key_path(profile.name, f"{stamp}-{kind}-{secrets.token_hex(4)}")
        key_pem = crypto.private_key_to_pem(key)
        crypto.write_private_key_file(key_path, key_pem)
        crypto.remember_own_key(key_pem, key)  # collect/deploy of this run use it without parsing again
        key_ref = str(key_path)
        csr_pem = crypto.csr_to_pem(
            crypto.build_csr(key, cert.common_name, cert.subject_alt_names, cert.subject)
        )
    else:
        key_ref, csr_pem = make_key_on_appliance(
            session.nitro,
            base=f"{cert.certkey_name}-{stamp}",
            key=cert.key,
            common_name=cert.common_name,
            sans=cert.subject_alt_names,
            subject=appliance_subject(ctx, profile),
        )
        session.changed = True
    return OrderRecord(
        order_id="",
        kind=kind,
        api=ctx.scm.api_name,
        placed_at=iso(ctx.clock()),
        key_location=cert.key_location,
        key_ref=key_ref,
        csr_pem=csr_pem,
        common_name=cert.common_name,
        sans=list(cert.subject_alt_names),
        key_desc=cert.key.describe(),
        previous_order_id=current.order_id if current is not None else None,
        known_orders=known_orders,
        # stamped into the order's comments: a person finds an order whose answer was lost in SCM's UI
        tag=f"citrixagent:{profile.name}:{secrets.token_hex(4)}",
    )


def _send_order(ctx: Context, profile: Profile, intent: OrderRecord) -> str:
    cert = profile.certificate
    sectigo = sectigo_for(profile, ctx.scm_config)  # what the profile leaves out, from scm.yaml
    kind, csr_pem, previous, tag = intent.kind, intent.csr_pem, intent.previous_order_id, intent.tag
    if kind == "enroll":
        return ctx.scm.enroll(
            EnrollRequest(
                csr_pem=csr_pem,
                common_name=cert.common_name,
                sans=tuple(cert.subject_alt_names),
                org_id=sectigo.org_id,
                cert_type=sectigo.cert_type,
                term=sectigo.term,
                comments=sectigo.comments,
                external_requester=sectigo.external_requester,
                custom_fields=dict(sectigo.custom_fields),
                tag=tag,
            )
        )
    assert previous is not None
    if kind == "renew":
        return ctx.scm.renew(
            previous,
            csr_pem=csr_pem,
            sans=cert.subject_alt_names,
            profile_id=sectigo.profile_id,
            term=sectigo.term,
            custom_fields=dict(sectigo.custom_fields),
            tag=tag,
        )
    return ctx.scm.replace(
        previous,
        csr_pem=csr_pem,
        common_name=cert.common_name,
        sans=cert.subject_alt_names,
        reason="certificate profile changed (names or key type); replaced by citrixagent",
        tag=tag,
    )


def _needs_known_orders(kind: OrderKind) -> bool:
    """Whether an interrupted order of this kind can only be found as the one SCM did not list
    before it was sent. A new order carries its tag in its comments (recovery finds it by that,
    with no request before ordering); a renewal's comments are the original's (the admin API's
    renewById takes none) and a replacement's tag goes into its reason, which SCM does not show."""
    return kind != "enroll"


def _listed_orders(ctx: Context, common_name: str) -> list[str] | None:
    """The orders SCM lists for this name now, or None where they cannot be listed (then an
    interrupted order can only be reported, not found). Never stands in the way of ordering."""
    try:
        return ctx.scm.find_orders(common_name=common_name)
    except ScmUnsupportedError:
        return None
    except ScmError as exc:  # e.g. an API admin without the privilege to list certificates
        log.warning(
            "cannot list SCM orders for %s (%s): an interrupted order could not be found later",
            common_name,
            exc,
        )
        return None


def _replaced_already(ctx: Context, profile: Profile, order_id: str) -> bool:
    """Whether SCM already replaced ``order_id`` by an order this API cannot name (then a renew or
    replace of it is refused and a new certificate must be ordered). Read before a key is made;
    it also authenticates before the intent is journalled, so the intent is in flight only while
    the order call is."""
    if not order_id:  # an adopted certificate without an SCM order: nothing to read
        return False
    found = ctx.scm.status(order_id)
    if found.state != "replaced" or ctx.scm.capabilities.replace_keeps_id:
        return False
    log.warning(
        "%s: SCM order %s was already replaced by an order the %s API cannot name (a run whose answer "
        "was lost, or by hand): ordering a new certificate instead",
        profile.name,
        order_id,
        ctx.scm.api_name,
    )
    return True


def _csr_for_existing_key(
    ctx: Context, profile: Profile, session: ApplianceSession, key_ref: str, stamp: str
) -> str:
    """A fresh CSR for the key already in use (renewal with ``reuse_key``)."""
    cert = profile.certificate
    if cert.key_location == "local":
        key = crypto.load_private_key(read_local_key(profile, key_ref, ctx.hint))
        return crypto.csr_to_pem(
            crypto.build_csr(key, cert.common_name, cert.subject_alt_names, cert.subject)
        )
    session.changed = True
    return make_csr_on_appliance(
        session.nitro,
        keyfile=key_ref,
        reqfile_base=f"{cert.certkey_name}-{stamp}",
        common_name=cert.common_name,
        sans=cert.subject_alt_names,
        subject=appliance_subject(ctx, profile),
    )
