"""Names the agent gives things on a NetScaler: certkeys, CA certkeys, uploaded files and key/CSR files.

NetScaler's limits (``nitro-api.md`` §2.2-2.4): a certkey name of at most 31 characters (what
community tools enforce) starting with a letter, digit or ``_``; a file name of at most 63 characters;
a key or CSR *output path* of at most 63 characters. Every deployment uses fresh file names
(``<base>-<UTC timestamp>``), so nothing on the box is ever overwritten.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Sequence
from datetime import datetime, timezone

from cryptography import x509
from cryptography.x509.oid import NameOID

from ..crypto import cert_info, fingerprint_sha256
from ..errors import ApplianceStateError

__all__ = [
    "CERTKEY_NAME_MAX",
    "FILE_NAME_MAX",
    "ca_certkey_name",
    "cert_names",
    "file_stem",
    "fresh_stem",
    "join",
    "output_path_room",
    "stamp",
]

CERTKEY_NAME_MAX = 31
FILE_NAME_MAX = 63
_TIMESTAMP_FORMAT = "%Y%m%d%H%M%S"


def safe(text: str, allowed: str = r"A-Za-z0-9_.\-") -> str:
    """``text`` with every run of other characters turned into one ``-`` (no leading/trailing ``-.``)."""
    cleaned = re.sub(rf"[^{allowed}]+", "-", text).strip("-.")
    return re.sub(r"-{2,}", "-", cleaned)


def stamp(now: datetime) -> str:
    """The UTC timestamp that makes a deployment's file names unique (``20250101120000``)."""
    return now.astimezone(timezone.utc).strftime(_TIMESTAMP_FORMAT)


def ca_certkey_name(cert: x509.Certificate) -> str:
    """Deterministic certkey name for a CA certificate: sanitised CN + ``-`` + 8 hex of its fingerprint.

    At most 31 characters, starts with a letter, digit or ``_`` (NetScaler's certkey name rules).
    """
    attrs = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    cn = str(attrs[0].value) if attrs else ""
    base = safe(cn) or "CA"
    if not re.match(r"[A-Za-z0-9_]", base):
        base = "CA-" + base
    suffix = "-" + fingerprint_sha256(cert)[:8]
    return base[: CERTKEY_NAME_MAX - len(suffix)].rstrip("-.") + suffix


def file_stem(base: str, extra: str, limit: int = FILE_NAME_MAX) -> str:
    """``<base><extra>`` trimmed so that stem + a 4-character extension fits in ``limit`` characters."""
    cleaned = safe(base) or "cert"
    room = max(limit - 4 - len(extra), 8)
    return cleaned[:room].rstrip("-.") + extra


def fresh_stem(
    base: str, when: str, taken: Collection[str], exts: Sequence[str], limit: int = FILE_NAME_MAX
) -> str:
    """A stem (``<base>-<when>``, then ``-2``, ``-3``...) for which none of ``<stem><ext>`` is taken."""
    for n in range(1, 100):
        extra = f"-{when}" if n == 1 else f"-{when}-{n}"
        if not when:
            extra = "" if n == 1 else f"-{n}"
        stem = file_stem(base, extra, limit)
        if not any(f"{stem}{ext}" in taken for ext in exts):
            return stem
    raise ApplianceStateError(f"cannot find a free file name for {base!r}")


def output_path_room(ssl_dir: str) -> int:
    """Room for a file name when the full path (key/CSR output) must fit in 63 characters."""
    return FILE_NAME_MAX - len(ssl_dir.rstrip("/")) - 1


def join(ssl_dir: str, name: str) -> str:
    """``<ssl_dir>/<name>``."""
    return f"{ssl_dir.rstrip('/')}/{name}"


def cert_names(cert: x509.Certificate) -> set[str]:
    """CN and SANs of a certificate, lower-cased (what NetScaler's domain check compares)."""
    info = cert_info(cert)
    return {n.lower() for n in (info.common_name, *info.sans) if n}
