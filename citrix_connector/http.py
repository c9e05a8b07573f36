"""HTTP plumbing shared by the SCM and NITRO clients.

One :class:`HttpClient` per remote: one ``requests.Session``, ``verify=`` and ``timeout=`` passed with
every request (a Session's own ``verify`` loses to ``REQUESTS_CA_BUNDLE``), retries with capped
exponential backoff for transient failures only, ``Retry-After`` honoured, and request tracing at
DEBUG level with secrets redacted.

Clients decide what is transient beyond the generic cases (connection failures, 429, 5xx) through
``is_transient``, and map :class:`TransportError` to their own error types.
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
from urllib.parse import urlsplit

import requests
import urllib3
from cryptography import x509
from urllib3.exceptions import NewConnectionError

from .proxy import ProxyChoice, ProxySession, describe_proxy_failure, is_proxy_refusal, redact_proxy_url
from .tls_errors import PeerCertificate, describe_tls_failure, fetch_peer_certificate

__all__ = [
    "HttpClient",
    "RetryPolicy",
    "TransportError",
    "redact",
    "redact_headers",
    "reset_insecure_warnings",
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
    """The remote could not be reached (after retries): DNS, refused, reset, timeout, TLS."""

    def __init__(self, message: str, *, url: str, tls: bool = False) -> None:
        self.url = url
        self.tls = tls
        super().__init__(message)


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
) -> TransportError:
    """Turn a ``requests`` exception into a one-line :class:`TransportError`.

    TLS failures name their real reason (see :mod:`citrix_connector.tls_errors`); ``client_cert``
    says whether a client certificate was offered, ``peer_certificate`` fetches the server's
    certificate unverified so the message can name its host names or dates.
    """
    host = url.split("/")[2] if "://" in url else url
    if isinstance(exc, requests.exceptions.SSLError):
        message = describe_tls_failure(exc, url, client_cert=client_cert, peer_certificate=peer_certificate)
        return TransportError(message, url=url, tls=True)
    if isinstance(exc, requests.exceptions.Timeout):
        return TransportError(f"{host} did not answer in time", url=url)
    if isinstance(exc, requests.exceptions.ConnectionError):
        return TransportError(f"cannot connect to {host} (refused, reset or unreachable)", url=url)
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
        if self.verify is False:  # we warn once per host ourselves (see _warn_insecure)
            warnings.filterwarnings("ignore", category=urllib3.exceptions.InsecureRequestWarning)

    def url(self, path: str) -> str:
        return path if "://" in path else f"{self.base_url}{path}"

    def close(self) -> None:
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
    ) -> requests.Response:
        """Send one request, retrying transient failures; return the final response, whatever its status.

        Non-idempotent calls (POST by default) are retried after a connection failure only when the
        request cannot have reached the server (connect errors), and after an HTTP answer only when
        the server says it did not process it (429/503 or ``is_transient``), so a retry never places
        a second order.
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
                response = self.session.request(
                    method,
                    url,
                    headers=dict(headers or {}),
                    json=json,
                    data=data,
                    params=params,
                    verify=self.verify,
                    cert=self.cert,
                    timeout=timeout or self.timeout,
                    proxies=self.proxy.requests_proxies(),
                )
            except requests.RequestException as exc:
                if is_proxy_refusal(exc):  # the proxy said no: nothing reached the server, no retry
                    raise self._describe(exc, url) from exc
                reached = not isinstance(
                    exc, (requests.exceptions.ConnectTimeout, requests.exceptions.SSLError)
                ) and not _is_connect_error(exc)
                retryable = not isinstance(exc, requests.exceptions.SSLError) and (idempotent or not reached)
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
                    self.sleep(wait)
                    continue
                raise self._describe(exc, url) from exc
            elapsed = time.monotonic() - started
            log.debug(
                "%s %s %s -> %d (%.0f ms)", self.name, method, url, response.status_code, elapsed * 1000
            )
            transient = response.status_code in self.retry.retry_statuses or bool(
                is_transient and is_transient(response)
            )
            if transient and not idempotent and response.status_code not in (429, 503):
                transient = bool(is_transient and is_transient(response))
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

    def _describe(self, exc: requests.RequestException, url: str) -> TransportError:
        proxy = self.proxy.for_url(url)
        if proxy is not None:
            said = describe_proxy_failure(exc, url, proxy)
            if said is not None:
                return TransportError(said, url=url)

        def peer() -> x509.Certificate | None:  # the way the request went: directly or via the proxy
            return fetch_peer_certificate(url, timeout=min(self.timeout, 10.0), proxy=proxy)

        error = describe_exception(exc, url, client_cert=self.cert is not None, peer_certificate=peer)
        if proxy is not None:
            via = f"{error} (through proxy {redact_proxy_url(proxy)})"
            return TransportError(via, url=url, tls=error.tls)
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
