"""Read-only questions to an appliance before and after deploying: can these vservers take the
certificate (:func:`preflight`), and what does a certkey hold and serve (:func:`read_installed`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from ..errors import ApplianceStateError
from .client import NitroClient
from .models import VserverTarget, vserver_kind

__all__ = ["InstalledState", "preflight", "read_installed"]


def _problem(nitro: NitroClient, vs: VserverTarget) -> str | None:
    try:
        canon = vserver_kind(vs.type)
    except ValueError as exc:
        return f"vserver {vs.name!r}: {exc}"
    found = nitro.get_vserver(canon, vs.name)
    collection = f"{canon}vserver"
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


def read_installed(
    nitro: NitroClient, certkey: str, vservers: Sequence[VserverTarget] = ()
) -> InstalledState:
    """What the appliance holds under ``certkey`` and which of ``vservers`` it serves.

    Without ``vservers`` every vserver the certkey is bound to is reported.
    """
    ck = nitro.get_certkey(certkey)
    if ck is None:
        return InstalledState(serial=None, not_after=None, names=())
    bound_all = nitro.certkey_vservers(certkey)
    wanted = [v.name for v in vservers]
    bound = [v for v in wanted if v in bound_all] if wanted else bound_all
    return InstalledState(
        serial=ck.serial or None,
        not_after=ck.not_after,
        names=ck.names,
        bound_vservers=bound,
        link=ck.linkcertkeyname,
        cert_file=ck.cert,
        key_file=ck.key or "",
    )
