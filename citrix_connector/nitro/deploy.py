"""How a certificate gets onto a NetScaler: the expert admin's way (nitro-api.md §3 and §4).

Plain functions over a connected :class:`~citrix_connector.nitro.client.NitroClient`; no Click, no SCM,
no state files. The rules they keep:

* a certificate in use is replaced **in place** (``update`` on the same certkey name), so every binding
  survives and no vserver ever goes without a certificate; never unbind-then-bind;
* every deployment uploads files under **new** names (``<base>-<UTC timestamp>.crt/.key``);
* intermediates are installed once and reused whatever their name (found by serial);
* the leaf is linked to its issuer, and re-linked when the issuer changed;
* a failure after the new certificate went live (link) rolls the certkey back to its previous files, so
  the old certificate keeps serving; re-running converges;
* ``dry_run`` only reads, and returns the actions it would take; it also plans a certificate SCM has
  not issued yet (:meth:`DeployPlan.not_issued`), so every plan comes from this one pass;
* nothing here saves the configuration: the caller calls :func:`save` once per appliance per run.

The steps, in order: read, chain (:mod:`.chain`), upload, add or update, link, bind, verify, and a
rollback when a later step fails after an update.

Given the session's :class:`~.checks.ApplianceView`, the read-only questions (what the certkey holds,
which certkey holds each CA, the files, the vservers' bindings) are answered from its bulk reads, and
what the verification read back is recorded in it: per deployed profile that leaves the writes, one
read of the certkey after an in-place update (the update may drop its link), and the read-back
(the certkey, unless nothing was written to it after that read, and its bindings: one read
whatever the number of vservers).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone

from cryptography import x509

from ..crypto import cert_to_pem, parse_certificates
from ..errors import CitrixAgentError, CryptoError, NitroError
from . import codes
from .chain import install_chain
from .checks import ApplianceView, InstalledState, preflight, read_installed
from .client import CertKey, NitroClient
from .connect import open_appliance
from .housekeeping import remove_unreferenced_files, save
from .models import VserverRef, VserverTarget
from .naming import ca_certkey_name, cert_names
from .onbox import make_csr_on_appliance, make_key_on_appliance
from .plan import DeployPlan, DeployResult, NotIssued, Run, fail, step, with_note

__all__ = [
    "ApplianceView",
    "DeployPlan",
    "DeployResult",
    "InstalledState",
    "NotIssued",
    "VserverRef",
    "VserverTarget",
    "ca_certkey_name",
    "deploy",
    "make_csr_on_appliance",
    "make_key_on_appliance",
    "open_appliance",
    "preflight",
    "read_installed",
    "remove_unreferenced_files",
    "save",
]

log = logging.getLogger("citrixagent.nitro.deploy")


@dataclass(frozen=True)
class _Leaf:
    """Where the leaf lives after the add-or-update step, and whether an in-place update happened."""

    cert_file: str
    key_file: str
    updated: bool
    # the certkey as read after the add or update, while nothing was written to it since (the
    # verification reuses it; a link or unlink makes it stale)
    fresh: list[CertKey]


def deploy(
    nitro: NitroClient,
    plan: DeployPlan,
    *,
    dry_run: bool = False,
    now: Callable[[], datetime] | None = None,
    view: ApplianceView | None = None,
    before_certkey: Callable[[Sequence[str]], None] | None = None,
) -> DeployResult:
    """Install ``plan`` on the appliance (see the module docstring for the rules); no config save.

    ``view``: the session's bulk reads of this partition, used and kept up to date (after a failure
    the caller calls :meth:`ApplianceView.invalidate`). ``before_certkey``: called with the files
    uploaded since its last call, after the uploads and before the add or update that names them
    (on an HA Primary: sync them to the Secondary, :func:`~.hasync.sync_before_certkey`)."""
    plan.validate(dry_run=dry_run)
    stamp_now = (now or (lambda: datetime.now(timezone.utc)))()
    run = Run(nitro, plan, dry_run, stamp_now, view, before_certkey)
    with step("read"):
        installed = run.certkey(plan.certkey)
    with step("chain"):
        issuer = install_chain(run)
    leaf = _install_leaf(run, installed)
    newly_bound: list[str] = []  # vservers this run bound the certkey to
    try:
        with step("link"):
            _link_leaf(run, installed, leaf, issuer)
        with step("bind"):
            bound = _bind(run, newly_bound)
        if not dry_run:
            with step("verify"):
                bound = _verify(run, issuer, leaf)  # report what the read-back saw
    except NitroError as exc:
        annotated = None if dry_run else _after_failure(run, installed, leaf, newly_bound, exc)
        if annotated is None:
            raise
        raise annotated from exc
    return DeployResult(
        certkey=plan.certkey,
        serial=plan.serial or "",
        changed=run.changed,
        actions=run.actions,
        vservers_bound=bound,
        cert_file=leaf.cert_file,
        key_file=leaf.key_file,
    )


# ------------------------------------------------------------------------------ upload, add, update


def _install_leaf(run: Run, installed: CertKey | None) -> _Leaf:
    """Upload the leaf (and a local key) under fresh names, then add the certkey or update it in place."""
    plan = run.plan
    if installed is not None and installed.serial == plan.serial:
        run.act(f"certkey {plan.certkey!r} already holds serial {plan.serial}: no upload, no update")
        return _Leaf(installed.cert, installed.key or "", updated=False, fresh=[])
    with step("upload"):
        stem = _upload_leaf(run)
    cert_file = run.path(f"{stem}.crt")
    key_file = run.path(f"{stem}.key") if plan.uploads_key else (plan.appliance_keyfile or "")
    run.files_ready()  # HA: the Secondary holds the files before the propagated add or update
    if installed is None:
        with step("add"):
            _add(run, cert_file, key_file)
        return _Leaf(cert_file, key_file, updated=False, fresh=[])
    with step("update"):
        _update(run, installed, cert_file, key_file)
    return _Leaf(cert_file, key_file, updated=True, fresh=[])


def _upload_leaf(run: Run) -> str:
    plan = run.plan
    leaf_pem = cert_to_pem(plan.leaf).encode("ascii") if isinstance(plan.leaf, x509.Certificate) else b""
    files: list[tuple[str, bytes, str]] = [(".crt", leaf_pem, "certificate")]
    if plan.uploads_key:
        files.append((".key", plan.key_pem or b"", "private key"))
    return run.upload(plan.file_base, files)


def _add(run: Run, cert_file: str, key_file: str) -> None:
    name = run.plan.certkey
    nitro = run.nitro
    run.write(
        f"add certkey {name!r} ({run.plan.describe()})", lambda: nitro.add_certkey(name, cert_file, key_file)
    )


def _update(run: Run, installed: CertKey, cert_file: str, key_file: str) -> None:
    nitro = run.nitro
    name = installed.name
    no_domain_check = _needs_domain_check_off(nitro, installed, run.plan.names)
    new = run.plan.serial or "the certificate SCM will issue"
    text = f"update certkey {name!r} in place: serial {installed.serial or '?'} -> {new}"
    if no_domain_check:
        text += " (names change: nodomaincheck)"
    try:
        run.write(
            text, lambda: nitro.update_certkey(name, cert_file, key_file, no_domain_check=no_domain_check)
        )
    except NitroError as exc:
        if not codes.ca_link_broken_by_update(exc) or not installed.linkcertkeyname:
            raise
        # this appliance refuses an update that breaks the CA link: drop the link, update, relink on failure
        log.info("NetScaler %s: update refused (%s); unlinking first", nitro.host, exc.errorcode)
        old_link = installed.linkcertkeyname
        run.write(f"unlink certkey {name!r} from {old_link!r}", lambda: nitro.unlink_certkey(name))
        try:
            nitro.update_certkey(name, cert_file, key_file, no_domain_check=no_domain_check)
        except NitroError:
            with contextlib.suppress(NitroError):
                nitro.link_certkey(name, old_link)
            raise


def _needs_domain_check_off(nitro: NitroClient, installed: CertKey, new_names: set[str]) -> bool:
    old = {n.lower() for n in installed.names}
    if not old and installed.cert:
        with contextlib.suppress(NitroError, CryptoError):
            location, _, name = installed.cert.rpartition("/")
            data = nitro.download_file(name, location or None)
            old = cert_names(parse_certificates(data)[0])
    if not old:
        return True  # unknown: the domain check would only be a guess
    return old != new_names


# ------------------------------------------------------------------------------------ link, bind


def _link_leaf(run: Run, installed: CertKey | None, leaf: _Leaf, issuer: str | None) -> None:
    """Link the certkey to its issuer's certkey, re-linking when it points elsewhere."""
    nitro = run.nitro
    name = run.plan.certkey
    if not run.plan.issued:
        run.later(f"link certkey {name!r} to its issuer's certkey (unless linked to it already)")
        return
    if not issuer:
        return
    link = installed.linkcertkeyname if installed is not None else None
    if installed is None:
        link = None  # added just now: not linked to anything yet
    elif not run.dry_run and leaf.updated:
        current = nitro.get_certkey(name)  # an update may have dropped the link
        link = current.linkcertkeyname if current is not None else None
        if current is not None:
            leaf.fresh.append(current)
    if link == issuer:
        run.act(f"certkey {name!r} is linked to its issuer {issuer!r}")
        return
    leaf.fresh.clear()  # written to below: the verification reads it again
    if link:
        run.write(f"unlink certkey {name!r} from {link!r}", lambda: nitro.unlink_certkey(name))
    run.write(f"link certkey {name!r} to its issuer {issuer!r}", lambda: nitro.link_certkey(name, issuer))


def _bind(run: Run, newly_bound: list[str]) -> list[str]:
    """Bind the certkey to every vserver of the plan that does not serve it yet (as SNI where asked)."""
    bound: list[str] = []
    for vs in run.plan.vservers:
        if _bind_one(run, vs):
            newly_bound.append(vs.name)
        bound.append(vs.name)
    return bound


def _bind_one(run: Run, vs: VserverTarget) -> bool:
    """True when this run binds (or would bind) the certkey to ``vs``."""
    nitro = run.nitro
    name = run.plan.certkey
    bindings = run.vserver_bindings(vs.name)
    if any(b.certkey == name and b.serves and b.sni == vs.sni for b in bindings):
        sni_note = " (SNI)" if vs.sni else ""
        run.act(f"certkey {name!r} is bound to {vs.type} vserver {vs.name!r}{sni_note}")
        return False
    others = [b.certkey for b in bindings if not b.sni and b.serves and b.certkey != name]
    what = f"bind certkey {name!r} to {vs.type} vserver {vs.name!r}"
    if vs.sni:
        what += " as SNI certificate"
    elif others:
        what += f" (replaces {', '.join(repr(o) for o in others)})"
    run.write(what, lambda: nitro.bind_certkey(vs.name, name, sni=vs.sni))
    run.displaced = run.displaced or bool(others)
    return True


# ------------------------------------------------------------------------------ verify, rollback


def _verify(run: Run, issuer: str | None, leaf: _Leaf) -> list[str]:
    """Read back certkey, link and bindings; returns the vservers found bound (all, or it raises).

    The certkey as read after the update serves when nothing was written to it since; what was read
    is recorded in the session's view."""
    nitro, plan = run.nitro, run.plan
    ck = leaf.fresh[-1] if leaf.fresh else nitro.get_certkey(plan.certkey)
    if ck is None:
        raise fail("verify", f"certkey {plan.certkey!r} is missing after the deployment")
    if ck.serial != plan.serial:
        raise fail("verify", f"certkey {plan.certkey!r} holds serial {ck.serial}, expected {plan.serial}")
    if issuer and ck.linkcertkeyname != issuer:
        raise fail(
            "verify", f"certkey {plan.certkey!r} is linked to {ck.linkcertkeyname!r}, expected {issuer!r}"
        )
    verified: list[str] = []
    missing: list[str] = []
    bindings = nitro.certkey_bound(plan.certkey) if plan.vservers else []  # one read for all vservers
    if run.view is not None and run.displaced:
        run.view.invalidate()  # a binding displaced another certkey's: read the bindings again
    elif run.view is not None:
        run.view.record_certkey(ck)
        run.view.record_bindings(plan.certkey, bindings)
    for vs in plan.vservers:
        if any(b.vserver == vs.name and b.sni == vs.sni and b.serves for b in bindings):
            verified.append(vs.name)
        else:
            missing.append(vs.name)
    if missing:
        raise fail("verify", f"certkey {plan.certkey!r} is not bound to {', '.join(missing)}")
    return verified


def _after_failure(
    run: Run, installed: CertKey | None, leaf: _Leaf, newly_bound: list[str], exc: NitroError
) -> NitroError | None:
    """After link/bind/verify failed: roll an in-place update back, or say where a new certkey serves
    already. None when there is nothing to add to ``exc``."""
    if leaf.updated and installed is not None:
        return with_note(exc, f"{exc}{_rollback(run, installed, exc)}")
    if newly_bound:
        # no rollback for a certkey that is new here: say where the new certificate serves already
        plan = run.plan
        served = ", ".join(newly_bound)
        return with_note(
            exc, f"{exc}; certkey {plan.certkey!r} (serial {plan.serial}) already serves {served}"
        )
    return None


def _rollback(run: Run, before: CertKey, error: CitrixAgentError) -> str:
    """Put the previous certificate files back behind the certkey; returns a note for the error."""
    nitro = run.nitro
    name = before.name
    try:
        nitro.update_certkey(name, before.cert, before.key, no_domain_check=True)
        now = nitro.get_certkey(name)
        if before.linkcertkeyname and now is not None and now.linkcertkeyname != before.linkcertkeyname:
            if now.linkcertkeyname:
                nitro.unlink_certkey(name)
            nitro.link_certkey(name, before.linkcertkeyname)
    except NitroError as exc:
        log.error("NetScaler %s: rollback of %s failed: %s", nitro.host, name, exc)
        return f"; rolling back to the previous certificate failed too: {exc}"
    log.warning("NetScaler %s: rolled %s back to serial %s after: %s", nitro.host, name, before.serial, error)
    return f"; rolled back: certkey {name!r} serves the previous certificate (serial {before.serial}) again"
