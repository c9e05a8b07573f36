"""The inventory: what discovery found on the appliances and in SCM, as plain typed records.

No record holds secret or key material: certificate facts, file paths the appliance reports, names.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

Severity = Literal["critical", "warning", "info"]
#: severities that make ``discover`` exit 5 ("needs attention"); ``info`` is reported only
ATTENTION: frozenset[str] = frozenset({"critical", "warning"})


@dataclass(frozen=True)
class VserverUse:
    """One binding of a certkey: the vserver, its kind, and how the certificate is bound."""

    vserver: str
    kind: str  # lb | cs | vpn | authentication | "" (not found in any vserver collection)
    sni: bool = False
    ca: bool = False  # a CA binding (client authentication): serves nothing

    def to_dict(self) -> dict[str, Any]:
        return {"vserver": self.vserver, "type": self.kind or None, "sni": self.sni, "ca": self.ca}


@dataclass(frozen=True)
class ScmMatch:
    """The SCM certificate record an appliance certificate was matched to (by serial)."""

    ssl_id: str
    org_id: int | None
    cert_profile_id: int | None
    cert_profile: str
    term: int | None
    status: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "ssl_id": self.ssl_id,
            "org_id": self.org_id,
            "cert_profile_id": self.cert_profile_id,
            "cert_profile": self.cert_profile or None,
            "term": self.term,
            "status": self.status,
        }


@dataclass(frozen=True)
class CertkeyEntry:
    """One certkey on one appliance partition."""

    target: str  # the discovery target's name (one per appliance or HA pair)
    host: str  # the node it was read from
    partition: str
    certkey: str
    is_ca: bool
    common_name: str
    sans: tuple[str, ...]
    subject: str
    issuer: str
    serial: str  # normalised upper-case hex
    not_after: datetime | None
    days_left: int | None
    key_type: str  # RSA | ECDSA | DSA | "" (unknown)
    key_size: int | None
    signature: str  # e.g. sha256WithRSAEncryption
    key_on_box: bool
    self_signed: bool
    link: str | None
    chain: tuple[str, ...]  # linked CA certkeys, issuer first
    chain_complete: bool  # the links reach a self-signed root
    chain_problem: str | None  # why the issuer is not served: "not linked", "linked CA X is missing"
    bindings: tuple[VserverUse, ...]
    linked_by: tuple[str, ...] = ()  # certkeys whose CA link points here
    digest: str = ""  # the appliance's certificate digest, when it reports one
    managed_by: str | None = None  # the citrixagent profile that manages it
    scm: ScmMatch | None = None
    source: Literal["scm", "other", "unknown"] = "unknown"  # issued by SCM, by another CA, not checked

    @property
    def served_by(self) -> tuple[VserverUse, ...]:
        """The bindings that serve this certificate to TLS clients (server or SNI, not CA)."""
        return tuple(b for b in self.bindings if not b.ca)

    @property
    def where(self) -> str:
        part = "" if self.partition == "default" else f"/{self.partition}"
        return f"{self.target}{part}:{self.certkey}"

    @property
    def curve(self) -> str | None:
        if self.key_type == "ECDSA" and self.key_size in (256, 384, 521):
            return f"P-{self.key_size}"
        return None

    def to_dict(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "host": self.host,
            "partition": self.partition,
            "certkey": self.certkey,
            "ca": self.is_ca,
            "common_name": self.common_name or None,
            "sans": list(self.sans),
            "subject": self.subject,
            "issuer": self.issuer,
            "serial": self.serial or None,
            "not_after": self.not_after.isoformat() if self.not_after else None,
            "days_left": self.days_left,
            "key_type": self.key_type or None,
            "key_size": self.key_size,
            "signature": self.signature or None,
            "key_on_box": self.key_on_box,
            "self_signed": self.self_signed,
            "linked_ca": self.link,
            "chain": list(self.chain),
            "chain_complete": self.chain_complete,
            "chain_problem": self.chain_problem,
            "bindings": [b.to_dict() for b in self.bindings],
            "linked_by": list(self.linked_by),
            "managed_by": self.managed_by,
            "source": self.source,
            "scm": self.scm.to_dict() if self.scm else None,
        }


@dataclass(frozen=True)
class Finding:
    """Something about a certificate that needs (or deserves) a person's attention."""

    code: str  # expired | expiring | no-intermediate | unused | key-size | sha1 | duplicate | revoked
    severity: Severity
    where: str  # target[/partition]:certkey
    message: str
    advice: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "severity": self.severity,
            "where": self.where,
            "message": self.message,
            "advice": self.advice,
        }


@dataclass(frozen=True)
class TargetResult:
    """How reading one target went."""

    name: str
    urls: tuple[str, ...]
    ok: bool
    host: str = ""
    ha_state: str = ""
    partitions: tuple[str, ...] = ()
    certkeys: int = 0
    requests: int = 0
    error: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "target": self.name,
            "urls": list(self.urls),
            "ok": self.ok,
            "host": self.host or None,
            "ha_state": self.ha_state or None,
            "partitions": list(self.partitions),
            "certkeys": self.certkeys,
            "nitro_requests": self.requests,
            "error": self.error or None,
        }


@dataclass(frozen=True)
class ScmOnly:
    """An issued SCM certificate that no discovered appliance holds."""

    ssl_id: str
    common_name: str
    serial: str

    def to_dict(self) -> dict[str, Any]:
        return {"ssl_id": self.ssl_id, "common_name": self.common_name, "serial": self.serial}


@dataclass
class Inventory:
    """Everything one ``discover`` found."""

    discovered_at: datetime
    targets: list[TargetResult] = field(default_factory=list)
    certkeys: list[CertkeyEntry] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    scm_checked: bool = False
    scm_note: str = ""  # why SCM was not consulted, when it was not
    scm_only: list[ScmOnly] = field(default_factory=list)
    scm_requests: int = 0
    scm_error: bool = False  # SCM was to be consulted but failed

    @property
    def failed(self) -> bool:
        return self.scm_error or any(not t.ok for t in self.targets)

    @property
    def needs_attention(self) -> bool:
        return any(f.severity in ATTENTION for f in self.findings)

    def to_dict(self) -> dict[str, Any]:
        return {
            "discovered_at": self.discovered_at.isoformat(),
            "targets": [t.to_dict() for t in self.targets],
            "certkeys": [c.to_dict() for c in self.certkeys],
            "findings": [f.to_dict() for f in self.findings],
            "scm": {
                "checked": self.scm_checked,
                "failed": self.scm_error,
                "note": self.scm_note or None,
                "requests": self.scm_requests,
                "not_on_any_appliance": [s.to_dict() for s in self.scm_only],
            },
        }
