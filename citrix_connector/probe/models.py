"""The probe's typed values: where to connect (:class:`VipTarget`), what a handshake got
(:class:`Served` or :class:`NoHandshake`), what should be served (:class:`Expectation`) and the verdict
on one VIP (:class:`VipReport`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from cryptography import x509

__all__ = [
    "Expectation",
    "NoHandshake",
    "ProbeMode",
    "Served",
    "VipReport",
    "VipStatus",
    "VipTarget",
]

#: ``on``: a VIP serving the wrong certificate/chain/protocol fails the target, an unreachable VIP is
#: a warning; ``required``: an unreachable VIP fails too; ``warn-only``: every finding is a warning;
#: ``off``: no probe.
ProbeMode = Literal["on", "off", "warn-only", "required"]

VipStatus = Literal[
    "ok", "wrong-certificate", "chain-incomplete", "old-protocol", "name-mismatch", "unreachable"
]


@dataclass(frozen=True)
class VipTarget:
    """One TLS handshake to make: a vserver's VIP (or its ``probe:`` override) and the SNI name."""

    vserver: str
    host: str
    port: int
    server_name: str | None
    source: Literal["nitro", "profile"] = "nitro"  # where host:port came from
    #: why this VIP cannot be probed at all (no address on the appliance); None: probe it
    unusable: str | None = None

    @property
    def address(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


@dataclass(frozen=True)
class Served:
    """What one handshake received: the leaf, the certificates sent after it, the protocol."""

    leaf: x509.Certificate
    chain: tuple[x509.Certificate, ...]
    protocol: str  # "TLSv1.2", "TLSv1.3", "TLSv1" ...
    chain_known: bool = True  # False when this Python cannot read the chain the server sent


@dataclass(frozen=True)
class NoHandshake:
    """The handshake did not happen: refused, reset, timed out, or failed."""

    reason: str


@dataclass(frozen=True)
class Expectation:
    """What every VIP of a profile should serve."""

    serial: str  # normalised upper-case hex, no leading zeros
    #: CA certificates that must follow the leaf: (serial, subject) of the certkey's linked CA chain
    #: and of the intermediates SCM issued with the certificate (roots may be left out by a server)
    intermediates: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class VipReport:
    """The verdict on one VIP. ``status`` is the first of ``problems`` (``ok`` when there are none)."""

    vserver: str
    address: str
    server_name: str | None
    status: VipStatus
    detail: str
    problems: tuple[VipStatus, ...] = ()
    served_serial: str | None = None
    served_subject: str | None = None
    protocol: str | None = None

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def line(self) -> str:
        """One line for a result message or a log: ``vs_www 127.0.0.1:443 (SNI a.example): ok``."""
        sni = f" (SNI {self.server_name})" if self.server_name else ""
        return f"{self.vserver} {self.address}{sni}: {self.detail}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "vserver": self.vserver,
            "address": self.address,
            "server_name": self.server_name,
            "status": self.status,
            "problems": list(self.problems),
            "detail": self.detail,
            "served_serial": self.served_serial,
            "served_subject": self.served_subject,
            "protocol": self.protocol,
        }
