"""Typed NITRO objects, parsed leniently from what the appliance returns (``nitro-api.md`` §2).

The path from a profile to the appliance and back carries these whole: a vserver to deploy to is a
:class:`VserverTarget` (the profile's vserver entry satisfies it as it is), the appliance's answers are
:class:`CertKey`, :class:`Binding` and :class:`Vserver`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, ClassVar, Literal, Protocol

from ..crypto import normalize_serial, unique_names
from ..errors import CryptoError

__all__ = [
    "Binding",
    "CertKey",
    "HaInfo",
    "HaState",
    "VSERVER_KINDS",
    "Vserver",
    "VserverRef",
    "VserverTarget",
    "cn_from_nitro_subject",
    "vserver_kind",
]

#: vserver kind -> NITRO collection
VSERVER_KINDS: dict[str, str] = {
    "lb": "lbvserver",
    "cs": "csvserver",
    "vpn": "vpnvserver",
    "authentication": "authenticationvserver",
}
_KIND_ALIASES: dict[str, str] = {
    "lb": "lb",
    "lbvserver": "lb",
    "cs": "cs",
    "csvserver": "cs",
    "vpn": "vpn",
    "vpnvserver": "vpn",
    "gateway": "vpn",
    "authentication": "authentication",
    "authenticationvserver": "authentication",
    "aaa": "authentication",
}


def vserver_kind(kind: str) -> str:
    """Canonical kind (``lb|cs|vpn|authentication``) for a kind or collection name (ValueError)."""
    canon = _KIND_ALIASES.get(kind.strip().lower())
    if canon is None:
        raise ValueError(f"unknown vserver kind {kind!r} (lb, cs, vpn or authentication)")
    return canon


# ------------------------------------------------------------------------------------ lenient parsing


def to_int(value: Any) -> int | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        return int(str(value).strip())
    except ValueError:
        return None


def to_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if value is None:
        return False
    return str(value).strip().lower() in ("true", "yes", "1", "enabled", "on")


_MONTHS = {
    m: i
    for i, m in enumerate(
        ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"], 1
    )
}


def parse_nitro_time(value: Any) -> datetime | None:
    """``"May 17 07:21:16 2021 GMT"`` (day may be space-padded) -> aware UTC datetime."""
    if not value:
        return None
    parts = str(value).split()
    if len(parts) in (4, 5) and parts[0] in _MONTHS and parts[1].isdigit() and parts[3].isdigit():
        clock = parts[2].split(":")  # the usual form, without strptime (thousands of certkeys)
        if len(clock) == 3 and all(c.isdigit() for c in clock):
            try:
                hour, minute, second = (int(c) for c in clock)
                month, day, year = _MONTHS[parts[0]], int(parts[1]), int(parts[3])
                return datetime(year, month, day, hour, minute, second, tzinfo=timezone.utc)
            except ValueError:
                return None
    text = re.sub(r"\s+", " ", str(value).strip())
    text = re.sub(r" (GMT|UTC)$", "", text)
    for fmt in ("%b %d %H:%M:%S %Y", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M:%S"):
        try:
            return datetime.strptime(text, fmt).replace(tzinfo=timezone.utc)
        except ValueError:
            continue
    return None


def split_names(value: Any) -> list[str]:
    if not value:
        return []
    items: Iterable[Any] = value if isinstance(value, list) else re.split(r"[,\s]+", str(value))
    out: list[str] = []
    for item in items:
        name = str(item).strip()
        if name.upper().startswith("DNS:"):
            name = name[4:]
        if name:
            out.append(name)
    return out


def cn_from_nitro_subject(subject: str) -> str:
    """The CN of an OpenSSL one-line subject as NITRO prints it (``" C=US,O=X,CN=www"``)."""
    match = re.search(r"(?:^|[,/]\s*)CN\s*=\s*([^,/]+)", subject)
    return match.group(1).strip() if match else ""


# ------------------------------------------------------------------------------------------ objects


@dataclass(frozen=True, slots=True)
class CertKey:
    """One ``sslcertkey`` object as read from the appliance."""

    name: str
    cert: str
    key: str | None
    serial: str  # normalised: upper-case hex, no leading zeros ("" when the appliance gave none)
    linkcertkeyname: str | None
    subject: str
    issuer: str
    not_after: datetime | None
    status: str
    days_to_expiration: int | None
    sandns: tuple[str, ...] = ()

    #: the NITRO attributes this object is made of (a bulk read asks for these only: ``attrs=``)
    ATTRS: ClassVar[tuple[str, ...]] = (
        "certkey",
        "cert",
        "key",
        "serial",
        "linkcertkeyname",
        "subject",
        "issuer",
        "clientcertnotafter",
        "status",
        "daystoexpiration",
        "sandns",
    )

    @classmethod
    def from_nitro(cls, obj: Mapping[str, Any]) -> CertKey:
        serial = str(obj.get("serial") or "").strip()
        try:
            serial = normalize_serial(serial) if serial else ""
        except CryptoError:
            serial = serial.upper()
        link = str(obj.get("linkcertkeyname") or "").strip() or None
        key = str(obj.get("key") or "").strip() or None
        return cls(
            name=str(obj.get("certkey") or ""),
            cert=str(obj.get("cert") or ""),
            key=key,
            serial=serial,
            linkcertkeyname=link,
            subject=str(obj.get("subject") or "").strip(),
            issuer=str(obj.get("issuer") or "").strip(),
            not_after=parse_nitro_time(obj.get("clientcertnotafter")),
            status=str(obj.get("status") or ""),
            days_to_expiration=to_int(obj.get("daystoexpiration")),
            sandns=tuple(split_names(obj.get("sandns"))),
        )

    @property
    def common_name(self) -> str:
        return cn_from_nitro_subject(self.subject)

    @property
    def names(self) -> tuple[str, ...]:
        """CN first, then the DNS SANs, each once (as the appliance spells them)."""
        return tuple(unique_names([self.common_name, *self.sandns]))


@dataclass(frozen=True, slots=True)
class Binding:
    """One certificate binding of an SSL vserver."""

    vserver: str
    certkey: str
    sni: bool = False
    ca: bool = False

    @classmethod
    def from_vserver_row(cls, rec: Mapping[str, Any], vserver: str = "") -> Binding:
        """From a ``sslvserver_sslcertkey_binding`` row (``vservername``, ``certkeyname``)."""
        return cls(
            vserver=str(rec.get("vservername") or vserver),
            certkey=str(rec.get("certkeyname") or ""),
            sni=to_bool(rec.get("snicert")),
            ca=to_bool(rec.get("ca")),
        )

    @classmethod
    def from_certkey_row(cls, rec: Mapping[str, Any], certkey: str = "") -> Binding:
        """From a ``sslcertkey_sslvserver_binding`` row: the vserver's name is in ``servername``."""
        return cls(
            vserver=str(rec.get("servername") or rec.get("vservername") or ""),
            certkey=str(rec.get("certkey") or certkey),
            sni=to_bool(rec.get("snicert")),
            ca=to_bool(rec.get("ca")),
        )

    @property
    def serves(self) -> bool:
        """A server or SNI certificate binding (a CA binding for client authentication serves nothing)."""
        return not self.ca


@dataclass(frozen=True, slots=True)
class Vserver:
    """An lb/cs/vpn/authentication virtual server."""

    name: str
    kind: str  # lb | cs | vpn | authentication
    servicetype: str
    curstate: str
    state: str
    value: str = ""
    ipv46: str = ""
    port: int | None = None

    @classmethod
    def from_nitro(cls, rec: Mapping[str, Any], kind: str, name: str = "") -> Vserver:
        return cls(
            name=str(rec.get("name") or name),
            kind=kind,
            servicetype=str(rec.get("servicetype") or ""),
            curstate=str(rec.get("curstate") or ""),
            state=str(rec.get("state") or ""),
            value=str(rec.get("value") or ""),
            ipv46=str(rec.get("ipv46") or ""),
            port=to_int(rec.get("port")),
        )

    @property
    def collection(self) -> str:
        return VSERVER_KINDS[self.kind]

    @property
    def is_ssl(self) -> bool:
        """True when the service type terminates TLS (SSL_BRIDGE does not)."""
        st = self.servicetype.upper()
        return st not in ("", "SSL_BRIDGE") and (st.startswith("SSL") or st.startswith("DTLS"))


class VserverTarget(Protocol):
    """A vserver to deploy to: its name, kind (lb/cs/vpn/authentication) and whether to bind as SNI.

    A profile's vserver entry is one as it is; :class:`VserverRef` is one for everyone else.
    """

    @property
    def name(self) -> str: ...

    @property
    def type(self) -> str: ...

    @property
    def sni(self) -> bool: ...


@dataclass(frozen=True, slots=True)
class VserverRef:
    """A :class:`VserverTarget` by value."""

    name: str
    type: str
    sni: bool = False


HaState = Literal["Primary", "Secondary", "Standalone"]


@dataclass(frozen=True, slots=True)
class HaInfo:
    """HA role of the node we are connected to."""

    state: HaState
    peer_address: str | None = None
    raw_state: str = ""  # the appliance's own word for the local node's state

    @classmethod
    def from_nodes(cls, nodes: Iterable[Mapping[str, Any]]) -> HaInfo:
        """From ``GET hanode``: node id 0 is the local node, any other a peer."""
        local: Mapping[str, Any] | None = None
        peer: Mapping[str, Any] | None = None
        for node in nodes:
            if to_int(node.get("id")) == 0:
                local = node
            elif peer is None:
                peer = node
        raw = str((local or {}).get("state") or "")
        if peer is None and raw.strip().lower() != "secondary":
            # a node that calls itself Secondary is never standalone, listed peer or not
            return cls("Standalone", None, raw)
        peer_address = str((peer or {}).get("ipaddress") or "") or None
        state: HaState = "Primary" if raw.strip().lower() == "primary" else "Secondary"
        return cls(state, peer_address, raw)
