"""A NITRO session to one NetScaler node: requests, error decoding, login, re-login and partition.

Mechanism only; the typed operations live in :mod:`.client`.

* Session login (``NITRO_AUTH_TOKEN``), one re-login on 401/444|1027|352 (the partition is switched
  again). With ``lazy_login`` (default partition only) reads carry the credentials in the
  ``X-NITRO-USER``/``X-NITRO-PASS`` headers and no session exists until the first write logs in
  (nitro-api.md §1): a read-only pass (``status``, an idle ``run``) makes no login and no logout.
* Every failure becomes a :class:`NitroError` carrying NITRO's ``errorcode``/``message``, the HTTP status
  and the endpoint; transport failures (refused, timeout, TLS) become a :class:`NitroError` with the
  transport's one-line message. Bad credentials give :class:`NitroAuthError` (host and user, never the
  password). A bulk request's partial failure (HTTP 207, errorcode 1243) is an error too, listing the
  failed items when the answer has them (``failed_items``; their code when they share one).
* Retries come from :class:`~citrix_connector.http.HttpClient` (connection errors, 429/503, and what a
  caller marks transient, e.g. NITRO 293 on ``save``); there is no second retry loop here.
* Bodies are serialised here and traced at DEBUG with secrets and ``filecontent`` redacted.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import requests

from ..errors import BulkItemError, NitroAuthError, NitroError
from ..http import REDACTED, SECRET_KEYS, HttpClient, RetryPolicy, TransportError
from . import codes
from .models import to_int

__all__ = ["API", "SSL_DIR", "NitroSession", "encode_args", "encode_name", "records"]

log = logging.getLogger("citrixagent.nitro")

API = "/nitro/v1/config"
SSL_DIR = "/nsconfig/ssl"
_TRACE_SECRET_KEYS = SECRET_KEYS | {"filecontent", "x-nitro-pass"}

Args = Mapping[str, str | bool | int]


def _arg_value(value: str | bool | int) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return quote(str(value), safe="")


def encode_args(args: Args) -> str:
    """``k1:v1,k2:v2`` with URL-encoded values and lower-case booleans (NITRO ``args``/``filter``)."""
    return ",".join(f"{k}:{_arg_value(v)}" for k, v in args.items())


def encode_name(name: str) -> str:
    """An object name for a URL path, encoded twice like the Citrix SDKs (``a b`` -> ``a%2520b``)."""
    return quote(quote(name, safe=""), safe="")


def records(body: Mapping[str, Any] | None, resource: str) -> list[dict[str, Any]]:
    """The objects under ``resource`` in a NITRO answer (one object or a list; none when absent)."""
    if not body:
        return []
    value = body.get(resource)
    if isinstance(value, dict):
        return [value]
    if isinstance(value, list):
        return [v for v in value if isinstance(v, dict)]
    return []


#: Items of a list the debug trace shows (it keeps 2,000 characters anyway): a bulk read of
#: thousands of certkeys is not copied and redacted whole to log its first lines.
_TRACE_ITEMS = 5


def _trace_redact(obj: Any, items: int | None = None) -> Any:
    if isinstance(obj, Mapping):
        secret = _TRACE_SECRET_KEYS
        return {
            k: (REDACTED if str(k).lower() in secret else _trace_redact(v, items)) for k, v in obj.items()
        }
    if isinstance(obj, list):
        if items is not None and len(obj) > items:
            return [*(_trace_redact(v, items) for v in obj[:items]), f"... {len(obj) - items} more"]
        return [_trace_redact(v, items) for v in obj]
    if isinstance(obj, str) and "PRIVATE KEY" in obj:
        return REDACTED
    return obj


def _failed_items(body: Mapping[str, Any]) -> tuple[BulkItemError, ...]:
    """The failed items of a bulk answer (the envelopes under ``response``, one per item tried, in
    the order sent); none when the answer does not list them."""
    items = body.get("response")
    if not isinstance(items, list):
        return ()
    failed = []
    for index, item in enumerate(items):
        code = to_int(item.get("errorcode")) if isinstance(item, Mapping) else None
        if code is not None and code != 0:
            failed.append(BulkItemError(index, code, str(item.get("message") or "").strip()))
    return tuple(failed)


def _decode(response: requests.Response) -> tuple[Any, bool]:
    """(parsed body or None, ok-to-parse). Empty body -> ({}, True). Parsed once per response (the
    debug trace and the caller both ask)."""
    known: tuple[Any, bool] | None = getattr(response, "_citrixagent_decoded", None)
    if known is not None:
        return known
    text = response.content
    decoded: tuple[Any, bool]
    if not text or not text.strip():
        decoded = {}, True
    else:
        try:
            decoded = json.loads(text.decode("utf-8")), True
        except (UnicodeDecodeError, json.JSONDecodeError):
            decoded = None, False
    response._citrixagent_decoded = decoded  # type: ignore[attr-defined]
    return decoded


def _errorcode(body: Any, ok: bool) -> int | None:
    return to_int(body.get("errorcode")) if ok and isinstance(body, dict) else None


def _is_error(body: Mapping[str, Any]) -> bool:
    code = to_int(body.get("errorcode"))
    return code not in (None, 0) and str(body.get("severity", "ERROR")).upper() != "WARNING"


def _header_safe(value: str) -> bool:
    """Whether ``value`` can travel as an HTTP header value unchanged (printable ASCII, no space at
    either end); credentials that cannot log in with a session instead."""
    return value.isascii() and value.isprintable() and value == value.strip()


def busy_saving(response: requests.Response) -> bool:
    """``is_transient`` for ``save``: NITRO 293, a save already running."""
    body, ok = _decode(response)
    return _errorcode(body, ok) == codes.OPERATION_IN_PROGRESS


class NitroSession:
    """One login session to one NetScaler node (optionally switched into an admin partition)."""

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
        proxy: str | None = None,
        lazy_login: bool = False,
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
        self._token: str | None = None
        self._relogging = False  # a re-login (and its partition switch) never triggers another
        self.current_partition: str | None = None
        # reads authenticate per request until the first write opens a session (a partition is
        # session state: a session from the start there)
        self.lazy_login = lazy_login and not partition and _header_safe(username) and _header_safe(password)

    def __repr__(self) -> str:
        return f"NitroSession({self.url!r}, username={self.username!r}, partition={self.partition!r})"

    @property
    def logged_in(self) -> bool:
        return self._token is not None

    def open(self) -> None:
        """Log in (unless logged in, or reads go without a session: ``lazy_login``) and switch to
        the configured partition (unless there)."""
        if not self.logged_in and not self.lazy_login:
            self.login()
        if self.partition and self.current_partition != self.partition:
            self.switch_partition(self.partition)

    def close(self) -> None:
        """Log out (errors ignored) and release the HTTP session."""
        try:
            self.logout()
        finally:
            self._http.close()

    # -- requests ----------------------------------------------------------------------------------

    @staticmethod
    def endpoint(
        resource: str,
        name: str | None = None,
        *,
        action: str | None = None,
        args: Args | None = None,
        filters: Args | None = None,
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

    def error(
        self,
        method: str,
        endpoint: str,
        response: requests.Response | None,
        body: Any,
        *,
        cls: type[NitroError] = NitroError,
        what: str = "",
    ) -> NitroError:
        """A :class:`NitroError` for a failed answer: host, step, HTTP status, NITRO code and message."""
        status = response.status_code if response is not None else None
        code: int | None = None
        failed: tuple[BulkItemError, ...] = ()
        if isinstance(body, Mapping) and body:
            code = to_int(body.get("errorcode"))
            message = str(body.get("message") or "").strip()
            failed = _failed_items(body) if code == codes.BULK_FAILED else ()
            if failed:  # a bulk request: the items that failed say what went wrong
                shared = {item.errorcode for item in failed}
                code = shared.pop() if len(shared) == 1 else code
                items = "; ".join(f"item {item.position + 1}: {item.message}" for item in failed)
                message = f"{message}: {items}"
        elif response is not None and response.text.strip() and body is None:
            message = "unexpected non-JSON answer: " + " ".join(response.text.split())[:200]
        elif response is not None and response.text.strip():
            message = "unexpected answer: " + " ".join(response.text.split())[:200]
        else:
            message = "empty answer"
        detail = f"errorcode {code}: {message}" if code is not None else (message or "no error message")
        head = what or f"{method} {endpoint.split('?')[0]}"
        text = f"NetScaler {self.host}: {head} failed (HTTP {status}, {detail})"
        return cls(
            text, errorcode=code, nitro_message=message, status=status, endpoint=endpoint, failed_items=failed
        )

    def send(
        self,
        method: str,
        endpoint: str,
        payload: Any,
        *,
        auth: bool,
        is_transient: Callable[[requests.Response], bool] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> requests.Response:
        """One HTTP exchange (retried by the transport where that is safe); no error decoding.
        ``headers``: the request's own (e.g. ``X-NITRO-ONERROR``), added to the standard ones."""
        headers = {**(headers or {}), "Accept": "application/json"}
        data: bytes | None = None
        if payload is not None:
            headers["Content-Type"] = "application/json"
            data = json.dumps(payload).encode("utf-8")
        if auth and self._token:
            headers["Cookie"] = f"NITRO_AUTH_TOKEN={self._token}"
        credentials = auth and not self._token and self.lazy_login
        if credentials:  # no session (yet): the credentials on this request
            headers["X-NITRO-USER"] = self.username
            headers["X-NITRO-PASS"] = self._password
        if log.isEnabledFor(logging.DEBUG):
            shown = json.dumps(_trace_redact(payload)) if payload is not None else ""
            log.debug("nitro %s > %s %s body=%s", self.host, method, endpoint, shown)
        try:
            response = self._http.request(
                method,
                endpoint,
                headers=headers,
                data=data,
                idempotent=method == "GET",
                is_transient=is_transient,
                # a redirect would carry the credentials to another host: answered as an error
                allow_redirects=not credentials,
            )
        except TransportError as exc:
            raise NitroError(
                f"NetScaler {self.host}: {exc}", endpoint=endpoint, nitro_message=str(exc)
            ) from exc
        # we send the token ourselves; never let the cookie jar add a second one
        self._http.session.cookies.clear()
        if log.isEnabledFor(logging.DEBUG):
            body, ok = _decode(response)
            shown = json.dumps(_trace_redact(body, _TRACE_ITEMS))[:2000] if ok else "<non-JSON>"
            log.debug("nitro %s < %d %s", self.host, response.status_code, shown)
        return response

    def call(
        self,
        method: str,
        resource: str,
        name: str | None = None,
        *,
        action: str | None = None,
        args: Args | None = None,
        filters: Args | None = None,
        extra: Mapping[str, str] | None = None,
        payload: Any = None,
        missing_ok: bool = False,
        is_transient: Callable[[requests.Response], bool] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> dict[str, Any] | None:
        """One NITRO call; the decoded body (``{}`` when empty), or None when missing and ``missing_ok``.

        ``extra`` adds query parameters, ``headers`` request headers. Re-logs in once when the
        session expired. Raises :class:`NitroError` for everything else, a bulk request's partial
        failure (HTTP 207) included.
        """
        endpoint = self.endpoint(resource, name, action=action, args=args, filters=filters, extra=extra)
        if self.lazy_login and self._token is None and method != "GET":
            self.login()  # the first write: from here on one session, logged out at close()
        response = self.send(method, endpoint, payload, auth=True, is_transient=is_transient, headers=headers)
        body, ok = _decode(response)
        if self._token is None and self.lazy_login and response.status_code == 401:
            if _errorcode(body, ok) not in codes.RELOGIN:
                raise self._refused(endpoint, response, body, ok)
            # this appliance wants a session for reads too: one login, kept for the rest
            log.info("NetScaler %s: reads need a session here; logging in", self.host)
            self.login()
            response = self.send(
                method, endpoint, payload, auth=True, is_transient=is_transient, headers=headers
            )
            body, ok = _decode(response)
        if self._session_lost(response, _errorcode(body, ok)):
            self._relogin()
            response = self.send(
                method, endpoint, payload, auth=True, is_transient=is_transient, headers=headers
            )
            body, ok = _decode(response)
        if response.is_redirect:  # never followed with credentials on board: NITRO does not redirect
            where = response.headers.get("Location", "?")
            raise NitroError(
                f"NetScaler {self.host}: {method} {endpoint.split('?')[0]} answered a redirect "
                f"(HTTP {response.status_code} to {where}), not followed: point the appliance URL at "
                "the NITRO address itself",
                status=response.status_code,
                endpoint=endpoint,
            )
        if not ok or not isinstance(body, dict):
            raise self.error(method, endpoint, response, body)
        code = to_int(body.get("errorcode"))
        if response.status_code >= 400 or response.status_code == 207 or _is_error(body):
            if missing_ok and (response.status_code == 404 or code in codes.MISSING):
                return None
            cls = NitroAuthError if response.status_code == 401 else NitroError
            raise self.error(method, endpoint, response, body, cls=cls)
        if code not in (None, 0) or response.status_code == 209:
            warning = response.headers.get("X-NITRO-WARNING") or body.get("message") or ""
            log.warning("NetScaler %s: %s %s: warning %s %s", self.host, method, endpoint, code, warning)
        return body

    def _session_lost(self, response: requests.Response, code: int | None) -> bool:
        lost = response.status_code == 401 and code in codes.RELOGIN
        if not lost or self._relogging or self._token is None:
            return False
        log.info("NetScaler %s: session expired (errorcode %s); logging in again", self.host, code)
        self._token = None
        return True

    # -- session -----------------------------------------------------------------------------------

    def login(self) -> None:
        """Open a session (``POST login``); :class:`NitroAuthError` when the credentials are refused."""
        endpoint = f"{API}/login"
        payload = {"login": {"username": self.username, "password": self._password}}
        response = self.send("POST", endpoint, payload, auth=False)
        body, ok = _decode(response)
        what = f"login as {self.username!r}"
        if response.status_code in (401, 403):
            raise self._refused(endpoint, response, body, ok)
        if not ok or not isinstance(body, dict) or response.status_code >= 400:
            raise self.error("POST", endpoint, response, body, what=what)
        if _is_error(body):
            raise self.error("POST", endpoint, response, body, cls=NitroAuthError, what=what)
        token = str(body.get("sessionid") or "") or response.cookies.get("NITRO_AUTH_TOKEN") or ""
        if not token:
            raise NitroAuthError(
                f"NetScaler {self.host}: login as {self.username!r} returned no session id",
                errorcode=to_int(body.get("errorcode")),
                status=response.status_code,
                endpoint=endpoint,
            )
        self._token = token
        self.current_partition = None
        log.debug("NetScaler %s: logged in as %s", self.host, self.username)

    def _refused(self, endpoint: str, response: requests.Response, body: Any, ok: bool) -> NitroAuthError:
        """The credentials refused (at the login, or on a request that carried them)."""
        code = _errorcode(body, ok)
        message = str(body.get("message") or "") if ok and isinstance(body, dict) else ""
        detail = f"errorcode {code}: {message}" if code is not None else f"HTTP {response.status_code}"
        return NitroAuthError(
            f"NetScaler {self.host} refused the login for user {self.username!r} ({detail})",
            errorcode=code,
            nitro_message=message,
            status=response.status_code,
            endpoint=endpoint,
        )

    def _relogin(self) -> None:
        wanted = self.current_partition
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
            response = self.send("POST", f"{API}/logout", {"logout": {}}, auth=True)
            if response.status_code >= 400:
                log.debug("NetScaler %s: logout answered HTTP %d", self.host, response.status_code)
        except NitroError as exc:
            log.debug("NetScaler %s: logout failed: %s", self.host, exc)
        finally:
            self._token = None
            self.current_partition = None

    def switch_partition(self, name: str) -> None:
        """Switch this session into an admin partition (``default`` goes back)."""
        self.call("POST", "nspartition", action="Switch", payload={"nspartition": {"partitionname": name}})
        self.current_partition = name
