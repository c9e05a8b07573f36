"""Read-only questions to an appliance before and after deploying: can these vservers take the
certificate (:func:`preflight`), and what does a certkey hold and serve (:func:`read_installed`);
and what a run knows about one appliance partition, read in bulk and kept up to date by its own
writes (:class:`ApplianceView`).

:class:`ApplianceView` answers the questions a run asks per profile — what a certkey holds, which
vservers serve it, which certkey holds a CA serial, what a vserver is, which files exist — from one
bulk read per collection whatever the number of profiles:

* ``GET sslcertkey`` and ``GET sslvserver_sslcertkey_binding?bulkbindings=yes`` when first asked;
* ``GET lbvserver`` (or ``csvserver`` ...) per vserver kind, ``GET sslvserver`` (SNI flags) and
  ``GET systemfile`` (the SSL directory) only when a deployment first needs them.

A deployment (:func:`~citrix_connector.nitro.deploy.deploy`) records what its read-back saw
(:meth:`ApplianceView.record_certkey`, :meth:`ApplianceView.record_bindings`) and the files it
uploaded, so the next profile on the same appliance asks nothing again (a binding that displaced
another certkey's makes it read the bindings again). After a failure half-way the caller calls
:meth:`ApplianceView.invalidate`: certkeys, bindings and files are read again when next asked
(vservers and SNI flags stay: no deployment changes them).

One view serves one session, in one thread at a time (the runner's worker of that appliance).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from ..crypto import normalize_serial
from ..errors import ApplianceStateError
from .client import NitroClient
from .models import VSERVER_KINDS, Binding, CertKey, Vserver, VserverTarget, vserver_kind

__all__ = ["ApplianceView", "InstalledState", "preflight", "read_installed"]


def _problem(nitro: NitroClient, vs: VserverTarget, view: ApplianceView | None) -> str | None:
    try:
        canon = vserver_kind(vs.type)
    except ValueError as exc:
        return f"vserver {vs.name!r}: {exc}"
    found = view.vserver(canon, vs.name) if view is not None else nitro.get_vserver(canon, vs.name)
    collection = VSERVER_KINDS[canon]
    if found is None:
        return f"{collection} {vs.name!r} does not exist"
    if found.servicetype.upper() == "SSL_BRIDGE":
        return f"{collection} {vs.name!r} is SSL_BRIDGE (passes TLS through; nothing to bind)"
    if not found.is_ssl:
        return f"{collection} {vs.name!r} has service type {found.servicetype or '?'}, not SSL"
    sni = view.sni_enabled if view is not None else nitro.ssl_vserver_sni_enabled
    if vs.sni and not sni(vs.name):
        return (
            f"{collection} {vs.name!r} does not have SNI enabled "
            f"(set ssl vserver {vs.name} -SNIEnable ENABLED, or bind without sni)"
        )
    return None


def preflight(
    nitro: NitroClient, vservers: Sequence[VserverTarget], view: ApplianceView | None = None
) -> None:
    """Check every vserver exists, terminates SSL, and has SNI enabled where SNI binding is asked.

    With ``view`` the answers come from its bulk reads (one per vserver kind and one of the SNI
    flags per session); without, one ``GET`` per vserver (and per SNI vserver).
    Raises one :class:`ApplianceStateError` listing every problem.
    """
    problems = [p for p in (_problem(nitro, vs, view) for vs in vservers) if p]
    if problems:
        raise ApplianceStateError(f"NetScaler {nitro.host}: " + "; ".join(problems))


@dataclass(frozen=True, slots=True)
class InstalledState:
    """What the appliance holds under a certkey name (``serial`` None when the certkey is absent)."""

    serial: str | None
    not_after: datetime | None
    names: tuple[str, ...]
    bound_vservers: list[str] = field(default_factory=list)
    link: str | None = None
    cert_file: str = ""
    key_file: str = ""
    #: the serial of the certificate the certkey is linked to ("" when that certkey is absent; None
    #: when unlinked)
    link_serial: str | None = None


def _installed(
    ck: CertKey,
    bound_all: Sequence[str],
    vservers: Sequence[VserverTarget],
    link_serial: str | None = None,
) -> InstalledState:
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
        link_serial=link_serial,
    )


def _absent() -> InstalledState:
    return InstalledState(serial=None, not_after=None, names=())


def read_installed(
    nitro: NitroClient, certkey: str, vservers: Sequence[VserverTarget] = ()
) -> InstalledState:
    """What the appliance holds under ``certkey`` and which of ``vservers`` it serves (two requests,
    three when the certkey is linked).

    Without ``vservers`` every vserver the certkey is bound to is reported.
    """
    ck = nitro.get_certkey(certkey)
    if ck is None:
        return _absent()
    link_serial = None
    if ck.linkcertkeyname:  # a third request: the certificate the link points at
        linked = nitro.get_certkey(ck.linkcertkeyname)
        link_serial = linked.serial if linked is not None else ""
    return _installed(ck, nitro.certkey_vservers(certkey), vservers, link_serial)


class ApplianceView:
    """Every certkey and certificate binding of one partition (and, on demand, its vservers, SNI
    flags and files), read in one request per collection."""

    def __init__(
        self,
        nitro: NitroClient | None,
        certkeys: Iterable[CertKey] | None = None,
        bindings: Iterable[Binding] | None = None,
    ) -> None:
        self._nitro = nitro
        self._certkeys: dict[str, CertKey] | None = None
        self._bindings: dict[str, list[Binding]] | None = None  # certkey -> its bindings, in order
        self._by_vserver: dict[str, list[Binding]] | None = None  # vserver -> its bindings
        self._vservers: dict[str, dict[str, Vserver]] = {}  # kind -> name -> vserver
        self._sni: set[str] | None = None
        self._files: set[str] | None = None
        if certkeys is not None:
            self._certkeys = {ck.name: ck for ck in certkeys}
        if bindings is not None:
            self._set_bindings(bindings)

    @classmethod
    def read(cls, nitro: NitroClient) -> ApplianceView:
        """Read every certkey and binding now (two requests)."""
        view = cls(nitro)
        view._load()
        return view

    # -- the bulk reads -------------------------------------------------------------------------

    def _client(self) -> NitroClient:
        if self._nitro is None:
            raise RuntimeError("this appliance view has no NITRO client to read with")
        return self._nitro

    def _load(self) -> tuple[dict[str, CertKey], dict[str, list[Binding]]]:
        if self._certkeys is None or self._bindings is None:
            nitro = self._client()
            self._certkeys = {ck.name: ck for ck in nitro.list_certkeys()}
            self._set_bindings(nitro.all_bindings())
        assert self._certkeys is not None and self._bindings is not None
        return self._certkeys, self._bindings

    def _set_bindings(self, bindings: Iterable[Binding]) -> None:
        self._bindings, self._by_vserver = {}, {}
        for b in bindings:
            self._bindings.setdefault(b.certkey, []).append(b)
            self._by_vserver.setdefault(b.vserver, []).append(b)

    @property
    def certkeys(self) -> Mapping[str, CertKey]:
        return self._load()[0]

    @property
    def bindings(self) -> tuple[Binding, ...]:
        """Every binding of the partition (CA bindings included)."""
        return tuple(b for rows in self._load()[1].values() for b in rows)

    def invalidate(self) -> None:
        """Read certkeys, bindings and files again when next asked (after a write that may have
        failed half-way, or one this view did not see)."""
        self._certkeys = None
        self._bindings = None
        self._by_vserver = None
        self._files = None

    # -- certkeys and bindings ------------------------------------------------------------------

    def certkey(self, name: str) -> CertKey | None:
        return self.certkeys.get(name)

    def by_serial(self, serial: str | int) -> list[CertKey]:
        """Certkeys whose certificate has this serial, whatever their names (as
        :meth:`NitroClient.find_certkeys_by_serial` answers)."""
        wanted = normalize_serial(serial)
        return [ck for ck in self.certkeys.values() if ck.serial == wanted]

    def bindings_of(self, certkey: str) -> list[Binding]:
        return list(self._load()[1].get(certkey, ()))

    def vserver_bindings(self, vserver: str) -> list[Binding]:
        """The certificate bindings of one vserver (as :meth:`NitroClient.vserver_bindings` answers)."""
        self._load()
        assert self._by_vserver is not None
        return list(self._by_vserver.get(vserver, ()))

    def installed(self, certkey: str, vservers: Sequence[VserverTarget] = ()) -> InstalledState:
        """What :func:`read_installed` would answer, from what was read."""
        ck = self.certkey(certkey)
        if ck is None:
            return _absent()
        link_serial = None
        if ck.linkcertkeyname:
            linked = self.certkey(ck.linkcertkeyname)
            link_serial = linked.serial if linked is not None else ""
        return _installed(ck, self.served_by(certkey), vservers, link_serial)

    def served_by(self, certkey: str) -> list[str]:
        """The vservers ``certkey`` is bound to as a server or SNI certificate (CA bindings left out)."""
        return list(dict.fromkeys(b.vserver for b in self._load()[1].get(certkey, ()) if b.serves))

    def record_certkey(self, ck: CertKey) -> None:
        """What a read-back of one certkey saw (after this run wrote it)."""
        self._load()[0][ck.name] = ck

    def record_bindings(self, certkey: str, rows: Sequence[Binding]) -> None:
        """What a read-back of one certkey's bindings saw: replaces every binding of that certkey."""
        by_certkey = self._load()[1]
        by_vserver = self._by_vserver
        assert by_vserver is not None
        for old in by_certkey.pop(certkey, []):
            kept = [b for b in by_vserver.get(old.vserver, ()) if b.certkey != certkey]
            if kept:
                by_vserver[old.vserver] = kept
            else:
                by_vserver.pop(old.vserver, None)
        for b in rows:
            by_certkey.setdefault(certkey, []).append(b)
            by_vserver.setdefault(b.vserver, []).append(b)

    # -- vservers, SNI, files (read when a deployment first needs them) -------------------------

    def vserver(self, kind: str, name: str) -> Vserver | None:
        """The vserver ``name`` of ``kind`` (one ``GET <kind>vserver`` per kind and session)."""
        canon = vserver_kind(kind)
        known = self._vservers.get(canon)
        if known is None:
            known = {vs.name: vs for vs in self._client().list_vservers(canon)}
            self._vservers[canon] = known
        return known.get(name)

    def sni_enabled(self, vserver: str) -> bool:
        """Whether the SSL vserver has SNI enabled (one ``GET sslvserver`` per session)."""
        if self._sni is None:
            self._sni = self._client().sni_enabled_vservers()
        return vserver in self._sni

    def files(self) -> set[str]:
        """The files of the SSL directory (read once; the caller adds what it uploads)."""
        if self._files is None:
            self._files = set(self._client().list_files())
        return self._files

    def forget_files(self) -> None:
        """List the SSL directory again when next asked (a name thought free was taken)."""
        self._files = None
