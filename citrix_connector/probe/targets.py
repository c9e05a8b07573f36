"""Where to probe: each vserver's VIP as NITRO reports it (``ipv46``/``port`` of its lb/cs/vpn/
authentication vserver), or the profile's ``probe: host:port`` override; and which names to send as
SNI (every name of the profile for an SNI binding, the CN otherwise)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal, Protocol

from ..nitro.models import Vserver
from .models import VipTarget

__all__ = ["HostPortLike", "ProbeVserver", "VserverSource", "server_names", "vip_targets"]

_NO_ADDRESS = ("", "0.0.0.0", "::", "0")  # a non-addressable vserver (cs/lb bound behind another)
_WILDCARD_STAND_IN = "citrixagent-probe"


class HostPortLike(Protocol):
    @property
    def host(self) -> str: ...

    @property
    def port(self) -> int: ...


class VserverSource(Protocol):
    """Where vservers are read (``nitro.checks.ApplianceView``: one bulk read per kind and session)."""

    def vserver(self, kind: str, name: str) -> Vserver | None: ...


class ProbeVserver(Protocol):
    """A profile's vserver entry, as the probe sees it."""

    @property
    def name(self) -> str: ...

    @property
    def type(self) -> str: ...

    @property
    def sni(self) -> bool: ...

    @property
    def probe(self) -> HostPortLike | None: ...


def server_names(sni: bool, names: Sequence[str]) -> list[str]:
    """SNI names to try: for an SNI binding every name of the certificate (wildcards skipped, unless
    all are wildcards), else the CN (``names[0]``). A wildcard left is sent with a stand-in label."""
    if not names:
        return []
    wanted = list(names) if sni else [names[0]]
    concrete = [n for n in wanted if not n.startswith("*.")]
    chosen = concrete or wanted[:1]
    out: list[str] = []
    for name in chosen:
        name = f"{_WILDCARD_STAND_IN}{name[1:]}" if name.startswith("*.") else name
        if name.lower() not in (o.lower() for o in out):
            out.append(name)
    return out


def vip_targets(
    source: VserverSource, host: str, vservers: Sequence[ProbeVserver], names: Sequence[str]
) -> list[VipTarget]:
    """One target per vserver and SNI name; the VIPs of vservers without an override are read from
    ``source`` (the session's view of the appliance ``host``: no request when it already read them)."""
    targets: list[VipTarget] = []
    for vs in vservers:
        unusable: str | None = None
        source_of: Literal["nitro", "profile"] = "profile"
        if vs.probe is not None:
            address, port = vs.probe.host, vs.probe.port
        else:
            source_of = "nitro"
            found = source.vserver(vs.type, vs.name)
            address, port = (found.ipv46, found.port or 0) if found is not None else ("", 0)
            if found is None:
                unusable = f"{vs.type} vserver {vs.name} not found on {host}"
            elif address in _NO_ADDRESS or not port:
                unusable = (
                    f"the vserver has no VIP address on {host} (ipv46 {address or 'none'}, port {port}); "
                    "set probe: host:port on it in the profile"
                )
        sent: list[str | None] = [*server_names(vs.sni, names)] or [None]
        for name in sent:
            targets.append(
                VipTarget(vs.name, address or "-", port, name, source=source_of, unusable=unusable)
            )
    return targets
