"""Proving one deployed target after its config save: the HA Secondary holds the new certificate, and
every VIP really serves it.

:func:`verify_target` is the one entry point (the runner calls it for every target that installed a
certificate in this run, after its save; a canary rollout calls it for the canary before the rest). It
returns a :class:`TargetVerification`; :func:`fold_into` turns that into the profile's step (a
failure of that target, or warnings beside an ``ok``). :func:`probe_installed` is the read-only probe
``status --probe`` uses.

What fails a target and what is only a warning:

* HA (``ha_sync.verify``, default true; only when the node written to is an HA Primary): the SSL file
  sync is requested on the Primary; a Secondary that does not hold the certkey with the new serial and
  its files within ``ha_sync.deadline`` fails the target, naming the peer. An HA pair whose Secondary
  is not among ``appliance.url`` is a warning (requested, not verified).
* Probe (``probe.mode``): ``on`` (default) fails the target for a VIP serving the wrong certificate, an
  incomplete chain, TLS older than 1.2 or a name that does not match, and warns for an unreachable
  VIP; ``required`` fails for an unreachable one too; ``warn-only`` only warns; ``off`` does not probe.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from cryptography import x509

from ..config import ApplianceConfig, Profile
from ..crypto import normalize_serial
from ..errors import EXIT_FAILURE, CitrixAgentError, LoopbackOnlyError, StateError, error_details
from ..nitro.checks import ApplianceView
from ..nitro.client import NitroClient
from ..nitro.hasync import HaSyncResult, chain_of, trigger_file_sync, wait_for_secondary
from ..probe import Expectation, ProbeMode, VipReport, probe_vips
from ..probe.guard import check_overrides
from ..probe.judge import subject_text
from ..probe.targets import vip_targets
from ..state import ProfileState
from .context import ApplianceSession, Context, nitro_options
from .outcome import Done, iso

__all__ = [
    "Saved",
    "TargetVerification",
    "check_session",
    "failed_to_verify",
    "fold_into",
    "last_check_failed",
    "recheck",
    "open_node",
    "probe_installed",
    "verified",
    "verify_saved",
    "verify_target",
]

log = logging.getLogger("citrixagent")

NodeOpener = Callable[[ApplianceConfig, str], NitroClient]


@dataclass(frozen=True)
class TargetVerification:
    """What verifying one target found. ``failures`` fail the target; ``warnings`` do not."""

    target: str  # the appliance (or HA pair) as the result rows name it
    mode: ProbeMode
    ha: HaSyncResult | None = None  # None: not an HA pair, or ha_sync.verify is false
    vips: tuple[VipReport, ...] = ()
    failures: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return not self.failures

    def summary(self) -> str:
        """One line: what was proven (``2 VIPs serve it; secondary 127.0.0.1 in sync``)."""
        parts: list[str] = []
        if self.vips:
            good = sum(1 for v in self.vips if v.ok)
            parts.append(f"{good} of {len(self.vips)} VIP probes ok")
        elif self.mode == "off":
            parts.append("probe off")
        if self.ha is not None:
            parts.append(f"secondary {self.ha.peer} {'in sync' if self.ha.in_sync else 'NOT in sync'}")
        return "; ".join(parts)

    def to_dict(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "ok": self.ok,
            "probe_mode": self.mode,
            "ha": self.ha.to_dict() if self.ha is not None else None,
            "vips": [v.to_dict() for v in self.vips],
            "failures": list(self.failures),
            "warnings": list(self.warnings),
        }


def open_node(
    config: ApplianceConfig, url: str, *, sleep: Callable[[float], None] = time.sleep
) -> NitroClient:
    """A logged-in client on one node of ``config`` (same credentials, partition, proxy) for reading."""
    client = NitroClient(url, **nitro_options(config, sleep))
    try:
        client.session.open()
    except BaseException:
        client.close()
        raise
    return client


def verify_target(
    profile: Profile,
    target: ApplianceConfig,
    primary: NitroClient,
    *,
    serial: str,
    chain_pem: Sequence[str] = (),
    label: str = "",
    monotonic: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
    view: ApplianceView | None = None,
    sync_requested: bool = False,
    opener: NodeOpener | None = None,
) -> TargetVerification:
    """Verify one target after its save: ``primary`` is the session the deployment was written through
    (the HA Primary, or a standalone box), ``target`` that appliance's config (its ``urls`` name the
    Secondary of a pair), ``serial`` the certificate just deployed and ``chain_pem`` the CA certificates
    SCM issued with it. ``view``: the session's view of the appliance (its vservers and certkeys as
    read for the deployment: then the probe costs no NITRO request); ``sync_requested``: the caller
    already requested the SSL file sync on this Primary after the save (one request per appliance).
    Raises only :class:`~citrix_connector.errors.LoopbackOnlyError` (a probe off this machine while
    tests, demo or sandbox run); every other problem is in the result."""
    label = label or primary.host
    failures: list[str] = []
    warnings: list[str] = []
    ha = _verify_ha(
        profile,
        target,
        primary,
        serial,
        failures,
        warnings,
        sync_requested=sync_requested,
        monotonic=monotonic,
        sleep=sleep,
        opener=opener,
        view=view,
    )
    reports: list[VipReport] = []
    mode = profile.probe.mode
    if mode != "off":
        try:
            source = view if view is not None else ApplianceView(primary)
            reports = probe_installed(profile, source, primary.host, serial=serial, chain_pem=chain_pem)
        except LoopbackOnlyError:
            raise
        except CitrixAgentError as exc:
            text = f"the VIPs could not be read from {primary.host}: {exc}"
            (warnings if mode == "warn-only" else failures).append(text)
        _classify(mode, reports, failures, warnings)
    for text in warnings:
        log.warning("%s on %s: %s", profile.name, label, text)
    result = TargetVerification(label, mode, ha, tuple(reports), tuple(failures), tuple(warnings))
    log.info("%s on %s: verified: %s", profile.name, label, result.summary() or "nothing to check")
    return result


def probe_installed(
    profile: Profile, view: ApplianceView, host: str, *, serial: str, chain_pem: Sequence[str] = ()
) -> list[VipReport]:
    """Read-only: every vserver's VIP of the profile on appliance ``host``, probed for ``serial`` and
    the chain the certkey is linked to there (and the intermediates in ``chain_pem``). Vservers and
    certkeys come from ``view`` (read once per session)."""
    check_overrides(profile)  # checked before the run too (preflight); a library caller may skip it
    expect = Expectation(normalize_serial(serial), _intermediates(view, profile, chain_pem))
    names = profile.certificate.subject_alt_names  # the CN first, then the other names
    targets = vip_targets(view, host, profile.vservers, names)
    return probe_vips(targets, expect, timeout=profile.probe.timeout)


def _intermediates(
    view: ApplianceView, profile: Profile, chain_pem: Sequence[str]
) -> tuple[tuple[str, str], ...]:
    """(serial, subject) of every non-root CA that must follow the leaf: the certkey's link chain on
    the appliance, then SCM's intermediates. Roots may be left out by a server, so they are not
    required."""
    found: dict[str, str] = {}
    certkey = view.certkey(profile.certificate.certkey_name)
    seen = {profile.certificate.certkey_name}
    link = certkey.linkcertkeyname if certkey is not None else None
    while link and link not in seen:
        seen.add(link)
        ca = view.certkey(link)
        if ca is None:
            break
        if ca.serial and ca.subject.strip() != ca.issuer.strip():
            found.setdefault(ca.serial, ca.subject.strip())
        link = ca.linkcertkeyname
    for pem in chain_pem:
        cert = x509.load_pem_x509_certificate(pem.encode())
        if cert.subject != cert.issuer:
            found.setdefault(normalize_serial(cert.serial_number), subject_text(cert))
    return tuple(found.items())


def _classify(
    mode: ProbeMode, reports: Sequence[VipReport], failures: list[str], warnings: list[str]
) -> None:
    for report in reports:
        if report.ok:
            continue
        fails = mode == "required" or (mode == "on" and report.status != "unreachable")
        (failures if fails else warnings).append(f"VIP {report.line()}")


def _verify_ha(
    profile: Profile,
    target: ApplianceConfig,
    primary: NitroClient,
    serial: str,
    failures: list[str],
    warnings: list[str],
    *,
    sync_requested: bool,
    monotonic: Callable[[], float],
    sleep: Callable[[float], None],
    opener: NodeOpener | None,
    view: ApplianceView | None = None,
) -> HaSyncResult | None:
    if not profile.ha_sync.verify:
        return None
    try:
        info = primary.known_ha_info()  # read when the session chose its node: no request
    except CitrixAgentError as exc:
        warnings.append(f"could not read the HA state of {primary.host}: {exc}")
        return None
    if info.state != "Primary":
        return None
    certkey = profile.certificate.certkey_name
    if not sync_requested:
        try:
            trigger_file_sync(primary)
        except CitrixAgentError as exc:
            failures.append(f"the SSL file sync could not be requested on the primary {primary.host}: {exc}")
            return HaSyncResult(info.peer_address or "the secondary", False, str(exc))
    peers = [u for u in target.urls if u.rstrip("/").lower() != primary.url.rstrip("/").lower()]
    if not peers:
        warnings.append(
            f"HA pair: SSL file sync requested on {primary.host}, but the secondary "
            f"({info.peer_address or 'its address unknown'}) is not verified: list both node URLs in "
            "appliance.url"
        )
        return None
    url = peers[0]
    peer = url.split("://", 1)[-1]

    def open_secondary() -> NitroClient:
        return opener(target, url) if opener is not None else open_node(target, url, sleep=sleep)

    try:  # the CA certkeys the leaf links to on the Primary: the Secondary must hold them alike
        chain = chain_of((view if view is not None else ApplianceView(primary)).certkey, certkey)
    except CitrixAgentError as exc:
        warnings.append(f"could not read the CA chain of {certkey} on {primary.host}: {exc}")
        chain = ()
    result = wait_for_secondary(
        open_secondary,
        certkey,
        normalize_serial(serial),
        chain=chain,
        peer=peer,
        deadline=profile.ha_sync.deadline,
        interval=profile.ha_sync.interval,
        monotonic=monotonic,
        sleep=sleep,
    )
    result = dataclasses.replace(result, triggered=True)
    if not result.in_sync:
        failures.append(result.detail)
    return result


def fold_into(done: Done, verification: TargetVerification) -> Done:
    """The step after verification: failed (exit 1) when anything failed the target, else the same
    step with any warnings added to its message. The whole result is in ``details["verification"]``."""
    details = {**done.details, "verification": verification.to_dict()}
    if verification.failures:
        message = f"deployed and saved on {verification.target}, but verification failed: " + "; ".join(
            verification.failures
        )
        if verification.warnings:
            message += "; warnings: " + "; ".join(verification.warnings)
        return dataclasses.replace(
            done, result="failed", message=message, details=details, exit_code=EXIT_FAILURE
        )
    if not verification.warnings:  # proven: the row stays as it was (the details say what was seen)
        return dataclasses.replace(done, details=details)
    extra = "warning: " + "; ".join(verification.warnings)
    message = "; ".join(p for p in (done.message, extra) if p)
    return dataclasses.replace(done, message=message, details=details)


def failed_to_verify(done: Done, target: str, error: CitrixAgentError) -> Done:
    """The step when verification itself could not run (e.g. the loopback guard refused a probe)."""
    return dataclasses.replace(
        done,
        result="failed",
        message=f"deployed and saved on {target}, but it could not be verified: {error}",
        details={**done.details, "error": error_details(error)},
        exit_code=error.exit_code,
    )


@dataclass(frozen=True)
class Saved:
    """A row that installed the journal's certificate on ``session``'s appliance, saved since:
    ``profile`` as that target's (its vservers), ``target`` the target's label (None: the profile has
    one appliance)."""

    profile: Profile
    session: ApplianceSession
    target: str | None
    done: Done


def verify_saved(ctx: Context, rows: Sequence[Saved]) -> list[Done]:
    """The runner's hook, after the appliances were saved: each row verified, in order. The SSL file
    sync is requested once per appliance (an HA Primary with some profile checking its Secondary)."""
    synced: dict[int, bool] = {}
    for row in rows:
        key = id(row.session)
        if key in synced or row.done.result != "ok" or not row.profile.ha_sync.verify:
            continue
        synced[key] = False
        if row.session.files_synced:  # synced before the certkey step, and the files arrived
            synced[key] = True
            continue
        try:
            if row.session.nitro.known_ha_info().state == "Primary":
                trigger_file_sync(row.session.nitro)
                synced[key] = True
        except CitrixAgentError as exc:  # each row then requests it itself, and says so if it fails
            log.warning("%s: could not request the SSL file sync: %s", row.session.label, exc)
    return [
        verified(
            ctx,
            r.profile,
            r.session,
            r.done,
            target=r.target,
            sync_requested=synced.get(id(r.session), False),
        )
        for r in rows
    ]


def check_session(
    ctx: Context,
    profile: Profile,
    session: ApplianceSession,
    state: ProfileState,
    *,
    sync_requested: bool = False,
) -> TargetVerification:
    """:func:`verify_target` for the journal's certificate on ``session``'s appliance (a canary's
    check calls this after its save)."""
    current = state.current
    if current is None:
        raise StateError(f"{profile.name}: no issued certificate in the journal to verify")
    return verify_target(
        profile,
        session.config,
        session.nitro,
        serial=current.serial,
        chain_pem=current.chain_pem,
        label=session.node,
        monotonic=ctx.monotonic,
        sleep=ctx.sleep,
        view=session.view(),
        sync_requested=sync_requested,
    )


def last_check_failed(state: ProfileState, target: str | None = None) -> list[str] | None:
    """The failures of the last check after a save of the journal's certificate (on ``target``),
    when that check failed; None when it passed, or when there was none (adopted, older journals)."""
    current = state.current
    for event in reversed(state.history):
        kind = event.get("event")
        here = target is None or event.get("appliance") == target
        if kind == "deployed" and here:
            return None  # deployed again since: its own check decides
        if kind != "verified" or not here:
            continue
        if current is None or event.get("serial") != current.serial or event.get("ok", True):
            return None
        return [str(f) for f in event.get("failures", [])] or ["the check failed"]
    return None


def recheck(
    ctx: Context,
    profile: Profile,
    session: ApplianceSession,
    done: Done,
    *,
    state: ProfileState,
    target: str | None = None,
) -> Done:
    """A ``nothing`` row of a certificate whose last check failed, checked again (read-only on the
    appliance; for an HA pair the file sync is requested again). ``state`` is the caller's journal
    (the event is added to it and saved)."""
    checked = verified(ctx, profile, session, done, target=target, nothing_ok=True, state=state)
    if checked.result == "nothing":
        return dataclasses.replace(
            checked, message=f"{done.message}; checked again after the last failed check: it passes now"
        )
    return checked


def verified(
    ctx: Context,
    profile: Profile,
    session: ApplianceSession,
    done: Done,
    *,
    target: str | None = None,
    sync_requested: bool = False,
    nothing_ok: bool = False,
    state: ProfileState | None = None,
) -> Done:
    """``done`` (a step that installed the journal's certificate on ``session``'s appliance, saved
    since) after :func:`verify_target`, with a ``verified`` journal event (and the deployment record
    of that target marked verified when it passed)."""
    if state is None:
        state = ctx.store.load(profile.name)
    if state.current is None or done.result not in (("ok", "nothing") if nothing_ok else ("ok",)):
        return done
    try:
        verification = check_session(ctx, profile, session, state, sync_requested=sync_requested)
    except CitrixAgentError as exc:  # journalled as a failed check: status and the next run see it
        state.add_event(
            "verified", appliance=session.label, serial=state.current.serial, ok=False, failures=[str(exc)]
        )
        ctx.store.save(state)
        return failed_to_verify(done, session.node, exc)
    except Exception as exc:  # a bug must not stop the other profiles of an unattended run
        log.exception("%s: internal error while verifying on %s", profile.name, session.node)
        return dataclasses.replace(
            done,
            result="failed",
            message=f"deployed and saved on {session.node}, but verifying it failed: internal error: "
            f"{type(exc).__name__}: {exc}",
            exit_code=EXIT_FAILURE,
        )
    record = state.deployment(target)
    if record is not None and verification.ok:
        record.verified_at = iso(ctx.clock())
    state.add_event(
        "verified",
        appliance=session.label,
        serial=state.current.serial,
        ok=verification.ok,
        failures=list(verification.failures),
        warnings=list(verification.warnings),
    )
    ctx.store.save(state)
    return fold_into(done, verification)
