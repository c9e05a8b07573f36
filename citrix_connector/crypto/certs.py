"""Certificates: parsing bundles, CA/issuer checks, key matching, leaf/chain split, facts (CertInfo)."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TypeVar, cast

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.serialization import pkcs7

from ..errors import CryptoError
from .keys import AnyKey, KeySpec, PublicKey, key_spec_of, spki
from .pem import _as_bytes, _b64_text, _cn_of, _names_of, _pem_blocks

# ------------------------------------------------------------------------------------- certificates


def _dedupe(certs: Iterable[x509.Certificate]) -> list[x509.Certificate]:
    seen: set[bytes] = set()
    out: list[x509.Certificate] = []
    for cert in certs:
        fp = cert.fingerprint(hashes.SHA256())
        if fp not in seen:
            seen.add(fp)
            out.append(cert)
    return out


def _certs_from_der(der: bytes) -> list[x509.Certificate]:
    try:
        return [x509.load_der_x509_certificate(der)]
    except ValueError:
        pass
    try:
        return list(pkcs7.load_der_pkcs7_certificates(der))
    except (ValueError, UnsupportedAlgorithm):
        return []


def parse_certificates(data: bytes | str) -> list[x509.Certificate]:
    """Every certificate in concatenated PEM, PKCS#7 (PEM or DER) or a single DER certificate."""
    raw = _as_bytes(data, "certificate")  # not stripped: DER may end in a whitespace byte
    certs: list[x509.Certificate] = []
    if b"-----BEGIN" in raw:
        for label, der in _pem_blocks(raw):
            if label in ("CERTIFICATE", "X509 CERTIFICATE", "TRUSTED CERTIFICATE"):
                try:
                    certs.append(x509.load_der_x509_certificate(der))
                except ValueError:
                    raise CryptoError("a PEM CERTIFICATE block does not hold a valid certificate") from None
            elif label == "PKCS7":
                found = _certs_from_der(der)
                if not found:
                    raise CryptoError("the PKCS7 PEM block holds no certificate")
                certs += found
    elif raw.strip():
        certs = _certs_from_der(raw)
        if not certs:
            decoded = _b64_text(raw.strip())
            if decoded is not None:
                certs = _certs_from_der(decoded)
    if not certs:
        raise CryptoError("no certificate found (expected PEM, PKCS#7 or DER)")
    return _dedupe(certs)


def is_ca(cert: x509.Certificate) -> bool:
    """basicConstraints CA=true."""
    try:
        return bool(cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca)
    except x509.ExtensionNotFound:
        return False


#: Answers about certificates, by SHA-256 fingerprint: a run asks the same questions of the same
#: few CA certificates for every profile, and each answer costs a signature check. Bounded.
_CACHE_MAX = 4096
_K = TypeVar("_K")
_V = TypeVar("_V")
_infos: dict[bytes, CertInfo] = {}
_issued: dict[tuple[bytes, bytes], bool] = {}


def _remember(cache: dict[_K, _V], key: _K, value: _V) -> _V:
    if len(cache) >= _CACHE_MAX:
        cache.clear()
    cache[key] = value
    return value


def _fingerprint(cert: x509.Certificate) -> bytes:
    return cert.fingerprint(hashes.SHA256())


def is_issuer(issuer_cert: x509.Certificate, cert: x509.Certificate) -> bool:
    """True when ``cert.issuer == issuer_cert.subject`` and issuer_cert's key verifies cert's signature."""
    if cert.issuer != issuer_cert.subject:
        return False
    key = (_fingerprint(issuer_cert), _fingerprint(cert))
    known = _issued.get(key)
    if known is not None:
        return known
    try:
        cert.verify_directly_issued_by(issuer_cert)
    except (InvalidSignature, ValueError, TypeError, UnsupportedAlgorithm):
        return _remember(_issued, key, False)
    return _remember(_issued, key, True)


def is_self_signed(cert: x509.Certificate) -> bool:
    """Subject equals issuer and the certificate's own key verifies it."""
    return is_issuer(cert, cert)


def cert_matches_key(cert: x509.Certificate, key_or_public_key: AnyKey) -> bool:
    """True when the certificate certifies this (private or public) key."""
    return spki(cert.public_key()) == spki(key_or_public_key)


def _describe(cert: x509.Certificate) -> str:
    return cert.subject.rfc4514_string() or f"serial {cert.serial_number:X}"


def split_leaf_and_chain(
    certs: Sequence[x509.Certificate], public_key: AnyKey | None = None
) -> tuple[x509.Certificate, list[x509.Certificate]]:
    """(leaf, chain); chain ordered from the leaf's issuer upward, self-signed roots dropped.

    The leaf is the certificate for ``public_key`` if given, else the one non-CA certificate that
    issued no other. Order comes from issuer/subject and signature checks, never from position.
    """
    pool = _dedupe(certs)
    if not pool:
        raise CryptoError("no certificates to split")
    if public_key is not None:
        want = spki(public_key)
        leaves = [c for c in pool if spki(c.public_key()) == want]
        if not leaves:
            raise CryptoError("no certificate in the response matches the private key")
    else:
        leaves = [c for c in pool if not is_ca(c) and not any(o is not c and is_issuer(c, o) for o in pool)]
        if not leaves:
            raise CryptoError("no end-entity (leaf) certificate in the response")
    if len(leaves) > 1:
        names = ", ".join(_describe(c) for c in leaves)
        raise CryptoError(f"ambiguous leaf certificate: {len(leaves)} candidates ({names})")
    leaf = leaves[0]
    chain: list[x509.Certificate] = []
    used = {id(leaf)}
    current = leaf
    while True:
        issuers = [c for c in pool if id(c) not in used and is_issuer(c, current)]
        if not issuers:
            break
        # prefer a cross-signed CA over a self-signed twin with the same subject and key
        issuers.sort(key=is_self_signed)
        nxt = issuers[0]
        if is_self_signed(nxt):
            break
        chain.append(nxt)
        used.add(id(nxt))
        current = nxt
    return leaf, chain


# ---------------------------------------------------------------------------------------- cert info


@dataclass(frozen=True)
class CertInfo:
    """Facts about one certificate, in the forms the agent compares and prints."""

    serial_hex: str
    not_before: datetime
    not_after: datetime
    common_name: str
    sans: tuple[str, ...]
    issuer_cn: str
    subject: str
    issuer: str
    fingerprint_sha256: str
    key: KeySpec
    is_ca: bool
    self_signed: bool


def normalize_serial(s: str | int) -> str:
    """Upper-case hex, no separators, no leading zeros ("00:ab:0F" and "AB0F" compare equal)."""
    if isinstance(s, bool):
        raise CryptoError(f"invalid serial number {s!r}")
    if isinstance(s, int):
        if s < 0:
            raise CryptoError(f"invalid serial number {s!r}")
        return f"{s:X}"
    text = re.sub(r"[\s:\-]", "", str(s))
    if text[:2].lower() == "0x":
        text = text[2:]
    if not text or not re.fullmatch(r"[0-9A-Fa-f]+", text):
        raise CryptoError(f"invalid serial number {s!r}")
    return text.upper().lstrip("0") or "0"


def fingerprint_sha256(cert: x509.Certificate) -> str:
    """Lower-case hex SHA-256 of the DER certificate."""
    return hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).hexdigest()


def cert_to_pem(cert: x509.Certificate) -> str:
    """PEM text of a certificate."""
    return cert.public_bytes(serialization.Encoding.PEM).decode("ascii")


def cert_info(cert: x509.Certificate) -> CertInfo:
    """Collect the facts of a certificate (once per certificate and process); CryptoError for an
    unsupported key type."""
    fingerprint = _fingerprint(cert)
    known = _infos.get(fingerprint)
    if known is not None:
        return known
    return _remember(_infos, fingerprint, _cert_info(cert, fingerprint.hex()))


def _cert_info(cert: x509.Certificate, fingerprint: str) -> CertInfo:
    return CertInfo(
        serial_hex=normalize_serial(cert.serial_number),
        not_before=cert.not_valid_before_utc,
        not_after=cert.not_valid_after_utc,
        common_name=_cn_of(cert.subject),
        sans=tuple(_names_of(cert)),
        issuer_cn=_cn_of(cert.issuer),
        subject=cert.subject.rfc4514_string(),
        issuer=cert.issuer.rfc4514_string(),
        fingerprint_sha256=fingerprint,
        key=key_spec_of(cast(PublicKey, cert.public_key())),
        is_ca=is_ca(cert),
        self_signed=is_self_signed(cert),
    )
