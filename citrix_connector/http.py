"""HTTP plumbing shared by the SCM and NITRO clients.

One :class:`HttpClient` per remote: one ``requests.Session``, ``verify=`` and ``timeout=`` passed with
every request (a Session's own ``verify`` loses to ``REQUESTS_CA_BUNDLE``), retries with capped
exponential backoff for transient failures only, ``Retry-After`` honoured, and request tracing at
DEBUG level with secrets redacted.

Clients decide what is transient beyond the generic cases (connection failures, 429, 5xx) through
``is_transient``, and map :class:`TransportError` to their own error types.

Non-idempotent calls (an SCM order, a NITRO write: ``idempotent=False``, the default for POST) are
never re-sent once the server may have acted on them. They are retried only when the failure
proves the request was not carried out: the connection was never made (refused, host name not
found, connect timeout, TLS handshake, proxy refused), or the server answered "busy" (429, or 503
with ``Retry-After``), or ``is_transient`` says the answer means nothing was done. A reset, a read
timeout or a 5xx after the request went out is returned / raised with ``TransportError.sent`` set,
so the caller can say "sent, no answer" and reconcile instead of ordering twice.
"""

from __future__ import annotations

import email.utils
import logging
import socket
import threading
import time
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit

import requests
import urllib3
from cryptography import x509
from requests.structures import CaseInsensitiveDict
from requests.utils import requote_uri
from urllib3.exceptions import NewConnectionError

from .cpuslot import waiting
from .direct import DirectSender
from .proxy import ProxyChoice, ProxySession, describe_proxy_failure, is_proxy_refusal, redact_proxy_url
from .tls_errors import PeerCertificate, describe_tls_failure, fetch_peer_certificate

__all__ = [
    "HttpClient",
    "RetryPolicy",
    "TransportError",
    "nothing_sent",
    "redact",
    "redact_headers",
    "reset_insecure_warnings",
    "said_not_processed",
]

log = logging.getLogger("citrixagent.http")

SECRET_HEADERS = frozenset(
    {"password", "authorization", "x-nitro-pass", "cookie", "set-cookie", "proxy-authorization"}
)
SECRET_KEYS = frozenset(
    {
        "password",
        "passplain",
        "client_secret",
        "access_token",
        "refresh_token",
        "sessionid",
        "pempassphrase",
        "challengepassword",
    }
)
REDACTED = "***"


def redact_headers(headers: Mapping[str, str]) -> dict[str, str]:
    return {k: (REDACTED if k.lower() in SECRET_HEADERS else v) for k, v in headers.items()}


def redact(obj: Any) -> Any:
    """A copy of a JSON-like value with secret fields and private-key material replaced."""
    if isinstance(obj, Mapping):
        return {k: (REDACTED if str(k).lower() in SECRET_KEYS else redact(v)) for k, v in obj.items()}
    if isinstance(obj, list):
        return [redact(v) for v in obj]
    if isinstance(obj, str) and "PRIVATE KEY" in obj:
        return REDACTED
    return obj


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently transient failures are retried."""

    attempts: int = 4  # total tries, the first included
    base_delay: float = 1.0
    max_delay: float = 30.0
    retry_statuses: frozenset[int] = field(default_factory=lambda: frozenset({429, 500, 502, 503, 504}))

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        """Seconds to wait before try number ``attempt + 1`` (``attempt`` counts from 1)."""
        backoff = min(self.max_delay, self.base_delay * (2 ** (attempt - 1)))
        if retry_after is not None:
            return float(min(self.max_delay, max(retry_after, 0.0)))
        return float(backoff)


class TransportError(Exception):
    """The remote could not be reached (after retries): DNS, refused, reset, timeout, TLS.

    ``sent`` is True when the request may have reached the server (a reset or a read timeout after
    it went out): the server may have acted on it. False proves it was not sent.
    """

    def __init__(self, message: str, *, url: str, tls: bool = False, sent: bool = False) -> None:
        self.url = url
        self.tls = tls
        self.sent = sent
        super().__init__(message)


def nothing_sent(exc: BaseException) -> bool:
    """True when ``exc`` proves the request never reached the server: the connection was refused,
    the host name not found, the connect timed out, the proxy refused the tunnel or the TLS
    handshake failed. Told by exception type, never by message text (OS- and locale-dependent)."""
    if isinstance(
        exc,
        (
            requests.exceptions.ConnectTimeout,
            requests.exceptions.SSLError,
            requests.exceptions.ProxyError,
            requests.exceptions.InvalidURL,
            requests.exceptions.MissingSchema,
        ),
    ):
        return True
    return isinstance(exc, requests.RequestException) and _is_connect_error(exc)


def said_not_processed(response: requests.Response) -> bool:
    """The answer says the server did not take the request on: 429 (too many requests), or 503 with
    ``Retry-After`` (unavailable for a stated time, RFC 9110 §15.6.4). A bare 503 is not enough: a
    proxy answers it too after the request reached the server behind it."""
    return response.status_code == 429 or (
        response.status_code == 503 and bool(response.headers.get("Retry-After"))
    )


_insecure_lock = threading.Lock()
_insecure_warned: set[str] = set()


def reset_insecure_warnings() -> None:
    """Start a new run: each host with ``verify_tls: false`` gets its one warning again."""
    with _insecure_lock:
        _insecure_warned.clear()


def _warn_insecure(host: str) -> None:
    """One warning of our own per host and run, instead of urllib3's line per request."""
    with _insecure_lock:
        if host in _insecure_warned:
            return
        _insecure_warned.add(host)
    log.warning(
        "TLS verification is off for %s (verify_tls: false): the connection is encrypted, but the server "
        "is not authenticated; set verify_tls to a CA bundle path",
        host,
    )


def _retry_after(response: requests.Response) -> float | None:
    value = response.headers.get("Retry-After")
    if not value:
        return None
    try:
        return float(value)
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return (when - datetime.now(timezone.utc)).total_seconds()


def describe_exception(
    exc: requests.RequestException,
    url: str,
    *,
    client_cert: bool = False,
    peer_certificate: PeerCertificate | None = None,
    sent: bool = False,
) -> TransportError:
    """Turn a ``requests`` exception into a one-line :class:`TransportError`.

    TLS failures name their real reason (see :mod:`citrix_connector.tls_errors`); ``client_cert``
    says whether a client certificate was offered, ``peer_certificate`` fetches the server's
    certificate unverified so the message can name its host names or dates. ``sent``: the request
    may have reached the server (see :func:`nothing_sent`).
    """
    host = url.split("/")[2] if "://" in url else url
    if isinstance(exc, requests.TooManyRedirects):
        return TransportError(f"{host} redirected more than {MAX_REDIRECTS} times", url=url, sent=True)
    if sent:
        why = "in time" if isinstance(exc, requests.exceptions.Timeout) else "(connection reset)"
        return TransportError(f"request sent to {host}, no answer {why}", url=url, sent=True)
    if isinstance(exc, requests.exceptions.SSLError):
        message = describe_tls_failure(exc, url, client_cert=client_cert, peer_certificate=peer_certificate)
        return TransportError(message, url=url, tls=True)
    if isinstance(exc, requests.exceptions.Timeout):
        return TransportError(f"{host} did not answer in time", url=url)
    if isinstance(exc, requests.exceptions.ConnectionError):
        return TransportError(f"cannot connect to {host} (refused or unreachable; nothing was sent)", url=url)
    return TransportError(f"request to {host} failed: {type(exc).__name__}", url=url)


class HttpClient:
    """A session to one remote, with retries and redacted tracing."""

    def __init__(
        self,
        base_url: str,
        *,
        verify: bool | Path,
        timeout: float,
        retry: RetryPolicy | None = None,
        name: str = "http",
        cert: tuple[str, str] | None = None,
        sleep: Callable[[float], None] = time.sleep,
        proxy: str | None = None,
    ) -> None:
        """``proxy``: None for the environment (HTTPS_PROXY, NO_PROXY), ``"none"`` for no proxy at
        all, or a proxy URL (credentials allowed; never logged)."""
        self.base_url = base_url.rstrip("/")
        self.verify: bool | str = str(verify) if isinstance(verify, Path) else verify
        self.timeout = timeout
        self.retry = retry or RetryPolicy()
        self.name = name
        self.cert = cert
        self.sleep = sleep
        self.proxy = ProxyChoice.parse(proxy)
        self.session: requests.Session = ProxySession(self.proxy)
        self.session.headers.update({"Accept": "application/json", "User-Agent": "citrixagent"})
        # straight to the server when no proxy is on the way (direct.py: a third of the CPU)
        self._direct = DirectSender()
        if self.verify is False:  # we warn once per host ourselves (see _warn_insecure)
            warnings.filterwarnings("ignore", category=urllib3.exceptions.InsecureRequestWarning)

    def url(self, path: str) -> str:
        return path if "://" in path else f"{self.base_url}{path}"

    def close(self) -> None:
        self._direct.close()
        self.session.close()

    def request(
        self,
        method: str,
        path: str,
        *,
        headers: Mapping[str, str] | None = None,
        json: Any = None,
        data: Any = None,
        params: Mapping[str, str] | None = None,
        idempotent: bool | None = None,
        is_transient: Callable[[requests.Response], bool] | None = None,
        timeout: float | None = None,
        allow_redirects: bool = True,
    ) -> requests.Response:
        """Send one request, retrying transient failures; return the final response, whatever its status.

        ``idempotent`` (default: True for GET, HEAD, PUT, DELETE, OPTIONS) says whether the call may
        be sent twice. A non-idempotent call is retried after a connection failure only when the
        request cannot have reached the server (:func:`nothing_sent`), and after an HTTP answer only
        when the server says it did not process it (:func:`said_not_processed`, or ``is_transient``,
        which for such a call must only accept answers that prove nothing was done), so a retry
        never places a second order. A failure after sending raises ``TransportError(sent=True)``.
        """
        url = self.url(path)
        if self.verify is False:
            _warn_insecure(urlsplit(url).netloc or url)
        if idempotent is None:
            idempotent = method.upper() in {"GET", "HEAD", "PUT", "DELETE", "OPTIONS"}
        attempt = 0
        while True:
            attempt += 1
            started = time.monotonic()
            self._trace_request(method, url, headers, json)
            try:
                with waiting():  # another fleet worker computes while this one waits for the answer
                    response = self._send(
                        method,
                        url,
                        headers=headers,
                        json=json,
                        data=data,
                        params=params,
                        timeout=timeout or self.timeout,
                        allow_redirects=allow_redirects,
                        idempotent=idempotent,
                    )
            except requests.RequestException as exc:
                if is_proxy_refusal(exc):  # the proxy said no: nothing reached the server, no retry
                    with waiting():  # describing a TLS failure may connect again
                        described = self._describe(exc, url)
                    raise described from exc
                sent = not nothing_sent(exc)
                retryable = not isinstance(exc, requests.exceptions.SSLError) and (idempotent or not sent)
                if retryable and attempt < self.retry.attempts:
                    wait = self.retry.delay(attempt)
                    log.info(
                        "%s %s %s failed (%s); retry %d in %.1fs",
                        self.name,
                        method,
                        url,
                        type(exc).__name__,
                        attempt,
                        wait,
                    )
                    self.sleep(wait)  # the Agent's sleep gives the compute slot up
                    continue
                with waiting():  # describing a TLS failure may connect again
                    described = self._describe(exc, url, sent=sent)
                raise described from exc
            elapsed = time.monotonic() - started
            log.debug(
                "%s %s %s -> %d (%.0f ms)", self.name, method, url, response.status_code, elapsed * 1000
            )
            said_transient = bool(is_transient and is_transient(response))
            if idempotent:
                transient = response.status_code in self.retry.retry_statuses or said_transient
            else:  # the server may have acted on it: only a "not done" answer is sent again
                transient = said_not_processed(response) or said_transient
            if transient and attempt < self.retry.attempts:
                wait = self.retry.delay(attempt, _retry_after(response))
                log.info(
                    "%s %s %s answered %d; retry %d in %.1fs",
                    self.name,
                    method,
                    url,
                    response.status_code,
                    attempt,
                    wait,
                )
                self.sleep(wait)
                continue
            return response

    def _send(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str] | None,
        json: Any,
        data: Any,
        params: Mapping[str, str] | None,
        timeout: float,
        allow_redirects: bool,
        idempotent: bool,
    ) -> requests.Response:
        """One exchange: straight to the server when no proxy is on the way (:mod:`.direct`), else
        through ``requests``. Redirects are followed for idempotent calls only: a write answered
        with a redirect is returned as it is (following it could carry the write out twice: a 303
        says the server acted already)."""
        follow = allow_redirects and idempotent
        if self.proxy.for_url(url) is not None or not (data is None or isinstance(data, (bytes, str))):
            return self._through_requests(method, url, headers, json, data, params, timeout, follow)
        merged = CaseInsensitiveDict(self.session.headers)
        merged.update(headers or {})
        sent = {str(k): str(v) for k, v in merged.items()}
        hops = 0
        while True:
            response = self._direct.send(
                method,
                url,
                headers=sent,
                data=data,
                json=json,
                params=params,
                timeout=timeout,
                verify=self.verify,
                cert=self.cert,
                jar=self.session.cookies,
            )
            if not (follow and response.is_redirect):
                return response
            hops += 1
            if hops > MAX_REDIRECTS:
                raise requests.TooManyRedirects(f"exceeded {MAX_REDIRECTS} redirects", response=response)
            method, url, data, json, params = _redirected(response, method, data, json, sent, self.session)
            log.debug("%s redirected (HTTP %d) to %s", self.name, response.status_code, url)
            if self.proxy.for_url(url) is not None:  # the new host is reached through a proxy
                return self._through_requests(method, url, sent, json, data, params, timeout, True)

    def _through_requests(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str] | None,
        json: Any,
        data: Any,
        params: Mapping[str, str] | None,
        timeout: float,
        allow_redirects: bool,
    ) -> requests.Response:
        return self.session.request(
            method,
            url,
            headers=dict(headers or {}),
            json=json,
            data=data,
            params=params,
            verify=self.verify,
            cert=self.cert,
            timeout=timeout,
            proxies=self.proxy.requests_proxies(),
            allow_redirects=allow_redirects,
        )

    def _describe(self, exc: requests.RequestException, url: str, *, sent: bool = False) -> TransportError:
        proxy = self.proxy.for_url(url)
        if proxy is not None and not sent:
            said = describe_proxy_failure(exc, url, proxy)
            if said is not None:
                return TransportError(said, url=url)

        def peer() -> x509.Certificate | None:  # the way the request went: directly or via the proxy
            return fetch_peer_certificate(url, timeout=min(self.timeout, 10.0), proxy=proxy)

        error = describe_exception(
            exc, url, client_cert=self.cert is not None, peer_certificate=peer, sent=sent
        )
        if proxy is not None:
            via = f"{error} (through proxy {redact_proxy_url(proxy)})"
            return TransportError(via, url=url, tls=error.tls, sent=error.sent)
        return error

    def _trace_request(self, method: str, url: str, headers: Mapping[str, str] | None, body: Any) -> None:
        if not log.isEnabledFor(logging.DEBUG):
            return
        merged = {k: str(v) for k, v in self.session.headers.items()}
        merged.update(headers or {})
        log.debug(
            "%s > %s %s headers=%s body=%s%s",
            self.name,
            method,
            url,
            redact_headers(merged),
            redact(body) if body is not None else "",
            self._via(url),
        )

    def _via(self, url: str) -> str:
        proxy = self.proxy.for_url(url)
        return f" via proxy {redact_proxy_url(proxy)}" if proxy else ""


MAX_REDIRECTS = 30  # as requests


def _redirected(
    response: requests.Response,
    method: str,
    data: Any,
    json: Any,
    headers: dict[str, str],
    session: requests.Session,
) -> tuple[str, str, Any, Any, None]:
    """Where a redirect sends an idempotent call, as ``requests`` follows it (its own
    ``get_redirect_target``, ``rebuild_method`` and ``should_strip_auth``): the Location resolved
    against the URL, the body dropped unless the status is 307 or 308, the Cookie header never
    carried over, and to another host, port or scheme no credentials either (requests drops only
    Authorization; SCM's login and password headers go too). ``headers`` is updated in place; the
    query is in the new URL already, hence no params."""
    previous = response.url
    location = session.get_redirect_target(response) or ""
    if location.startswith("//"):
        location = f"{urlsplit(previous).scheme}:{location}"
    target = urljoin(previous, requote_uri(location))
    prepared = requests.PreparedRequest()
    prepared.method = method
    session.rebuild_method(prepared, response)
    method = prepared.method or method
    body_headers = ("content-length", "content-type", "transfer-encoding")
    dropped = {"cookie"}
    if response.status_code not in (307, 308):
        data = json = None
        dropped.update(body_headers)
    if session.should_strip_auth(previous, target):  # type: ignore[no-untyped-call]
        dropped.update(SECRET_HEADERS, {"login"})
    for name in [k for k in headers if k.lower() in dropped]:
        del headers[name]
    return method, target, data, json, None


def _is_connect_error(exc: requests.RequestException) -> bool:
    """True when the connection was never established (nothing was sent): a refused connection or a
    name that does not resolve, recognised by exception type anywhere in the cause chain (requests
    wraps urllib3's ``MaxRetryError``, whose ``reason`` holds the ``NewConnectionError``)."""
    if not isinstance(exc, requests.exceptions.ConnectionError):
        return False
    seen: set[int] = set()
    todo: list[BaseException] = [exc]
    while todo:
        err = todo.pop()
        if id(err) in seen:
            continue
        seen.add(id(err))
        if isinstance(err, (NewConnectionError, ConnectionRefusedError, socket.gaierror)):
            return True
        linked = [err.__cause__, err.__context__, getattr(err, "reason", None), *err.args]
        todo.extend(e for e in linked if isinstance(e, BaseException))
    return False
