"""A simulated NetScaler (Citrix ADC 13.x) speaking the NITRO v1 ``config`` API over real HTTPS.

It keeps state the way an appliance does — files under ``/nsconfig/ssl``, certkeys with the facts parsed
from their files at add/update time, CA links, SSL vservers of the four kinds and one binding table —
and enforces the appliance's validations with the appliance's error codes and HTTP statuses
(``reference/nitro-api.md`` §7). The agent's NITRO client must not be able to tell it from a real box.

Python hooks for tests and the demo (all thread-safe):

* seeding: :meth:`add_vserver`, :meth:`add_user`, :meth:`add_partition`, :meth:`set_ha`, :meth:`put_file`,
  :meth:`install_certkey`, :meth:`bind_certkey`; sessions: :meth:`expire_sessions`; :meth:`reboot`
  (drops unsaved configuration, like a reload).
* inspection: :meth:`state`, :meth:`get_file`, :meth:`serving_certificate`, :meth:`count_writes`,
  :meth:`timeline`, :meth:`gaps` (every write after which a vserver that had a certificate had none).
* knobs (plain attributes, see ``__init__``): session timeout, save-in-progress, domain-check mode, what an
  update does to broken links/SNI bindings, secondary-node behaviour, alternative error codes.

The same hooks are reachable over HTTP under ``/_sim/`` (see :meth:`handle_control`).

Choices where the reference leaves room (documented, so tests and the client can rely on *this* sandbox):

* errors on reads (GET) of missing objects answer HTTP 404 (258, or 461/1540 for the SSL binding
  views); SSL semantic errors on writes answer 599; argument errors 400; duplicates 409.
* bad certkey name characters → 400/1232, certkey name longer than 31 → 400/1106; systemfile name longer
  than 63 → 400/1106.
* a missing input file (cert, key, CSR key) → 599/1647 (knob ``legacy_missing_file_codes`` → 1631/1632).
* a missing systemfile → 404/258 (knob ``systemfile_missing_errorcode = 3441``).
* ``sslcertkey_sslvserver_binding`` rows carry the vserver's name in ``servername`` only (plus
  ``vserver: true``), never in ``vservername``.
* on a Secondary node writes succeed with warning 1028 (HTTP 200/201, severity WARNING) — the reference's
  default; knob ``secondary_writes = "reject"`` refuses them with 599/1028 instead.
* admin partitions keep their files under ``/var/partitions/<name>/ssl``; inside one, input paths elsewhere
  give 599/1647 and output paths elsewhere 599/1645. The default partition refuses ``/var/partitions/...``.
* warnings (1028, 1546, 1587, 3637, 3638) come back in the body with HTTP 200/201; with ``?warning=yes`` (or
  body ``params.warning = YES``) as HTTP 209 plus an ``X-NITRO-WARNING`` header.
* update: the domain check compares CN + SAN DNS names (``domain_check``: any overlap, or equality); a CA
  link the new certificate no longer verifies against is dropped (the leaf's own link, and links of certs
  pointing at an updated CA) with warning 1587; SNI bindings left without CN / with a duplicate CN are
  removed with warning 3638 / 3637. ``link_break_mode``/``sni_break_mode = "error"`` refuse the update.
* link while already linked → 409/273 (knob ``link_when_linked = "replace"``); a second non-SNI server
  cert replaces the first in place with warning 1546 (knobs: ``"silent"``, ``"error"`` → 599/1546).
* partition ``Switch`` needs a login session (header auth → 599/257, knob ``switch_without_session``); the
  verb is matched case-insensitively; unknown partition → 599/2755; a user limited to other partitions →
  599/2138; ``nsconfig save`` with ``all`` outside the default partition → 599/2772.
* hanode: a standalone box lists only node 0 (state Primary); ``stat/hanode`` says ``hacurstatus`` NO.
* sslcertreq: ``digestmethod`` SHA256/384/512 (SHA1 → 400/1097: the crypto library will not sign it);
  ``subjectaltname`` is space-separated ``DNS:``/``IP:``/``email:``/``URI:`` entries (commas → 400/1097).
* ``count_writes()`` counts non-GET ``/nitro`` requests in the request log (so ``clear_requests()``
  resets it; requests answered by an injected fault count too), except login, logout and Switch.
* bulk (list) payloads are not simulated (400/1234).
"""

from __future__ import annotations

import base64
import binascii
import copy
import hashlib
import ipaddress
import json
import math
import posixpath
import re
import secrets
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID, SignatureAlgorithmOID

from .httpserver import Request, Response, SimServer

__all__ = ["NetScalerSimulator", "VSERVER_KINDS"]

VSERVER_KINDS: dict[str, str] = {
    "lb": "lbvserver",
    "cs": "csvserver",
    "vpn": "vpnvserver",
    "authentication": "authenticationvserver",
}
_RESOURCE_KIND = {v: k for k, v in VSERVER_KINDS.items()}
# Service types that terminate TLS (a server certificate can be bound); SSL_BRIDGE passes TLS through.
_SSL_TYPES = frozenset({"SSL", "SSL_TCP", "DTLS", "SSL_DIAMETER", "SSL_PUSH", "SSL_BRIDGE"})
_TERMINATING = _SSL_TYPES - {"SSL_BRIDGE"}

DEFAULT_SSL_DIR = "/nsconfig/ssl"
_KNOWN_DIRS = ("/nsconfig/ssl", "/nsconfig", "/var/tmp")

_MESSAGES: dict[int, str] = {
    257: "Operation not permitted",
    258: "No such resource",
    273: "Resource already exists",
    278: "Invalid argument",
    293: "Operation already in progress",
    354: "Invalid username or password",
    444: "Session expired or killed. Please login again",
    461: "No such Vserver",
    1027: "Not logged in or connection timed out",
    1028: (
        "You are connected to a secondary node; configuration changes made in this session will not be "
        "propagated to, or saved on, other nodes"
    ),
    1090: "No such argument",
    1091: "Required argument value missing",
    1092: "Arguments cannot both be specified",
    1093: "Argument pre-requisite missing",
    1095: "Required argument missing",
    1097: "Invalid argument value",
    1106: "String length exceeds maximum",
    1232: "Invalid object name",
    1233: "Invalid JSON input",
    1234: "Invalid JSON data type",
    1237: "Invalid method name. It should be either post, put, get, stat or delete",
    1240: "Invalid nitro action or operation",
    1244: "Authentication Failed: Use of Basic Authentication is Disabled.",
    1536: "Invalid certificate",
    1537: "Invalid private key, or PEM pass phrase required for this private key",
    1538: "Certificate and private key do not match",
    1540: "Certificate does not exist",
    1541: (
        "Certificate is referenced by a CRL, OCSP responder, vserver, service, monitor, SSL profile, another "
        "certificate, or a policy expression using XML_ENCRYPT() or XML_DECRYPT()"
    ),
    1542: "Certificate binding does not exist",
    1543: "Certificate cant be linked to the same certificate",
    1544: "Objects protocol type is not SSL",
    1545: "Certificate does not have any CA link",
    1546: "Current certificate replaces the previous binding",
    1547: "Certificate is not a server certificate",
    1548: "Issuer certificate mismatch",
    1562: "Certificate with key size greater than RSA4096 or DSA2048 bits not supported",
    1587: "All incompatible CA links/Cert bindings were broken during the update operation",
    1613: "Password required for private key",
    1614: "Invalid password",
    1617: "Invalid public exponent value",
    1631: "No such certificate file exists",
    1632: "No such key file exists",
    1642: "Cannot create output file. File already exists",
    1645: "Output filepath should be under the partitions default SSL directory",
    1647: "Input file(s) not present or not accessible in current partition",
    1654: "Maximum allowed key size is 4096",
    2138: "Not authorized to execute this command",
    2755: "Partition does not exist",
    2772: "This configuration is allowed only from the default partition.",
    3441: "File not found",
    3585: (
        "Certificate is registered to a different domain; use the no domain checkoption to force the "
        "operation"
    ),
    3627: "SNI feature not enabled on the vserver/service",
    3628: "CommonName not present in certificate, it is must for a certificate to use for SNI",
    3629: "Trying to bind SNI certificate with duplicate CommonName, operation failed",
    3637: (
        "Some of the existing SNI cert bindings are broken due to presence of certificate with duplicate "
        "Common Name."
    ),
    3638: "All exitsing SNI Cert bindings are broken during update operation due to missing Common Name.",
}

_CERTKEY_NAME_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_#. :@=\-]*$")
_CERTKEY_MAX = 31
_FILENAME_MAX = 63
_FILELOCATION_MAX = 127
_BOOL_ARGS = frozenset({"snicert", "ca", "deletefromdevice"})

_SHORT_NAMES: dict[x509.ObjectIdentifier, str] = {
    NameOID.COUNTRY_NAME: "C",
    NameOID.STATE_OR_PROVINCE_NAME: "ST",
    NameOID.LOCALITY_NAME: "L",
    NameOID.ORGANIZATION_NAME: "O",
    NameOID.ORGANIZATIONAL_UNIT_NAME: "OU",
    NameOID.COMMON_NAME: "CN",
    NameOID.EMAIL_ADDRESS: "emailAddress",
    NameOID.SERIAL_NUMBER: "serialNumber",
    NameOID.DOMAIN_COMPONENT: "DC",
    NameOID.STREET_ADDRESS: "street",
    NameOID.POSTAL_CODE: "postalCode",
    NameOID.GIVEN_NAME: "GN",
    NameOID.SURNAME: "SN",
    NameOID.TITLE: "title",
}
_SIG_NAMES: dict[x509.ObjectIdentifier, str] = {
    SignatureAlgorithmOID.RSA_WITH_SHA1: "sha1WithRSAEncryption",
    SignatureAlgorithmOID.RSA_WITH_SHA256: "sha256WithRSAEncryption",
    SignatureAlgorithmOID.RSA_WITH_SHA384: "sha384WithRSAEncryption",
    SignatureAlgorithmOID.RSA_WITH_SHA512: "sha512WithRSAEncryption",
    SignatureAlgorithmOID.ECDSA_WITH_SHA1: "ecdsa-with-SHA1",
    SignatureAlgorithmOID.ECDSA_WITH_SHA256: "ecdsa-with-SHA256",
    SignatureAlgorithmOID.ECDSA_WITH_SHA384: "ecdsa-with-SHA384",
    SignatureAlgorithmOID.ECDSA_WITH_SHA512: "ecdsa-with-SHA512",
    SignatureAlgorithmOID.RSASSA_PSS: "rsassaPss",
}


_Handler = Callable[["_Ctx", str, "str | None", "str | None", "dict[str, Any]"], Response]


class _Fail(Exception):
    """A NITRO error answer: HTTP status + errorcode + message."""

    def __init__(self, status: int, code: int, detail: str | None = None, message: str | None = None) -> None:
        text = message if message is not None else _MESSAGES.get(code, "Error")
        if detail:
            text = f"{text} [{detail}]"
        super().__init__(text)
        self.status = status
        self.code = code
        self.message = text


# ------------------------------------------------------------------------------------------ formatting


def _asn1_time(dt: datetime) -> str:
    """OpenSSL ``ASN1_TIME_print`` style: ``May  7 07:21:16 2021 GMT``."""
    dt = dt.astimezone(timezone.utc)
    return f"{dt.strftime('%b')} {dt.day:2d} {dt.strftime('%H:%M:%S %Y')} GMT"


def _ctime(dt: datetime | None) -> str:
    if dt is None:
        return ""
    dt = dt.astimezone(timezone.utc)
    return f"{dt.strftime('%a %b')} {dt.day:2d} {dt.strftime('%H:%M:%S %Y')}"


def _oneline(name: x509.Name) -> str:
    """OpenSSL one-line style with NetScaler's leading space: `` C=US,O=Example,CN=www``."""
    rdns: list[str] = []
    for rdn in name.rdns:
        values: list[str] = []
        for attr in rdn:
            label = _SHORT_NAMES.get(attr.oid, attr.oid.dotted_string)
            value = attr.value if isinstance(attr.value, str) else attr.value.hex()
            values.append(f"{label}={value}")
        rdns.append("+".join(values))
    return " " + ",".join(rdns)


def _serial_hex(serial: int) -> str:
    text = format(serial, "X")
    return "0" + text if len(text) % 2 else text


def _spki(public_key: Any) -> bytes:
    data: bytes = public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return data


def _has_ctrl_chars(data: bytes) -> bool:
    return any((b < 0x20 and b not in (9, 10, 13)) or b == 0x7F for b in data)


@dataclass
class _Facts:
    """What the appliance parses out of a certificate file when a certkey is added or updated."""

    cert: x509.Certificate
    der: bytes
    serial: str
    subject: str
    issuer: str
    not_before: datetime
    not_after: datetime
    cn: str | None
    dns: list[str]
    ips: list[str]
    publickey: str
    publickeysize: int
    signaturealg: str
    is_ca: bool
    self_signed: bool
    certificatetype: list[str]
    spki: bytes
    sha256: str

    @classmethod
    def parse(cls, cert: x509.Certificate) -> _Facts:
        try:
            bc = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
            is_ca = bool(bc.ca)
        except x509.ExtensionNotFound:
            is_ca = False
        try:
            san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
            dns = [str(n) for n in san.get_values_for_type(x509.DNSName)]
            ips = [str(n) for n in san.get_values_for_type(x509.IPAddress)]
        except x509.ExtensionNotFound:
            dns, ips = [], []
        cns = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
        cn = str(cns[0].value) if cns else None
        pub = cert.public_key()
        if isinstance(pub, rsa.RSAPublicKey):
            alg, size = "rsaEncryption", pub.key_size
        elif isinstance(pub, ec.EllipticCurvePublicKey):
            alg, size = "id-ecPublicKey", pub.curve.key_size
        elif isinstance(pub, dsa.DSAPublicKey):
            alg, size = "dsaEncryption", pub.key_size
        else:
            alg, size = "unknown", 0
        self_signed = cert.issuer == cert.subject and _verifies(cert, cert)
        if is_ca:
            ctype = ["ROOT_CERT"] if self_signed else ["INTM_CERT"]
        else:
            try:
                eku = list(cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value)
            except x509.ExtensionNotFound:
                eku = []
            ctype = []
            if not eku or ExtendedKeyUsageOID.CLIENT_AUTH in eku:
                ctype.append("CLNT_CERT")
            if not eku or ExtendedKeyUsageOID.SERVER_AUTH in eku:
                ctype.append("SRVR_CERT")
            ctype = ctype or ["UNKNOWN_CERT"]
        der = cert.public_bytes(serialization.Encoding.DER)
        return cls(
            cert=cert,
            der=der,
            serial=_serial_hex(cert.serial_number),
            subject=_oneline(cert.subject),
            issuer=_oneline(cert.issuer),
            not_before=cert.not_valid_before_utc,
            not_after=cert.not_valid_after_utc,
            cn=cn,
            dns=dns,
            ips=ips,
            publickey=alg,
            publickeysize=size,
            signaturealg=_SIG_NAMES.get(
                cert.signature_algorithm_oid, cert.signature_algorithm_oid.dotted_string
            ),
            is_ca=is_ca,
            self_signed=self_signed,
            certificatetype=ctype,
            spki=_spki(pub),
            sha256=hashlib.sha256(der).hexdigest(),
        )

    def names(self) -> set[str]:
        """CN + SAN DNS names, lower-case (what the domain check compares)."""
        out = {n.lower() for n in self.dns}
        if self.cn:
            out.add(self.cn.lower())
        return out


def _verifies(issuer: x509.Certificate, cert: x509.Certificate) -> bool:
    if cert.issuer != issuer.subject:
        return False
    try:
        cert.verify_directly_issued_by(issuer)
    except (InvalidSignature, ValueError, TypeError, UnsupportedAlgorithm):
        return False
    return True


# ------------------------------------------------------------------------------------------ state


@dataclass
class _File:
    data: bytes
    mtime: datetime
    atime: datetime


@dataclass
class _CertKey:
    name: str
    cert: str  # as given
    key: str | None  # as given
    cert_path: str
    key_path: str | None
    inform: str
    password: bool
    passplain: str | None
    facts: _Facts
    expirymonitor: str | None = None
    notificationperiod: int | None = None
    link: str | None = None
    bundle: str = "NO"
    deletecertkeyfilesonremoval: str | None = None


@dataclass
class _Vserver:
    name: str
    kind: str
    servicetype: str
    ipv46: str
    port: int
    snienable: bool = False
    state: str = "ENABLED"
    ssl_params: dict[str, str] = field(default_factory=dict)

    @property
    def is_ssl(self) -> bool:
        return self.servicetype in _SSL_TYPES

    @property
    def terminates_tls(self) -> bool:
        return self.servicetype in _TERMINATING


@dataclass
class _Binding:
    vserver: str
    certkey: str
    snicert: bool = False
    ca: bool = False
    ocspcheck: str | None = None
    crlcheck: str | None = None
    skipcaname: bool = False


@dataclass
class _Partition:
    name: str
    id: int
    ssl_dir: str
    files: dict[str, _File] = field(default_factory=dict)
    certkeys: dict[str, _CertKey] = field(default_factory=dict)
    vservers: dict[str, _Vserver] = field(default_factory=dict)
    bindings: list[_Binding] = field(default_factory=list)
    configchanged: bool = False
    lastconfigchangedtime: datetime | None = None
    lastconfigsavetime: datetime | None = None
    saved: dict[str, Any] | None = None  # snapshot of certkeys/bindings/vservers at the last save


@dataclass
class _Session:
    token: str
    user: str
    partition: str
    timeout: int
    last_used: datetime


@dataclass
class _User:
    password: str
    partitions: set[str] | None = None  # None = every partition


@dataclass
class _Ctx:
    request: Request
    user: str
    session: _Session | None
    part: _Partition
    query: dict[str, str]
    args: dict[str, str]
    raw: dict[str, str] = field(default_factory=dict)
    warnings: list[tuple[int, str]] = field(default_factory=list)
    show_warnings: bool = False

    def warn(self, code: int, detail: str | None = None) -> None:
        text = _MESSAGES.get(code, "Warning")
        self.warnings.append((code, f"{text} [{detail}]" if detail else text))


@dataclass
class TimelineEntry:
    """The certificate coverage of every TLS-terminating vserver after one write."""

    seq: int
    request: str  # "METHOD /path?query" or "python:<hook>"
    status: int
    coverage: dict[tuple[str, str], bool]  # (partition, vserver) -> a server certificate was bound


# ------------------------------------------------------------------------------------------ query parsing


def _raw_query(raw: str) -> dict[str, str]:
    """Query parameters with their values still percent-encoded (first occurrence wins)."""
    out: dict[str, str] = {}
    for piece in raw.split("&"):
        if not piece:
            continue
        key, _, value = piece.partition("=")
        out.setdefault(_unquote(key), value)
    return out


def _split_query(raw: str) -> dict[str, str]:
    """Query parameters, each value decoded once."""
    return {k: _unquote(v) for k, v in _raw_query(raw).items()}


def _unquote(text: str) -> str:
    from urllib.parse import unquote

    return unquote(text)


_PAIR_SPLIT = re.compile(r",(?=[A-Za-z_][A-Za-z0-9_]*:)")


def _pairs(raw_value: str) -> dict[str, str]:
    """``args``/``filter``: ``k1:v1,k2:v2`` with URL-encoded values (a ``,`` inside a value arrives as
    ``%2C``). A ``,`` only separates pairs when a ``name:`` follows, so unencoded commas inside values
    survive; clients that encode the separators too (``%2C``, ``%3A``) are decoded first."""
    decode = ":" in raw_value
    text = raw_value if decode else _unquote(raw_value)
    out: dict[str, str] = {}
    for piece in _PAIR_SPLIT.split(text):
        if not piece:
            continue
        key, sep, value = piece.partition(":")
        if not sep:
            raise _Fail(400, 1097, _unquote(key).strip())
        out[_unquote(key).strip()] = _unquote(value) if decode else value
    return out


# ------------------------------------------------------------------------------------------ the simulator


class NetScalerSimulator(SimServer):
    """A NetScaler ADC with a NITRO v1 API, on 127.0.0.1 over HTTPS."""

    name = "netscaler"

    def __init__(
        self,
        tls_cert_pem: bytes,
        tls_key_pem: bytes,
        *,
        username: str = "nsroot",
        password: str = "sandbox-nsroot",
        host: str = "127.0.0.1",
        port: int = 0,
        version: str = "NetScaler NS13.1: Build 50.23.nc",
    ) -> None:
        super().__init__(tls_cert_pem, tls_key_pem, host=host, port=port)
        self.version = version
        self.primaryip = "192.0.2.10"
        # ---- knobs (plain attributes; also settable over POST /_sim/knobs) ----
        self.session_timeout = 1800  # seconds of idle time before a session expires (sliding)
        self.save_in_progress_times = 0  # the next N saves fail with 599/293
        self.domain_check = "overlap"  # update: "overlap" (share one name) | "equal" (same name set)
        self.link_break_mode = "warning"  # update breaking a CA link: "warning" (1587) | "error" (599/1587)
        self.sni_break_mode = "warning"  # update breaking SNI bindings: "warning" | "error" (3637/3638)
        self.link_when_linked = "error"  # link while already linked: "error" (409/273) | "replace"
        self.server_binding_replace = "warn"  # 2nd non-SNI server cert: "warn" (1546) | "silent" | "error"
        self.duplicate_binding = "error"  # identical binding again: "error" (409/273) | "ignore"
        self.legacy_missing_file_codes = False  # missing cert/key file: 1647, or 1631/1632 when True
        self.systemfile_missing_errorcode = 258  # or 3441
        self.secondary_writes = "warn"  # on a Secondary: "warn" (1028, applied) | "reject" (599/1028)
        self.switch_without_session = "reject"  # partition Switch with header auth: "reject" 257 | "ignore"
        self.basic_auth_allowed = False
        self.empty_success_bodies = True  # systemfile add and certkey update answer with an empty body
        # ---- state ----
        self._users: dict[str, _User] = {username: _User(password)}
        self._sessions: dict[str, _Session] = {}
        self._dead_tokens: set[str] = set()
        self._partitions: dict[str, _Partition] = {"default": _Partition("default", 0, DEFAULT_SSL_DIR)}
        self.ha_state = "standalone"
        self.peer_address: str | None = None
        self._timeline: list[TimelineEntry] = []
        self._ever_covered: set[tuple[str, str]] = set()

    # ================================================================================ Python hooks

    def add_user(self, username: str, password: str, *, partitions: list[str] | None = None) -> None:
        with self.lock:
            self._users[username] = _User(password, set(partitions) if partitions is not None else None)

    def add_partition(self, name: str) -> None:
        with self.lock:
            if name in self._partitions:
                raise ValueError(f"partition {name} exists")
            if not re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_\-.]{0,30}", name):
                raise ValueError(f"bad partition name {name!r}")
            self._partitions[name] = _Partition(name, len(self._partitions), f"/var/partitions/{name}/ssl")

    def add_vserver(
        self,
        name: str,
        kind: str,
        servicetype: str = "SSL",
        ipv46: str = "10.0.0.10",
        port: int = 443,
        snienable: bool = False,
        *,
        partition: str = "default",
    ) -> None:
        """Seed a virtual server: ``kind`` is ``lb``, ``cs``, ``vpn`` or ``authentication``."""
        if kind not in VSERVER_KINDS:
            raise ValueError(f"kind must be one of {sorted(VSERVER_KINDS)}")
        with self.lock:
            part = self._partition(partition)
            if name in part.vservers:
                raise ValueError(f"vserver {name} exists")
            part.vservers[name] = _Vserver(name, kind, servicetype.upper(), ipv46, int(port), snienable)
            self._record("python:add_vserver", 0)

    def set_ha(
        self, state: str = "Primary", peer_address: str | None = None, *, peer: str | None = None
    ) -> None:
        """``Primary`` | ``Secondary`` | ``standalone``; ``peer_address`` (alias ``peer``): the other node's
        NSIP, listed as hanode id 1."""
        if state not in ("Primary", "Secondary", "standalone"):
            raise ValueError("state must be Primary, Secondary or standalone")
        with self.lock:
            self.ha_state = state
            self.peer_address = (peer_address or peer) if state != "standalone" else None

    def expire_sessions(self) -> None:
        """Kill every login session now (the next call with its token gets 401/444)."""
        with self.lock:
            self._dead_tokens.update(self._sessions)
            self._sessions.clear()

    def put_file(self, path: str, data: bytes, *, partition: str = "default") -> None:
        """Place a file on the box (no validation)."""
        with self.lock:
            now = self.clock()
            self._partition(partition).files[_norm(path)] = _File(bytes(data), now, now)

    def get_file(self, path: str, *, partition: str = "default") -> bytes | None:
        with self.lock:
            entry = self._partition(partition).files.get(_norm(path))
            return entry.data if entry else None

    def install_certkey(
        self,
        name: str,
        cert_pem: bytes,
        key_pem: bytes | None = None,
        *,
        partition: str = "default",
        link: str | None = None,
    ) -> None:
        """Upload files and add a certkey through the real validation path (ValueError on refusal)."""
        with self.lock:
            part = self._partition(partition)
            fields: dict[str, Any] = {"certkey": name, "cert": f"{part.ssl_dir}/{name}.crt"}
            self.put_file(fields["cert"], cert_pem, partition=partition)
            if key_pem is not None:
                fields["key"] = f"{part.ssl_dir}/{name}.key"
                self.put_file(fields["key"], key_pem, partition=partition)
            try:
                self._certkey_add(part, fields)
                if link:
                    self._certkey_link(part, {"certkey": name, "linkcertkeyname": link})
            except _Fail as exc:
                raise ValueError(f"{exc.code}: {exc.message}") from None
            self._record("python:install_certkey", 0)

    def bind_certkey(
        self,
        vserver: str,
        certkey: str,
        *,
        snicert: bool = False,
        ca: bool = False,
        partition: str = "default",
    ) -> None:
        with self.lock:
            part = self._partition(partition)
            try:
                self._bind(
                    part, {"vservername": vserver, "certkeyname": certkey, "snicert": snicert, "ca": ca}, []
                )
            except _Fail as exc:
                raise ValueError(f"{exc.code}: {exc.message}") from None
            self._record("python:bind_certkey", 0)

    def reboot(self) -> None:
        """Reload the saved configuration: unsaved certkeys/links/bindings are lost; files stay."""
        with self.lock:
            for part in self._partitions.values():
                if part.saved is not None:
                    part.certkeys = copy.deepcopy(part.saved["certkeys"])
                    part.bindings = copy.deepcopy(part.saved["bindings"])
                    snienable = part.saved["snienable"]
                    for vs in part.vservers.values():
                        vs.snienable = snienable.get(vs.name, vs.snienable)
                else:
                    part.certkeys, part.bindings = {}, []
                part.configchanged = False
            self._sessions.clear()
            self._record("python:reboot", 0)

    # ---- inspection ----

    def state(self, partition: str = "default") -> dict[str, Any]:
        """A JSON-able dump of one partition's state."""
        with self.lock:
            part = self._partition(partition)
            return {
                "partition": part.name,
                "ssl_dir": part.ssl_dir,
                "files": {
                    path: {
                        "size": len(f.data),
                        "sha256": hashlib.sha256(f.data).hexdigest(),
                        "mtime": f.mtime.isoformat(),
                    }
                    for path, f in sorted(part.files.items())
                },
                "certkeys": {name: self._certkey_view(ck) for name, ck in part.certkeys.items()},
                "links": {name: ck.link for name, ck in part.certkeys.items() if ck.link},
                "bindings": [asdict(b) for b in part.bindings],
                "vservers": {
                    vs.name: {
                        "kind": vs.kind,
                        "servicetype": vs.servicetype,
                        "ipv46": vs.ipv46,
                        "port": vs.port,
                        "snienable": vs.snienable,
                        "curstate": "UP" if self._covered(part, vs) or not vs.terminates_tls else "DOWN",
                        "serving": self._serving(part, vs.name, None),
                    }
                    for vs in part.vservers.values()
                },
                "configchanged": part.configchanged,
                "saved": not part.configchanged,
                "lastconfigsavetime": part.lastconfigsavetime.isoformat()
                if part.lastconfigsavetime
                else None,
                "ha_state": self.ha_state,
            }

    def serving_certificate(
        self, vserver: str, *, servername: str | None = None, partition: str = "default"
    ) -> str | None:
        """Serial of the certificate a TLS client would get (SNI ``servername`` optional), or None."""
        with self.lock:
            return self._serving(self._partition(partition), vserver, servername)

    def count_writes(self) -> int:
        """Non-GET NITRO calls received (login, logout and partition switches are not writes)."""
        return sum(1 for r in self.requests if _is_write(r.method, r.path, r.query))

    def timeline(self) -> list[TimelineEntry]:
        with self.lock:
            return list(self._timeline)

    def gaps(self) -> list[tuple[str, str]]:
        """``(vserver, request)`` for every write after which a vserver that had been serving a
        certificate had none. Vservers outside the default partition are named ``<partition>:<name>``."""
        with self.lock:
            out: list[tuple[str, str]] = []
            ever: set[tuple[str, str]] = set()
            for entry in self._timeline:
                for key, covered in entry.coverage.items():
                    if covered:
                        ever.add(key)
                    elif key in ever:
                        out.append((key[1] if key[0] == "default" else f"{key[0]}:{key[1]}", entry.request))
            return out

    # ================================================================================ control API

    def handle_control(self, route: str, request: Request) -> Response:
        query = _split_query(request.raw_query)
        partition = query.get("partition", "default")
        try:
            body: Any = request.json() if request.body else {}
        except ValueError:
            return Response.json(400, {"error": "bad JSON"})
        try:
            if route == "/state" and request.method == "GET":
                return Response.json(200, self.state(partition))
            if route.startswith("/serving/") and request.method == "GET":
                serial = self.serving_certificate(
                    _unquote(route[len("/serving/") :]),
                    servername=query.get("servername"),
                    partition=partition,
                )
                return Response.json(200, {"serial": serial})
            if route == "/writes" and request.method == "GET":
                return Response.json(200, {"count": self.count_writes()})
            if route == "/gaps" and request.method == "GET":
                return Response.json(200, [list(g) for g in self.gaps()])
            if route == "/timeline" and request.method == "GET":
                return Response.json(
                    200,
                    [
                        {
                            "seq": e.seq,
                            "request": e.request,
                            "status": e.status,
                            "coverage": {f"{p}:{v}": c for (p, v), c in e.coverage.items()},
                        }
                        for e in self.timeline()
                    ],
                )
            if route == "/vservers" and request.method == "POST":
                self.add_vserver(
                    str(body["name"]),
                    str(body["kind"]),
                    str(body.get("servicetype", "SSL")),
                    str(body.get("ipv46", "10.0.0.10")),
                    int(body.get("port", 443)),
                    bool(body.get("snienable", False)),
                    partition=str(body.get("partition", "default")),
                )
                return Response.empty(204)
            if route == "/partitions" and request.method == "POST":
                self.add_partition(str(body["name"]))
                return Response.empty(204)
            if route == "/users" and request.method == "POST":
                parts = body.get("partitions")
                self.add_user(str(body["username"]), str(body["password"]), partitions=parts)
                return Response.empty(204)
            if route == "/ha" and request.method == "POST":
                self.set_ha(str(body.get("state", "Primary")), body.get("peer_address"))
                return Response.empty(204)
            if route == "/expire_sessions" and request.method == "POST":
                self.expire_sessions()
                return Response.empty(204)
            if route == "/reboot" and request.method == "POST":
                self.reboot()
                return Response.empty(204)
            if route == "/files" and request.method == "POST":
                self.put_file(
                    str(body["path"]),
                    base64.b64decode(str(body["content_b64"])),
                    partition=str(body.get("partition", "default")),
                )
                return Response.empty(204)
            if route == "/knobs" and request.method == "POST":
                for key, value in body.items():
                    if key not in _KNOBS:
                        return Response.json(400, {"error": f"unknown knob {key}"})
                    setattr(self, key, value)
                return Response.empty(204)
            if route == "/knobs" and request.method == "GET":
                return Response.json(200, {k: getattr(self, k) for k in _KNOBS})
        except (KeyError, ValueError, TypeError) as exc:
            return Response.json(400, {"error": str(exc)})
        return super().handle_control(route, request)

    # ================================================================================ dispatch

    def handle(self, request: Request) -> Response:
        try:
            response = self._handle(request)
        except _Fail as fail:
            response = Response.json(
                fail.status, {"errorcode": fail.code, "message": fail.message, "severity": "ERROR"}
            )
        if _is_write(request.method, request.path, request.raw_query):
            label = f"{request.method} {request.path}" + (
                f"?{request.raw_query}" if request.raw_query else ""
            )
            self._record(label, response.status)
        return response

    def _handle(self, request: Request) -> Response:
        segments = request.raw_path.split("/")
        if (
            len(segments) < 5
            or segments[1] != "nitro"
            or segments[2] != "v1"
            or segments[3]
            not in (
                "config",
                "stat",
            )
        ):
            raise _Fail(404, 258, request.path)
        if len(segments) > 6:
            raise _Fail(404, 258, request.path)
        api = segments[3]
        resource = _unquote(segments[4])
        name = _unquote(_unquote(segments[5])) if len(segments) == 6 and segments[5] else None
        query = _split_query(request.raw_query)
        raw = _raw_query(request.raw_query)
        method = request.method.upper()
        if method not in ("GET", "POST", "PUT", "DELETE"):
            raise _Fail(405, 1237)
        if api == "config" and resource == "login":
            if method != "POST":
                raise _Fail(405, 1237)
            return self._login(request)
        ctx = self._authenticate(request, query)
        ctx.raw = raw
        if "args" in query:
            ctx.args = _pairs(raw["args"])
            for key in _BOOL_ARGS & ctx.args.keys():
                if ctx.args[key] not in ("true", "false"):
                    raise _Fail(400, 1097, key)
        if query.get("warning", "").lower() == "yes":
            ctx.show_warnings = True
        body: dict[str, Any] = {}
        if method in ("POST", "PUT"):
            body = self._body(ctx, request, resource)
        action = query.get("action")
        is_session_op = resource == "logout" or (resource == "nspartition" and method == "POST")
        if method != "GET" and not is_session_op:
            self._secondary_guard(ctx)
        if api == "stat":
            if resource == "hanode" and method == "GET":
                return self._stat_hanode(ctx)
            raise _Fail(404, 258, resource)
        if resource in _RESOURCE_KIND:
            return self._r_vserver(ctx, method, name, resource)
        handler: _Handler | None = getattr(self, f"_r_{resource}", None)
        if handler is None:
            raise _Fail(404, 1232, resource)
        result: Response = handler(ctx, method, name, action, body)
        return result

    # ---- helpers for answers ----

    def _ok(
        self, ctx: _Ctx, status: int = 200, extra: dict[str, Any] | None = None, *, empty: bool = False
    ) -> Response:
        if ctx.warnings:
            code = ctx.warnings[0][0]
            body: dict[str, Any] = {
                "errorcode": code,
                "message": "; ".join(m for _, m in ctx.warnings),
                "severity": "WARNING",
            }
            body.update(extra or {})
            headers: dict[str, str] = {}
            if ctx.show_warnings:
                status = 209
                headers["X-NITRO-WARNING"] = json.dumps(
                    [{"errorcode": c, "message": m, "severity": "WARNING"} for c, m in ctx.warnings]
                )
            return Response.json(status, body, headers)
        if empty and self.empty_success_bodies:
            return Response.empty(status)
        body = {"errorcode": 0, "message": "Done", "severity": "NONE"}
        body.update(extra or {})
        return Response.json(status, body)

    def _listing(self, ctx: _Ctx, resource: str, items: list[dict[str, Any]]) -> Response:
        if "filter" in ctx.query:
            items = [i for i in items if _matches(i, _pairs(ctx.raw["filter"]))]
        if ctx.query.get("count", "").lower() == "yes":
            return self._ok(ctx, 200, {resource: [{"__count": len(items)}]})
        if "pagesize" in ctx.query:
            try:
                size = int(ctx.query["pagesize"])
                page = int(ctx.query.get("pageno", "1"))
            except ValueError:
                raise _Fail(400, 1097, "pagesize") from None
            if size < 1 or page < 1:
                raise _Fail(400, 1097, "pagesize")
            items = items[(page - 1) * size : page * size]
        if "attrs" in ctx.query:
            wanted = [a.strip() for a in ctx.query["attrs"].split(",") if a.strip()]
            items = [{k: i[k] for k in wanted if k in i} for i in items]
        if not items:
            return self._ok(ctx)
        return self._ok(ctx, 200, {resource: items})

    def _body(self, ctx: _Ctx, request: Request, resource: str) -> dict[str, Any]:
        if not request.body.strip():
            return {}
        ctype = (request.header("content-type") or "").lower()
        if "json" not in ctype:
            raise _Fail(400, 1233, message="Invalid JSON input (Content-Type must be application/json)")
        try:
            data = json.loads(request.body.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError):
            raise _Fail(400, 1233) from None
        if not isinstance(data, dict):
            raise _Fail(400, 1233)
        params = data.get("params")
        if isinstance(params, dict) and str(params.get("warning", "")).upper() == "YES":
            ctx.show_warnings = True
        obj = data.get(resource)
        if obj is None:
            return {}
        if isinstance(obj, list):
            if len(obj) != 1:
                raise _Fail(
                    400, 1234, resource, message="Invalid JSON data type (bulk requests are not simulated)"
                )
            obj = obj[0]
        if not isinstance(obj, dict):
            raise _Fail(400, 1234, resource)
        return obj

    def _partition(self, name: str) -> _Partition:
        try:
            return self._partitions[name]
        except KeyError:
            raise ValueError(f"no partition {name}") from None

    def _mark_changed(self, part: _Partition) -> None:
        part.configchanged = True
        part.lastconfigchangedtime = self.clock()

    # ---- timeline ----

    def _covered(self, part: _Partition, vs: _Vserver) -> bool:
        """A TLS-terminating vserver is covered when a server certificate (with key) is bound: a non-SNI
        one, or — with SNI enabled — at least one SNI certificate."""
        for b in part.bindings:
            if b.vserver != vs.name or b.ca:
                continue
            ck = part.certkeys.get(b.certkey)
            if ck is None or ck.key_path is None and ck.inform != "PFX":
                continue
            if not b.snicert or vs.snienable:
                return True
        return False

    def _record(self, label: str, status: int) -> None:
        coverage: dict[tuple[str, str], bool] = {}
        for part in self._partitions.values():
            for vs in part.vservers.values():
                if vs.terminates_tls:
                    coverage[(part.name, vs.name)] = self._covered(part, vs)
        self._timeline.append(TimelineEntry(len(self._timeline) + 1, label, status, coverage))

    def _serving(self, part: _Partition, vserver: str, servername: str | None) -> str | None:
        if vserver not in part.vservers:
            return None
        vs = part.vservers[vserver]
        if servername and vs.snienable:
            for b in part.bindings:
                if b.vserver == vserver and b.snicert and not b.ca:
                    ck = part.certkeys.get(b.certkey)
                    if ck and _sni_matches(ck.facts, servername):
                        return ck.facts.serial
        for b in part.bindings:
            if b.vserver == vserver and not b.snicert and not b.ca:
                ck = part.certkeys.get(b.certkey)
                if ck:
                    return ck.facts.serial
        return None

    # ================================================================================ auth

    def _login(self, request: Request) -> Response:
        try:
            data = json.loads(request.body.decode("utf-8")) if request.body.strip() else {}
        except (UnicodeDecodeError, json.JSONDecodeError):
            raise _Fail(400, 1233) from None
        obj = data.get("login") if isinstance(data, dict) else None
        if not isinstance(obj, dict):
            raise _Fail(400, 1095, "username")
        username, password = obj.get("username"), obj.get("password")
        if not username:
            raise _Fail(400, 1095, "username")
        if password is None:
            raise _Fail(400, 1095, "password")
        user = self._users.get(str(username))
        if user is None or user.password != str(password):
            raise _Fail(401, 354)
        timeout = self.session_timeout
        if obj.get("timeout") not in (None, ""):
            try:
                timeout = int(obj["timeout"])
            except (TypeError, ValueError):
                raise _Fail(400, 1097, "timeout") from None
            if timeout < 1:
                raise _Fail(400, 1097, "timeout")
        token = "##" + secrets.token_hex(32).upper()
        self._sessions[token] = _Session(token, str(username), "default", timeout, self.clock())
        return Response.json(
            201,
            {"errorcode": 0, "message": "Done", "severity": "NONE", "sessionid": token},
            {"Set-Cookie": f"NITRO_AUTH_TOKEN={token}; path=/nitro/v1; Secure; HttpOnly"},
        )

    def _authenticate(self, request: Request, query: dict[str, str]) -> _Ctx:
        def ctx(user: str, session: _Session | None, partition: str) -> _Ctx:
            return _Ctx(request, user, session, self._partitions[partition], query, {})

        user_hdr = request.header("x-nitro-user")
        if user_hdr is not None:
            user = self._users.get(user_hdr)
            if user is None or user.password != (request.header("x-nitro-pass") or ""):
                raise _Fail(401, 354)
            return ctx(user_hdr, None, "default")
        token = _token_of(request)
        if token is not None:
            session = self._sessions.get(token)
            if session is None:
                raise _Fail(401, 444)
            now = self.clock()
            if now - session.last_used > timedelta(seconds=session.timeout):
                del self._sessions[token]
                self._dead_tokens.add(token)
                raise _Fail(401, 444)
            session.last_used = now
            if session.partition not in self._partitions:
                session.partition = "default"
            return ctx(session.user, session, session.partition)
        auth = request.header("authorization") or ""
        if auth.lower().startswith("basic "):
            if not self.basic_auth_allowed:
                raise _Fail(401, 1244)
            try:
                user_name, _, pw = base64.b64decode(auth[6:].strip()).decode("utf-8").partition(":")
            except (binascii.Error, UnicodeDecodeError):
                raise _Fail(401, 354) from None
            user = self._users.get(user_name)
            if user is None or user.password != pw:
                raise _Fail(401, 354)
            return ctx(user_name, None, "default")
        raise _Fail(401, 1027)

    def _secondary_guard(self, ctx: _Ctx) -> None:
        if self.ha_state != "Secondary":
            return
        if self.secondary_writes == "reject":
            raise _Fail(599, 1028)
        ctx.warn(1028)

    # ================================================================================ resources

    def _r_logout(
        self, ctx: _Ctx, method: str, name: str | None, action: str | None, body: dict[str, Any]
    ) -> Response:
        if method != "POST":
            raise _Fail(405, 1237)
        if ctx.session is not None:
            self._sessions.pop(ctx.session.token, None)
            self._dead_tokens.add(ctx.session.token)
        return self._ok(ctx)

    def _r_nsversion(
        self, ctx: _Ctx, method: str, name: str | None, action: str | None, body: dict[str, Any]
    ) -> Response:
        if method != "GET":
            raise _Fail(405, 1237)
        return self._ok(
            ctx,
            200,
            {
                "nsversion": {
                    "version": f"{self.version}, Date: Jan 10 2024, 10:11:12   (64-bit)",
                    "mode": "1",
                }
            },
        )

    def _r_nsconfig(
        self, ctx: _Ctx, method: str, name: str | None, action: str | None, body: dict[str, Any]
    ) -> Response:
        part = ctx.part
        if method == "GET":
            info = {
                "ipaddress": self.primaryip,
                "netmask": "255.255.255.0",
                "primaryip": self.primaryip,
                "systemtype": "Stand-alone" if self.ha_state == "standalone" else "HA",
                "configchanged": part.configchanged,
                "lastconfigchangedtime": _ctime(part.lastconfigchangedtime),
                "lastconfigsavetime": _ctime(part.lastconfigsavetime),
                "currentsytemtime": _ctime(self.clock()),
                "timezone": "CoordinatedUniversalTime",
                "nsvlan": "0",
            }
            return self._ok(ctx, 200, {"nsconfig": info})
        if method == "POST" and action == "save":
            _check_fields(body, {"all"})
            save_all = _bool(body, "all")
            if save_all and part.name != "default":
                raise _Fail(599, 2772)
            if self.save_in_progress_times > 0:
                self.save_in_progress_times -= 1
                raise _Fail(599, 293)
            for target in self._partitions.values() if save_all else [part]:
                target.configchanged = False
                target.lastconfigsavetime = self.clock()
                target.saved = {
                    "certkeys": copy.deepcopy(target.certkeys),
                    "bindings": copy.deepcopy(target.bindings),
                    "snienable": {vs.name: vs.snienable for vs in target.vservers.values()},
                }
            return self._ok(ctx)
        if method == "POST" and action is not None:
            raise _Fail(400, 1240, action)
        raise _Fail(405, 1237)

    # ---- systemfile ----

    def _r_systemfile(
        self, ctx: _Ctx, method: str, name: str | None, action: str | None, body: dict[str, Any]
    ) -> Response:
        part = ctx.part
        if method == "POST" and action is None:
            _check_fields(body, {"filename", "filelocation", "filecontent", "fileencoding"})
            filename = _req_str(body, "filename")
            location = _req_str(body, "filelocation")
            content = _req_str(body, "filecontent")
            encoding = _opt_str(body, "fileencoding") or "BASE64"
            _check_filename(filename)
            if len(location) > _FILELOCATION_MAX:
                raise _Fail(400, 1106, "filelocation")
            if encoding.upper() != "BASE64":
                raise _Fail(400, 1097, "fileencoding")
            try:
                data = base64.b64decode("".join(content.split()), validate=True)
            except (binascii.Error, ValueError):
                raise _Fail(400, 1097, "filecontent") from None
            path = self._resolve(part, f"{_norm_dir(location)}/{filename}", output=True)
            if path in part.files:
                raise _Fail(409, 1642, path)
            now = self.clock()
            part.files[path] = _File(data, now, now)
            return self._ok(ctx, 201, empty=True)
        if method == "GET":
            where = ctx.args.get("filelocation")
            wanted = ctx.args.get("filename") or name
            if not where:
                raise _Fail(400, 1095, "filelocation")
            directory = _norm_dir(where)
            if wanted is not None:
                _check_filename(wanted)
                path = self._resolve(part, f"{directory}/{wanted}", output=False)
                entry = part.files.get(path)
                if entry is None:
                    raise self._no_file(path)
                entry.atime = self.clock()
                return self._listing(ctx, "systemfile", [self._file_view(path, entry, content=True)])
            self._resolve(part, f"{directory}/x", output=False)
            items: list[dict[str, Any]] = []
            subdirs: set[str] = set()
            for path, entry in sorted(part.files.items()):
                parent = posixpath.dirname(path)
                if parent == directory:
                    items.append(self._file_view(path, entry, content=False))
                elif parent.startswith(directory + "/"):
                    subdirs.add(parent[len(directory) + 1 :].split("/")[0])
            known = directory in _KNOWN_DIRS or directory == part.ssl_dir or subdirs or items
            if not known:
                raise self._no_file(directory)
            for sub in sorted(subdirs):
                items.append({"filename": sub, "filelocation": directory, "filemode": ["DIRECTORY"]})
            return self._listing(ctx, "systemfile", items)
        if method == "DELETE":
            where = ctx.args.get("filelocation")
            wanted = name or ctx.args.get("filename")
            if not wanted:
                raise _Fail(400, 1095, "filename")
            if not where:
                raise _Fail(400, 1095, "filelocation")
            _check_filename(wanted)
            path = self._resolve(part, f"{_norm_dir(where)}/{wanted}", output=False)
            if path not in part.files:
                raise self._no_file(path)
            del part.files[path]
            return self._ok(ctx)
        if action is not None:
            raise _Fail(400, 1240, action)
        raise _Fail(405, 1237)

    def _no_file(self, path: str) -> _Fail:
        if self.systemfile_missing_errorcode == 3441:
            return _Fail(404, 3441, path)
        return _Fail(404, 258, path)

    def _file_view(self, path: str, entry: _File, *, content: bool) -> dict[str, Any]:
        view: dict[str, Any] = {
            "filename": posixpath.basename(path),
            "filelocation": posixpath.dirname(path),
            "filesize": str(len(entry.data)),
            "filemodifiedtime": _ctime(entry.mtime),
            "fileaccesstime": _ctime(entry.atime),
        }
        if content:
            view["filecontent"] = base64.b64encode(entry.data).decode("ascii")
            view["fileencoding"] = "BASE64"
        return view

    def _resolve(self, part: _Partition, value: str, *, output: bool) -> str:
        """An absolute, normalised path for a file argument, enforcing the partition's SSL directory."""
        text = value.strip()
        if not text:
            raise _Fail(400, 1091)
        if "\\" in text or ".." in text.split("/"):
            raise _Fail(599, 1645 if output else 1647, value)
        path = _norm(text if text.startswith("/") else f"{part.ssl_dir}/{text}")
        if part.name == "default":
            allowed = not path.startswith("/var/partitions/")
        else:
            allowed = path.startswith(part.ssl_dir + "/")
        if not allowed:
            raise _Fail(599, 1645 if output else 1647, value)
        return path

    # ---- certkeys ----

    def _r_sslcertkey(
        self, ctx: _Ctx, method: str, name: str | None, action: str | None, body: dict[str, Any]
    ) -> Response:
        part = ctx.part
        if name is not None and method in ("POST", "PUT") and "certkey" not in body:
            body = {**body, "certkey": name}
        if method == "GET":
            if name is not None:
                ck = part.certkeys.get(name)
                if ck is None:
                    raise _Fail(404, 258, f"certkey, {name}")
                return self._listing(ctx, "sslcertkey", [self._certkey_view(ck)])
            return self._listing(ctx, "sslcertkey", [self._certkey_view(ck) for ck in part.certkeys.values()])
        if method == "POST" and action is None:
            self._certkey_add(part, body)
            self._mark_changed(part)
            return self._ok(ctx, 201, empty=True)
        if method == "POST" and action == "link":
            self._certkey_link(part, body)
            self._mark_changed(part)
            return self._ok(ctx)
        if method == "POST" and action == "unlink":
            _check_fields(body, {"certkey"})
            ck = self._certkey_for_ssl_op(part, body)
            if not ck.link:
                raise _Fail(599, 1545, ck.name)
            ck.link = None
            self._mark_changed(part)
            return self._ok(ctx)
        if method == "POST" and action == "update":
            self._certkey_update(ctx, part, body)
            self._mark_changed(part)
            return self._ok(ctx, 200, empty=True)
        if method == "POST" and action == "unset":
            _check_fields(body, {"certkey", "expirymonitor", "notificationperiod"})
            ck = self._certkey_named(part, body)
            if _bool(body, "expirymonitor"):
                ck.expirymonitor = None
            if _bool(body, "notificationperiod"):
                ck.notificationperiod = None
            self._mark_changed(part)
            return self._ok(ctx)
        if method == "POST" and action == "clear":
            _check_fields(body, {"certkey", "ocspstaplingcache"})
            self._certkey_named(part, body)
            return self._ok(ctx)
        if method == "PUT":
            self._certkey_set(part, body)
            self._mark_changed(part)
            return self._ok(ctx)
        if method == "DELETE":
            if name is None:
                raise _Fail(400, 1095, "certkey")
            ck = part.certkeys.get(name)
            if ck is None:
                raise _Fail(404, 258, f"certkey, {name}")
            if any(b.certkey == name for b in part.bindings) or any(
                other.link == name for other in part.certkeys.values()
            ):
                raise _Fail(599, 1541, name)
            del part.certkeys[name]
            if ctx.args.get("deletefromdevice") == "true":
                for path in (ck.cert_path, ck.key_path):
                    if path and not any(path in (o.cert_path, o.key_path) for o in part.certkeys.values()):
                        part.files.pop(path, None)
            self._mark_changed(part)
            return self._ok(ctx)
        if method == "POST":
            raise _Fail(400, 1240, action)
        raise _Fail(405, 1237)

    def _certkey_named(self, part: _Partition, body: dict[str, Any]) -> _CertKey:
        name = _req_str(body, "certkey")
        ck = part.certkeys.get(name)
        if ck is None:
            raise _Fail(404, 258, f"certkey, {name}")
        return ck

    def _certkey_for_ssl_op(self, part: _Partition, body: dict[str, Any]) -> _CertKey:
        name = _req_str(body, "certkey")
        ck = part.certkeys.get(name)
        if ck is None:
            raise _Fail(599, 1540, name)
        return ck

    def _certkey_view(self, ck: _CertKey) -> dict[str, Any]:
        f = ck.facts
        now = self.clock()
        if now < f.not_before:
            status = "Not yet valid"
        elif now > f.not_after:
            status = "Expired"
        else:
            status = "Valid"
        days = (f.not_after - now).total_seconds() / 86400
        view: dict[str, Any] = {
            "certkey": ck.name,
            "cert": ck.cert,
            "inform": ck.inform,
            "signaturealg": f.signaturealg,
            "certificatetype": list(f.certificatetype),
            "serial": f.serial,
            "issuer": f.issuer,
            "clientcertnotbefore": _asn1_time(f.not_before),
            "clientcertnotafter": _asn1_time(f.not_after),
            "daystoexpiration": math.floor(days),
            "subject": f.subject,
            "publickey": f.publickey,
            "publickeysize": f.publickeysize,
            "version": 3,
            "status": status,
            "passcrypt": "",
            "bundle": ck.bundle,
            "certkeydigest": f.sha256,
            "certificatesource": "Local",
            "certkeystatus": "Valid" if status == "Valid" else status,
        }
        if ck.key is not None:
            view["key"] = ck.key
        if ck.password:
            view["password"] = True
        if ck.expirymonitor is not None:
            view["expirymonitor"] = ck.expirymonitor
        if ck.notificationperiod is not None:
            view["notificationperiod"] = str(ck.notificationperiod)
        if ck.link:
            view["linkcertkeyname"] = ck.link
        if f.dns:
            view["sandns"] = ", ".join(f.dns)
        if f.ips:
            view["sanipadd"] = ", ".join(f.ips)
        if ck.deletecertkeyfilesonremoval is not None:
            view["deletecertkeyfilesonremoval"] = ck.deletecertkeyfilesonremoval
        return view

    def _missing_input(self, what: str, value: str) -> _Fail:
        if self.legacy_missing_file_codes:
            return _Fail(599, 1631 if what == "cert" else 1632, value)
        return _Fail(599, 1647, value)

    def _load_material(
        self, part: _Partition, body: dict[str, Any], *, old: _CertKey | None = None
    ) -> tuple[_Facts, str, str, str | None, str | None, str, bool, str | None]:
        """Read and validate cert (+ key) files. Returns facts, cert, cert_path, key, key_path, inform,
        password flag, passplain."""
        inform = (_opt_str(body, "inform") or (old.inform if old else "PEM")).upper()
        if inform not in ("PEM", "DER", "PFX"):
            raise _Fail(400, 1097, "inform")
        cert_value = _req_str(body, "cert")
        passplain = _opt_str(body, "passplain")
        password_flag = _bool(body, "password")
        cert_path = self._resolve(part, cert_value, output=False)
        cert_file = part.files.get(cert_path)
        if cert_file is None:
            raise self._missing_input("cert", cert_value)
        key_value = _opt_str(body, "key")
        if key_value is None and old is not None and inform != "PFX":
            key_value = old.key
        key_path: str | None = None
        private_key: Any = None
        if inform == "PFX":
            cert, private_key = _load_pfx(cert_file.data, passplain)
            if key_value is not None:
                key_path = self._resolve(part, key_value, output=False)
                if key_path not in part.files:
                    raise self._missing_input("key", key_value)
            else:
                key_value, key_path = cert_value, cert_path
        else:
            cert = _load_cert(cert_file.data, inform)
            if key_value is not None:
                key_path = self._resolve(part, key_value, output=False)
                key_file = part.files.get(key_path)
                if key_file is None:
                    raise self._missing_input("key", key_value)
                private_key = _load_key(key_file.data, inform, passplain)
        facts = _Facts.parse(cert)
        if facts.publickey == "rsaEncryption" and facts.publickeysize > 4096:
            raise _Fail(599, 1562)
        if private_key is not None:
            if isinstance(private_key, rsa.RSAPrivateKey) and private_key.key_size > 4096:
                raise _Fail(599, 1562)
            if _spki(private_key.public_key()) != facts.spki:
                raise _Fail(599, 1538)
        return facts, cert_value, cert_path, key_value, key_path, inform, password_flag, passplain

    def _same_content(self, part: _Partition, facts: _Facts, exclude: str | None) -> str | None:
        for other in part.certkeys.values():
            if other.name == exclude:
                continue
            if other.facts.der == facts.der or (
                other.facts.serial == facts.serial and other.facts.issuer == facts.issuer
            ):
                return other.name
        return None

    def _certkey_add(self, part: _Partition, body: dict[str, Any]) -> None:
        _check_fields(
            body,
            {
                "certkey",
                "cert",
                "key",
                "inform",
                "password",
                "passplain",
                "expirymonitor",
                "notificationperiod",
                "bundle",
                "fipskey",
                "hsmkey",
                "deletecertkeyfilesonremoval",
                "linkcertkeyname",
                "nodomaincheck",
                "ocspstaplingcache",
            },
        )
        name = _req_str(body, "certkey")
        if len(name) > _CERTKEY_MAX:
            raise _Fail(400, 1106, f"certkey, {_CERTKEY_MAX}")
        if not _CERTKEY_NAME_RE.match(name):
            raise _Fail(400, 1232, f"certkey, {name}")
        if name in part.certkeys:
            raise _Fail(409, 273, f"certkey, {name}")
        expirymonitor, period = _expiry_fields(body)
        bundle = (_opt_str(body, "bundle") or "NO").upper()
        if bundle not in ("YES", "NO"):
            raise _Fail(400, 1097, "bundle")
        facts, cert, cert_path, key, key_path, inform, pw, passplain = self._load_material(part, body)
        existing = self._same_content(part, facts, None)
        if existing is not None:
            raise _Fail(409, 273, f"certkeyName Contents, {existing}")
        part.certkeys[name] = _CertKey(
            name=name,
            cert=cert,
            key=key,
            cert_path=cert_path,
            key_path=key_path,
            inform=inform,
            password=pw,
            passplain=passplain,
            facts=facts,
            expirymonitor=expirymonitor,
            notificationperiod=period,
            bundle=bundle,
            deletecertkeyfilesonremoval=_opt_str(body, "deletecertkeyfilesonremoval"),
        )

    def _certkey_link(self, part: _Partition, body: dict[str, Any]) -> None:
        _check_fields(body, {"certkey", "linkcertkeyname"})
        ck = self._certkey_for_ssl_op(part, body)
        target_name = _req_str(body, "linkcertkeyname")
        target = part.certkeys.get(target_name)
        if target is None:
            raise _Fail(599, 1540, target_name)
        if target.name == ck.name:
            raise _Fail(599, 1543)
        if ck.link and self.link_when_linked != "replace":
            raise _Fail(409, 273, f"linkcertkeyname, {ck.link}")
        if not _verifies(target.facts.cert, ck.facts.cert):
            raise _Fail(599, 1548)
        ck.link = target.name

    def _certkey_set(self, part: _Partition, body: dict[str, Any]) -> None:
        _check_fields(body, {"certkey", "expirymonitor", "notificationperiod", "deletecertkeyfilesonremoval"})
        ck = self._certkey_named(part, body)
        expirymonitor, period = _expiry_fields(body)
        if expirymonitor is not None:
            ck.expirymonitor = expirymonitor
        if period is not None:
            ck.notificationperiod = period
        delete_flag = _opt_str(body, "deletecertkeyfilesonremoval")
        if delete_flag is not None:
            if delete_flag.upper() not in ("YES", "NO"):
                raise _Fail(400, 1097, "deletecertkeyfilesonremoval")
            ck.deletecertkeyfilesonremoval = delete_flag.upper()

    def _certkey_update(self, ctx: _Ctx, part: _Partition, body: dict[str, Any]) -> None:
        """``update ssl certKey``: swap cert (+key) behind the name; bindings and settings stay."""
        _check_fields(
            body,
            {
                "certkey",
                "cert",
                "key",
                "inform",
                "password",
                "passplain",
                "nodomaincheck",
                "fipskey",
                "hsmkey",
            },
        )
        ck = self._certkey_named(part, body)
        nodomaincheck = _bool(body, "nodomaincheck")
        facts, cert, cert_path, key, key_path, inform, pw, passplain = self._load_material(part, body, old=ck)
        existing = self._same_content(part, facts, ck.name)
        if existing is not None:
            raise _Fail(409, 273, f"certkeyName Contents, {existing}")
        if not nodomaincheck:
            old_names, new_names = ck.facts.names(), facts.names()
            differs = old_names != new_names if self.domain_check == "equal" else not (old_names & new_names)
            if differs:
                raise _Fail(599, 3585)
        # CA links the new certificate breaks: its own link upwards, and certs linked to it (if it is a CA).
        broken_links: list[str] = []
        if ck.link:
            target = part.certkeys.get(ck.link)
            if target is None or not _verifies(target.facts.cert, facts.cert):
                broken_links.append(ck.name)
        for other in part.certkeys.values():
            if other.link == ck.name and other is not ck and not _verifies(facts.cert, other.facts.cert):
                broken_links.append(other.name)
        if broken_links and self.link_break_mode == "error":
            raise _Fail(599, 1587, ", ".join(broken_links))
        # SNI bindings the new certificate breaks: missing CN, or a CN another SNI cert there already has.
        broken_sni: list[tuple[_Binding, int]] = []
        for b in part.bindings:
            if b.certkey != ck.name or not b.snicert:
                continue
            if not facts.cn:
                broken_sni.append((b, 3638))
                continue
            for other_b in part.bindings:
                other_ck = part.certkeys.get(other_b.certkey)
                if (
                    other_b.vserver == b.vserver
                    and other_b.snicert
                    and other_b.certkey != ck.name
                    and other_ck is not None
                    and other_ck.facts.cn
                    and other_ck.facts.cn.lower() == facts.cn.lower()
                ):
                    broken_sni.append((b, 3637))
                    break
        if broken_sni and self.sni_break_mode == "error":
            raise _Fail(599, broken_sni[0][1], broken_sni[0][0].vserver)
        ck.cert, ck.cert_path, ck.key, ck.key_path = cert, cert_path, key, key_path
        ck.inform, ck.password, ck.passplain, ck.facts = inform, pw, passplain, facts
        for name in broken_links:
            part.certkeys[name].link = None
        if broken_links:
            ctx.warn(1587, ", ".join(broken_links))
        for b, code in broken_sni:
            part.bindings.remove(b)
            ctx.warn(code, b.vserver)

    # ---- links / chains ----

    def _r_sslcertlink(
        self, ctx: _Ctx, method: str, name: str | None, action: str | None, body: dict[str, Any]
    ) -> Response:
        if method != "GET":
            raise _Fail(405, 1237)
        items = [
            {"certkeyname": ck.name, "linkcertkeyname": ck.link}
            for ck in ctx.part.certkeys.values()
            if ck.link
        ]
        return self._listing(ctx, "sslcertlink", items)

    def _r_sslcertificatechain(
        self, ctx: _Ctx, method: str, name: str | None, action: str | None, body: dict[str, Any]
    ) -> Response:
        if method != "GET":
            raise _Fail(405, 1237)
        part = ctx.part
        names = [name] if name is not None else list(part.certkeys)
        out: list[dict[str, Any]] = []
        for ck_name in names:
            ck = part.certkeys.get(ck_name)
            if ck is None:
                raise _Fail(404, 1540, ck_name)
            chain: list[str] = []
            cursor = ck
            while cursor.link and cursor.link not in chain and cursor.link in part.certkeys:
                chain.append(cursor.link)
                cursor = part.certkeys[cursor.link]
            possible = [
                o.name
                for o in part.certkeys.values()
                if o is not ck and _verifies(o.facts.cert, ck.facts.cert)
            ]
            out.append(
                {
                    "certkeyname": ck.name,
                    "chainlinked": chain,
                    "chainpossiblelinks": possible,
                    "chainissuer": ck.facts.issuer,
                    "chaincomplete": 1 if cursor.facts.self_signed else 0,
                }
            )
        return self._listing(ctx, "sslcertificatechain", out)

    # ---- on-box keys and CSRs ----

    def _new_output_file(self, part: _Partition, value: str, field_name: str) -> str:
        if len(value) > _FILENAME_MAX:
            raise _Fail(400, 1106, f"{field_name}, {_FILENAME_MAX}")
        path = self._resolve(part, value, output=True)
        if path in part.files:
            raise _Fail(409, 1642, value)
        return path

    def _write_key(self, part: _Partition, path: str, key: Any, body: dict[str, Any]) -> None:
        keyform = (_opt_str(body, "keyform") or "PEM").upper()
        if keyform not in ("PEM", "DER"):
            raise _Fail(400, 1097, "keyform")
        encrypt = [flag for flag in ("des", "des3", "aes256") if _bool(body, flag)]
        if len(encrypt) > 1:
            raise _Fail(400, 1092, ", ".join(encrypt))
        password = _opt_str(body, "password")
        if encrypt and not password:
            raise _Fail(400, 1095, "password")
        if password and not encrypt:
            raise _Fail(400, 1093, "des | des3 | aes256")
        pkcs8 = _bool(body, "pkcs8")
        encoding = serialization.Encoding.PEM if keyform == "PEM" else serialization.Encoding.DER
        fmt = serialization.PrivateFormat.TraditionalOpenSSL
        if pkcs8 or (encrypt and keyform == "DER"):
            fmt = serialization.PrivateFormat.PKCS8
        encryption: serialization.KeySerializationEncryption = serialization.NoEncryption()
        if encrypt and password:
            encryption = serialization.BestAvailableEncryption(password.encode("utf-8"))
        now = self.clock()
        part.files[path] = _File(key.private_bytes(encoding, fmt, encryption), now, now)

    def _r_sslrsakey(
        self, ctx: _Ctx, method: str, name: str | None, action: str | None, body: dict[str, Any]
    ) -> Response:
        if method != "POST":
            raise _Fail(405, 1237)
        if action != "create":
            raise _Fail(400, 1240, action or "add")
        _check_fields(
            body, {"keyfile", "bits", "exponent", "keyform", "des", "des3", "aes256", "password", "pkcs8"}
        )
        keyfile = _req_str(body, "keyfile")
        bits = _int(body, "bits")
        if bits is None:
            raise _Fail(400, 1095, "bits")
        if bits > 4096:
            raise _Fail(599, 1654)
        if bits < 512:
            raise _Fail(400, 1097, "bits")
        exponent = (_opt_str(body, "exponent") or "F4").upper()
        if exponent not in ("3", "F4"):
            raise _Fail(599, 1617)
        path = self._new_output_file(ctx.part, keyfile, "keyfile")
        _check_key_options(body)
        key = _rsa_key(bits, 3 if exponent == "3" else 65537)
        self._write_key(ctx.part, path, key, body)
        return self._ok(ctx)

    def _r_sslecdsakey(
        self, ctx: _Ctx, method: str, name: str | None, action: str | None, body: dict[str, Any]
    ) -> Response:
        if method != "POST":
            raise _Fail(405, 1237)
        if action != "create":
            raise _Fail(400, 1240, action or "add")
        _check_fields(body, {"keyfile", "curve", "keyform", "des", "des3", "aes256", "password", "pkcs8"})
        keyfile = _req_str(body, "keyfile")
        curve_name = _req_str(body, "curve").upper()
        curves: dict[str, ec.EllipticCurve] = {"P_256": ec.SECP256R1(), "P_384": ec.SECP384R1()}
        if curve_name not in curves:
            raise _Fail(400, 1097, "curve")
        path = self._new_output_file(ctx.part, keyfile, "keyfile")
        _check_key_options(body)
        self._write_key(ctx.part, path, ec.generate_private_key(curves[curve_name]), body)
        return self._ok(ctx)

    def _r_sslcertreq(
        self, ctx: _Ctx, method: str, name: str | None, action: str | None, body: dict[str, Any]
    ) -> Response:
        if method != "POST":
            raise _Fail(405, 1237)
        if action != "create":
            raise _Fail(400, 1240, action or "add")
        _check_fields(
            body,
            {
                "reqfile", "keyfile", "subjectaltname", "fipskeyname", "keyform", "pempassphrase",
                "countryname", "statename", "organizationname", "organizationunitname", "localityname",
                "commonname", "emailaddress", "challengepassword", "companyname", "digestmethod",
            },
        )  # fmt: skip
        part = ctx.part
        reqfile = _req_str(body, "reqfile")
        if body.get("fipskeyname"):
            raise _Fail(599, 257, message="Operation not permitted (no FIPS card in this appliance)")
        keyfile = _req_str(body, "keyfile")
        country = _req_str(body, "countryname")
        if not re.fullmatch(r"[A-Za-z]{2}", country):
            raise _Fail(400, 1097, "countryname")
        state = _req_str(body, "statename")
        org = _req_str(body, "organizationname")
        challenge = _opt_str(body, "challengepassword")
        if challenge is not None and len(challenge) < 4:
            raise _Fail(400, 1097, "challengepassword")
        digest_name = (_opt_str(body, "digestmethod") or "SHA256").upper()
        digests: dict[str, Any] = {
            "SHA256": hashes.SHA256(),
            "SHA384": hashes.SHA384(),
            "SHA512": hashes.SHA512(),
        }
        if digest_name == "SHA1":  # the crypto library refuses SHA-1 signatures; nobody should want one
            raise _Fail(400, 1097, "digestmethod", message="Invalid argument value (SHA1 is not simulated)")
        if digest_name not in digests:
            raise _Fail(400, 1097, "digestmethod")
        keyform = (_opt_str(body, "keyform") or "PEM").upper()
        if keyform not in ("PEM", "DER"):
            raise _Fail(400, 1097, "keyform")
        sans = _parse_sans(_opt_str(body, "subjectaltname"))
        key_path = self._resolve(part, keyfile, output=False)
        key_file = part.files.get(key_path)
        if key_file is None:
            raise self._missing_input("key", keyfile)
        key = _load_key(key_file.data, keyform, _opt_str(body, "pempassphrase"))
        if not isinstance(key, (rsa.RSAPrivateKey, ec.EllipticCurvePrivateKey, dsa.DSAPrivateKey)):
            raise _Fail(599, 1537)
        req_path = self._new_output_file(part, reqfile, "reqfile")
        attrs = [
            x509.NameAttribute(NameOID.COUNTRY_NAME, country.upper()),
            x509.NameAttribute(NameOID.STATE_OR_PROVINCE_NAME, state),
        ]
        optional = (
            ("localityname", NameOID.LOCALITY_NAME),
            ("organizationname", NameOID.ORGANIZATION_NAME),
            ("organizationunitname", NameOID.ORGANIZATIONAL_UNIT_NAME),
            ("commonname", NameOID.COMMON_NAME),
            ("emailaddress", NameOID.EMAIL_ADDRESS),
        )
        for field_name, oid in optional:
            value = org if field_name == "organizationname" else _opt_str(body, field_name)
            if value:
                attrs.append(x509.NameAttribute(oid, value))
        builder = x509.CertificateSigningRequestBuilder().subject_name(x509.Name(attrs))
        if sans:
            builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
        if challenge:
            builder = builder.add_attribute(
                x509.oid.AttributeOID.CHALLENGE_PASSWORD, challenge.encode("utf-8")
            )
        company = _opt_str(body, "companyname")
        if company:
            builder = builder.add_attribute(x509.oid.AttributeOID.UNSTRUCTURED_NAME, company.encode("utf-8"))
        try:
            csr = builder.sign(key, digests[digest_name])
        except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
            raise _Fail(599, 1537, str(exc)) from None
        now = self.clock()
        part.files[req_path] = _File(csr.public_bytes(serialization.Encoding.PEM), now, now)
        return self._ok(ctx)

    # ---- HA and partitions ----

    def _r_hanode(
        self, ctx: _Ctx, method: str, name: str | None, action: str | None, body: dict[str, Any]
    ) -> Response:
        if method != "GET":
            raise _Fail(405, 1237, message="Only GET is simulated for hanode")
        local_state = "Primary" if self.ha_state == "standalone" else self.ha_state
        nodes: list[dict[str, Any]] = [
            {
                "id": 0,
                "name": "",
                "ipaddress": self.primaryip,
                "state": local_state,
                "hastatus": "ENABLED",
                "hasync": "ENABLED",
                "haprop": "ENABLED",
                "masterstatetime": 3600,
                "flags": 0,
            }
        ]
        if self.ha_state != "standalone" and self.peer_address:
            nodes.append(
                {
                    "id": 1,
                    "name": "",
                    "ipaddress": self.peer_address,
                    "state": "Secondary" if self.ha_state == "Primary" else "Primary",
                    "hastatus": "ENABLED",
                    "hasync": "ENABLED",
                    "haprop": "ENABLED",
                }
            )
        if name is not None:
            nodes = [n for n in nodes if str(n["id"]) == name]
            if not nodes:
                raise _Fail(404, 258, f"id, {name}")
        return self._listing(ctx, "hanode", nodes)

    def _r_hafiles(
        self, ctx: _Ctx, method: str, name: str | None, action: str | None, body: dict[str, Any]
    ) -> Response:
        if method != "POST" or action != "sync":
            raise _Fail(400, 1240, action or method)
        _check_fields(body, {"mode"})
        return self._ok(ctx)

    def _r_nspartition(
        self, ctx: _Ctx, method: str, name: str | None, action: str | None, body: dict[str, Any]
    ) -> Response:
        if method == "GET":
            visible = list(self._partitions.values()) if ctx.part.name == "default" else [ctx.part]
            rows = []
            for p in visible:
                if p is ctx.part:
                    ptype = "Current Partition"
                elif p.name == "default":
                    ptype = "Default Partition"
                else:
                    ptype = "Admin Partition"
                rows.append(
                    {
                        "partitionname": p.name,
                        "partitionid": p.id,
                        "partitiontype": ptype,
                        "maxbandwidth": "10240",
                        "minbandwidth": "10240",
                        "maxconn": "1024",
                        "maxmemlimit": "10",
                    }
                )
            if name is not None:
                rows = [r for r in rows if r["partitionname"] == name]
                if not rows:
                    raise _Fail(404, 2755, name)
            return self._listing(ctx, "nspartition", rows)
        if method == "POST" and action is not None and action.lower() == "switch":
            _check_fields(body, {"partitionname"})
            target = _req_str(body, "partitionname")
            if ctx.session is None:
                if self.switch_without_session == "ignore":
                    return self._ok(ctx)
                raise _Fail(
                    599, 257, message="Operation not permitted (partition switch needs a login session)"
                )
            if target not in self._partitions:
                raise _Fail(599, 2755, target)
            allowed = self._users[ctx.user].partitions
            if allowed is not None and target != "default" and target not in allowed:
                raise _Fail(599, 2138, target)
            ctx.session.partition = target
            return self._ok(ctx)
        if method == "POST" and action is None:
            raise _Fail(
                599, 257, message="Operation not permitted (partitions are seeded with add_partition)"
            )
        if action is not None:
            raise _Fail(400, 1240, action)
        raise _Fail(405, 1237)

    # ---- vservers ----

    def _vserver_view(self, part: _Partition, vs: _Vserver) -> dict[str, Any]:
        up = not vs.terminates_tls or self._covered(part, vs)
        curstate = "OUT OF SERVICE" if vs.state != "ENABLED" else ("UP" if up else "DOWN")
        view: dict[str, Any] = {
            "name": vs.name,
            "servicetype": vs.servicetype,
            "ipv46": vs.ipv46,
            "port": vs.port,
            "state": vs.state,
            "curstate": curstate,
            "effectivestate": curstate,
            "status": 1 if curstate == "UP" else 2,
        }
        if vs.terminates_tls and not up:
            view["value"] = "Certkey not bound"
        return view

    def _r_vserver(self, ctx: _Ctx, method: str, name: str | None, resource: str) -> Response:
        if method != "GET":
            raise _Fail(405, 1237, message="Only GET is simulated for virtual servers")
        kind = _RESOURCE_KIND[resource]
        part = ctx.part
        if name is not None:
            vs = part.vservers.get(name)
            if vs is None or vs.kind != kind:
                raise _Fail(404, 258, f"name, {name}")
            return self._listing(ctx, resource, [self._vserver_view(part, vs)])
        items = [self._vserver_view(part, vs) for vs in part.vservers.values() if vs.kind == kind]
        return self._listing(ctx, resource, items)

    def _sslvserver_view(self, vs: _Vserver) -> dict[str, Any]:
        view: dict[str, Any] = {
            "vservername": vs.name,
            "snienable": "ENABLED" if vs.snienable else "DISABLED",
            "ssl3": "DISABLED",
            "tls1": "ENABLED",
            "tls11": "ENABLED",
            "tls12": "ENABLED",
            "tls13": "DISABLED",
            "sessreuse": "ENABLED",
            "sesstimeout": 120,
            "clientauth": "DISABLED",
            "sendclosenotify": "YES",
        }
        view.update(vs.ssl_params)
        return view

    def _r_sslvserver(
        self, ctx: _Ctx, method: str, name: str | None, action: str | None, body: dict[str, Any]
    ) -> Response:
        part = ctx.part
        if method == "GET":
            if name is not None:
                vs = part.vservers.get(name)
                if vs is None or not vs.is_ssl:
                    raise _Fail(404, 258, f"vservername, {name}")
                return self._listing(ctx, "sslvserver", [self._sslvserver_view(vs)])
            return self._listing(
                ctx, "sslvserver", [self._sslvserver_view(vs) for vs in part.vservers.values() if vs.is_ssl]
            )
        if method == "PUT":
            if name is not None and "vservername" not in body:
                body = {**body, "vservername": name}
            allowed_flags = {
                "snienable",
                "ssl3",
                "tls1",
                "tls11",
                "tls12",
                "tls13",
                "sessreuse",
                "clientauth",
            }
            _check_fields(
                body, {"vservername", "sesstimeout", "sendclosenotify", "sslprofile", *allowed_flags}
            )
            vs_name = _req_str(body, "vservername")
            vs = part.vservers.get(vs_name)
            if vs is None:
                raise _Fail(599, 461, vs_name)
            if not vs.is_ssl:
                raise _Fail(599, 1544, vs_name)
            for key in allowed_flags & body.keys():
                value = _opt_str(body, key)
                if value is None or value.upper() not in ("ENABLED", "DISABLED"):
                    raise _Fail(400, 1097, key)
                if key == "snienable":
                    vs.snienable = value.upper() == "ENABLED"
                else:
                    vs.ssl_params[key] = value.upper()
            for key in ("sesstimeout", "sendclosenotify", "sslprofile"):
                if key in body:
                    vs.ssl_params[key] = body[key]
            self._mark_changed(part)
            return self._ok(ctx)
        raise _Fail(405, 1237)

    # ---- bindings ----

    def _binding_view(self, b: _Binding) -> dict[str, Any]:
        view: dict[str, Any] = {
            "vservername": b.vserver,
            "certkeyname": b.certkey,
            "snicert": b.snicert,
            "ca": b.ca,
            "skipcaname": b.skipcaname,
            "cleartextport": 0,
        }
        if b.ocspcheck:
            view["ocspcheck"] = b.ocspcheck
        if b.crlcheck:
            view["crlcheck"] = b.crlcheck
        return view

    def _certkey_binding_view(self, b: _Binding) -> dict[str, Any]:
        return {
            "certkey": b.certkey,
            "servername": b.vserver,
            "vserver": True,
            "ca": b.ca,
            "data": 0,
            "version": 0,
        }

    def _bind(self, part: _Partition, body: dict[str, Any], warnings: list[tuple[int, str]]) -> None:
        _check_fields(
            body, {"vservername", "certkeyname", "snicert", "ca", "ocspcheck", "crlcheck", "skipcaname"}
        )
        vs_name = _req_str(body, "vservername")
        ck_name = _req_str(body, "certkeyname")
        snicert, ca = _bool(body, "snicert"), _bool(body, "ca")
        vs = part.vservers.get(vs_name)
        if vs is None:
            raise _Fail(599, 461, vs_name)
        if not vs.terminates_tls:
            raise _Fail(599, 1544, vs_name)
        ck = part.certkeys.get(ck_name)
        if ck is None:
            raise _Fail(599, 1540, ck_name)
        if snicert and ca:
            raise _Fail(400, 1092, "snicert, ca")
        ocsp = _opt_str(body, "ocspcheck")
        crl = _opt_str(body, "crlcheck")
        for key, value in (("ocspcheck", ocsp), ("crlcheck", crl)):
            if value is not None and value.capitalize() not in ("Mandatory", "Optional"):
                raise _Fail(400, 1097, key)
            if value is not None and not ca:
                raise _Fail(400, 1093, "ca")
        existing = [b for b in part.bindings if b.vserver == vs_name]
        if any(b.certkey == ck_name and b.snicert == snicert and b.ca == ca for b in existing):
            if self.duplicate_binding == "ignore":
                return
            raise _Fail(409, 273, f"certkeyname, {ck_name}")
        new = _Binding(
            vs_name,
            ck_name,
            snicert,
            ca,
            ocsp.capitalize() if ocsp else None,
            crl.capitalize() if crl else None,
            _bool(body, "skipcaname"),
        )
        if ca:
            part.bindings.append(new)
            return
        if ck.key_path is None:
            raise _Fail(599, 1547, ck_name)
        if snicert:
            if not vs.snienable:
                raise _Fail(599, 3627, vs_name)
            if not ck.facts.cn:
                raise _Fail(599, 3628, ck_name)
            for b in existing:
                other = part.certkeys.get(b.certkey)
                if b.snicert and other and other.facts.cn and other.facts.cn.lower() == ck.facts.cn.lower():
                    raise _Fail(599, 3629, ck_name)
            part.bindings.append(new)
            return
        current = [b for b in existing if not b.snicert and not b.ca]
        if current:
            if self.server_binding_replace == "error":
                raise _Fail(599, 1546, current[0].certkey)
            # Swap in place: the vserver never goes without a server certificate.
            index = part.bindings.index(current[0])
            part.bindings[index] = new
            if self.server_binding_replace == "warn":
                warnings.append((1546, f"{_MESSAGES[1546]} [{current[0].certkey}]"))
            return
        part.bindings.append(new)

    def _r_sslvserver_sslcertkey_binding(
        self, ctx: _Ctx, method: str, name: str | None, action: str | None, body: dict[str, Any]
    ) -> Response:
        part = ctx.part
        if method in ("PUT", "POST") and action is None:
            if name is not None and "vservername" not in body:
                body = {**body, "vservername": name}
            self._bind(part, body, ctx.warnings)
            self._mark_changed(part)
            return self._ok(ctx, 201)
        if method == "GET":
            if name is None:
                return self._listing(
                    ctx, "sslvserver_sslcertkey_binding", [self._binding_view(b) for b in part.bindings]
                )
            if name not in part.vservers:
                raise _Fail(404, 461, name)
            items = [self._binding_view(b) for b in part.bindings if b.vserver == name]
            return self._listing(ctx, "sslvserver_sslcertkey_binding", items)
        if method == "DELETE":
            vs_name = name or ctx.args.get("vservername")
            if not vs_name:
                raise _Fail(400, 1095, "vservername")
            if vs_name not in part.vservers:
                raise _Fail(599, 461, vs_name)
            ck_name = ctx.args.get("certkeyname")
            if not ck_name:
                raise _Fail(400, 1095, "certkeyname")
            snicert = ctx.args.get("snicert") == "true"
            ca = ctx.args.get("ca") == "true"
            for b in part.bindings:
                if b.vserver == vs_name and b.certkey == ck_name and b.snicert == snicert and b.ca == ca:
                    part.bindings.remove(b)
                    self._mark_changed(part)
                    return self._ok(ctx)
            raise _Fail(599, 1542, ck_name)
        if action is not None:
            raise _Fail(400, 1240, action)
        raise _Fail(405, 1237)

    def _r_sslcertkey_sslvserver_binding(
        self, ctx: _Ctx, method: str, name: str | None, action: str | None, body: dict[str, Any]
    ) -> Response:
        if method != "GET":
            raise _Fail(405, 1237)
        part = ctx.part
        if name is None:
            items = [self._certkey_binding_view(b) for b in part.bindings]
        else:
            if name not in part.certkeys:
                raise _Fail(404, 1540, name)
            items = [self._certkey_binding_view(b) for b in part.bindings if b.certkey == name]
        return self._listing(ctx, "sslcertkey_sslvserver_binding", items)

    def _r_sslcertkey_binding(
        self, ctx: _Ctx, method: str, name: str | None, action: str | None, body: dict[str, Any]
    ) -> Response:
        if method != "GET":
            raise _Fail(405, 1237)
        part = ctx.part
        names = [name] if name is not None else list(part.certkeys)
        items: list[dict[str, Any]] = []
        for ck_name in names:
            if ck_name not in part.certkeys:
                raise _Fail(404, 1540, ck_name)
            entry: dict[str, Any] = {"certkey": ck_name}
            rows = [self._certkey_binding_view(b) for b in part.bindings if b.certkey == ck_name]
            if rows:
                entry["sslcertkey_sslvserver_binding"] = rows
            items.append(entry)
        return self._listing(ctx, "sslcertkey_binding", items)

    def _r_sslvserver_binding(
        self, ctx: _Ctx, method: str, name: str | None, action: str | None, body: dict[str, Any]
    ) -> Response:
        if method != "GET":
            raise _Fail(405, 1237)
        part = ctx.part
        if name is not None:
            vs = part.vservers.get(name)
            if vs is None or not vs.is_ssl:
                raise _Fail(404, 461, name)
            names = [name]
        else:
            names = [vs.name for vs in part.vservers.values() if vs.is_ssl]
        items: list[dict[str, Any]] = []
        for vs_name in names:
            entry: dict[str, Any] = {"vservername": vs_name}
            rows = [self._binding_view(b) for b in part.bindings if b.vserver == vs_name]
            if rows:
                entry["sslvserver_sslcertkey_binding"] = rows
            items.append(entry)
        return self._listing(ctx, "sslvserver_binding", items)

    # ---- HA ----

    def _stat_hanode(self, ctx: _Ctx) -> Response:
        if self.ha_state == "standalone":
            info = {"hacurstatus": "NO", "hacurstate": "UP", "hacurmasterstate": "Primary"}
        else:
            info = {"hacurstatus": "YES", "hacurstate": "UP", "hacurmasterstate": self.ha_state}
        info.update({"haerrsyncfailure": "0", "haerrproptimeout": "0", "hatotpktrx": "0", "hatotpkttx": "0"})
        return self._ok(ctx, 200, {"hanode": info})


# ------------------------------------------------------------------------------------------ module helpers

_KNOBS = (
    "session_timeout",
    "save_in_progress_times",
    "domain_check",
    "link_break_mode",
    "sni_break_mode",
    "link_when_linked",
    "server_binding_replace",
    "duplicate_binding",
    "legacy_missing_file_codes",
    "systemfile_missing_errorcode",
    "secondary_writes",
    "switch_without_session",
    "basic_auth_allowed",
    "empty_success_bodies",
    "primaryip",
    "version",
)


def _is_write(method: str, path: str, raw_query: str) -> bool:
    if method.upper() == "GET" or not path.startswith("/nitro/"):
        return False
    if path.rstrip("/").endswith(("/config/login", "/config/logout")):
        return False
    return not ("/config/nspartition" in path and "action=switch" in raw_query.lower())


def _token_of(request: Request) -> str | None:
    token = request.cookie("NITRO_AUTH_TOKEN") or request.cookie("sessionid")
    if token:
        return _unquote(token)
    quirk = request.header("set-cookie")  # adc-nitro-go sends the token in a request header named Set-Cookie
    if quirk:
        for part in quirk.split(";"):
            key, _, value = part.strip().partition("=")
            if key == "NITRO_AUTH_TOKEN" and value:
                return _unquote(value)
    return None


def _norm(path: str) -> str:
    text = re.sub(r"/+", "/", path)
    normalised = posixpath.normpath(text)
    return normalised if normalised.startswith("/") else "/" + normalised


def _norm_dir(location: str) -> str:
    text = _norm(location.strip())
    return text.rstrip("/") or "/"


def _check_filename(filename: str) -> None:
    if len(filename) > _FILENAME_MAX:
        raise _Fail(400, 1106, f"filename, {_FILENAME_MAX}")
    if "/" in filename or "\\" in filename or filename in (".", ".."):
        raise _Fail(400, 1097, "filename")


def _check_fields(body: dict[str, Any], allowed: set[str]) -> None:
    for key in body:
        if key not in allowed:
            raise _Fail(400, 278, key)


def _req_str(body: dict[str, Any], key: str) -> str:
    value = body.get(key)
    if value is None or value == "":
        raise _Fail(400, 1095, key)
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise _Fail(400, 1234, key)
    return str(value)


def _opt_str(body: dict[str, Any], key: str) -> str | None:
    value = body.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise _Fail(400, 1234, key)
    return str(value)


def _bool(body: dict[str, Any], key: str) -> bool:
    value = body.get(key)
    if value is None:
        return False
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false", "yes", "no"):
        return value.lower() in ("true", "yes")
    raise _Fail(400, 1097, key)


def _int(body: dict[str, Any], key: str) -> int | None:
    value = body.get(key)
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise _Fail(400, 1234, key)
    if isinstance(value, int):
        return value
    if isinstance(value, str) and re.fullmatch(r"-?\d+", value.strip()):
        return int(value)
    raise _Fail(400, 1097, key)


def _expiry_fields(body: dict[str, Any]) -> tuple[str | None, int | None]:
    monitor = _opt_str(body, "expirymonitor")
    if monitor is not None:
        monitor = monitor.upper()
        if monitor not in ("ENABLED", "DISABLED"):
            raise _Fail(400, 1097, "expirymonitor")
    period = _int(body, "notificationperiod")
    if period is not None and not 10 <= period <= 100:
        raise _Fail(400, 1097, "notificationperiod")
    return monitor, period


def _matches(item: dict[str, Any], criteria: dict[str, str]) -> bool:
    for key, wanted in criteria.items():
        if key not in item:
            return False
        value = item[key]
        values = value if isinstance(value, list) else [value]
        texts = [("true" if v else "false") if isinstance(v, bool) else str(v) for v in values]
        if len(wanted) >= 2 and wanted.startswith("/") and wanted.endswith("/"):
            try:
                pattern = re.compile(wanted[1:-1])
            except re.error:
                raise _Fail(400, 1097, f"filter, {key}") from None
            if not any(pattern.search(t) for t in texts):
                return False
        elif wanted not in texts:
            return False
    return True


def _sni_matches(facts: _Facts, servername: str) -> bool:
    if not facts.cn:
        return False
    pattern = facts.cn.lower()
    host = servername.lower()
    if pattern.startswith("*."):
        return host.count(".") == pattern.count(".") and host.endswith(pattern[1:])
    return host == pattern


def _load_cert(data: bytes, inform: str) -> x509.Certificate:
    if inform == "DER":
        try:
            return x509.load_der_x509_certificate(data)
        except ValueError:
            raise _Fail(599, 1536) from None
    if _has_ctrl_chars(data):
        raise _Fail(599, 1536)
    match = re.search(rb"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----", data, re.S)
    if match is None:
        raise _Fail(599, 1536)
    try:
        return x509.load_pem_x509_certificate(match.group(0))
    except ValueError:
        raise _Fail(599, 1536) from None


def _load_key(data: bytes, inform: str, passplain: str | None) -> Any:
    password = passplain.encode("utf-8") if passplain else None
    loader = serialization.load_der_private_key if inform == "DER" else serialization.load_pem_private_key
    if inform != "DER":
        if _has_ctrl_chars(data):
            raise _Fail(599, 1537)
        match = re.search(
            rb"-----BEGIN [A-Z ]*PRIVATE KEY-----.+?-----END [A-Z ]*PRIVATE KEY-----", data, re.S
        )
        if match is None:
            raise _Fail(599, 1537)
        data = match.group(0)
    try:
        return loader(data, password)
    except TypeError as exc:
        if "not encrypted" in str(exc):
            try:
                return loader(data, None)
            except (ValueError, TypeError, UnsupportedAlgorithm):
                raise _Fail(599, 1537) from None
        raise _Fail(599, 1613) from None
    except ValueError:
        if password is not None:
            raise _Fail(599, 1614) from None
        raise _Fail(599, 1537) from None
    except UnsupportedAlgorithm:
        raise _Fail(599, 1537) from None


def _load_pfx(data: bytes, passplain: str | None) -> tuple[x509.Certificate, Any]:
    password = passplain.encode("utf-8") if passplain else None
    try:
        key, cert, _extra = pkcs12.load_key_and_certificates(data, password)
    except ValueError:
        if password is None:
            raise _Fail(599, 1613) from None
        raise _Fail(599, 1614) from None
    if cert is None:
        raise _Fail(599, 1536)
    return cert, key


_DNS_RE = re.compile(
    r"^(\*\.)?[A-Za-z0-9_]([A-Za-z0-9_-]*[A-Za-z0-9_])?(\.[A-Za-z0-9_]([A-Za-z0-9_-]*[A-Za-z0-9_])?)*$"
)


def _parse_sans(text: str | None) -> list[x509.GeneralName]:
    """``DNS:a DNS:b IP:1.2.3.4 email:x@y URI:https://z`` (space separated, as the NITRO docs show)."""
    out: list[x509.GeneralName] = []
    for token in (text or "").split():
        kind, sep, value = token.partition(":")
        kind = kind.upper()
        if not sep or not value:
            raise _Fail(400, 1097, "subjectaltname")
        if kind == "DNS":
            if not _DNS_RE.match(value) or len(value) > 253:
                raise _Fail(400, 1097, "subjectaltname")
            out.append(x509.DNSName(value))
        elif kind == "IP":
            try:
                out.append(x509.IPAddress(ipaddress.ip_address(value)))
            except ValueError:
                raise _Fail(400, 1097, "subjectaltname") from None
        elif kind == "EMAIL":
            out.append(x509.RFC822Name(value))
        elif kind == "URI":
            out.append(x509.UniformResourceIdentifier(value))
        else:
            raise _Fail(400, 1097, "subjectaltname")
    return out


def _check_key_options(body: dict[str, Any]) -> None:
    for flag in ("des", "des3", "aes256", "pkcs8"):
        _bool(body, flag)


def _rsa_key(bits: int, exponent: int) -> rsa.RSAPrivateKey:
    """A fresh RSA key; below 1024 bits (which ``cryptography`` will not generate) built from primes."""
    if bits >= 1024:
        return rsa.generate_private_key(exponent, bits)
    while True:
        p = _prime(bits - bits // 2, exponent)
        q = _prime(bits // 2, exponent)
        n = p * q
        if p != q and n.bit_length() == bits:
            break
    d = pow(exponent, -1, (p - 1) * (q - 1))
    numbers = rsa.RSAPrivateNumbers(
        p, q, d, d % (p - 1), d % (q - 1), pow(q, -1, p), rsa.RSAPublicNumbers(exponent, n)
    )
    return numbers.private_key()


def _prime(bits: int, exponent: int) -> int:
    while True:
        candidate = secrets.randbits(bits) | (1 << (bits - 1)) | (1 << (bits - 2)) | 1
        if (candidate - 1) % exponent and _probably_prime(candidate):
            return candidate


def _probably_prime(n: int) -> bool:
    for small in (3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37, 41, 43, 47):
        if n % small == 0:
            return n == small
    d, r = n - 1, 0
    while d % 2 == 0:
        d //= 2
        r += 1
    for _ in range(32):
        x = pow(secrets.randbelow(n - 3) + 2, d, n)
        if x in (1, n - 1):
            continue
        for _ in range(r - 1):
            x = pow(x, 2, n)
            if x == n - 1:
                break
        else:
            return False
    return True
