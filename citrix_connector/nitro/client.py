"""NITRO REST client: sessions, error decoding and typed wrappers for the calls the agent needs.

Mechanism only: this module knows how to talk to a NetScaler, not what to deploy (see ``deploy.py``).

* Session login (``NITRO_AUTH_TOKEN``), one re-login on 401/444|1027 (the partition is switched again).
* Every failure becomes a :class:`NitroError` carrying NITRO's ``errorcode``/``message``, the HTTP status
  and the endpoint; transport failures (refused, timeout, TLS) become a :class:`NitroError` with the
  transport's one-line message. Bad credentials give :class:`NitroAuthError` (host and user, never the
  password).
* Retries come from :class:`~citrix_connector.http.HttpClient` (connection errors, 429/503, and NITRO 293
  "operation already in progress" on ``save``); there is no second retry loop here.
* Bodies are serialised here and traced at DEBUG with secrets and ``filecontent`` redacted.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import json
import logging
import re
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from types import TracebackType
from typing import Any, Literal
from urllib.parse import quote, urlsplit

import requests

from ..crypto import Subject, normalize_serial
from ..errors import CryptoError, NitroAuthError, NitroError
from ..http import REDACTED, SECRET_KEYS, HttpClient, RetryPolicy, TransportError

__all__ = [
    "Binding",
    "CertKey",
    "HaInfo",
    "NitroClient",
    "Vserver",
    "VSERVER_KINDS",
    "SSL_DIR",
]

log = logging.getLogger("citrixagent.nitro")

API = "/nitro/v1/config"
SSL_DIR = "/nsconfig/ssl"

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

#: 401 errorcodes that mean "log in again" (session expired/killed, not logged in, login required)
_RELOGIN_CODES = frozenset({444, 1027, 352})
#: errorcodes that mean "no such object" on GET
_MISSING_CODES = frozenset({258, 461, 1540, 3441})
_SAVE_IN_PROGRESS = 293
_TRACE_SECRET_KEYS = SECRET_KEYS | {"filecontent", "x-nitro-pass"}


# ------------------------------------------------------------------------------------------ results


@dataclass(frozen=True)
class CertKey:
    """One ``sslcertkey`` object as read from the appliance (lenient parsing)."""

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
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)

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
            not_after=_parse_nitro_time(obj.get("clientcertnotafter")),
            status=str(obj.get("status") or ""),
            days_to_expiration=_to_int(obj.get("daystoexpiration")),
            sandns=tuple(_split_names(obj.get("sandns"))),
            raw=dict(obj),
        )


@dataclass(frozen=True)
class Binding:
    """One certificate binding of an SSL vserver."""

    vserver: str
    certkey: str
    sni: bool = False
    ca: bool = False


@dataclass(frozen=True)
class Vserver:
    """An lb/cs/vpn/authentication virtual server."""

    name: str
    kind: str  # lb | cs | vpn | authentication
    servicetype: str
    curstate: str
    state: str
    value: str = ""

    @property
    def is_ssl(self) -> bool:
        """True when the service type terminates TLS (SSL_BRIDGE does not)."""
        st = self.servicetype.upper()
        return st not in ("", "SSL_BRIDGE") and (st.startswith("SSL") or st.startswith("DTLS"))


HaState = Literal["Primary", "Secondary", "Standalone"]


@dataclass(frozen=True)
class HaInfo:
    """HA role of the node we are connected to."""

    state: HaState
    peer_address: str | None = None
    raw_state: str = ""  # the appliance's own word for the local node's state


# ------------------------------------------------------------------------------------------ helpers


def _to_int(value: Any) -> int | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        return int(str(value).strip())
    except ValueError:
        return None


def _to_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if value is None:
        return False
    return str(value).strip().lower() in ("true", "yes", "1", "enabled", "on")


def _parse_nitro_time(value: Any) -> datetime | None:
    """``"May 17 07:21:16 2021 GMT"`` (day may be space-padded) -> aware UTC datetime."""
    if not value:
        return None
    text = re.sub(r"\s+", " ", str(value).strip())
    text = re.sub(r" (GMT|UTC)$", "", text)
    for fmt in ("%b %d %H:%M:%S %Y", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M:%S"):
        try:
            return datetime.strptime(text, fmt).replace(tzinfo=timezone.utc)
        except ValueError:
            continue
    return None


def _split_names(value: Any) -> list[str]:
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


def _arg_value(value: str | bool | int) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return quote(str(value), safe="")


def encode_args(args: Mapping[str, str | bool | int]) -> str:
    """``k1:v1,k2:v2`` with URL-encoded values and lower-case booleans (NITRO ``args``/``filter``)."""
    return ",".join(f"{k}:{_arg_value(v)}" for k, v in args.items())


def encode_name(name: str) -> str:
    """An object name for a URL path, encoded twice like the Citrix SDKs (``a b`` -> ``a%2520b``)."""
    return quote(quote(name, safe=""), safe="")


def _trace_redact(obj: Any) -> Any:
    if isinstance(obj, Mapping):
        secret = _TRACE_SECRET_KEYS
        return {k: (REDACTED if str(k).lower() in secret else _trace_redact(v)) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_trace_redact(v) for v in obj]
    if isinstance(obj, str) and "PRIVATE KEY" in obj:
        return REDACTED
    return obj


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


# ------------------------------------------------------------------------------------------ client


class NitroClient:
    """A NITRO session to one NetScaler (one node, optionally one admin partition).

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
    ) -> None:
        base = url.strip().rstrip("/")
        if "://" not in base:
            base = f"https://{base}"
        self.url = base
        self.host = urlsplit(base).netloc or base
        self.username = username
        self._password = password
        self.partition = partition
        self._http = HttpClient(
            base, verify=verify, timeout=timeout, retry=retry, name="nitro", sleep=sleep, proxy=proxy
        )  # proxy: None = the environment's (NO_PROXY applies), "none", or a proxy URL
        self._ssl_dir = ssl_dir
        self._token: str | None = None
        self._relogging = False  # a re-login (and its partition switch) never triggers another
        self._current_partition: str | None = None

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

    # -- context manager ---------------------------------------------------------------------------

    def __enter__(self) -> NitroClient:
        try:
            if not self.logged_in:
                self.login()
            if self.partition and self._current_partition != self.partition:
                self.switch_partition(self.partition)
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        """Log out (errors ignored) and release the HTTP session."""
        try:
            self.logout()
        finally:
            self._http.close()

    @property
    def logged_in(self) -> bool:
        return self._token is not None

    # -- core --------------------------------------------------------------------------------------

    def _endpoint(
        self,
        resource: str,
        name: str | None = None,
        *,
        action: str | None = None,
        args: Mapping[str, str | bool | int] | None = None,
        filters: Mapping[str, str | bool | int] | None = None,
        extra: Mapping[str, str] | None = None,
    ) -> str:
        path = f"{API}/{resource}"
        if name is not None:
            path += f"/{encode_name(name)}"
        query: list[str] = []
        if action:
            query.append(f"action={quote(action, safe='')}")
        if args:
            query.append(f"args={encode_args(args)}")
        if filters:
            query.append(f"filter={encode_args(filters)}")
        for key, value in (extra or {}).items():
            query.append(f"{key}={quote(value, safe=',')}")
        return path + ("?" + "&".join(query) if query else "")

    def _error(
        self,
        method: str,
        endpoint: str,
        response: requests.Response | None,
        body: Any,
        *,
        cls: type[NitroError] = NitroError,
        what: str = "",
    ) -> NitroError:
        status = response.status_code if response is not None else None
        code: int | None = None
        message = ""
        if isinstance(body, Mapping) and body:
            code = _to_int(body.get("errorcode"))
            message = str(body.get("message") or "").strip()
        elif response is not None and response.text.strip() and body is None:
            message = "unexpected non-JSON answer: " + " ".join(response.text.split())[:200]
        elif response is not None and response.text.strip():
            message = "unexpected answer: " + " ".join(response.text.split())[:200]
        else:
            message = "empty answer"
        detail = f"errorcode {code}: {message}" if code is not None else (message or "no error message")
        head = what or f"{method} {endpoint.split('?')[0]}"
        text = f"NetScaler {self.host}: {head} failed (HTTP {status}, {detail})"
        return cls(text, errorcode=code, nitro_message=message, status=status, endpoint=endpoint)

    @staticmethod
    def _decode(response: requests.Response) -> tuple[Any, bool]:
        """(parsed body or None, ok-to-parse). Empty body -> ({}, True)."""
        text = response.content
        if not text or not text.strip():
            return {}, True
        try:
            return json.loads(text.decode("utf-8")), True
        except (UnicodeDecodeError, json.JSONDecodeError):
            return None, False

    def _send(
        self,
        method: str,
        endpoint: str,
        payload: Any,
        *,
        auth: bool,
        is_transient: Callable[[requests.Response], bool] | None = None,
    ) -> requests.Response:
        headers = {"Accept": "application/json"}
        data: bytes | None = None
        if payload is not None:
            headers["Content-Type"] = "application/json"
            data = json.dumps(payload).encode("utf-8")
        if auth and self._token:
            headers["Cookie"] = f"NITRO_AUTH_TOKEN={self._token}"
        if log.isEnabledFor(logging.DEBUG):
            log.debug(
                "nitro %s > %s %s body=%s",
                self.host,
                method,
                endpoint,
                json.dumps(_trace_redact(payload)) if payload is not None else "",
            )
        try:
            response = self._http.request(
                method,
                endpoint,
                headers=headers,
                data=data,
                idempotent=method == "GET",
                is_transient=is_transient,
            )
        except TransportError as exc:
            raise NitroError(
                f"NetScaler {self.host}: {exc}", endpoint=endpoint, nitro_message=str(exc)
            ) from exc
        # we send the token ourselves; never let the cookie jar add a second one
        self._http.session.cookies.clear()
        if log.isEnabledFor(logging.DEBUG):
            body, ok = self._decode(response)
            shown = json.dumps(_trace_redact(body))[:2000] if ok else "<non-JSON>"
            log.debug("nitro %s < %d %s", self.host, response.status_code, shown)
        return response

    def call(
        self,
        method: str,
        resource: str,
        name: str | None = None,
        *,
        action: str | None = None,
        args: Mapping[str, str | bool | int] | None = None,
        filters: Mapping[str, str | bool | int] | None = None,
        extra: Mapping[str, str] | None = None,
        payload: Any = None,
        missing_ok: bool = False,
        is_transient: Callable[[requests.Response], bool] | None = None,
    ) -> dict[str, Any] | None:
        """One NITRO call; the decoded body (``{}`` when empty), or None when missing and ``missing_ok``.

        Re-logs in once when the session expired. Raises :class:`NitroError` for everything else.
        """
        endpoint = self._endpoint(resource, name, action=action, args=args, filters=filters, extra=extra)
        relogged = False
        while True:
            response = self._send(method, endpoint, payload, auth=True, is_transient=is_transient)
            body, ok = self._decode(response)
            code = _to_int(body.get("errorcode")) if ok and isinstance(body, dict) else None
            if (
                response.status_code == 401
                and code in _RELOGIN_CODES
                and not relogged
                and not self._relogging
                and self._token is not None
            ):
                log.info("NetScaler %s: session expired (errorcode %s); logging in again", self.host, code)
                relogged = True
                self._token = None
                self._relogin()
                continue
            break
        if not ok or not isinstance(body, dict):
            raise self._error(method, endpoint, response, body)
        failed = response.status_code >= 400 or (
            code not in (None, 0) and str(body.get("severity", "ERROR")).upper() != "WARNING"
        )
        if failed:
            if missing_ok and (response.status_code == 404 or code in _MISSING_CODES):
                return None
            cls = NitroAuthError if response.status_code == 401 else NitroError
            raise self._error(method, endpoint, response, body, cls=cls)
        if code not in (None, 0) or response.status_code == 209:
            warning = response.headers.get("X-NITRO-WARNING") or body.get("message") or ""
            log.warning("NetScaler %s: %s %s: warning %s %s", self.host, method, endpoint, code, warning)
        return body

    def _records(self, body: Mapping[str, Any] | None, resource: str) -> list[dict[str, Any]]:
        if not body:
            return []
        value = body.get(resource)
        if value is None:
            return []
        if isinstance(value, dict):
            return [value]
        if isinstance(value, list):
            return [v for v in value if isinstance(v, dict)]
        return []

    # -- session -----------------------------------------------------------------------------------

    def login(self) -> None:
        """Open a session (``POST login``); :class:`NitroAuthError` when the credentials are refused."""
        endpoint = f"{API}/login"
        payload = {"login": {"username": self.username, "password": self._password}}
        response = self._send("POST", endpoint, payload, auth=False)
        body, ok = self._decode(response)
        if response.status_code in (401, 403):
            code = _to_int(body.get("errorcode")) if ok and isinstance(body, dict) else None
            message = str(body.get("message") or "") if ok and isinstance(body, dict) else ""
            detail = f"errorcode {code}: {message}" if code is not None else f"HTTP {response.status_code}"
            raise NitroAuthError(
                f"NetScaler {self.host} refused the login for user {self.username!r} ({detail})",
                errorcode=code,
                nitro_message=message,
                status=response.status_code,
                endpoint=endpoint,
            )
        if not ok or not isinstance(body, dict) or response.status_code >= 400:
            raise self._error("POST", endpoint, response, body, what=f"login as {self.username!r}")
        code = _to_int(body.get("errorcode"))
        token = str(body.get("sessionid") or "") or response.cookies.get("NITRO_AUTH_TOKEN") or ""
        if code not in (None, 0) and str(body.get("severity", "ERROR")).upper() != "WARNING":
            raise self._error(
                "POST", endpoint, response, body, cls=NitroAuthError, what=f"login as {self.username!r}"
            )
        if not token:
            raise NitroAuthError(
                f"NetScaler {self.host}: login as {self.username!r} returned no session id",
                errorcode=code,
                status=response.status_code,
                endpoint=endpoint,
            )
        self._token = token
        self._current_partition = None
        log.debug("NetScaler %s: logged in as %s", self.host, self.username)

    def _relogin(self) -> None:
        wanted = self._current_partition
        self._relogging = True
        try:
            self.login()
            if wanted and wanted != "default":
                self.switch_partition(wanted)
        except NitroError as exc:
            raise NitroAuthError(
                f"NetScaler {self.host}: session expired and logging in again failed: {exc}",
                errorcode=exc.errorcode,
                nitro_message=exc.nitro_message,
                status=exc.status,
                endpoint=exc.endpoint,
            ) from exc
        finally:
            self._relogging = False

    def logout(self) -> None:
        """Close the session; errors are logged and ignored."""
        if self._token is None:
            return
        try:
            response = self._send("POST", f"{API}/logout", {"logout": {}}, auth=True)
            if response.status_code >= 400:
                log.debug("NetScaler %s: logout answered HTTP %d", self.host, response.status_code)
        except NitroError as exc:
            log.debug("NetScaler %s: logout failed: %s", self.host, exc)
        finally:
            self._token = None
            self._current_partition = None

    def switch_partition(self, name: str) -> None:
        """Switch this session into an admin partition (``default`` goes back)."""
        self.call("POST", "nspartition", action="Switch", payload={"nspartition": {"partitionname": name}})
        self._current_partition = name

    # -- system ------------------------------------------------------------------------------------

    def version(self) -> str:
        """The firmware version string (``NetScaler NS13.1: Build 50.23.nc, ...``)."""
        records = self._records(self.call("GET", "nsversion"), "nsversion")
        return str(records[0].get("version") or "") if records else ""

    def ha_info(self) -> HaInfo:
        """Role of the node we talk to: Primary/Secondary in a pair, Standalone without a peer."""
        nodes = self._records(self.call("GET", "hanode"), "hanode")
        local: dict[str, Any] | None = None
        peer: dict[str, Any] | None = None
        for node in nodes:
            if _to_int(node.get("id")) == 0:
                local = node
            elif peer is None:
                peer = node
        raw = str((local or {}).get("state") or "")
        if peer is None and raw.strip().lower() != "secondary":
            # a node that calls itself Secondary is never standalone, listed peer or not
            return HaInfo("Standalone", None, raw)
        peer_address = str((peer or {}).get("ipaddress") or "") or None
        state: HaState = "Primary" if raw.strip().lower() == "primary" else "Secondary"
        return HaInfo(state, peer_address, raw)

    def save_config(self) -> None:
        """``save ns config``; NITRO 293 (a save already running) is retried with backoff, bounded."""

        def busy(response: requests.Response) -> bool:
            body, ok = self._decode(response)
            return ok and isinstance(body, dict) and _to_int(body.get("errorcode")) == _SAVE_IN_PROGRESS

        self.call("POST", "nsconfig", action="save", payload={"nsconfig": {}}, is_transient=busy)

    def config_changed(self) -> bool:
        """True when the running config has unsaved changes (absent flag counts as unsaved)."""
        records = self._records(self.call("GET", "nsconfig"), "nsconfig")
        if not records or "configchanged" not in records[0]:
            return True
        return _to_bool(records[0]["configchanged"])

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
        self.call("POST", "systemfile", payload=payload)
        return f"{location.rstrip('/')}/{name}"

    def download_file(self, name: str, location: str | None = None) -> bytes:
        """The bytes of ``location/name`` (default :attr:`ssl_dir`); NitroError when missing."""
        location = location or self.ssl_dir
        body = self.call("GET", "systemfile", args={"filename": name, "filelocation": location})
        for rec in self._records(body, "systemfile"):
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
        self.call("DELETE", "systemfile", name, args={"filelocation": location})

    def list_files(self, location: str | None = None) -> list[str]:
        """Names of the regular files in ``location`` (default :attr:`ssl_dir`; directories left out)."""
        location = location or self.ssl_dir
        body = self.call("GET", "systemfile", args={"filelocation": location})
        out: list[str] = []
        for rec in self._records(body, "systemfile"):
            mode = rec.get("filemode") or []
            modes = [str(m).upper() for m in (mode if isinstance(mode, list) else [mode])]
            if "DIRECTORY" in modes or not rec.get("filename"):
                continue
            out.append(str(rec["filename"]))
        return out

    # -- keys and CSRs -----------------------------------------------------------------------------

    def create_rsa_key(self, keyfile: str, bits: int) -> None:
        payload = {"sslrsakey": {"keyfile": keyfile, "bits": bits, "exponent": "F4", "keyform": "PEM"}}
        self.call("POST", "sslrsakey", action="create", payload=payload)

    def create_ecdsa_key(self, keyfile: str, curve: Literal["P-256", "P-384"]) -> None:
        nitro_curve = {"P-256": "P_256", "P-384": "P_384"}.get(curve)
        if nitro_curve is None:
            raise ValueError(f"unsupported ECDSA curve {curve!r} (P-256 or P-384)")
        payload = {"sslecdsakey": {"keyfile": keyfile, "curve": nitro_curve, "keyform": "PEM"}}
        self.call("POST", "sslecdsakey", action="create", payload=payload)

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
        self.call("POST", "sslcertreq", action="create", payload={"sslcertreq": body})

    # -- certkeys ----------------------------------------------------------------------------------

    def get_certkey(self, name: str) -> CertKey | None:
        body = self.call("GET", "sslcertkey", name, missing_ok=True)
        records = self._records(body, "sslcertkey")
        return CertKey.from_nitro(records[0]) if records else None

    def list_certkeys(self) -> list[CertKey]:
        return [CertKey.from_nitro(r) for r in self._records(self.call("GET", "sslcertkey"), "sslcertkey")]

    def find_certkeys_by_serial(self, serial: str | int) -> list[CertKey]:
        """Certkeys whose certificate has this serial, whatever their names.

        The appliance prints serials in upper-case hex and may keep leading zeros, and ``filter`` is an
        exact match: the normalised form is tried first, then the zero-padded forms.
        """
        wanted = normalize_serial(serial)
        candidates = [wanted]
        even = wanted if len(wanted) % 2 == 0 else "0" + wanted
        candidates.append(even)
        if int(even[:2], 16) & 0x80:
            candidates.append("00" + even)
        seen: set[str] = set()
        for candidate in candidates:
            if candidate in seen:
                continue
            seen.add(candidate)
            body = self.call("GET", "sslcertkey", filters={"serial": candidate}, missing_ok=True)
            found = [
                ck
                for ck in (CertKey.from_nitro(r) for r in self._records(body, "sslcertkey"))
                if ck.serial == wanted
            ]
            if found:
                return found
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
        self.call("POST", "sslcertkey", payload={"sslcertkey": body})

    def update_certkey(self, name: str, cert: str, key: str | None, *, no_domain_check: bool) -> None:
        """Replace the certificate (and key) behind ``name`` in place; bindings survive."""
        body: dict[str, Any] = {"certkey": name, "cert": cert, "inform": "PEM"}
        if key:
            body["key"] = key
        if no_domain_check:
            body["nodomaincheck"] = True
        self.call("POST", "sslcertkey", action="update", payload={"sslcertkey": body})

    def link_certkey(self, name: str, ca_name: str) -> None:
        payload = {"sslcertkey": {"certkey": name, "linkcertkeyname": ca_name}}
        self.call("POST", "sslcertkey", action="link", payload=payload)

    def unlink_certkey(self, name: str) -> None:
        self.call("POST", "sslcertkey", action="unlink", payload={"sslcertkey": {"certkey": name}})

    def delete_certkey(self, name: str) -> None:
        self.call("DELETE", "sslcertkey", name)

    def certkey_vservers(self, name: str) -> list[str]:
        """Names of the vservers this certkey is bound to as a server or SNI certificate (read from
        ``servername``; CA bindings for client authentication are left out)."""
        body = self.call("GET", "sslcertkey_sslvserver_binding", name)
        out: list[str] = []
        for rec in self._records(body, "sslcertkey_sslvserver_binding"):
            if str(rec.get("ca", "")).lower() == "true":  # a CA binding (client auth) serves nothing
                continue
            vs = str(rec.get("servername") or rec.get("vservername") or "")
            if vs and vs not in out:
                out.append(vs)
        return out

    # -- vservers ----------------------------------------------------------------------------------

    @staticmethod
    def vserver_kind(kind: str) -> str:
        """Canonical kind (``lb|cs|vpn|authentication``) for a kind or collection name."""
        canon = _KIND_ALIASES.get(kind.strip().lower())
        if canon is None:
            raise ValueError(f"unknown vserver kind {kind!r} (lb, cs, vpn or authentication)")
        return canon

    def get_vserver(self, kind: str, name: str) -> Vserver | None:
        canon = self.vserver_kind(kind)
        collection = VSERVER_KINDS[canon]
        records = self._records(self.call("GET", collection, name, missing_ok=True), collection)
        if not records:
            return None
        rec = records[0]
        return Vserver(
            name=str(rec.get("name") or name),
            kind=canon,
            servicetype=str(rec.get("servicetype") or ""),
            curstate=str(rec.get("curstate") or ""),
            state=str(rec.get("state") or ""),
            value=str(rec.get("value") or ""),
        )

    def ssl_vserver_sni_enabled(self, name: str) -> bool:
        records = self._records(self.call("GET", "sslvserver", name), "sslvserver")
        return bool(records) and _to_bool(records[0].get("snienable"))

    def vserver_bindings(self, name: str) -> list[Binding]:
        body = self.call("GET", "sslvserver_sslcertkey_binding", name)
        return [
            Binding(
                vserver=str(rec.get("vservername") or name),
                certkey=str(rec.get("certkeyname") or ""),
                sni=_to_bool(rec.get("snicert")),
                ca=_to_bool(rec.get("ca")),
            )
            for rec in self._records(body, "sslvserver_sslcertkey_binding")
        ]

    def bind_certkey(self, vserver: str, certkey: str, *, sni: bool = False) -> None:
        body: dict[str, Any] = {"vservername": vserver, "certkeyname": certkey}
        if sni:
            body["snicert"] = True
        self.call("PUT", "sslvserver_sslcertkey_binding", payload={"sslvserver_sslcertkey_binding": body})

    def unbind_certkey(self, vserver: str, certkey: str, *, sni: bool = False, ca: bool = False) -> None:
        args: dict[str, str | bool | int] = {"certkeyname": certkey}
        if sni:
            args["snicert"] = True
        if ca:
            args["ca"] = True
        self.call("DELETE", "sslvserver_sslcertkey_binding", vserver, args=args)
