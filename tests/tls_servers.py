"""Loopback HTTPS servers that fail TLS the way misconfigured real servers do (for the TLS-error tests).

Built on the sandbox's own server machinery (:class:`SimServer`) with certificates minted by a
:class:`LocalCA`: untrusted, self-signed, wrong host name, expired, not yet valid; plus servers whose
TLS settings are old (TLS 1.0/1.1 only), share no cipher, or demand a client certificate.
"""

from __future__ import annotations

import socket
import ssl
import threading
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.x509.oid import NameOID

from citrix_connector.crypto import KeySpec, build_csr, cert_to_pem, generate_private_key, private_key_to_pem
from citrix_connector.sandbox.ca import LocalCA
from citrix_connector.sandbox.httpserver import Request, Response, SimServer

Tweak = Callable[[ssl.SSLContext], None]


class TlsServer(SimServer):
    """A SimServer answering ``200 {}`` to everything, with an optional tweak of its TLS context."""

    name = "tls-test"

    def __init__(self, cert_pem: bytes, key_pem: bytes, *, tweak: Tweak | None = None, **kwargs: object):
        self._tweak = tweak
        super().__init__(cert_pem, key_pem, **kwargs)  # type: ignore[arg-type]

    def _make_context(  # type: ignore[override]
        self, cert_pem: bytes, key_pem: bytes, client_ca_pem: bytes | None
    ) -> ssl.SSLContext:
        context = SimServer._make_context(cert_pem, key_pem, client_ca_pem)
        if self._tweak is not None:
            self._tweak(context)
        return context

    def handle(self, request: Request) -> Response:
        return Response.json(200, {})


def leaf(
    ca: LocalCA,
    names: Sequence[str] = ("127.0.0.1",),
    *,
    not_before: datetime | None = None,
    days: int = 365,
) -> tuple[bytes, bytes]:
    """(cert + intermediate PEM, key PEM) issued by ``ca`` for ``names``."""
    key = generate_private_key(KeySpec("ECDSA", curve="P-256"))
    cert = ca.issue_from_csr(build_csr(key, names[0], list(names)), not_before=not_before, days=days)
    chain = cert_to_pem(cert) + cert_to_pem(ca.chain_for(cert)[0])
    return chain.encode("ascii"), private_key_to_pem(key)


def self_signed(name: str = "127.0.0.1") -> tuple[bytes, bytes]:
    key = generate_private_key(KeySpec("ECDSA", curve="P-256"))
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.now(timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=30))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("appliance.test")]), critical=False)
        .sign(key, hashes.SHA256())
    )
    return cert_to_pem(cert).encode("ascii"), private_key_to_pem(key)


def old_protocols_only(context: ssl.SSLContext) -> None:
    """TLS 1.0 and 1.1 only, as old firmware offers (OpenSSL 3 needs security level 0 for them)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        context.minimum_version = ssl.TLSVersion.TLSv1
        context.maximum_version = ssl.TLSVersion.TLSv1_1
    context.set_ciphers("DEFAULT:@SECLEVEL=0")


def no_common_cipher(context: ssl.SSLContext) -> None:
    context.maximum_version = ssl.TLSVersion.TLSv1_2
    context.set_ciphers("aNULL")  # anonymous suites only: no client accepts them


def require_client_cert(*, tls12: bool) -> Tweak:
    def tweak(context: ssl.SSLContext) -> None:
        context.verify_mode = ssl.CERT_REQUIRED
        if tls12:  # the verdict comes inside the handshake (TLS 1.3 gives it after)
            context.maximum_version = ssl.TLSVersion.TLSv1_2

    return tweak


@contextmanager
def plain_http_server() -> Iterator[int]:
    """A plain-HTTP listener on loopback (an ``https://`` URL pointed at the wrong port); yields the port."""
    listener = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def serve() -> None:
        listener.settimeout(0.1)
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                continue
            with conn:
                conn.settimeout(2)
                try:
                    conn.recv(4096)
                    conn.sendall(
                        b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                    )
                except OSError:
                    pass

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        stop.set()
        thread.join(timeout=5)
        listener.close()
