"""Certificate signing requests: subject, names (IDNA, IP), building, PEM/DER, loading."""

from __future__ import annotations

import base64
import ipaddress
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import NameOID

from ..errors import CryptoError
from .keys import PrivateKey, key_spec_of
from .pem import _as_bytes, _b64_text, _cn_of, _names_of, _pem_blocks

# --------------------------------------------------------------------------------------------- CSRs


@dataclass(frozen=True)
class Subject:
    """Optional subject attributes besides the CN."""

    organization: str | None = None
    organizational_unit: str | None = None
    locality: str | None = None
    state: str | None = None
    country: str | None = None
    email: str | None = None


def _dns_alabel(name: str) -> str:
    try:
        name.encode("ascii")
        return name
    except UnicodeEncodeError:
        pass
    try:
        return ".".join(
            label if label == "*" or label.isascii() else label.encode("idna").decode("ascii")
            for label in name.split(".")
        )
    except UnicodeError as exc:
        raise CryptoError(f"invalid DNS name {name!r}: {exc}") from None


def _general_name(name: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(name))
    except ValueError:
        pass
    if not name or any(ch.isspace() for ch in name):
        raise CryptoError(f"invalid DNS name {name!r}")
    return x509.DNSName(_dns_alabel(name))


def unique_names(names: Iterable[str]) -> list[str]:
    """``names`` stripped, without empty ones and without repeats (case-insensitive), first spelling
    and order kept."""
    seen: set[str] = set()
    out: list[str] = []
    for raw in names:
        name = raw.strip()
        if name and name.lower() not in seen:
            seen.add(name.lower())
            out.append(name)
    return out


def build_csr(
    key: PrivateKey, common_name: str, sans: Sequence[str], subject: Subject | None = None
) -> x509.CertificateSigningRequest:
    """SHA-256 CSR with CN and a SAN extension naming every DNS/IP name (CN included)."""
    if isinstance(sans, str):
        raise CryptoError("sans must be a sequence of names, not a string")
    cn = common_name.strip()
    if not cn:
        raise CryptoError("a CSR needs a common name")
    key_spec_of(key)
    subject = subject or Subject()
    attrs: list[tuple[x509.ObjectIdentifier, str | None]] = [
        (NameOID.COUNTRY_NAME, subject.country),
        (NameOID.STATE_OR_PROVINCE_NAME, subject.state),
        (NameOID.LOCALITY_NAME, subject.locality),
        (NameOID.ORGANIZATION_NAME, subject.organization),
        (NameOID.ORGANIZATIONAL_UNIT_NAME, subject.organizational_unit),
        (NameOID.COMMON_NAME, cn),
        (NameOID.EMAIL_ADDRESS, subject.email),
    ]
    names = unique_names([cn, *sans])
    try:
        name = x509.Name([x509.NameAttribute(oid, value) for oid, value in attrs if value])
        builder = (
            x509.CertificateSigningRequestBuilder()
            .subject_name(name)
            .add_extension(x509.SubjectAlternativeName([_general_name(n) for n in names]), critical=False)
        )
        return builder.sign(key, hashes.SHA256())
    except (ValueError, TypeError) as exc:
        raise CryptoError(f"cannot build CSR for {cn!r}: {exc}") from None


def csr_to_pem(csr: x509.CertificateSigningRequest) -> str:
    """PEM text of a CSR."""
    return csr.public_bytes(serialization.Encoding.PEM).decode("ascii")


def csr_to_der_b64(csr: x509.CertificateSigningRequest) -> str:
    """Single-line base64 of the DER CSR, no armour."""
    return base64.b64encode(csr.public_bytes(serialization.Encoding.DER)).decode("ascii")


def load_csr(data: bytes | str) -> x509.CertificateSigningRequest:
    """Load a CSR from PEM (any whitespace), DER or single-line base64 DER; check its signature."""
    raw = _as_bytes(data, "CSR")  # not stripped: DER may end in a whitespace byte
    if not raw.strip():
        raise CryptoError("empty CSR")
    candidates: list[bytes] = []
    if b"-----BEGIN" in raw:
        candidates = [der for label, der in _pem_blocks(raw) if label.endswith("CERTIFICATE REQUEST")]
        if not candidates:
            raise CryptoError("no CERTIFICATE REQUEST PEM block found")
    else:
        candidates = [raw]
        decoded = _b64_text(raw.strip())
        if decoded is not None:
            candidates.append(decoded)
    for der in candidates:
        try:
            csr = x509.load_der_x509_csr(der)
        except ValueError:
            continue
        try:
            valid = csr.is_signature_valid
        except (ValueError, TypeError, UnsupportedAlgorithm):
            valid = False
        if not valid:
            raise CryptoError("CSR signature does not verify")
        return csr
    raise CryptoError("not a valid CSR (expected PEM, DER or base64 DER)")


def csr_names(csr: x509.CertificateSigningRequest) -> tuple[str, list[str]]:
    """(CN, SAN DNS and IP names) of a CSR."""
    return _cn_of(csr.subject), _names_of(csr)
