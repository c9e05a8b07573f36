"""Helpers shared by the lifecycle and run tests (simulated time, request-log counting)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from citrix_connector.crypto import normalize_serial
from citrix_connector.sandbox.httpserver import SimServer

READ_METHODS = frozenset({"GET", "HEAD"})


class FakeTime:
    """A monotonic clock that only moves when the agent sleeps (poll deadlines without waiting)."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.slept: list[float] = []

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += max(seconds, 0.001)


def scm_writes(server: SimServer, since: int = 0) -> list[str]:
    """Every non-GET request an SCM simulator saw after the first ``since`` (POST, DELETE, ...)."""
    return [f"{r.method} {r.path}" for r in server.requests[since:] if r.method not in READ_METHODS]


def paths(server: SimServer, method: str | None = None, since: int = 0) -> list[str]:
    return [r.path for r in server.requests[since:] if method is None or r.method == method]


def count(
    server: SimServer,
    needle: str,
    *,
    method: str | None = None,
    query: str | None = None,
    succeeded: bool = False,
) -> int:
    """How many requests had ``needle`` in their path (and ``query`` in their raw query); with
    ``succeeded`` only those answered 2xx (the Enrollment client's first call gets a 401 by design:
    it discovers the token URL from it)."""
    return sum(
        1
        for r in server.requests
        if needle in r.path
        and (method is None or r.method == method)
        and (query is None or query in r.query.lower())
        and (not succeeded or 200 <= r.status < 300)
    )


def logins(ns: SimServer) -> int:
    return count(ns, "/nitro/v1/config/login", method="POST")


def saves(ns: SimServer) -> int:
    return count(ns, "/nitro/v1/config/nsconfig", method="POST", query="action=save")


def same_serial(a: str | None, b: str | None) -> bool:
    return a is not None and b is not None and normalize_serial(a) == normalize_serial(b)


def public_key_der(cert_pem: str) -> bytes:
    cert = x509.load_pem_x509_certificate(cert_pem.encode())
    return cert.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def only(items: Iterable[Any]) -> Any:
    (item,) = list(items)
    return item
