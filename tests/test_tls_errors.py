"""Every TLS failure names its real reason, against real loopback TLS servers.

Untrusted issuer, self-signed, wrong host name (with the names the certificate holds), expired and
not yet valid (with the date), a server offering only TLS 1.0/1.1, a handshake with nothing in
common, a client certificate missing or refused, and a plain-HTTP port. No failure is retried, and
the NITRO and SCM clients carry the same one-line reason.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from tls_servers import (
    TlsServer,
    leaf,
    no_common_cipher,
    old_protocols_only,
    plain_http_server,
    require_client_cert,
    self_signed,
)

from citrix_connector.errors import NitroError
from citrix_connector.http import HttpClient, RetryPolicy, TransportError
from citrix_connector.nitro.client import NitroClient
from citrix_connector.sandbox.ca import LocalCA


@pytest.fixture(scope="module")
def trusted_ca() -> LocalCA:
    return LocalCA.create("TLS Errors Trusted")


@pytest.fixture(scope="module")
def other_ca() -> LocalCA:
    return LocalCA.create("TLS Errors Other")


@pytest.fixture
def bundle(tmp_path: Path, trusted_ca: LocalCA) -> Path:
    path = tmp_path / "trusted.pem"
    path.write_bytes(trusted_ca.bundle_pem())
    return path


def failure(url: str, bundle: Path, cert: tuple[str, str] | None = None) -> str:
    """The TransportError message of one GET (no retries happen for TLS failures: asserted)."""
    sleeps: list[float] = []
    client = HttpClient(
        url, verify=bundle, timeout=5, retry=RetryPolicy(attempts=3), cert=cert, sleep=sleeps.append
    )
    try:
        with pytest.raises(TransportError) as caught:
            client.request("GET", "/")
    finally:
        client.close()
    assert sleeps == [], "a TLS failure must not be retried"
    message = str(caught.value)
    assert "\n" not in message
    return message


@pytest.fixture
def serve() -> Iterator[object]:
    servers: list[TlsServer] = []

    def start(cert_key: tuple[bytes, bytes], **kwargs: object) -> TlsServer:
        server = TlsServer(*cert_key, **kwargs)  # type: ignore[arg-type]
        server.start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


def test_a_good_server_works(serve, trusted_ca, bundle) -> None:
    server = serve(leaf(trusted_ca))
    client = HttpClient(server.url, verify=bundle, timeout=5)
    assert client.request("GET", "/").status_code == 200
    client.close()


def test_untrusted_issuer_is_named(serve, other_ca, bundle) -> None:
    server = serve(leaf(other_ca))
    message = failure(server.url, bundle)
    assert message.startswith(f"TLS verification failed for 127.0.0.1:{server.port}: ")
    assert "issuer (issued by CN=TLS Errors Other ECC Issuing CA 1" in message and "is not trusted" in message
    assert "verify_tls" in message


def test_self_signed_is_said(serve, bundle) -> None:
    server = serve(self_signed())
    message = failure(server.url, bundle)
    assert "the server certificate is self-signed, so it is not trusted" in message


def test_wrong_host_name_lists_the_names_the_certificate_holds(serve, trusted_ca, bundle) -> None:
    server = serve(leaf(trusted_ca, ["adc.example", "adc-2.example"]))
    message = failure(server.url, bundle)
    assert "not valid for the name 127.0.0.1: it holds adc.example, adc-2.example" in message
    assert "not trusted" not in message


def test_expired_certificate_gives_the_date(serve, trusted_ca, bundle) -> None:
    start = (datetime.now(timezone.utc) - timedelta(days=100)).replace(microsecond=0)
    server = serve(leaf(trusted_ca, not_before=start, days=30))
    message = failure(server.url, bundle)
    expired = (start + timedelta(days=30)).strftime("%Y-%m-%d %H:%M UTC")
    assert f"the server certificate expired on {expired}" in message


def test_not_yet_valid_certificate_gives_the_date(serve, trusted_ca, bundle) -> None:
    start = (datetime.now(timezone.utc) + timedelta(days=3)).replace(microsecond=0)
    server = serve(leaf(trusted_ca, not_before=start))
    message = failure(server.url, bundle)
    assert f"not valid before {start.strftime('%Y-%m-%d %H:%M UTC')}" in message
    assert "clock" in message


def test_server_offering_only_tls_1_0_and_1_1_is_an_old_protocol(serve, trusted_ca, bundle) -> None:
    server = serve(leaf(trusted_ca), tweak=old_protocols_only)
    message = failure(server.url, bundle)
    assert message.startswith(f"TLS handshake with 127.0.0.1:{server.port} failed: ")
    assert "old protocol version (TLS 1.0/1.1" in message and "TLS 1.2 or newer is required" in message


def test_nothing_in_common_is_a_handshake_failure(serve, trusted_ca, bundle) -> None:
    server = serve(leaf(trusted_ca), tweak=no_common_cipher)
    message = failure(server.url, bundle)
    assert "the TLS handshake failed (sslv3_alert_handshake_failure)" in message
    assert "in common" in message


@pytest.mark.parametrize("tls12", [True, False], ids=["tls1.2", "tls1.3"])
def test_missing_client_certificate(serve, trusted_ca, bundle, tls12: bool) -> None:
    server = serve(
        leaf(trusted_ca), tweak=require_client_cert(tls12=tls12), client_ca_pem=trusted_ca.bundle_pem()
    )
    message = failure(server.url, bundle)
    assert "client certificate" in message
    assert "TLS verification failed" not in message  # the server's certificate is fine


@pytest.mark.parametrize("tls12", [True, False], ids=["tls1.2", "tls1.3"])
def test_refused_client_certificate(serve, trusted_ca, other_ca, bundle, tmp_path, tls12: bool) -> None:
    server = serve(
        leaf(trusted_ca), tweak=require_client_cert(tls12=tls12), client_ca_pem=trusted_ca.bundle_pem()
    )
    cert_pem, key_pem = leaf(other_ca, ["client.example"])  # from a CA the server does not trust
    (tmp_path / "client.crt").write_bytes(cert_pem)
    (tmp_path / "client.key").write_bytes(key_pem)
    message = failure(server.url, bundle, cert=(str(tmp_path / "client.crt"), str(tmp_path / "client.key")))
    if tls12:  # the refusal is an alert inside the handshake: said exactly
        assert "the server refused the client certificate (tlsv1_alert_unknown_ca)" in message
    else:  # TLS 1.3 refuses after the client finished: an alert or a closed connection
        assert "refused the client certificate" in message


def test_plain_http_port(bundle) -> None:
    with plain_http_server() as port:
        message = failure(f"https://127.0.0.1:{port}", bundle)
    assert "did not answer with TLS" in message


def test_nitro_client_carries_the_reason(serve, trusted_ca, bundle) -> None:
    server = serve(leaf(trusted_ca, ["adc.example"]))
    client = NitroClient(
        server.url, username="u", password="p", verify=bundle, timeout=5, sleep=lambda _s: None
    )
    with pytest.raises(NitroError) as caught:
        client.login()
    assert re.search(
        r"TLS verification failed for 127\.0\.0\.1:\d+: .*it holds adc\.example", str(caught.value)
    )
    assert server.requests == []  # nothing (no credential) reached the server
