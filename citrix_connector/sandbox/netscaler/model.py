"""The appliance's state: per partition files, certkeys (with their CA link), SSL vservers and one
binding table; users, sessions and the HA role. Plain data plus the pure rules every resource shares
(path resolution inside a partition, which certificate a vserver serves)."""

from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from .errors import Fail
from .pki import Facts, sni_matches

VSERVER_KINDS: dict[str, str] = {
    "lb": "lbvserver",
    "cs": "csvserver",
    "vpn": "vpnvserver",
    "authentication": "authenticationvserver",
}
RESOURCE_KIND = {v: k for k, v in VSERVER_KINDS.items()}
# Service types that terminate TLS (a server certificate can be bound); SSL_BRIDGE passes TLS through.
SSL_TYPES = frozenset({"SSL", "SSL_TCP", "DTLS", "SSL_DIAMETER", "SSL_PUSH", "SSL_BRIDGE"})
TERMINATING = SSL_TYPES - {"SSL_BRIDGE"}
DEFAULT_SSL_DIR = "/nsconfig/ssl"
KNOWN_DIRS = ("/nsconfig/ssl", "/nsconfig", "/var/tmp")


@dataclass
class File:
    data: bytes
    mtime: datetime
    atime: datetime


@dataclass
class CertKey:
    name: str
    cert: str  # as given
    key: str | None  # as given
    cert_path: str
    key_path: str | None
    inform: str
    password: bool
    passplain: str | None
    facts: Facts
    key_pem: bytes | None = field(default=None, repr=False)  # the loaded key, unencrypted (never shown)
    expirymonitor: str | None = None
    notificationperiod: int | None = None
    link: str | None = None
    bundle: str = "NO"
    deletecertkeyfilesonremoval: str | None = None


@dataclass
class Vserver:
    name: str
    kind: str
    servicetype: str
    ipv46: str
    port: int
    snienable: bool = False
    state: str = "ENABLED"
    ssl_params: dict[str, str] = field(default_factory=dict)
    # False: no listening socket for the VIP (fleet-sized benchmarks seed thousands of vservers)
    serves_vip: bool = True

    @property
    def is_ssl(self) -> bool:
        return self.servicetype in SSL_TYPES

    @property
    def terminates_tls(self) -> bool:
        return self.servicetype in TERMINATING


@dataclass
class Binding:
    vserver: str
    certkey: str
    snicert: bool = False
    ca: bool = False
    ocspcheck: str | None = None
    crlcheck: str | None = None
    skipcaname: bool = False


@dataclass
class Partition:
    name: str
    id: int
    ssl_dir: str
    files: dict[str, File] = field(default_factory=dict)
    certkeys: dict[str, CertKey] = field(default_factory=dict)
    vservers: dict[str, Vserver] = field(default_factory=dict)
    bindings: list[Binding] = field(default_factory=list)
    configchanged: bool = False
    lastconfigchangedtime: datetime | None = None
    lastconfigsavetime: datetime | None = None
    saved: dict[str, Any] | None = None  # snapshot of certkeys/bindings/vservers at the last save

    def mark_changed(self, now: datetime) -> None:
        self.configchanged = True
        self.lastconfigchangedtime = now


@dataclass
class Session:
    token: str
    user: str
    partition: str
    timeout: int
    last_used: datetime


@dataclass
class User:
    password: str
    partitions: set[str] | None = None  # None = every partition


@dataclass
class TimelineEntry:
    """The certificate coverage of every TLS-terminating vserver after one write."""

    seq: int
    request: str  # "METHOD /path?query" or "python:<hook>"
    status: int
    coverage: dict[tuple[str, str], bool]  # (partition, vserver) -> a server certificate was bound


def norm_path(path: str) -> str:
    text = re.sub(r"/+", "/", path)
    normalised = posixpath.normpath(text)
    return normalised if normalised.startswith("/") else "/" + normalised


def norm_dir(location: str) -> str:
    text = norm_path(location.strip())
    return text.rstrip("/") or "/"


def resolve(part: Partition, value: str, *, output: bool) -> str:
    """An absolute, normalised path for a file argument, enforcing the partition's SSL directory."""
    text = value.strip()
    if not text:
        raise Fail(400, 1091)
    if "\\" in text or ".." in text.split("/"):
        raise Fail(599, 1645 if output else 1647, value)
    path = norm_path(text if text.startswith("/") else f"{part.ssl_dir}/{text}")
    if part.name == "default":
        allowed = not path.startswith("/var/partitions/")
    else:
        allowed = path.startswith(part.ssl_dir + "/")
    if not allowed:
        raise Fail(599, 1645 if output else 1647, value)
    return path


def covered(part: Partition, vs: Vserver) -> bool:
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


def served_certkey(part: Partition, vserver: str, servername: str | None) -> CertKey | None:
    """The certkey a TLS client gets from ``vserver``: the SNI binding whose CN or a DNS SAN matches
    ``servername`` (SNI enabled), else the default (non-SNI) server binding."""
    if vserver not in part.vservers:
        return None
    vs = part.vservers[vserver]
    if servername and vs.snienable:
        for b in part.bindings:
            if b.vserver == vserver and b.snicert and not b.ca:
                ck = part.certkeys.get(b.certkey)
                if ck and sni_matches(ck.facts, servername):
                    return ck
    for b in part.bindings:
        if b.vserver == vserver and not b.snicert and not b.ca:
            ck = part.certkeys.get(b.certkey)
            if ck:
                return ck
    return None


def serving(part: Partition, vserver: str, servername: str | None) -> str | None:
    """Serial of the certificate :func:`served_certkey` picks, or None."""
    ck = served_certkey(part, vserver, servername)
    return ck.facts.serial if ck else None


@dataclass
class Model:
    """Everything one appliance keeps: partitions (each with its own files, certkeys, vservers and
    bindings), users and login sessions, the HA role and the write timeline."""

    users: dict[str, User]
    partitions: dict[str, Partition] = field(
        default_factory=lambda: {"default": Partition("default", 0, DEFAULT_SSL_DIR)}
    )
    sessions: dict[str, Session] = field(default_factory=dict)
    dead_tokens: set[str] = field(default_factory=set)
    ha_state: str = "standalone"  # "Primary" | "Secondary" | "standalone"
    peer_address: str | None = None
    timeline: list[TimelineEntry] = field(default_factory=list)

    def partition(self, name: str) -> Partition:
        try:
            return self.partitions[name]
        except KeyError:
            raise ValueError(f"no partition {name}") from None

    def record(self, label: str, status: int) -> None:
        """Append the certificate coverage of every TLS-terminating vserver after one write."""
        coverage: dict[tuple[str, str], bool] = {}
        for part in self.partitions.values():
            for vs in part.vservers.values():
                if vs.terminates_tls:
                    coverage[(part.name, vs.name)] = covered(part, vs)
        self.timeline.append(TimelineEntry(len(self.timeline) + 1, label, status, coverage))
