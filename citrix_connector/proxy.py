"""Which forward proxy a request goes through, and what to say when the proxy fails.

Three choices per remote (SCM, or one appliance):

* the environment (no ``proxy:`` key): ``HTTPS_PROXY`` / ``HTTP_PROXY`` / ``ALL_PROXY`` and
  ``NO_PROXY``, read the way ``requests`` reads them;
* an explicit proxy URL (``proxy: http://user:password@proxy.corp:3128``), used whatever the
  environment says, ``NO_PROXY`` included;
* ``proxy: none``: no proxy at all, even when the environment names one.

HTTPS goes through the proxy as a ``CONNECT`` tunnel, so TLS (and its verification) stays end to end.
Credentials in a proxy URL are sent only to the proxy (``Proxy-Authorization``) and never shown:
:func:`redact_proxy_url` is the only form of the URL that messages and logs use.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from typing import Any, Protocol, cast
from urllib.parse import urlsplit, urlunsplit

import requests
import urllib3

from .tls_errors import exception_chain

__all__ = [
    "PROXY_NONE",
    "ProxyChoice",
    "ProxySession",
    "describe_proxy_failure",
    "is_proxy_refusal",
    "own_credentials_only",
    "proxy_argument",
    "redact_proxy_url",
]

PROXY_NONE = "none"

_TUNNEL_RE = re.compile(r"Tunnel connection failed: (\d{3})\s*(.*)")


def redact_proxy_url(url: str) -> str:
    """``scheme://user:***@host:port``: the password replaced, nothing after the port."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = parts.port
    except ValueError:
        return "<invalid proxy URL>"
    if ":" in host:
        host = f"[{host}]"
    netloc = host + (f":{port}" if port else "")
    if parts.username:
        netloc = f"{parts.username}{':***' if parts.password is not None else ''}@{netloc}"
    return urlunsplit((parts.scheme, netloc, "", "", ""))


@dataclass(frozen=True)
class ProxyChoice:
    """``url`` None and ``disabled`` False: from the environment."""

    url: str | None = None
    disabled: bool = False
    # the environment's answer per scheme://host, read once (the environment does not change during
    # a run; os.environ is scanned whole for every lookup, which costs more than the request's CPU)
    _environ: dict[str, str | None] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def parse(cls, value: str | None) -> ProxyChoice:
        """None: the environment; ``"none"``: no proxy; anything else: that proxy URL."""
        if value is None:
            return cls()
        if value.strip().lower() == PROXY_NONE:
            return cls(disabled=True)
        return cls(url=value.strip())

    def requests_proxies(self) -> dict[str, str] | None:
        """The ``proxies=`` to pass with each request (None: let requests read the environment).

        A key set to None keeps requests from filling it from the environment (and is then dropped).
        (Not ``no_proxy: *``: requests applies that by changing ``os.environ`` for a moment, which
        other threads would see.)
        """
        if self.disabled:
            return cast("dict[str, str]", {"http": None, "https": None, "all": None})  # typeshed: str only
        if self.url is not None:
            return {"http": self.url, "https": self.url}
        return None

    def for_url(self, url: str) -> str | None:
        """The proxy URL a request to ``url`` goes through (with its credentials), or None."""
        if self.disabled:
            return None
        if self.url is not None:
            return self.url
        origin = _origin(url)
        if origin not in self._environ:
            self._environ[origin] = requests.utils.select_proxy(url, requests.utils.get_environ_proxies(url))
        return self._environ[origin]

    def describe(self) -> str:
        """For logs: where this choice came from, credentials redacted."""
        if self.disabled:
            return "none"
        if self.url is not None:
            return redact_proxy_url(self.url)
        return "from the environment"


def own_credentials_only(request: requests.PreparedRequest) -> requests.PreparedRequest:
    """A session-wide ``auth`` that adds nothing (its presence keeps requests from reading ~/.netrc)."""
    return request


class ProxySession(requests.Session):
    """A ``requests.Session`` that keeps to ``proxy: none`` across redirects too (plain requests
    would take the environment's proxy again when it follows a redirect)."""

    def __init__(self, choice: ProxyChoice) -> None:
        super().__init__()
        self.choice = choice
        self._environ_proxies: dict[tuple[str, str | None], dict[str, str]] = {}
        # Never ~/.netrc: requests would look for it on every request (3% of the agent's CPU in a
        # fleet deployment) and send its login to the host as Basic auth; the agent's credentials
        # are its own headers, cookies and tokens.
        self.auth = own_credentials_only

    def merge_environment_settings(self, url: Any, proxies: Any, stream: Any, verify: Any, cert: Any) -> Any:
        """As ``requests`` does, with the environment's proxies read once per scheme://host and
        session instead of once per request (``requests`` scans all of ``os.environ`` each time)."""
        if not self.trust_env or not isinstance(url, str):
            return super().merge_environment_settings(url, proxies, stream, verify, cert)
        wanted: dict[str, Any] = dict(proxies or {})
        no_proxy = wanted.get("no_proxy")
        key = (_origin(url), no_proxy)
        environ = self._environ_proxies.get(key)
        if environ is None:
            environ = dict(requests.utils.get_environ_proxies(url, no_proxy=no_proxy))
            self._environ_proxies[key] = environ
        for name, value in environ.items():
            wanted.setdefault(name, value)
        if verify is True or verify is None:
            verify = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or verify
        merge = cast("Any", requests.sessions.merge_setting)  # untyped in types-requests
        return {
            "proxies": merge(wanted, self.proxies),
            "stream": merge(stream, self.stream),
            "verify": merge(verify, self.verify),
            "cert": merge(cert, self.cert),
        }

    def rebuild_auth(self, prepared_request: requests.PreparedRequest, response: requests.Response) -> None:
        """As ``requests`` does on a redirect (the Authorization header dropped when the host
        changes), without looking up ~/.netrc for the new host."""
        headers, previous, url = prepared_request.headers, response.request.url, prepared_request.url
        if "Authorization" in headers and previous and url and self.should_strip_auth(previous, url):  # type: ignore[no-untyped-call]
            del headers["Authorization"]

    def rebuild_proxies(
        self, prepared_request: requests.PreparedRequest, proxies: dict[str, str] | None
    ) -> dict[str, str]:
        if self.choice.disabled:
            prepared_request.headers.pop("Proxy-Authorization", None)
            return {}
        rebuilt: dict[str, str] = super().rebuild_proxies(prepared_request, proxies)  # type: ignore[no-untyped-call]
        return rebuilt


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower()


class _Revealable(Protocol):
    def reveal(self) -> str: ...


class ProxySettingLike(Protocol):
    """The configuration's ``proxy:`` value (``url`` a secret, or ``disabled`` for ``none``)."""

    @property
    def url(self) -> _Revealable | None: ...

    @property
    def disabled(self) -> bool: ...


def proxy_argument(setting: ProxySettingLike | None) -> str | None:
    """The ``proxy=`` for :class:`~citrix_connector.http.HttpClient` from a configured ``proxy:``
    (None when the key is absent: the environment decides)."""
    if setting is None:
        return None
    if setting.disabled:
        return PROXY_NONE
    return setting.url.reveal() if setting.url is not None else None


def _tunnel_status(exc: BaseException) -> tuple[int, str] | None:
    for cause in exception_chain(exc):
        if (
            type(cause) is OSError
        ):  # http.client's own "Tunnel connection failed: 407 ..." (no type of its own)
            match = _TUNNEL_RE.search(str(cause))
            if match:
                return int(match.group(1)), match.group(2).strip()
    return None


def is_proxy_refusal(exc: BaseException) -> bool:
    """True when a proxy answered the CONNECT with an error (407, 403, 502, ...): never retried,
    and the request did not reach the server."""
    return isinstance(exc, requests.exceptions.ProxyError) and _tunnel_status(exc) is not None


def describe_proxy_failure(exc: BaseException, url: str, proxy_url: str) -> str | None:
    """One line for a failure of the proxy itself (refused tunnel, unreachable), else None."""
    if not isinstance(exc, requests.exceptions.ProxyError):
        return None
    proxy = redact_proxy_url(proxy_url)
    target = urlsplit(url).netloc or url
    status = _tunnel_status(exc)
    if status is not None:
        code, reason = status
        hint = {
            407: " (check the user and password in the proxy URL)",
            403: " (the proxy does not allow this destination)",
        }.get(code, "")
        return f"proxy {proxy} refused the tunnel to {target}: HTTP {code} {reason}{hint}".rstrip()
    chain = list(exception_chain(exc))
    refused = (
        urllib3.exceptions.NewConnectionError,
        ConnectionError,
    )  # (NewConnectionError is a timeout type)
    if not any(isinstance(c, refused) for c in chain) and any(
        isinstance(c, (TimeoutError, urllib3.exceptions.TimeoutError)) for c in chain
    ):
        return f"proxy {proxy} did not answer in time (for {target})"
    return f"cannot connect to proxy {proxy} (for {target}): refused, reset or unreachable"
