"""A local root -> issuing-intermediate CA for the simulated SCM and the simulators' own HTTPS.

CA keys are ECDSA P-256 (fast to make); leaves take whatever key the CSR carries. The clock is
injectable so tests can issue certificates "in the past". Thread-safe: the simulators serve requests
from several threads.
"""

from __future__ import annotations

import ipaddress
import secrets
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from citrix_connector.crypto import (
    KeySpec,
    build_csr,
    cert_to_pem,
    csr_names,
    generate_private_key,
    is_issuer,
    load_csr,
    private_key_to_pem,
    unique_names,
)
from citrix_connector.errors import CryptoError

Clock = Callable[[], datetime]

_CA_BACKDATE = timedelta(days=730)
_ROOT_LIFETIME = timedelta(days=25 * 365)
_INTERMEDIATE_LIFETIME = timedelta(days=10 * 365)


def _utc_now() -> datetime:
    return datetime.now(timezone.utc)


def _random_serial() -> int:
    """Positive 16-byte serial (top bit clear, second bit set so it is always 16 bytes long)."""
    return (int.from_bytes(secrets.token_bytes(16), "big") & ((1 << 127) - 1)) | (1 << 126)


def _key_usage(*, digital_signature: bool, key_encipherment: bool = False, ca: bool = False) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=digital_signature,
        content_commitment=False,
        key_encipherment=key_encipherment,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=ca,
        crl_sign=ca,
        encipher_only=False,
        decipher_only=False,
    )


@dataclass(frozen=True)
class _Issuer:
    key: ec.EllipticCurvePrivateKey
    cert: x509.Certificate


class LocalCA:
    """Self-signed root plus one active issuing intermediate (all intermediates kept)."""

    def __init__(self, name: str, root: _Issuer, intermediate: _Issuer, clock: Clock) -> None:
        self.name = name
        self._root = root
        self._issuers: list[_Issuer] = [intermediate]
        self._clock = clock
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ construction

    @classmethod
    def create(cls, name: str = "Citrixagent Sandbox", *, clock: Clock | None = None) -> LocalCA:
        """Build a new root ``CN=<name> Root CA R1`` and intermediate ``CN=<name> ECC Issuing CA 1``."""
        clock = clock or _utc_now
        now = clock()
        key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name(
            [
                x509.NameAttribute(NameOID.COUNTRY_NAME, "GB"),
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, name),
                x509.NameAttribute(NameOID.COMMON_NAME, f"{name} Root CA R1"),
            ]
        )
        ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
        root_cert = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(subject)
            .public_key(key.public_key())
            .serial_number(_random_serial())
            .not_valid_before(now - _CA_BACKDATE)
            .not_valid_after(now - _CA_BACKDATE + _ROOT_LIFETIME)
            .add_extension(x509.BasicConstraints(ca=True, path_length=1), critical=True)
            .add_extension(_key_usage(digital_signature=False, ca=True), critical=True)
            .add_extension(ski, critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), critical=False
            )
            .sign(key, hashes.SHA256())
        )
        root = _Issuer(key, root_cert)
        return cls(name, root, cls._make_intermediate(name, root, 1, now), clock)

    @staticmethod
    def _make_intermediate(name: str, root: _Issuer, number: int, now: datetime) -> _Issuer:
        key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name(
            [
                x509.NameAttribute(NameOID.COUNTRY_NAME, "GB"),
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, name),
                x509.NameAttribute(NameOID.COMMON_NAME, f"{name} ECC Issuing CA {number}"),
            ]
        )
        root_ski = root.cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
        cert = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(root.cert.subject)
            .public_key(key.public_key())
            .serial_number(_random_serial())
            .not_valid_before(now - _CA_BACKDATE)
            .not_valid_after(now - _CA_BACKDATE + _INTERMEDIATE_LIFETIME)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(_key_usage(digital_signature=True, ca=True), critical=True)
            .add_extension(
                x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]),
                critical=False,
            )
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(root_ski), critical=False
            )
            .sign(root.key, hashes.SHA256())
        )
        return _Issuer(key, cert)

    # ------------------------------------------------------------------ properties

    @property
    def root(self) -> x509.Certificate:
        """The self-signed root certificate."""
        return self._root.cert

    @property
    def intermediate(self) -> x509.Certificate:
        """The active issuing intermediate."""
        with self._lock:
            return self._issuers[-1].cert

    @property
    def intermediates(self) -> list[x509.Certificate]:
        """Every intermediate ever created, oldest first (the last one is active)."""
        with self._lock:
            return [i.cert for i in self._issuers]

    def now(self) -> datetime:
        """The CA's clock."""
        return self._clock()

    # ------------------------------------------------------------------ operations

    def rotate_intermediate(self) -> x509.Certificate:
        """Create a new issuing intermediate (new key/serial, ``... Issuing CA <n>``) and activate it."""
        with self._lock:
            issuer = self._make_intermediate(self.name, self._root, len(self._issuers) + 1, self._clock())
            self._issuers.append(issuer)
            return issuer.cert

    def issue_from_csr(
        self,
        csr: x509.CertificateSigningRequest | bytes | str,
        *,
        sans: Sequence[str] | None = None,
        days: int = 365,
        not_before: datetime | None = None,
    ) -> x509.Certificate:
        """Sign a serverAuth leaf for the CSR's key and CN, SANs = CSR's SANs + ``sans``."""
        if not isinstance(csr, x509.CertificateSigningRequest):
            try:
                csr = load_csr(csr)
            except CryptoError as exc:
                raise ValueError(f"unparseable CSR: {exc}") from None
        elif not csr.is_signature_valid:
            raise ValueError("CSR signature does not verify")
        public_key = csr.public_key()
        if not isinstance(public_key, (rsa.RSAPublicKey, ec.EllipticCurvePublicKey)):
            raise ValueError(f"unsupported CSR key type {type(public_key).__name__}")
        if isinstance(sans, str):
            raise ValueError("sans must be a sequence of names, not a string")
        cn, csr_sans = csr_names(csr)
        names = unique_names([cn, *csr_sans, *(sans or ())])
        if not names:
            raise ValueError("CSR has neither a common name nor subject alternative names")
        cn = cn or names[0]
        start = (not_before or self._clock()).replace(microsecond=0)
        with self._lock:
            issuer = self._issuers[-1]
        issuer_ski = issuer.cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
        return (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)]))
            .issuer_name(issuer.cert.subject)
            .public_key(public_key)
            .serial_number(_random_serial())
            .not_valid_before(start)
            .not_valid_after(start + timedelta(days=days))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                _key_usage(digital_signature=True, key_encipherment=isinstance(public_key, rsa.RSAPublicKey)),
                critical=True,
            )
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(issuer_ski), critical=False
            )
            .add_extension(x509.SubjectAlternativeName([_general_name(n) for n in names]), critical=False)
            .sign(issuer.key, hashes.SHA256())
        )

    def chain_for(self, leaf: x509.Certificate) -> list[x509.Certificate]:
        """[intermediate that issued ``leaf``, root]; ValueError if none of ours did."""
        for cert in reversed(self.intermediates):
            if is_issuer(cert, leaf):
                return [cert, self.root]
        raise ValueError(f"{leaf.subject.rfc4514_string()} was not issued by this CA")

    def issue_tls_server_cert(
        self, hostnames: Sequence[str] = ("localhost",), ips: Sequence[str] = ("127.0.0.1",)
    ) -> tuple[bytes, bytes]:
        """(leaf PEM + intermediate PEM, key PEM) for an HTTPS server on these names."""
        names = [*hostnames, *ips]
        if not names:
            raise ValueError("a TLS server certificate needs at least one hostname or IP")
        key = generate_private_key(KeySpec("ECDSA", curve="P-256"))
        cert = self.issue_from_csr(build_csr(key, names[0], names))
        chain_pem = cert_to_pem(cert) + cert_to_pem(self.chain_for(cert)[0])
        return chain_pem.encode("ascii"), private_key_to_pem(key)

    def bundle_pem(self) -> bytes:
        """The root certificate as PEM, for clients' ``verify=``."""
        return self.root.public_bytes(serialization.Encoding.PEM)


def _general_name(name: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(name))
    except ValueError:
        return x509.DNSName(name)


__all__ = ["LocalCA"]
