"""Typed NITRO operations over one :class:`~.session.NitroSession`: files, keys and CSRs, certkeys,
links, vservers, bindings, HA role and save.

Mechanism only: this module knows how to talk to a NetScaler, not what to deploy (see ``deploy.py``).
Requests, errors, login, re-login and partitions are the session's (``session.py``); the objects
returned are the typed models of ``models.py``.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

from ..crypto import Subject, normalize_serial
from ..errors import NitroError
from ..http import RetryPolicy
from .models import (
    VSERVER_KINDS,
    Binding,
    CertKey,
    HaInfo,
    Vserver,
    to_bool,
    vserver_kind,
)
from .session import API, SSL_DIR, NitroSession, busy_saving, encode_args, encode_name, records

__all__ = [
    "Binding",
    "CertKey",
    "HaInfo",
    "NitroClient",
    "Vserver",
    "VSERVER_KINDS",
    "SSL_DIR",
    "encode_args",
    "encode_name",
]


def _subject_fields(subject: Subject) -> dict[str, str]:
    mapping = {
        "countryname": subject.country,
        "statename": subject.state,
        "localityname": subject.locality,
        "organizationname": subject.organization,
        "organizationunitname": subject.organizational_unit,
        "emailaddress": subject.email,
    }
    return {k: v for k, v in mapping.items() if v}


def _san_entry(name: str) -> str:
    try:
        ipaddress.ip_address(name)
        return f"IP:{name}"
    except ValueError:
        return f"DNS:{name}"


def _serial_forms(serial: str | int) -> list[str]:
    """The spellings of a serial a NITRO ``filter`` (exact match) may need: normalised, then padded."""
    wanted = normalize_serial(serial)
    even = wanted if len(wanted) % 2 == 0 else "0" + wanted
    forms = [wanted, even]
    if int(even[:2], 16) & 0x80:
        forms.append("00" + even)
    return list(dict.fromkeys(forms))


class NitroClient:
    """Typed operations on one NetScaler node (optionally one admin partition).

    Use as a context manager: login on enter (and partition switch), logout on exit.
    """

    def __init__(
        self,
        url: str,
        *,
        username: str,
        password: str,
        verify: bool | Path,
        timeout: float = 60,
        partition: str | None = None,
        sleep: Callable[[float], None] = time.sleep,
        retry: RetryPolicy | None = None,
        ssl_dir: str | None = None,
        proxy: str | None = None,
        lazy_login: bool = False,
    ) -> None:
        self.session = NitroSession(
            url,
            username=username,
            password=password,
            verify=verify,
            timeout=timeout,
            partition=partition,
            sleep=sleep,
            retry=retry,
            proxy=proxy,
            lazy_login=lazy_login,
        )
        self._ssl_dir = ssl_dir
        self._ha_info: HaInfo | None = None

    # -- the session -------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        return self.session.url

    @property
    def host(self) -> str:
        return self.session.host

    @property
    def username(self) -> str:
        return self.session.username

    @property
    def partition(self) -> str | None:
        return self.session.partition

    @property
    def logged_in(self) -> bool:
        return self.session.logged_in

    @property
    def ssl_dir(self) -> str:
        """Where certificate/key files live for the configured partition.

        ``/nsconfig/ssl`` in the default partition; ``/var/partitions/<name>/ssl`` in an admin partition
        (the reference marks that path unconfirmed; pass ``ssl_dir=`` to override).
        """
        if self._ssl_dir:
            return self._ssl_dir.rstrip("/") or "/"
        if self.partition and self.partition != "default":
            return f"/var/partitions/{self.partition}/ssl"
        return SSL_DIR

    def __repr__(self) -> str:
        return f"NitroClient({self.url!r}, username={self.username!r}, partition={self.partition!r})"

    def __enter__(self) -> NitroClient:
        try:
            self.session.open()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def login(self) -> None:
        self.session.login()

    def logout(self) -> None:
        self.session.logout()

    def close(self) -> None:
        """Log out (errors ignored) and release the HTTP session."""
        self.session.close()

    def switch_partition(self, name: str) -> None:
        self.session.switch_partition(name)

    def _get(self, resource: str, name: str | None = None, **kw: Any) -> list[dict[str, Any]]:
        return records(self.session.call("GET", resource, name, **kw), resource)

    # -- system ------------------------------------------------------------------------------------

    def ha_info(self) -> HaInfo:
        """Role of the node we talk to: Primary/Secondary in a pair, Standalone without a peer."""
        self._ha_info = HaInfo.from_nodes(self._get("hanode"))
        return self._ha_info

    def known_ha_info(self) -> HaInfo:
        """The role this session read last (when it chose the node to write to), else read now."""
        return self._ha_info if self._ha_info is not None else self.ha_info()

    def save_config(self) -> None:
        """``save ns config``; NITRO 293 (a save already running) is retried with backoff, bounded."""
        self.session.call(
            "POST", "nsconfig", action="save", payload={"nsconfig": {}}, is_transient=busy_saving
        )

    def config_changed(self) -> bool:
        """True when the running config has unsaved changes (absent flag counts as unsaved)."""
        found = self._get("nsconfig")
        if not found or "configchanged" not in found[0]:
            return True
        return to_bool(found[0]["configchanged"])

    # -- files -------------------------------------------------------------------------------------

    def upload_file(self, name: str, content: bytes, location: str | None = None) -> str:
        """Create ``location/name`` (never overwrites: 1642 if it exists); returns the full path.

        ``location`` defaults to :attr:`ssl_dir` (``/nsconfig/ssl`` in the default partition).
        """
        location = location or self.ssl_dir
        payload = {
            "systemfile": {
                "filename": name,
                "filelocation": location,
                "filecontent": base64.b64encode(content).decode("ascii"),
                "fileencoding": "BASE64",
            }
        }
        self.session.call("POST", "systemfile", payload=payload)
        return f"{location.rstrip('/')}/{name}"

    def upload_files(self, files: Sequence[tuple[str, bytes]], location: str | None = None) -> list[str]:
        """Create several files in one bulk ``POST systemfile`` (reference §2.1: a list under the
        resource name), stopping at the first failure; returns their full paths.

        ``onerror`` EXIT goes in the ``X-NITRO-ONERROR`` header (where Citrix documents it) and in
        the body's ``params`` (also accepted): a taken certificate name never leaves the key behind
        under it. A partial failure is HTTP 207 / errorcode 1243; the error raised lists the failed
        items and carries their code when they share one (1642 for a name that is taken), so callers
        handle it as for one file. Files before the failed one were created."""
        if len(files) == 1:
            ((name, content),) = files
            return [self.upload_file(name, content, location)]
        location = location or self.ssl_dir
        items = [
            {
                "filename": name,
                "filelocation": location,
                "filecontent": base64.b64encode(content).decode("ascii"),
                "fileencoding": "BASE64",
            }
            for name, content in files
        ]
        self.session.call(
            "POST",
            "systemfile",
            payload={"params": {"onerror": "EXIT"}, "systemfile": items},
            headers={"X-NITRO-ONERROR": "exit"},
        )
        return [f"{location.rstrip('/')}/{name}" for name, _ in files]

    def download_file(self, name: str, location: str | None = None) -> bytes:
        """The bytes of ``location/name`` (default :attr:`ssl_dir`); NitroError when missing."""
        location = location or self.ssl_dir
        for rec in self._get("systemfile", args={"filename": name, "filelocation": location}):
            if rec.get("filename") in (None, name):
                content = str(rec.get("filecontent") or "")
                try:
                    return base64.b64decode(content, validate=False)
                except (binascii.Error, ValueError) as exc:
                    raise NitroError(
                        f"NetScaler {self.host}: file {location}/{name}: content is not base64",
                        endpoint=f"{API}/systemfile",
                    ) from exc
        raise NitroError(
            f"NetScaler {self.host}: file {location}/{name} not found", endpoint=f"{API}/systemfile"
        )

    def delete_file(self, name: str, location: str | None = None) -> None:
        location = location or self.ssl_dir
        self.session.call("DELETE", "systemfile", name, args={"filelocation": location})

    def list_files(self, location: str | None = None) -> list[str]:
        """Names of the regular files in ``location`` (default :attr:`ssl_dir`; directories left out)."""
        location = location or self.ssl_dir
        out: list[str] = []
        for rec in self._get("systemfile", args={"filelocation": location}):
            mode = rec.get("filemode") or []
            modes = [str(m).upper() for m in (mode if isinstance(mode, list) else [mode])]
            if "DIRECTORY" in modes or not rec.get("filename"):
                continue
            out.append(str(rec["filename"]))
        return out

    # -- keys and CSRs -----------------------------------------------------------------------------

    def create_rsa_key(self, keyfile: str, bits: int) -> None:
        payload = {"sslrsakey": {"keyfile": keyfile, "bits": bits, "exponent": "F4", "keyform": "PEM"}}
        self.session.call("POST", "sslrsakey", action="create", payload=payload)

    def create_ecdsa_key(self, keyfile: str, curve: Literal["P-256", "P-384"]) -> None:
        nitro_curve = {"P-256": "P_256", "P-384": "P_384"}.get(curve)
        if nitro_curve is None:
            raise ValueError(f"unsupported ECDSA curve {curve!r} (P-256 or P-384)")
        payload = {"sslecdsakey": {"keyfile": keyfile, "curve": nitro_curve, "keyform": "PEM"}}
        self.session.call("POST", "sslecdsakey", action="create", payload=payload)

    def create_csr(
        self,
        reqfile: str,
        keyfile: str,
        *,
        common_name: str,
        sans: Sequence[str],
        subject: Subject,
        digest: str = "SHA256",
    ) -> None:
        """Create a CSR file on the appliance (``sslcertreq create``); SANs sent as ``DNS:a DNS:b``."""
        body: dict[str, Any] = {"reqfile": reqfile, "keyfile": keyfile, "keyform": "PEM"}
        body.update(_subject_fields(subject))
        body["commonname"] = common_name
        if sans:
            body["subjectaltname"] = " ".join(_san_entry(n) for n in sans)
        body["digestmethod"] = digest
        self.session.call("POST", "sslcertreq", action="create", payload={"sslcertreq": body})

    # -- certkeys ----------------------------------------------------------------------------------

    def get_certkey(self, name: str) -> CertKey | None:
        found = self._get("sslcertkey", name, missing_ok=True)
        return CertKey.from_nitro(found[0]) if found else None

    def list_certkeys(self) -> list[CertKey]:
        """Every certkey of the partition, in one request (``GET sslcertkey``), with the attributes
        a :class:`CertKey` holds only (a certkey has some 30: the answer for a partition of hundreds
        is several times smaller, and so is its decoding)."""
        attrs = {"attrs": ",".join(CertKey.ATTRS)}
        return [CertKey.from_nitro(r) for r in self._get("sslcertkey", extra=attrs)]

    def all_bindings(self) -> list[Binding]:
        """Every certificate binding of every SSL vserver of the partition, in one request
        (``GET sslvserver_sslcertkey_binding?bulkbindings=yes``; CA bindings included)."""
        rows = self._get("sslvserver_sslcertkey_binding", extra={"bulkbindings": "yes"}, missing_ok=True)
        return [b for b in map(Binding.from_vserver_row, rows) if b.vserver and b.certkey]

    def certkey_bound(self, name: str) -> list[Binding]:
        """Every vserver binding of one certkey with its SNI and CA flags, in one request whatever the
        number of vservers (``GET sslvserver_sslcertkey_binding?bulkbindings=yes&filter=certkeyname:
        <name>``; rows of other certkeys, should an appliance ignore the filter, are left out)."""
        rows = self._get(
            "sslvserver_sslcertkey_binding",
            extra={"bulkbindings": "yes"},
            filters={"certkeyname": name},
            missing_ok=True,
        )
        return [b for b in map(Binding.from_vserver_row, rows) if b.vserver and b.certkey == name]

    def find_certkeys_by_serial(self, serial: str | int) -> list[CertKey]:
        """Certkeys whose certificate has this serial, whatever their names.

        The appliance prints serials in upper-case hex and may keep leading zeros, and ``filter`` is an
        exact match: the normalised form is tried first, then the zero-padded forms.
        """
        wanted = normalize_serial(serial)
        for form in _serial_forms(serial):
            found = self._get("sslcertkey", filters={"serial": form}, missing_ok=True)
            matching = [ck for ck in map(CertKey.from_nitro, found) if ck.serial == wanted]
            if matching:
                return matching
        return []

    def add_certkey(
        self,
        name: str,
        cert: str,
        key: str | None = None,
        *,
        expiry_monitor: bool = True,
        notification_period: int = 30,
    ) -> None:
        body: dict[str, Any] = {"certkey": name, "cert": cert, "inform": "PEM"}
        if key:
            body["key"] = key
        body["expirymonitor"] = "ENABLED" if expiry_monitor else "DISABLED"
        if expiry_monitor:
            body["notificationperiod"] = notification_period
        self.session.call("POST", "sslcertkey", payload={"sslcertkey": body})

    def update_certkey(self, name: str, cert: str, key: str | None, *, no_domain_check: bool) -> None:
        """Replace the certificate (and key) behind ``name`` in place; bindings survive."""
        body: dict[str, Any] = {"certkey": name, "cert": cert, "inform": "PEM"}
        if key:
            body["key"] = key
        if no_domain_check:
            body["nodomaincheck"] = True
        self.session.call("POST", "sslcertkey", action="update", payload={"sslcertkey": body})

    def link_certkey(self, name: str, ca_name: str) -> None:
        payload = {"sslcertkey": {"certkey": name, "linkcertkeyname": ca_name}}
        self.session.call("POST", "sslcertkey", action="link", payload=payload)

    def unlink_certkey(self, name: str) -> None:
        self.session.call("POST", "sslcertkey", action="unlink", payload={"sslcertkey": {"certkey": name}})

    def certkey_bindings(self, name: str) -> list[Binding]:
        """Every vserver binding of this certkey (``sslcertkey_sslvserver_binding``, CA ones included)."""
        return [Binding.from_certkey_row(r, name) for r in self._get("sslcertkey_sslvserver_binding", name)]

    def certkey_vservers(self, name: str) -> list[str]:
        """Names of the vservers this certkey is bound to as a server or SNI certificate (read from
        ``servername``; CA bindings for client authentication are left out)."""
        names = [b.vserver for b in self.certkey_bindings(name) if b.serves and b.vserver]
        return list(dict.fromkeys(names))

    # -- vservers ----------------------------------------------------------------------------------

    def get_vserver(self, kind: str, name: str) -> Vserver | None:
        canon = vserver_kind(kind)
        found = self._get(VSERVER_KINDS[canon], name, missing_ok=True)
        return Vserver.from_nitro(found[0], canon, name) if found else None

    def list_vservers(self, kind: str) -> list[Vserver]:
        """Every vserver of one kind in the partition, in one request (``GET lbvserver`` ...)."""
        canon = vserver_kind(kind)
        found = self._get(VSERVER_KINDS[canon], missing_ok=True)
        return [Vserver.from_nitro(r, canon) for r in found if r.get("name")]

    def sni_enabled_vservers(self) -> set[str]:
        """Names of the SSL vservers with SNI enabled, in one request (``GET sslvserver``)."""
        found = self._get("sslvserver", extra={"attrs": "vservername,snienable"}, missing_ok=True)
        return {
            str(r.get("vservername")) for r in found if r.get("vservername") and to_bool(r.get("snienable"))
        }

    def ssl_vserver_sni_enabled(self, name: str) -> bool:
        found = self._get("sslvserver", name)
        return bool(found) and to_bool(found[0].get("snienable"))

    def vserver_bindings(self, name: str) -> list[Binding]:
        return [Binding.from_vserver_row(r, name) for r in self._get("sslvserver_sslcertkey_binding", name)]

    def bind_certkey(self, vserver: str, certkey: str, *, sni: bool = False) -> None:
        body: dict[str, Any] = {"vservername": vserver, "certkeyname": certkey}
        if sni:
            body["snicert"] = True
        self.session.call(
            "PUT", "sslvserver_sslcertkey_binding", payload={"sslvserver_sslcertkey_binding": body}
        )
