"""Read-only questions to an appliance before and after deploying: can these vservers take the
certificate (:func:`preflight`), and what does a certkey hold and serve (:func:`read_installed`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from ..errors import ApplianceStateError
from .client import NitroClient
from .models import VSERVER_KINDS, Binding, CertKey, VserverTarget, vserver_kind

__all__ = ["ApplianceView", "InstalledState", "preflight", "read_installed"]


def _problem(nitro: NitroClient, vs: VserverTarget) -> str | None:
    try:
        canon = vserver_kind(vs.type)
    except ValueError as exc:
        return f"vserver {vs.name!r}: {exc}"
    found = nitro.get_vserver(canon, vs.name)
    collection = VSERVER_KINDS[canon]
    if found is None:
        return f"{collection} {vs.name!r} does not exist"
    if found.servicetype.upper() == "SSL_BRIDGE":
        return f"{collection} {vs.name!r} is SSL_BRIDGE (passes TLS through; nothing to bind)"
    if not found.is_ssl:
        return f"{collection} {vs.name!r} has service type {found.servicetype or '?'}, not SSL"
    if vs.sni and not nitro.ssl_vserver_sni_enabled(vs.name):
        return (
            f"{collection} {vs.name!r} does not have SNI enabled "
            f"(set ssl vserver {vs.name} -SNIEnable ENABLED, or bind without sni)"
        )
    return None


def preflight(nitro: NitroClient, vservers: Sequence[VserverTarget]) -> None:
    """Check every vserver exists, terminates SSL, and has SNI enabled where SNI binding is asked.

    Raises one :class:`ApplianceStateError` listing every problem.
    """
    problems = [p for p in (_problem(nitro, vs) for vs in vservers) if p]
    if problems:
        raise ApplianceStateError(f"NetScaler {nitro.host}: " + "; ".join(problems))


@dataclass(frozen=True)
class InstalledState:
    """What the appliance holds under a certkey name (``serial`` None when the certkey is absent)."""

    serial: str | None
    not_after: datetime | None
    names: tuple[str, ...]
    bound_vservers: list[str] = field(default_factory=list)
    link: str | None = None
    cert_file: str = ""
    key_file: str = ""


def _installed(ck: CertKey, bound_all: Sequence[str], vservers: Sequence[VserverTarget]) -> InstalledState:
    wanted = [v.name for v in vservers]
    bound = [v for v in wanted if v in bound_all] if wanted else list(bound_all)
    return InstalledState(
        serial=ck.serial or None,
        not_after=ck.not_after,
        names=ck.names,
        bound_vservers=bound,
        link=ck.linkcertkeyname,
        cert_file=ck.cert,
        key_file=ck.key or "",
    )


def _absent() -> InstalledState:
    return InstalledState(serial=None, not_after=None, names=())


def read_installed(
    nitro: NitroClient, certkey: str, vservers: Sequence[VserverTarget] = ()
) -> InstalledState:
    """What the appliance holds under ``certkey`` and which of ``vservers`` it serves (two requests).

    Without ``vservers`` every vserver the certkey is bound to is reported.
    """
    ck = nitro.get_certkey(certkey)
    if ck is None:
        return _absent()
    return _installed(ck, nitro.certkey_vservers(certkey), vservers)


@dataclass(frozen=True)
class ApplianceView:
    """Every certkey and certificate binding of one partition, read in two requests whatever their
    number, to answer :meth:`installed` for any number of profiles without asking again."""

    certkeys: Mapping[str, CertKey]
    bindings: tuple[Binding, ...]

    @classmethod
    def read(cls, nitro: NitroClient) -> ApplianceView:
        certkeys = {ck.name: ck for ck in nitro.list_certkeys()}
        return cls(certkeys, tuple(nitro.all_bindings()))

    def served_by(self, certkey: str) -> list[str]:
        """The vservers ``certkey`` is bound to as a server or SNI certificate (CA bindings left out)."""
        return list(dict.fromkeys(b.vserver for b in self.bindings if b.certkey == certkey and b.serves))

    def installed(self, certkey: str, vservers: Sequence[VserverTarget] = ()) -> InstalledState:
        """What :func:`read_installed` would answer, from what was read."""
        ck = self.certkeys.get(certkey)
        if ck is None:
            return _absent()
        return _installed(ck, self.served_by(certkey), vservers)
