"""One TLS handshake to a VIP, to see what it serves: leaf, chain, protocol.

Nothing is trusted and nothing is sent but the ClientHello: no system trust store, no client
certificate, no request after the handshake. The client offers TLS 1.0 up to the newest version this
OpenSSL knows (security level 0), so a VIP that only speaks an old protocol is *seen* speaking it (and
reported) instead of looking unreachable.
"""

from __future__ import annotations

import contextlib
import socket
import ssl
import warnings
from typing import Any

from cryptography import x509

from .models import NoHandshake, Served

__all__ = ["handshake", "probe_context"]


def probe_context() -> ssl.SSLContext:
    """A client context that accepts whatever is served (it checks nothing itself) and offers every
    protocol version from TLS 1.0 on."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # TLSVersion.TLSv1 is deprecated
        context.minimum_version = ssl.TLSVersion.TLSv1
    context.maximum_version = ssl.TLSVersion.MAXIMUM_SUPPORTED
    with contextlib.suppress(ssl.SSLError):
        context.set_ciphers("DEFAULT:@SECLEVEL=0")  # OpenSSL 3 refuses TLS < 1.2 at its default level
    return context


def handshake(
    address: str, port: int, server_name: str | None, *, timeout: float, context: ssl.SSLContext | None = None
) -> Served | NoHandshake:
    """Connect to ``address:port`` (an address the loopback guard already checked), hand shake with
    ``server_name`` as SNI, and close. Never raises for a network or TLS failure: that is a
    :class:`NoHandshake` with the reason."""
    ctx = context or probe_context()
    try:
        sock = socket.create_connection((address, port), timeout=timeout)
    except TimeoutError:
        return NoHandshake(f"no answer within {timeout:g} s")
    except ConnectionRefusedError:
        return NoHandshake("connection refused")
    except OSError as exc:
        return NoHandshake(f"cannot connect: {exc.strerror or exc}")
    try:
        sni = server_name if server_name and not _is_ip(server_name) else None
        try:
            tls = ctx.wrap_socket(sock, server_hostname=sni)
        except TimeoutError:
            return NoHandshake(f"no TLS answer within {timeout:g} s")
        except ssl.SSLError as exc:
            return NoHandshake(f"TLS handshake failed: {exc.reason or exc}")
        except ConnectionResetError:
            return NoHandshake("connection reset during the TLS handshake")
        except OSError as exc:
            return NoHandshake(f"TLS handshake failed: {exc.strerror or exc}")
        with tls:
            return _served(tls)
    finally:
        sock.close()


def _served(tls: ssl.SSLSocket) -> Served | NoHandshake:
    der = tls.getpeercert(binary_form=True)
    if not der:
        return NoHandshake("the server sent no certificate")
    leaf = x509.load_der_x509_certificate(der)
    chain_der = _unverified_chain(tls)
    protocol = tls.version() or "unknown"
    if chain_der is None:
        return Served(leaf, (), protocol, chain_known=False)
    chain = tuple(x509.load_der_x509_certificate(c) for c in chain_der)
    if chain and chain[0] == leaf:  # the peer chain a client sees starts with the leaf
        chain = chain[1:]
    return Served(leaf, chain, protocol)


def _unverified_chain(tls: ssl.SSLSocket) -> list[bytes] | None:
    """Every certificate the server sent, as DER: public on Python 3.13+, the ``_ssl`` object's method
    on 3.10-3.12; None when neither exists."""
    public = getattr(tls, "get_unverified_chain", None)
    if public is not None:
        return [bytes(c) for c in public()]
    sslobj: Any = getattr(tls, "_sslobj", None)
    method = getattr(sslobj, "get_unverified_chain", None)
    if method is None:
        return None
    certs = method() or []
    return [c if isinstance(c, bytes) else c.public_bytes(ssl._ssl.ENCODING_DER) for c in certs]  # type: ignore[attr-defined]


def _is_ip(name: str) -> bool:
    try:
        socket.inet_pton(socket.AF_INET6 if ":" in name else socket.AF_INET, name)
    except OSError:
        return False
    return True
