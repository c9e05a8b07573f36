"""From the appliance's own records (:mod:`citrix_connector.nitro.inventory`) to inventory entries:
certificate facts, key, chain, bindings. Pure functions."""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from ..crypto import normalize_serial
from ..errors import CryptoError
from ..nitro.inventory import PartitionSnapshot
from ..nitro.models import parse_nitro_time, to_int
from .model import CertkeyEntry, VserverUse

__all__ = ["entries_from_partition", "parse_nitro_time", "subject_cn"]

_KEY_TYPES = {"rsaencryption": "RSA", "id-ecpublickey": "ECDSA", "dsaencryption": "DSA"}
_CA_TYPES = {"ROOT_CERT", "INTM_CERT"}


def _split_dn(text: str) -> list[tuple[str, str]]:
    """NITRO's one-line DN (``" C=US,O=Example, Inc.,CN=www"``) -> [(attr, value)]; a comma that does
    not start a new ``ATTR=`` belongs to the value."""
    parts = re.split(r",\s*(?=[A-Za-z][A-Za-z0-9.]*\s*=)", text.strip())
    out: list[tuple[str, str]] = []
    for part in parts:
        attr, sep, value = part.partition("=")
        if sep:
            out.append((attr.strip().upper(), value.strip()))
    return out


def subject_cn(dn: str) -> str:
    """The CN of a NITRO one-line DN ("" without one)."""
    for attr, value in _split_dn(dn):
        if attr == "CN":
            return value
    return ""


@functools.lru_cache(maxsize=4096)
def _norm_dn(dn: str) -> str:
    return ",".join(f"{a}={v}" for a, v in _split_dn(dn)).lower()


def _names(value: Any) -> tuple[str, ...]:
    if not value:
        return ()
    items = value if isinstance(value, list) else re.split(r"[,\s]+", str(value))
    out: list[str] = []
    for item in items:
        name = str(item).strip()
        if name.upper().startswith("DNS:"):
            name = name[4:]
        if name and name.lower() not in (n.lower() for n in out):
            out.append(name)
    return tuple(out)


def _serial(value: Any) -> str:
    text = str(value or "").strip()
    if not text:
        return ""
    try:
        return normalize_serial(text)
    except CryptoError:
        return text.upper()


def _chain(name: str, by_name: Mapping[str, Mapping[str, Any]]) -> tuple[list[str], str | None]:
    """(linked CA names issuer first, the first link that points at no certkey)."""
    chain: list[str] = []
    cursor = by_name[name]
    while True:
        link = str(cursor.get("linkcertkeyname") or "").strip()
        if not link:
            return chain, None
        if link in chain or link == name:
            return chain, None
        if link not in by_name:
            return chain, link
        chain.append(link)
        cursor = by_name[link]


def entries_from_partition(
    target: str,
    host: str,
    snapshot: PartitionSnapshot,
    now: datetime,
    managed: Mapping[tuple[str, str], str] | None = None,
) -> list[CertkeyEntry]:
    """One entry per certkey of the partition. ``managed`` maps (partition, certkey) to the name of
    the citrixagent profile managing it on this target."""
    managed = managed or {}
    by_name = {str(r.get("certkey") or ""): r for r in snapshot.certkeys if r.get("certkey")}
    kinds = {v.name: v.kind for v in snapshot.vservers}
    uses: dict[str, list[VserverUse]] = {}
    for b in snapshot.bindings:
        uses.setdefault(b.certkey, []).append(VserverUse(b.vserver, kinds.get(b.vserver, ""), b.sni, b.ca))
    linked_by: dict[str, list[str]] = {}
    for name, rec in by_name.items():
        link = str(rec.get("linkcertkeyname") or "").strip()
        if link:
            linked_by.setdefault(link, []).append(name)
    self_signed = {
        name: _norm_dn(str(r.get("subject") or "")) == _norm_dn(str(r.get("issuer") or ""))
        for name, r in by_name.items()
    }
    out: list[CertkeyEntry] = []
    for name, rec in by_name.items():
        subject = str(rec.get("subject") or "").strip()
        issuer = str(rec.get("issuer") or "").strip()
        types = rec.get("certificatetype") or []
        types = {str(t).upper() for t in (types if isinstance(types, list) else [types])}
        key_on_box = bool(str(rec.get("key") or "").strip())
        is_ca = bool(types & _CA_TYPES) or (
            not types and not key_on_box and (self_signed[name] or name in linked_by)
        )
        chain, missing = _chain(name, by_name)
        last = chain[-1] if chain else name
        complete = self_signed.get(last, False)
        problem: str | None = None
        if missing is not None:
            problem = f"linked CA {missing} is missing"
        elif not chain and not self_signed[name]:
            problem = "not linked to its issuer"
        not_after = parse_nitro_time(rec.get("clientcertnotafter"))
        if not_after is not None:
            days_left: int | None = math.floor((not_after - now).total_seconds() / 86400)
        else:
            days_left = to_int(rec.get("daystoexpiration"))
        key_type = _KEY_TYPES.get(str(rec.get("publickey") or "").strip().lower(), "")
        out.append(
            CertkeyEntry(
                target=target,
                host=host,
                partition=snapshot.partition,
                certkey=name,
                is_ca=is_ca,
                common_name=subject_cn(subject),
                sans=_names(rec.get("sandns")) + _names(rec.get("sanipadd")),
                subject=subject,
                issuer=issuer,
                serial=_serial(rec.get("serial")),
                not_after=not_after,
                days_left=days_left,
                key_type=key_type,
                key_size=to_int(rec.get("publickeysize")),
                signature=str(rec.get("signaturealg") or "").strip(),
                key_on_box=key_on_box,
                self_signed=self_signed[name],
                link=str(rec.get("linkcertkeyname") or "").strip() or None,
                chain=tuple(chain),
                chain_complete=complete,
                chain_problem=None if is_ca else problem,
                bindings=tuple(uses.get(name, ())),
                linked_by=tuple(sorted(linked_by.get(name, ()))),
                digest=str(rec.get("certkeydigest") or "").strip().lower(),
                managed_by=managed.get((snapshot.partition, name)),
            )
        )
    return sorted(out, key=lambda e: (e.partition != "default", e.partition, e.is_ca, e.certkey))


def issuer_certkey(entry: CertkeyEntry, entries: Sequence[CertkeyEntry]) -> str | None:
    """A certkey in the same partition whose subject is this entry's issuer (to suggest a link)."""
    want = _norm_dn(entry.issuer)
    for other in entries:
        if (
            other.target == entry.target
            and other.partition == entry.partition
            and other.certkey != entry.certkey
            and _norm_dn(other.subject) == want
        ):
            return other.certkey
    return None
