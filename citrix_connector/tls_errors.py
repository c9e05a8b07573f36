"""Why a TLS connection failed, in one honest line.

The reason comes from the ``ssl`` exception in the cause chain of a ``requests`` error: a
:class:`ssl.SSLCertVerificationError` carries OpenSSL's ``verify_code`` (untrusted issuer,
self-signed, wrong host name, expired, not yet valid, revoked, ...); any other :class:`ssl.SSLError`
carries the OpenSSL ``reason`` of the alert or failure (old protocol version, handshake failure, the
server refusing our client certificate, an answer that is not TLS at all); an EOF or reset during
the handshake is said as such.

Where the certificate itself says more (the names it holds, the date it expired), the caller may
pass ``peer_certificate``: a function that fetches the server's leaf certificate *without* verifying
it, used only to word the error (nothing is sent over that connection).
"""

from __future__ import annotations

import base64
import socket
import ssl
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from ipaddress import ip_address
from urllib.parse import unquote, urlsplit

from cryptography import x509
from cryptography.x509.oid import NameOID

__all__ = ["describe_tls_failure", "exception_chain", "fetch_peer_certificate", "find_ssl_error"]

# OpenSSL X509_V_ERR_* codes (include/openssl/x509_vfy.h)
_UNABLE_TO_GET_ISSUER_CERT = 2
_CERT_SIGNATURE_FAILURE = 7
_CERT_NOT_YET_VALID = 9
_CERT_HAS_EXPIRED = 10
_DEPTH_ZERO_SELF_SIGNED_CERT = 18
_SELF_SIGNED_CERT_IN_CHAIN = 19
_UNABLE_TO_GET_ISSUER_CERT_LOCALLY = 20
_UNABLE_TO_VERIFY_LEAF_SIGNATURE = 21
_CERT_REVOKED = 23
_INVALID_PURPOSE = 26
_HOSTNAME_MISMATCH = 62
_IP_ADDRESS_MISMATCH = 64

_UNTRUSTED_CODES = {
    _UNABLE_TO_GET_ISSUER_CERT,
    _UNABLE_TO_GET_ISSUER_CERT_LOCALLY,
    _UNABLE_TO_VERIFY_LEAF_SIGNATURE,
}
_NAME_CODES = {_HOSTNAME_MISMATCH, _IP_ADDRESS_MISMATCH}

# OpenSSL reason names of ssl.SSLError (the alert the server sent, or the local failure)
_PROTOCOL_REASONS = {
    "TLSV1_ALERT_PROTOCOL_VERSION",
    "UNSUPPORTED_PROTOCOL",
    "NO_PROTOCOLS_AVAILABLE",
    "VERSION_TOO_LOW",
    "WRONG_SSL_VERSION",
}
_CLIENT_CERT_REASONS = {  # alerts a server sends about the certificate *we* presented (or did not)
    "TLSV13_ALERT_CERTIFICATE_REQUIRED",
    "TLSV1_ALERT_UNKNOWN_CA",
    "SSLV3_ALERT_BAD_CERTIFICATE",
    "SSLV3_ALERT_CERTIFICATE_UNKNOWN",
    "SSLV3_ALERT_CERTIFICATE_EXPIRED",
    "SSLV3_ALERT_CERTIFICATE_REVOKED",
    "SSLV3_ALERT_UNSUPPORTED_CERTIFICATE",
    "TLSV1_ALERT_ACCESS_DENIED",
}
_HANDSHAKE_REASONS = {
    "SSLV3_ALERT_HANDSHAKE_FAILURE",
    "NO_SHARED_CIPHER",
    "NO_CIPHERS_AVAILABLE",
    "TLSV1_ALERT_INSUFFICIENT_SECURITY",
    "NO_SUITABLE_SIGNATURE_ALGORITHM",
    "TLSV1_ALERT_INTERNAL_ERROR",
    "TLSV1_ALERT_DECODE_ERROR",
    "SSLV3_ALERT_ILLEGAL_PARAMETER",
}

_CLOSED = "the server closed the connection during the TLS handshake"
_TRUST_HINT = "set verify_tls to the CA bundle that issued it, or to false only for testing"

PeerCertificate = Callable[[], "x509.Certificate | None"]


def exception_chain(exc: BaseException) -> Iterator[BaseException]:
    """``exc`` and everything it wraps: causes, contexts, urllib3's ``reason``, exception args."""
    seen: set[int] = set()
    todo = [exc]
    while todo:
        current = todo.pop(0)
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        linked = [current.__cause__, current.__context__, getattr(current, "reason", None)]
        linked.extend(a for a in current.args if isinstance(a, BaseException))
        todo.extend(e for e in linked if isinstance(e, BaseException))


def find_ssl_error(exc: BaseException) -> ssl.SSLError | None:
    """The first ``ssl.SSLError`` (certificate verification errors included) in ``exc``'s chain."""
    for cause in exception_chain(exc):
        if isinstance(cause, ssl.SSLError):
            return cause
    return None


def _host_label(url: str) -> str:
    return urlsplit(url).netloc or url


def _names(cert: x509.Certificate) -> list[str]:
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        names = [*san.get_values_for_type(x509.DNSName), *map(str, san.get_values_for_type(x509.IPAddress))]
    except x509.ExtensionNotFound:
        names = []
    if not names:
        names = [str(a.value) for a in cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
    return names


def _when(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def _safe(fetch: PeerCertificate | None) -> x509.Certificate | None:
    if fetch is None:
        return None
    try:
        return fetch()
    except Exception:  # only wording depends on it: never let it replace the real error
        return None


def _verify_reason(err: ssl.SSLCertVerificationError, url: str, peer: PeerCertificate | None) -> str:
    code = err.verify_code
    message = err.verify_message or "certificate verify failed"
    host = urlsplit(url).hostname or url
    if code in _NAME_CODES:
        cert = _safe(peer)
        if cert is not None:
            names = _names(cert)
            held = ", ".join(names[:8]) + (f" (+{len(names) - 8} more)" if len(names) > 8 else "")
            return (
                f"the server certificate is not valid for the name {host}: it holds {held or 'no names'} "
                "(connect by a name the certificate holds, or have it reissued with this one)"
            )
        return (
            f"the server certificate is not valid for the name {host} ({message}; connect by a name the "
            "certificate holds, or have it reissued with this one)"
        )
    if code == _CERT_HAS_EXPIRED:
        cert = _safe(peer)
        now = datetime.now(timezone.utc)
        if cert is not None and cert.not_valid_after_utc < now:
            return (
                f"the server certificate expired on {_when(cert.not_valid_after_utc)} "
                "(renew it on the server; or check this machine's clock)"
            )
        return "a certificate in the server's chain has expired (renew it; or check this machine's clock)"
    if code == _CERT_NOT_YET_VALID:
        cert = _safe(peer)
        if cert is not None and cert.not_valid_before_utc > datetime.now(timezone.utc):
            return (
                f"the server certificate is not valid before {_when(cert.not_valid_before_utc)} "
                "(check this machine's clock)"
            )
        return "a certificate in the server's chain is not valid yet (check this machine's clock)"
    if code == _DEPTH_ZERO_SELF_SIGNED_CERT:
        return f"the server certificate is self-signed, so it is not trusted ({_TRUST_HINT})"
    if code == _SELF_SIGNED_CERT_IN_CHAIN:
        return f"the server's chain ends in a self-signed root that is not trusted ({_TRUST_HINT})"
    if code in _UNTRUSTED_CODES:
        cert = _safe(peer)
        issuer = cert.issuer.rfc4514_string() if cert is not None else ""
        by = f" (issued by {issuer})" if issuer else ""
        return f"the server certificate's issuer{by} is not trusted ({_TRUST_HINT})"
    if code == _CERT_REVOKED:
        return "the server certificate is revoked"
    if code == _CERT_SIGNATURE_FAILURE:
        return "a signature in the server's certificate chain does not verify (a forged or damaged chain)"
    if code == _INVALID_PURPOSE:
        return "the server certificate is not meant for TLS servers (its key usage does not allow it)"
    return f"the server certificate failed verification: {message}"


def _ssl_reason(err: ssl.SSLError, *, client_cert: bool) -> str:
    reason = str(getattr(err, "reason", "") or "")
    if reason in _PROTOCOL_REASONS:
        return (
            "the server offers only an old protocol version (TLS 1.0/1.1 or SSL), and TLS 1.2 or newer "
            "is required (enable TLS 1.2 on the server)"
        )
    if reason in _CLIENT_CERT_REASONS:
        if client_cert:
            return f"the server refused the client certificate ({reason.lower()})"
        return f"the server requires a client certificate, and none is configured ({reason.lower()})"
    if reason == "WRONG_VERSION_NUMBER":
        return "the server did not answer with TLS (is this a plain-HTTP port? check the URL)"
    if reason in _HANDSHAKE_REASONS:
        extra = (
            " or it refused the client certificate" if client_cert else " or it wants a client certificate"
        )
        return (
            f"the TLS handshake failed ({reason.lower()}): no protocol, cipher or signature algorithm "
            f"in common with the server, {extra}"
        )
    if isinstance(err, (ssl.SSLEOFError, ssl.SSLZeroReturnError)):
        return _closed(client_cert)
    return f"the TLS handshake failed ({reason.lower() or type(err).__name__})"


def _closed(client_cert: bool) -> str:
    if client_cert:
        return f"{_CLOSED} (it may have refused the client certificate)"
    return f"{_CLOSED} (it may require a client certificate)"


def describe_tls_failure(
    exc: BaseException,
    url: str,
    *,
    client_cert: bool = False,
    peer_certificate: PeerCertificate | None = None,
) -> str:
    """One line naming the real reason ``exc`` (a ``requests`` SSL error) happened, with the host."""
    host = _host_label(url)
    err = find_ssl_error(exc)
    if isinstance(err, ssl.SSLCertVerificationError):
        return f"TLS verification failed for {host}: {_verify_reason(err, url, peer_certificate)}"
    if err is not None:
        return f"TLS handshake with {host} failed: {_ssl_reason(err, client_cert=client_cert)}"
    if any(isinstance(c, (ConnectionResetError, ConnectionAbortedError)) for c in exception_chain(exc)):
        return f"TLS handshake with {host} failed: {_closed(client_cert)}"
    return f"TLS handshake with {host} failed ({type(exc).__name__})"


def fetch_peer_certificate(url: str, *, timeout: float, proxy: str | None = None) -> x509.Certificate | None:
    """The leaf certificate the server at ``url`` presents, not verified (for wording errors only).

    Only a TLS handshake happens; nothing is sent to the server. Through an ``http://`` ``proxy``
    the handshake goes through a CONNECT tunnel, as the request did (so a TLS-inspecting proxy's
    certificate is what is described). None when the server cannot be reached that way.
    """
    parts = urlsplit(url)
    host = parts.hostname
    if not host:
        return None
    port = parts.port or 443
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    try:
        ip_address(host)
        sni: str | None = None
    except ValueError:
        sni = host
    raw = _tunnel(proxy, host, port, timeout) if proxy else socket.create_connection((host, port), timeout)
    if raw is None:
        return None
    with raw, context.wrap_socket(raw, server_hostname=sni) as tls:
        der = tls.getpeercert(binary_form=True)
    return x509.load_der_x509_certificate(der) if der else None


def _tunnel(proxy: str, host: str, port: int, timeout: float) -> socket.socket | None:
    """A socket CONNECTed through an ``http://`` proxy to ``host:port``, or None if refused."""
    parts = urlsplit(proxy)
    if parts.scheme.lower() != "http" or not parts.hostname:
        return None  # (a TLS connection to the proxy itself is not worth it for wording an error)
    target = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    head = f"CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n"
    if parts.username is not None:
        credentials = f"{unquote(parts.username)}:{unquote(parts.password or '')}".encode()
        head += f"Proxy-Authorization: Basic {base64.b64encode(credentials).decode('ascii')}\r\n"
    sock = socket.create_connection((parts.hostname, parts.port or 80), timeout)
    try:
        sock.sendall((head + "\r\n").encode("latin-1"))
        answer = b""
        while b"\r\n\r\n" not in answer and len(answer) < 16384:
            chunk = sock.recv(4096)
            if not chunk:
                break
            answer += chunk
        status = answer.split(b"\r\n", 1)[0].split()
        if len(status) < 2 or status[1] != b"200":
            sock.close()
            return None
    except OSError:
        sock.close()
        raise
    return sock
