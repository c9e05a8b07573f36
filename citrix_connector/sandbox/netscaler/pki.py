"""What the appliance reads out of certificate and key files: parsed facts, loaders with the
appliance's error codes, and OpenSSL-style formatting of names and times."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID, SignatureAlgorithmOID

from .errors import Fail

SHORT_NAMES: dict[x509.ObjectIdentifier, str] = {
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


SIG_NAMES: dict[x509.ObjectIdentifier, str] = {
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


def asn1_time(dt: datetime) -> str:
    """OpenSSL ``ASN1_TIME_print`` style: ``May  7 07:21:16 2021 GMT``."""
    dt = dt.astimezone(timezone.utc)
    return f"{dt.strftime('%b')} {dt.day:2d} {dt.strftime('%H:%M:%S %Y')} GMT"


def ctime(dt: datetime | None) -> str:
    if dt is None:
        return ""
    dt = dt.astimezone(timezone.utc)
    return f"{dt.strftime('%a %b')} {dt.day:2d} {dt.strftime('%H:%M:%S %Y')}"


def oneline(name: x509.Name) -> str:
    """OpenSSL one-line style with NetScaler's leading space: `` C=US,O=Example,CN=www``."""
    rdns: list[str] = []
    for rdn in name.rdns:
        values: list[str] = []
        for attr in rdn:
            label = SHORT_NAMES.get(attr.oid, attr.oid.dotted_string)
            value = attr.value if isinstance(attr.value, str) else attr.value.hex()
            values.append(f"{label}={value}")
        rdns.append("+".join(values))
    return " " + ",".join(rdns)


def serial_hex(serial: int) -> str:
    text = format(serial, "X")
    return "0" + text if len(text) % 2 else text


def spki(public_key: Any) -> bytes:
    data: bytes = public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return data


def has_ctrl_chars(data: bytes) -> bool:
    return any((b < 0x20 and b not in (9, 10, 13)) or b == 0x7F for b in data)


@dataclass
class Facts:
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
    def parse(cls, cert: x509.Certificate) -> Facts:
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
        self_signed = cert.issuer == cert.subject and verifies(cert, cert)
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
            serial=serial_hex(cert.serial_number),
            subject=oneline(cert.subject),
            issuer=oneline(cert.issuer),
            not_before=cert.not_valid_before_utc,
            not_after=cert.not_valid_after_utc,
            cn=cn,
            dns=dns,
            ips=ips,
            publickey=alg,
            publickeysize=size,
            signaturealg=SIG_NAMES.get(
                cert.signature_algorithm_oid, cert.signature_algorithm_oid.dotted_string
            ),
            is_ca=is_ca,
            self_signed=self_signed,
            certificatetype=ctype,
            spki=spki(pub),
            sha256=hashlib.sha256(der).hexdigest(),
        )

    def names(self) -> set[str]:
        """CN + SAN DNS names, lower-case (what the domain check compares)."""
        out = {n.lower() for n in self.dns}
        if self.cn:
            out.add(self.cn.lower())
        return out


def verifies(issuer: x509.Certificate, cert: x509.Certificate) -> bool:
    if cert.issuer != issuer.subject:
        return False
    try:
        cert.verify_directly_issued_by(issuer)
    except (InvalidSignature, ValueError, TypeError, UnsupportedAlgorithm):
        return False
    return True


def load_cert(data: bytes, inform: str) -> x509.Certificate:
    if inform == "DER":
        try:
            return x509.load_der_x509_certificate(data)
        except ValueError:
            raise Fail(599, 1536) from None
    if has_ctrl_chars(data):
        raise Fail(599, 1536)
    match = re.search(rb"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----", data, re.S)
    if match is None:
        raise Fail(599, 1536)
    try:
        return x509.load_pem_x509_certificate(match.group(0))
    except ValueError:
        raise Fail(599, 1536) from None


def _load_der(data: bytes, password: bytes | None) -> Any:
    # the RSA consistency check (~30 ms for RSA-2048) is skipped: the simulator only compares the
    # key's public half with the certificate's, and must not be what a fleet benchmark measures
    return serialization.load_der_private_key(data, password, unsafe_skip_rsa_key_validation=True)


def _load_pem(data: bytes, password: bytes | None) -> Any:
    return serialization.load_pem_private_key(data, password, unsafe_skip_rsa_key_validation=True)


def load_key(data: bytes, inform: str, passplain: str | None) -> Any:
    password = passplain.encode("utf-8") if passplain else None
    loader = _load_der if inform == "DER" else _load_pem
    if inform != "DER":
        if has_ctrl_chars(data):
            raise Fail(599, 1537)
        match = re.search(
            rb"-----BEGIN [A-Z ]*PRIVATE KEY-----.+?-----END [A-Z ]*PRIVATE KEY-----", data, re.S
        )
        if match is None:
            raise Fail(599, 1537)
        data = match.group(0)
    try:
        return loader(data, password)
    except TypeError as exc:
        if "not encrypted" in str(exc):
            try:
                return loader(data, None)
            except (ValueError, TypeError, UnsupportedAlgorithm):
                raise Fail(599, 1537) from None
        raise Fail(599, 1613) from None
    except ValueError:
        if password is not None:
            raise Fail(599, 1614) from None
        raise Fail(599, 1537) from None
    except UnsupportedAlgorithm:
        raise Fail(599, 1537) from None


def load_pfx(data: bytes, passplain: str | None) -> tuple[x509.Certificate, Any]:
    password = passplain.encode("utf-8") if passplain else None
    try:
        key, cert, _extra = pkcs12.load_key_and_certificates(data, password)
    except ValueError:
        if password is None:
            raise Fail(599, 1613) from None
        raise Fail(599, 1614) from None
    if cert is None:
        raise Fail(599, 1536)
    return cert, key


def sni_matches(facts: Facts, servername: str) -> bool:
    """The client's server name against the certificate's CN and DNS SANs (one leftmost wildcard
    label), as the appliance matches an SNI certificate."""
    host = servername.lower()
    for name in (facts.cn, *facts.dns):
        if not name:
            continue
        pattern = name.lower()
        if pattern.startswith("*."):
            if host.count(".") == pattern.count(".") and host.endswith(pattern[1:]):
                return True
        elif host == pattern:
            return True
    return False
