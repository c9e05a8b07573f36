"""Pure crypto helpers: keys, CSRs, certificate/chain parsing and matching.

Everything here is built on ``cryptography``. Functions raise :class:`CryptoError` for bad input
(except :meth:`KeySpec.parse`, which raises ``ValueError`` for the config layer to wrap). Private key
material never appears in an error message.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import ipaddress
import os
import re
import sys
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Literal, TypeAlias, TypeVar, cast

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import pkcs7
from cryptography.x509.oid import NameOID

from .errors import CryptoError
from .private_files import FILE_MODE, make_private_dir

RSA_SIZES: tuple[int, ...] = (2048, 3072, 4096)
EC_CURVES: tuple[str, ...] = ("P-256", "P-384")

PrivateKey: TypeAlias = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey
PublicKey: TypeAlias = rsa.RSAPublicKey | ec.EllipticCurvePublicKey
AnyKey: TypeAlias = PrivateKey | PublicKey

Algorithm = Literal["RSA", "ECDSA"]
Curve = Literal["P-256", "P-384"]

_ALGORITHM_ALIASES: dict[str, Algorithm] = {"RSA": "RSA", "ECDSA": "ECDSA", "EC": "ECDSA", "ECC": "ECDSA"}
# keys are upper-cased with '-', '_' and spaces removed
_CURVE_ALIASES: dict[str, Curve] = {
    "P256": "P-256",
    "PRIME256V1": "P-256",
    "SECP256R1": "P-256",
    "P256R1": "P-256",
    "P384": "P-384",
    "PRIME384V1": "P-384",
    "SECP384R1": "P-384",
    "P384R1": "P-384",
}
_CURVE_BITS: dict[Curve, int] = {"P-256": 256, "P-384": 384}
_CURVE_BY_NAME: dict[str, Curve] = {"secp256r1": "P-256", "secp384r1": "P-384"}


@dataclass(frozen=True)
class KeySpec:
    """A supported key type: RSA 2048/3072/4096 or ECDSA P-256/P-384."""

    algorithm: Algorithm
    size: int | None = None
    curve: Curve | None = None

    def __post_init__(self) -> None:
        if self.algorithm == "RSA":
            if self.curve is not None or self.size not in RSA_SIZES:
                raise ValueError(f"unsupported RSA key spec size={self.size!r} curve={self.curve!r}")
        elif self.algorithm == "ECDSA":
            if self.size is not None or self.curve not in EC_CURVES:
                raise ValueError(f"unsupported ECDSA key spec size={self.size!r} curve={self.curve!r}")
        else:
            raise ValueError(f"unsupported key algorithm {self.algorithm!r}")

    def describe(self) -> str:
        """``"RSA 2048"`` or ``"ECDSA P-256"``."""
        return f"RSA {self.size}" if self.algorithm == "RSA" else f"ECDSA {self.curve}"

    @classmethod
    def parse(cls, algorithm: str, size: int | None = None, curve: str | None = None) -> KeySpec:
        """Validate user input; ``ValueError`` with a readable message when unsupported."""
        supported = "supported: RSA 2048/3072/4096, ECDSA P-256/P-384"
        alg = _ALGORITHM_ALIASES.get(str(algorithm).strip().upper())
        if alg is None:
            raise ValueError(f"unsupported key algorithm {algorithm!r} ({supported})")
        if size is not None and (isinstance(size, bool) or not isinstance(size, int)):
            raise ValueError(f"key size must be an integer, got {size!r}")
        if alg == "RSA":
            if curve is not None:
                raise ValueError(f"a curve ({curve!r}) only applies to ECDSA keys, not RSA")
            if size is None:
                raise ValueError(f"RSA needs a key size ({supported})")
            if size not in RSA_SIZES:
                raise ValueError(f"unsupported RSA key size {size} ({supported})")
            return cls("RSA", size=size)
        if curve is None:
            by_size = {bits: name for name, bits in _CURVE_BITS.items()}
            if size is None or size not in by_size:
                raise ValueError(f"ECDSA needs a curve ({supported})")
            return cls("ECDSA", curve=by_size[size])
        norm = re.sub(r"[-_\s]", "", str(curve)).upper()
        named = _CURVE_ALIASES.get(norm)
        if named is None:
            raise ValueError(f"unsupported ECDSA curve {curve!r} ({supported})")
        if size is not None and size != _CURVE_BITS[named]:
            raise ValueError(f"key size {size} does not match curve {named}")
        return cls("ECDSA", curve=named)


# --------------------------------------------------------------------------------------------- keys


def generate_private_key(spec: KeySpec) -> PrivateKey:
    """A new private key of the given spec."""
    if spec.algorithm == "RSA":
        assert spec.size is not None
        return rsa.generate_private_key(public_exponent=65537, key_size=spec.size)
    curve: ec.EllipticCurve = ec.SECP256R1() if spec.curve == "P-256" else ec.SECP384R1()
    return ec.generate_private_key(curve)


def private_key_to_pem(key: PrivateKey) -> bytes:
    """Unencrypted PKCS#8 PEM."""
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


#: Keys this process made or loaded from its own state directory, by the SHA-256 of their PEM: each
#: key is parsed (and an RSA key's costly consistency check run) at most once per run.
_OWN_KEYS: dict[bytes, PrivateKey] = {}
_OWN_KEYS_LOCK = threading.Lock()


def remember_own_key(pem: bytes, key: PrivateKey) -> None:
    """Keep a key the agent just generated (and wrote as ``pem``): later loads of it cost nothing."""
    with _OWN_KEYS_LOCK:
        _OWN_KEYS[hashlib.sha256(pem).digest()] = key


def load_own_key(pem: bytes) -> PrivateKey:
    """Load a key the agent generated itself and stored in its private state directory.

    The RSA consistency check (``unsafe_skip_rsa_key_validation``) is skipped: it guards against
    malformed keys from elsewhere, and costs ~30 ms per 2048-bit key; this key came out of
    ``generate_private_key``. The key is kept for the rest of the run."""
    digest = hashlib.sha256(pem).digest()
    with _OWN_KEYS_LOCK:
        known = _OWN_KEYS.get(digest)
    if known is not None:
        return known
    key = _load_private_key(pem, own=True)
    with _OWN_KEYS_LOCK:
        _OWN_KEYS[digest] = key
    return key


def load_private_key(pem: bytes) -> PrivateKey:
    """Load an unencrypted PEM (or DER) RSA/EC private key; CryptoError otherwise. A key the agent
    made or loaded from its state dir this run (:func:`load_own_key`) is answered without parsing."""
    with _OWN_KEYS_LOCK:
        known = _OWN_KEYS.get(hashlib.sha256(pem).digest())
    return known if known is not None else _load_private_key(pem, own=False)


def _load_private_key(pem: bytes, *, own: bool) -> PrivateKey:
    try:
        if b"-----BEGIN" in pem:
            key = serialization.load_pem_private_key(pem, password=None, unsafe_skip_rsa_key_validation=own)
        else:
            key = serialization.load_der_private_key(pem, password=None, unsafe_skip_rsa_key_validation=own)
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        # never include the key bytes in the message
        raise CryptoError(f"cannot load private key: {type(exc).__name__}") from None
    if not isinstance(key, (rsa.RSAPrivateKey, ec.EllipticCurvePrivateKey)):
        raise CryptoError(f"unsupported private key type {type(key).__name__}")
    key_spec_of(key)
    return key


def key_spec_of(key: AnyKey) -> KeySpec:
    """The KeySpec of a public or private key; CryptoError if it is not a supported type."""
    if isinstance(key, (rsa.RSAPrivateKey, rsa.RSAPublicKey)):
        if key.key_size not in RSA_SIZES:
            raise CryptoError(f"unsupported RSA key size {key.key_size}")
        return KeySpec("RSA", size=key.key_size)
    if isinstance(key, (ec.EllipticCurvePrivateKey, ec.EllipticCurvePublicKey)):
        curve = _CURVE_BY_NAME.get(key.curve.name)
        if curve is None:
            raise CryptoError(f"unsupported EC curve {key.curve.name}")
        return KeySpec("ECDSA", curve=curve)
    raise CryptoError(f"unsupported key type {type(key).__name__}")


def _public_key(key: object) -> object:
    if isinstance(key, (rsa.RSAPrivateKey, ec.EllipticCurvePrivateKey)):
        return key.public_key()
    return key


def _spki(key: object) -> bytes:
    pub = _public_key(key)
    public_bytes = getattr(pub, "public_bytes", None)
    if public_bytes is None:
        raise CryptoError(f"not a key: {type(key).__name__}")
    try:
        return cast(
            bytes,
            public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo),
        )
    except (ValueError, TypeError) as exc:
        raise CryptoError(f"cannot serialise public key: {exc}") from None


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


_PEM_BLOCK = re.compile(rb"-----BEGIN ([A-Z0-9 #]+)-----(.*?)-----END \1-----", re.DOTALL)
_B64_TEXT = re.compile(rb"^[A-Za-z0-9+/=\s]+$")


def _as_bytes(data: bytes | str, what: str) -> bytes:
    if isinstance(data, str):
        try:
            return data.encode("ascii")
        except UnicodeEncodeError:
            raise CryptoError(f"{what} text is not ASCII") from None
    return bytes(data)


def _pem_blocks(data: bytes) -> list[tuple[str, bytes]]:
    """(label, DER) for every PEM block; whitespace anywhere in the body tolerated."""
    blocks: list[tuple[str, bytes]] = []
    for match in _PEM_BLOCK.finditer(data):
        label = match.group(1).decode("ascii").strip()
        body = re.sub(rb"\s+", b"", match.group(2))
        if b":" in body:  # RFC 1421 headers (e.g. Proc-Type) -> not something we read
            continue
        try:
            blocks.append((label, base64.b64decode(body, validate=True)))
        except (binascii.Error, ValueError):
            raise CryptoError(f"invalid base64 in PEM block {label!r}") from None
    return blocks


def _b64_text(data: bytes) -> bytes | None:
    if not _B64_TEXT.fullmatch(data):
        return None
    try:
        return base64.b64decode(re.sub(rb"\s+", b"", data), validate=True)
    except (binascii.Error, ValueError):
        return None


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


def _names_of(ext_holder: x509.Certificate | x509.CertificateSigningRequest) -> list[str]:
    try:
        san = ext_holder.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return []
    out: list[str] = list(san.get_values_for_type(x509.DNSName))
    out += [str(ip) for ip in san.get_values_for_type(x509.IPAddress)]
    return out


def _cn_of(name: x509.Name) -> str:
    attrs = name.get_attributes_for_oid(NameOID.COMMON_NAME)
    if not attrs:
        return ""
    value = attrs[0].value
    return value if isinstance(value, str) else value.decode("utf-8", "replace")


def csr_names(csr: x509.CertificateSigningRequest) -> tuple[str, list[str]]:
    """(CN, SAN DNS and IP names) of a CSR."""
    return _cn_of(csr.subject), _names_of(csr)


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
    return _spki(cert.public_key()) == _spki(key_or_public_key)


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
        want = _spki(public_key)
        leaves = [c for c in pool if _spki(c.public_key()) == want]
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


# ---------------------------------------------------------------------------------------- key files


def write_private_key_file(path: Path, pem: bytes) -> None:
    """Create ``path`` exclusively with mode 0600 (missing parents 0700) and write ``pem``.

    Never overwrites an existing file.
    """
    path = Path(path)
    try:
        make_private_dir(path.parent)
    except OSError as exc:
        raise CryptoError(f"cannot create key directory {path.parent}: {exc.strerror or exc}") from None
    flags = os.O_CREAT | os.O_EXCL | os.O_WRONLY | getattr(os, "O_BINARY", 0) | getattr(os, "O_NOFOLLOW", 0)
    try:
        fd = os.open(path, flags, FILE_MODE)
    except FileExistsError:
        raise CryptoError(f"private key file {path} already exists; refusing to overwrite it") from None
    except OSError as exc:
        raise CryptoError(f"cannot create private key file {path}: {exc.strerror or exc}") from None
    try:
        if sys.platform != "win32":
            os.fchmod(fd, FILE_MODE)  # exactly 0600, whatever the umask took away
        view = memoryview(pem)
        while view:
            written = os.write(fd, view)
            view = view[written:]
        os.fsync(fd)
    except OSError as exc:
        os.close(fd)
        fd = -1
        with contextlib.suppress(OSError):
            path.unlink()
        raise CryptoError(f"cannot write private key file {path}: {exc.strerror or exc}") from None
    finally:
        if fd >= 0:
            os.close(fd)


__all__ = [
    "EC_CURVES",
    "RSA_SIZES",
    "CertInfo",
    "KeySpec",
    "PrivateKey",
    "PublicKey",
    "Subject",
    "build_csr",
    "cert_info",
    "cert_matches_key",
    "cert_to_pem",
    "csr_names",
    "csr_to_der_b64",
    "csr_to_pem",
    "fingerprint_sha256",
    "generate_private_key",
    "is_ca",
    "is_issuer",
    "is_self_signed",
    "key_spec_of",
    "load_csr",
    "load_private_key",
    "normalize_serial",
    "parse_certificates",
    "private_key_to_pem",
    "split_leaf_and_chain",
    "unique_names",
    "write_private_key_file",
]
