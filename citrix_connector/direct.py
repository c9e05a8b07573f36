"""Requests that go straight to the server (no proxy on the way), sent with urllib3 itself.

``requests`` spends more CPU on a request than the exchange does: on the agent's NITRO traffic,
0.95 ms per request against 0.41 ms for the same exchange through urllib3, which ``requests`` uses
underneath (``benchmarks/RESULTS.md``). In a fleet deployment that was 15% of the agent's CPU.
:class:`DirectSender` sends one request the way ``requests``' ``HTTPAdapter`` would and returns what it
would return, so nothing above :class:`~citrix_connector.http.HttpClient` changes:

* the answer is a ``requests.Response`` (status, headers, body, ``url``, ``request.method``, and the
  cookies of a ``Set-Cookie``);
* a failure is the ``requests`` exception the adapter raises for it, wrapping urllib3's (refused or
  unresolvable: ``ConnectionError`` holding ``NewConnectionError``; connect timeout:
  ``ConnectTimeout``; TLS: ``SSLError``; read timeout: ``ReadTimeout``; reset: ``ConnectionError``),
  so :func:`~citrix_connector.http.nothing_sent` and the TLS diagnosis read it as before;
* TLS: one ``SSLContext`` per client, built once (the CA bundle read once, not per connection):
  ``verify`` a path (a file or a directory), True (``REQUESTS_CA_BUNDLE``, ``CURL_CA_BUNDLE`` or
  certifi's bundle, as ``requests``), or False; the host name checked whenever ``verify`` is on;
  a client certificate when given;
* no redirect is followed here: :class:`HttpClient` decides (see :meth:`DirectSender.send`).

Requests through a proxy, or with a form body, keep going through ``requests``.
"""

from __future__ import annotations

import json as jsonlib
import os
import ssl
import threading
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

import requests
import urllib3
from requests.cookies import RequestsCookieJar, extract_cookies_to_jar, get_cookie_header
from requests.structures import CaseInsensitiveDict
from requests.utils import DEFAULT_CA_BUNDLE_PATH, get_encoding_from_headers, requote_uri
from urllib3.exceptions import (
    ClosedPoolError,
    ConnectTimeoutError,
    HTTPError,
    LocationValueError,
    MaxRetryError,
    NewConnectionError,
    ProtocolError,
    ReadTimeoutError,
)
from urllib3.exceptions import SSLError as Urllib3SSLError

__all__ = ["DirectSender", "POOL_SIZE"]

# connections kept per host and client, as requests keeps them (a client serves one fleet worker,
# and for SCM that worker's collecting helper; prefetch.py)
POOL_SIZE = 10


def ca_location(verify: bool | str) -> str | None:
    """The CA bundle (file or directory) ``verify`` names, as ``requests`` resolves it; None when off."""
    if verify is False:
        return None
    if verify is True:
        env = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")
        location = env or DEFAULT_CA_BUNDLE_PATH
    else:
        location = verify
    if not location or not os.path.exists(location):
        # requests' own wording and type (an OSError, not a RequestException)
        raise OSError(f"Could not find a suitable TLS CA certificate bundle, invalid path: {location}")
    return location


def tls_context(verify: bool | str, cert: tuple[str, str] | None) -> ssl.SSLContext:
    """One context for every connection of a client: the CA read once, the host name checked."""
    context = urllib3.util.ssl_.create_urllib3_context()
    location = ca_location(verify)
    if location is None:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    elif os.path.isdir(location):
        context.load_verify_locations(capath=location)
    else:
        context.load_verify_locations(cafile=location)
    if cert is not None:
        if _encrypted(cert[1]):  # OpenSSL would ask for the passphrase on the terminal
            raise Urllib3SSLError("Client private key is encrypted, password is required")
        context.load_cert_chain(cert[0], cert[1], password=b"")
    return context


def _encrypted(key_file: str) -> bool:
    """As urllib3 tells an encrypted client key (its PEM says so)."""
    try:
        with open(key_file, encoding="ascii", errors="replace") as handle:
            return any("ENCRYPTED" in line for line in handle)
    except OSError:
        return False  # load_cert_chain names the missing file


class DirectSender:
    """Sends requests to their servers directly, over kept-alive connections (one pool per host)."""

    def __init__(self) -> None:
        # per TLS setting (a client's stays the same; the CA bundle is read at its first request)
        self._pools: dict[tuple[bool | str, tuple[str, str] | None], urllib3.PoolManager] = {}
        self._lock = threading.Lock()

    def _manager(self, verify: bool | str, cert: tuple[str, str] | None) -> urllib3.PoolManager:
        key = (verify, cert)
        with self._lock:
            pools = self._pools.get(key)
            if pools is None:
                context = tls_context(verify, cert)
                pools = urllib3.PoolManager(
                    num_pools=16, maxsize=POOL_SIZE, block=False, ssl_context=context, retries=False
                )
                self._pools[key] = pools
            return pools

    def close(self) -> None:
        with self._lock:
            for pools in self._pools.values():
                pools.clear()
            self._pools.clear()

    def send(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str],
        data: bytes | str | None = None,
        json: Any = None,
        params: Mapping[str, Any] | None = None,
        timeout: float,
        verify: bool | str,
        cert: tuple[str, str] | None = None,
        jar: RequestsCookieJar | None = None,
    ) -> requests.Response:
        """One exchange, no redirect followed (a 3xx is returned as it is), no retry. ``jar``: the
        session's cookies, sent (unless the call sets its own Cookie header) and kept, as requests
        does."""
        request = requests.PreparedRequest()
        if params:  # requests' own encoding of the query (a list as repeated keys), and quoting
            request.prepare_url(url, params)
            full_url = request.url or url
        else:  # the agent's own URLs: only the quoting (prepare_url's parsing costs 37 us more)
            full_url = requote_uri(url)
            if not urlsplit(full_url).path:
                full_url += "/"
        sent_headers: CaseInsensitiveDict[str] = CaseInsensitiveDict(
            {k: v for k, v in headers.items() if v is not None}
        )
        body: bytes | None
        if json is not None:
            body = jsonlib.dumps(json, allow_nan=False).encode("utf-8")
            sent_headers.setdefault("Content-Type", "application/json")
        elif isinstance(data, str):
            body = data.encode("utf-8")
        else:
            body = data
        if body is None and method.upper() not in ("GET", "HEAD"):
            sent_headers.setdefault("Content-Length", "0")  # as requests does without a body
        request.method, request.url = method.upper(), full_url
        request.headers = sent_headers
        request.body = body
        if jar is not None and len(jar) and "cookie" not in sent_headers:
            cookie = get_cookie_header(jar, request)  # type: ignore[no-untyped-call]
            if cookie:
                sent_headers["Cookie"] = cookie
        try:  # a missing CA bundle raises OSError here, as in requests
            pools = self._manager(verify, cert)
        except (ssl.SSLError, Urllib3SSLError) as exc:  # an unusable bundle or client key: a TLS failure
            wrapped = exc if isinstance(exc, Urllib3SSLError) else Urllib3SSLError(exc)
            raise requests.exceptions.SSLError(wrapped, request=request) from exc
        try:
            raw = pools.urlopen(
                request.method,
                full_url,
                body=body,
                headers=dict(sent_headers.items()),
                redirect=False,
                assert_same_host=False,
                retries=False,
                preload_content=True,
                decode_content=True,
                timeout=urllib3.Timeout(connect=timeout, read=timeout),
            )
        except Exception as exc:
            mapped = as_requests_error(exc, request)
            if mapped is None:
                raise
            raise mapped from exc
        response = _response(request, raw)
        if jar is not None and len(response.cookies):
            jar.update(response.cookies)
        return response


def as_requests_error(exc: BaseException, request: requests.PreparedRequest) -> Exception | None:
    """The exception ``requests``' adapter raises for urllib3's ``exc`` (None: not a transport error)."""
    reason = exc.reason if isinstance(exc, MaxRetryError) and exc.reason is not None else exc
    if isinstance(reason, Urllib3SSLError):
        return requests.exceptions.SSLError(exc, request=request)
    if isinstance(reason, ConnectTimeoutError) and not isinstance(reason, NewConnectionError):
        return requests.exceptions.ConnectTimeout(exc, request=request)
    if isinstance(reason, ReadTimeoutError):
        return requests.exceptions.ReadTimeout(exc, request=request)
    if isinstance(reason, LocationValueError):
        return requests.exceptions.InvalidURL(exc, request=request)
    if isinstance(reason, (NewConnectionError, ProtocolError, ClosedPoolError, OSError, HTTPError)):
        return requests.exceptions.ConnectionError(exc, request=request)
    return None


def _response(request: requests.PreparedRequest, raw: urllib3.BaseHTTPResponse) -> requests.Response:
    response = requests.Response()
    response.status_code = raw.status
    response.headers = CaseInsensitiveDict(raw.headers)
    response.encoding = get_encoding_from_headers(response.headers)
    response.reason = raw.reason or ""
    response.url = request.url or ""
    response.request = request
    response.raw = raw
    response._content = raw.data  # read whole (preload_content): the connection is back in its pool
    if "set-cookie" in response.headers:
        extract_cookies_to_jar(response.cookies, request, raw)  # type: ignore[no-untyped-call]
    return response
