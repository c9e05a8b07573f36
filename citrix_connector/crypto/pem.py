"""Reading PEM, DER and base64 input, and the names of X.509 objects (shared by CSRs and certificates)."""

from __future__ import annotations

import base64
import binascii
import re

from cryptography import x509
from cryptography.x509.oid import NameOID

from ..errors import CryptoError

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
