"""Collecting an issued certificate from SCM and installing the journal's certificate on the
appliance (the config save is the runner's, once per appliance)."""

from __future__ import annotations

import logging
from datetime import datetime
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from .. import crypto
from ..config import Profile
from ..errors import CitrixAgentError, CryptoError, PendingError, ScmDeclinedError, StateError, UsageError
from ..hints import CommandHint
from ..nitro.client import CertKey
from ..nitro.deploy import DeployPlan, deploy, remove_unreferenced_files, save
from ..scm.polling import wait_for_certificate
from ..state import DeploymentRecord, IssuedRecord, ProfileState
from . import hafiles, keys
from .attempt import UploadedFiles
from .context import ApplianceSession, Context
from .outcome import Action, Done, RowFacts, iso, parse_iso
from .plan import deploy_plan_for_new
from .recovery import discard_key

log = logging.getLogger("citrixagent")


def read_local_key(profile: Profile, key_ref: str, hint: CommandHint | None = None) -> bytes:
    try:
        return Path(key_ref).read_bytes()
    except OSError as exc:
        replace = (hint or CommandHint())("replace", profile.source)
        raise StateError(
            f"{profile.name}: cannot read the private key file {key_ref} of the issued certificate "
            f"({exc.strerror or exc}); restore it, or run `{replace}` for a new key and certificate"
        ) from exc


def _seconds_since(stamp: str, now: datetime) -> float:
    """Seconds from an ISO timestamp of the journal to ``now`` (0 when unreadable or ahead)."""
    try:
        return max(0.0, (now - parse_iso(stamp)).total_seconds())
    except (ValueError, TypeError):
        return 0.0


def collect_and_deploy(
    ctx: Context,
    profile: Profile,
    state: ProfileState,
    session: ApplianceSession,
    *,
    action: Action = "collect",
    why: str = "",
) -> Done:
    """Wait for the pending order, journal the certificate, install it."""
    pending = state.pending
    assert pending is not None
    if ctx.dry_run:
        return Done(
            action,
            "planned",
            f"dry run: would collect SCM order {pending.order_id} and install it",
            RowFacts.of(state, None, ctx.clock()),
            plan=(
                f"collect SCM order {pending.order_id} ({pending.kind})",
                *deploy_plan_for_new(profile, session, pending),
            ),
        )
    collect_issued(ctx, profile, state)
    return deploy_current(ctx, profile, state, session, action=action, why=why)


def collect_journalled(ctx: Context, profile: Profile) -> ProfileState:
    """The profile's journal with the pending order it holds collected (the second pass of a run,
    in line or ahead of the worker: ``prefetch.py``)."""
    state = ctx.store.load(profile.name)
    if state.pending is None:  # cannot happen: the first pass journalled it
        raise StateError(f"{profile.name}: no pending order to collect")
    collect_issued(ctx, profile, state)
    return state


def collect_issued(ctx: Context, profile: Profile, state: ProfileState) -> None:
    """Wait for the pending order and journal its certificate as the current one (no deployment)."""
    pending = state.pending
    assert pending is not None
    scm_config = ctx.require_scm_config()
    if pending.api and pending.api != ctx.scm.api_name:
        raise UsageError(
            f"{profile.name}: order {pending.order_id} was placed through the SCM {pending.api} API but "
            f"scm.yaml now configures the {ctx.scm.api_name} API; collect it with that configuration"
        )
    try:
        certs = wait_for_certificate(
            ctx.scm,
            pending.order_id,
            scm_config.poll,
            clock=ctx.monotonic,
            sleep=ctx.sleep,
            since_order=_seconds_since(pending.placed_at, ctx.clock()),
        )
    except PendingError as exc:
        resume = f"run `{ctx.hint('run', profile.source)}` to resume"
        raise PendingError(str(exc).replace("run again to resume", resume), order_id=exc.order_id) from exc
    except ScmDeclinedError as exc:
        # Terminal at SCM: stop collecting it; unattended runs wait for a person (see decide()).
        state.declined = {
            "order_id": pending.order_id,
            "kind": pending.kind,
            "at": iso(ctx.clock()),
            "message": str(exc),
        }
        state.pending = None
        state.add_event("declined", order_id=pending.order_id, kind=pending.kind)
        ctx.store.save(state)
        discard_key(profile, state, pending)  # a key for a certificate that will never exist
        raise
    csr_key = crypto.load_csr(pending.csr_pem).public_key()
    if not isinstance(csr_key, (rsa.RSAPublicKey, ec.EllipticCurvePublicKey)):
        raise CryptoError(f"{profile.name}: the pending order's CSR has an unsupported key type")
    try:
        leaf, chain = crypto.split_leaf_and_chain(certs, csr_key)
    except CryptoError:
        if (
            pending.kind == "replace"
            and state.current is not None
            and any(crypto.cert_info(c).serial_hex == state.current.serial for c in certs)
        ):
            # The admin API replaces in place: SCM may still hand out the old certificate.
            raise PendingError(
                f"{profile.name}: SCM still returns the certificate from before replace order "
                f"{pending.order_id}; run `{ctx.hint('run', profile.source)}` to collect the new one",
                order_id=pending.order_id,
            ) from None
        raise
    info = crypto.cert_info(leaf)
    before = state.current
    if before is not None and before.key_location == "local" and before.key_ref != pending.key_ref:
        state.previous_key_ref = before.key_ref  # kept for a rollback; older keys go after the save
    state.current = IssuedRecord(
        order_id=pending.order_id,
        serial=info.serial_hex,
        not_before=iso(info.not_before),
        not_after=iso(info.not_after),
        fingerprint_sha256=info.fingerprint_sha256,
        common_name=pending.common_name,
        sans=list(pending.sans),
        key_desc=pending.key_desc,
        key_location=pending.key_location,
        key_ref=pending.key_ref,
        cert_pem=crypto.cert_to_pem(leaf),
        chain_pem=[crypto.cert_to_pem(c) for c in chain],
        issued_at=iso(ctx.clock()),
    )
    state.pending = None
    state.add_event(
        "issued", order_id=pending.order_id, serial=info.serial_hex, not_after=iso(info.not_after)
    )
    ctx.store.save(state)
    log.info("%s: order %s issued, serial %s", profile.name, pending.order_id, info.serial_hex)


def deploy_current(
    ctx: Context,
    profile: Profile,
    state: ProfileState,
    session: ApplianceSession,
    *,
    action: Action = "redeploy",
    why: str = "",
    target: str | None = None,
) -> Done:
    """Install the journal's last issued certificate (in place, bindings kept) and journal it (as
    ``target``'s deployment for a profile with several appliances, see ``ProfileState.targets``)."""
    current = state.current
    assert current is not None
    leaf = x509.load_pem_x509_certificate(current.cert_pem.encode())
    chain = [x509.load_pem_x509_certificate(p.encode()) for p in current.chain_pem]
    key_pem: bytes | None = None
    appliance_keyfile: str | None = None
    if current.key_location == "local":
        key_pem = read_local_key(profile, current.key_ref, ctx.hint)
        if Path(current.key_ref).is_relative_to(ctx.store.root / "keys"):
            crypto.load_own_key(key_pem)  # ours, from the state dir: the plan's check loads it for free
    else:
        appliance_keyfile = current.key_ref
    cert = profile.certificate
    plan = DeployPlan(
        certkey=cert.certkey_name,
        leaf=leaf,
        chain=chain,
        key_pem=key_pem,
        appliance_keyfile=appliance_keyfile,
        vservers=profile.vservers,
        file_base=cert.certkey_name,
    )
    if not ctx.dry_run:
        session.preflight(plan.vservers)  # asks nothing when checked before the order
    uploaded = UploadedFiles(ctx, state, session, target, hafiles.before_certkey(ctx, profile, session))
    try:
        result = deploy(
            session.nitro,
            plan,
            dry_run=ctx.dry_run,
            view=session.view(),
            before_certkey=uploaded,
        )
    except BaseException as exc:
        session.forget_view()  # it may have written half-way: the next question reads again
        if isinstance(exc, Exception):
            uploaded.clean_up(profile.name)  # the attempt's files no certkey refers to
        raise
    if ctx.dry_run:
        return Done(
            action,
            "planned",
            "dry run: nothing written",
            RowFacts.of(state, None, ctx.clock()),
            plan=(*result.actions, f"save the configuration of {session.node}"),
        )
    session.deployed(result.changed)
    uploaded.settled()
    previous = state.deployment(target)
    stale = state.stale_files_of(target)
    if previous is not None and previous.appliance == session.label:  # files of this appliance only
        for old in (previous.cert_file, previous.key_file):
            if old and old not in (result.cert_file, result.key_file) and old not in stale:
                stale.append(old)
    record = DeploymentRecord(
        appliance=session.label,
        partition=profile.appliance.partition,
        certkey=result.certkey,
        serial=result.serial,
        vservers=list(result.vservers_bound),  # what the read-back after deploying saw bound
        deployed_at=iso(ctx.clock()),
        cert_file=result.cert_file,
        key_file=result.key_file,
        saved=False,
        stale_files=stale if target is not None else [],
    )
    state.set_deployment(target, record)
    state.add_event("deployed", appliance=session.label, certkey=result.certkey, serial=result.serial)
    ctx.store.save(state)
    session.unsaved_profiles.append((profile, state, target))
    return Done(
        action,
        "ok",
        installed_message(action, state, why, target=target, node=session.node),
        RowFacts.of(state, None, ctx.clock(), target=target),
        plan=tuple(result.actions),
        details={"reason": why} if why else {},
    )


_DONE_WORDS = {
    "enroll": "enrolled and installed",
    "collect": "collected and installed",
    "renew": "renewed and installed",
    "replace": "replaced and installed",
}


def installed_message(
    action: Action, state: ProfileState, why: str = "", *, target: str | None = None, node: str | None = None
) -> str:
    """The row's detail after a deployment: the state it left (what is installed and bound), then
    why it was done (the state before) where that adds something. ``node``: the node written to (an
    HA pair's Primary of the moment), named instead of the journal's appliance key."""
    current, deployed = state.current, state.deployment(target)
    assert current is not None and deployed is not None
    done = _DONE_WORDS.get(action, "installed again")
    bound = ", ".join(deployed.vservers) or "no vserver"
    message = (
        f"{done}: order {current.order_id}, serial {current.serial}, expires {current.not_after[:10]}, "
        f"certkey {deployed.certkey} bound to {bound} on {node or deployed.appliance}"
    )
    if why and action != "collect":  # a collect's reason is the pending order the line just named
        message += f" (because {why})"
    return message


def save_appliance(ctx: Context, session: ApplianceSession) -> CitrixAgentError | None:
    """The appliance's one config save (if anything changed), then the housekeeping it allows;
    returns the save's error, which fails every row that installed something."""
    if not session.changed and not session.unsaved_profiles:
        return None
    try:
        save(session.nitro)
    except CitrixAgentError as exc:
        return exc
    listed: list[CertKey] | None = None  # read once after the save, for every profile's files
    for profile, state, target in session.unsaved_profiles:
        record = state.deployment(target)
        if record is not None:
            record.saved = True
            state.add_event("saved", appliance=session.label)
        stale = state.stale_files_of(target)
        if stale:
            # Only now (saved) may the superseded files go; a failure here is housekeeping only.
            try:
                if listed is None:
                    listed = session.nitro.list_certkeys()
                removed = remove_unreferenced_files(session.nitro, stale, certkeys=listed)
            except CitrixAgentError as exc:
                log.warning(
                    "%s: could not remove superseded files on %s: %s", profile.name, session.label, exc
                )
            else:
                if removed:
                    state.add_event("removed-files", files=removed)
                    log.info("%s: removed superseded files %s", profile.name, ", ".join(removed))
                stale.clear()
        removed_keys = keys.prune_superseded_keys(ctx.store, state)
        if removed_keys:
            state.add_event("removed-keys", files=removed_keys)
        ctx.store.save(state)
    session.unsaved_profiles.clear()
    session.changed = False
    return None
