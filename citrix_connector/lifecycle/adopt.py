"""Adoption: a profile's certkey is on the appliance but this journal never recorded a certificate
for it (a brownfield certkey, e.g. from ``discover --write-profiles``).

The installed certificate is read back from its file on the appliance and parsed; SCM is asked for
the order with its serial (admin API); the journal then records it as the current certificate,
deployed and saved, with the SCM order id when there is one, so that the renewal is a renewal of
that order. Nothing is written to the appliance and nothing is ordered here.
"""

from __future__ import annotations

import logging
import posixpath
from dataclasses import dataclass
from datetime import datetime

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from .. import crypto
from ..config import Profile
from ..errors import CitrixAgentError, CryptoError, StateError
from ..nitro.deploy import InstalledState
from ..scm import capabilities_of
from ..scm.admin import AdminScmClient
from ..state import DeploymentRecord, IssuedRecord, ProfileState
from .context import ApplianceSession, Context
from .decide import ADOPTED_KEY_PREFIX, Decision, for_adopted, renewal_due
from .outcome import iso

log = logging.getLogger("citrixagent")


@dataclass(frozen=True)
class Adoption:
    certkey: str
    serial: str
    order_id: str  # "" when SCM has no order for it (another CA, or an API that cannot list)
    scm_status: str
    note: str  # "adopting certkey X, serial S (...)"

    @property
    def revoked(self) -> bool:
        return self.scm_status.lower() == "revoked"


def unrecorded(state: ProfileState, installed: InstalledState | None) -> bool:
    """The certkey exists on the appliance, and this journal never recorded a certificate or an order."""
    return (
        installed is not None
        and bool(installed.serial)
        and state.current is None
        and state.pending is None
        and state.ordering is None
        and state.deployed is None
    )


def is_adopted(state: ProfileState) -> bool:
    return state.current is not None and state.current.key_ref.startswith(ADOPTED_KEY_PREFIX)


def _cn(cert: x509.Certificate) -> str:
    attrs = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return str(attrs[0].value) if attrs else ""


def _sans(cert: x509.Certificate) -> list[str]:
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return []
    return [
        *san.get_values_for_type(x509.DNSName),
        *(str(ip) for ip in san.get_values_for_type(x509.IPAddress)),
    ]


def _key_desc(cert: x509.Certificate) -> str:
    key = cert.public_key()
    try:
        return crypto.key_spec_of(key).describe()  # type: ignore[arg-type]
    except CryptoError:
        if isinstance(key, rsa.RSAPublicKey):
            return f"RSA {key.key_size}"
        if isinstance(key, ec.EllipticCurvePublicKey):
            return f"ECDSA {key.curve.name}"
        return type(key).__name__


def _read_certificate(session: ApplianceSession, installed: InstalledState, certkey: str) -> x509.Certificate:
    path = installed.cert_file
    if not path:
        raise StateError(f"certkey {certkey} on {session.label} names no certificate file")
    location, name = posixpath.split(path) if "/" in path else ("", path)
    data = session.nitro.download_file(name, location or None)
    try:
        certs = crypto.parse_certificates(data)
    except CryptoError as exc:
        raise StateError(f"certkey {certkey} on {session.label}: cannot read {path}: {exc}") from exc
    want = installed.serial or ""
    for cert in certs:
        if crypto.normalize_serial(cert.serial_number) == want:
            return cert
    raise StateError(
        f"certkey {certkey} on {session.label}: {path} does not hold the certificate with serial {want}"
    )


def _scm_order(ctx: Context, serial: str) -> tuple[str, str]:
    """(order id, SCM status) of the SCM certificate with this serial; ("", "") when none is found
    or the API cannot list certificates."""
    if ctx.scm_config is None or not capabilities_of(ctx.scm_config).can_list_orders:
        return "", ""
    from ..discovery.scm_match import find_by_serial  # discovery's SCM matching, one serial

    client = ctx.scm
    if not isinstance(client, AdminScmClient):
        return "", ""
    try:
        match = find_by_serial(client, serial)
    except CitrixAgentError as exc:
        log.warning("looking up serial %s at SCM failed: %s", serial, exc)
        return "", ""
    return (match.ssl_id, match.status) if match is not None else ("", "")


def adopt(
    ctx: Context, profile: Profile, state: ProfileState, session: ApplianceSession, installed: InstalledState
) -> Adoption:
    """Record the installed certificate as this profile's current one (journal only; a dry run keeps
    it in memory)."""
    certkey = profile.certificate.certkey_name
    cert = _read_certificate(session, installed, certkey)
    serial = crypto.normalize_serial(cert.serial_number)
    order_id, scm_status = _scm_order(ctx, serial)
    cn = _cn(cert)
    names = crypto.unique_names([cn, *_sans(cert)] if cn else _sans(cert))
    now = ctx.clock()
    state.current = IssuedRecord(
        order_id=order_id,
        serial=serial,
        not_before=iso(cert.not_valid_before_utc),
        not_after=iso(cert.not_valid_after_utc),
        fingerprint_sha256=crypto.fingerprint_sha256(cert),
        common_name=cn or (names[0] if names else ""),
        sans=names,
        key_desc=_key_desc(cert),
        key_location=profile.certificate.key_location,
        key_ref=ADOPTED_KEY_PREFIX + installed.key_file,
        cert_pem=crypto.cert_to_pem(cert),
        chain_pem=[],
        issued_at=iso(cert.not_valid_before_utc),
    )
    state.deployed = DeploymentRecord(
        appliance=session.label,
        partition=profile.appliance.partition,
        certkey=certkey,
        serial=serial,
        vservers=list(installed.bound_vservers),
        deployed_at=iso(now),
        cert_file=installed.cert_file,
        key_file=installed.key_file,
        saved=True,
    )
    where = f"SCM order {order_id}" if order_id else "no SCM order found for it"
    if scm_status and scm_status.lower() != "issued":
        where += f", {scm_status} at SCM"
    note = f"adopting certkey {certkey}, serial {serial} ({where})"
    if scm_status.lower() == "revoked":
        state.current.order_id = ""  # a revoked order is not renewed: a new one is placed
    state.add_event(
        "adopted", certkey=certkey, serial=serial, order_id=order_id or None, scm_status=scm_status
    )
    if not ctx.dry_run:
        ctx.store.save(state)
    log.info("%s: %s", profile.name, note)
    return Adoption(certkey, serial, state.current.order_id, scm_status, note)


def note_for(profile: Profile, installed: InstalledState) -> str:
    """What a command says before it updates a certkey its journal never recorded."""
    return f"adopting certkey {profile.certificate.certkey_name}, serial {installed.serial}"


def first_decision(
    profile: Profile, state: ProfileState, adoption: Adoption, decision: Decision, now: datetime
) -> Decision:
    """What the run that adopts a certificate does, from :func:`~.decide.decide_plain`'s decision:
    nothing while it is valid and outside its renewal window (a profile that asks for other names,
    another key or more vservers is acted on later), a new order at once when SCM revoked it, the
    renewal (or a new order, without an SCM order) when it is due."""
    if adoption.revoked:
        return Decision("enroll", "the installed certificate was revoked at SCM")
    if decision.action in ("replace", "redeploy"):
        due = renewal_due(profile, state, now)
        if due is not None:
            return for_adopted(state, due)
        if decision.action == "replace":
            return Decision("nothing", f"{decision.reason}: the next run replaces it")
        return Decision("nothing", f"{decision.reason}: the next renewal installs it there")
    return for_adopted(state, decision)
