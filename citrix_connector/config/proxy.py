"""The ``proxy:`` setting of scm.yaml and of a profile's appliance block."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated
from urllib.parse import urlsplit, urlunsplit

from pydantic import PlainValidator, WithJsonSchema

from .checks import proxy_url_problem
from .fields import expect_str
from .problems import fail
from .values import Secret


@dataclass(frozen=True)
class ProxySetting:
    """``proxy: URL`` (``url`` set, a Secret: it may hold credentials) or ``proxy: none``
    (``disabled``: bypass any proxy from the environment, HTTPS_PROXY and the like)."""

    url: Secret | None = None
    disabled: bool = False

    @property
    def redacted(self) -> str:
        """The URL for messages: any password replaced by ``***`` ("none" when disabled)."""
        if self.url is None:
            return "none"
        parts = urlsplit(self.url.reveal())
        host = parts.hostname or ""
        if ":" in host:
            host = f"[{host}]"
        netloc = host + (f":{parts.port}" if parts.port else "")
        if parts.username is not None:
            netloc = f"{parts.username}{':***' if parts.password is not None else ''}@{netloc}"
        return urlunsplit((parts.scheme, netloc, parts.path, "", ""))

    def __repr__(self) -> str:
        return f"ProxySetting({self.redacted})"


def _proxy(value: object) -> ProxySetting:
    if isinstance(value, ProxySetting):
        return value
    text = expect_str(value, hint=False).strip()
    if text.lower() == "none":
        return ProxySetting(disabled=True)
    problem = proxy_url_problem(text)  # never echoes the URL: it may hold a password
    if problem:
        raise fail(problem)
    return ProxySetting(url=Secret(text))


Proxy = Annotated[
    ProxySetting,
    PlainValidator(_proxy),
    WithJsonSchema(
        {
            "type": "string",
            "minLength": 1,
            "description": "an http:// or https:// proxy URL (user:${PASSWORD}@host:port allowed), "
            "or none to bypass a proxy set in the environment",
            "anyOf": [{"enum": ["none"]}, {"pattern": "^[hH][tT][tT][pP][sS]?://"}],
        }
    ),
]
