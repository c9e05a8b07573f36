"""Requests sent straight to the server with urllib3 (``citrix_connector/direct.py``), through
:class:`HttpClient` against real TLS servers on loopback: what reaches the server, what comes back,
redirects (followed for reads, never for writes), failures as the ``requests`` errors the rest of the
agent reads, and the proxy path left to ``requests``."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from tls_servers import TlsServer, leaf

from citrix_connector.http import HttpClient, RetryPolicy, TransportError, nothing_sent
from citrix_connector.sandbox.ca import LocalCA
from citrix_connector.sandbox.forward_proxy import ForwardProxy

pytestmark = pytest.mark.usefixtures("no_proxy_env")


@pytest.fixture
def ca(local_ca: LocalCA) -> LocalCA:
    return local_ca


@pytest.fixture
def bundle(tmp_path: Path, ca: LocalCA) -> Path:
    path = tmp_path / "ca.pem"
    path.write_bytes(ca.bundle_pem())
    return path


@pytest.fixture
def server(ca: LocalCA) -> Iterator[TlsServer]:
    with TlsServer(*leaf(ca, ("localhost", "127.0.0.1"))) as srv:
        yield srv


def client(url: str, bundle: Path | bool, **kwargs: Any) -> HttpClient:
    return HttpClient(
        url, verify=bundle, timeout=5, retry=RetryPolicy(attempts=1), sleep=lambda s: None, **kwargs
    )


def test_what_reaches_the_server_and_what_comes_back(server: TlsServer, bundle: Path) -> None:
    server.add_fault(
        r"^/api/x$",
        status=201,
        json_body={"id": 7},
        headers={"Set-Cookie": "NITRO_AUTH_TOKEN=tok-1; Path=/", "X-Extra": "yes"},
    )
    http = client(server.url, bundle)
    try:
        params: dict[str, Any] = {"q": "a b", "n": ["1", "2"]}  # a list: repeated keys
        response = http.request("POST", "/api/x", json={"a": "é"}, params=params, headers={"X-Mine": "1"})
    finally:
        http.close()
    assert response.status_code == 201
    assert response.json() == {"id": 7}
    assert response.headers["x-extra"] == "yes"  # case-insensitive, as requests' headers
    assert response.cookies.get("NITRO_AUTH_TOKEN") == "tok-1"
    assert response.request.method == "POST"
    assert response.url == f"{server.url}/api/x?q=a+b&n=1&n=2"
    (seen,) = server.requests
    headers = {k.lower(): v for k, v in seen.headers.items()}
    assert seen.method == "POST" and seen.path == "/api/x" and seen.query == "q=a+b&n=1&n=2"
    assert headers["user-agent"] == "citrixagent" and headers["accept"] == "application/json"
    assert headers["x-mine"] == "1" and headers["content-type"] == "application/json"
    assert json.loads(seen.body) == {"a": "é"}


def test_bytes_body_and_a_bodyless_write(server: TlsServer, bundle: Path) -> None:
    http = client(server.url, bundle)
    try:
        http.request("POST", "/nitro", data=b'{"k": 1}', headers={"Content-Type": "application/json"})
        http.request("POST", "/empty")
    finally:
        http.close()
    first, second = server.requests
    assert first.body == b'{"k": 1}'
    assert second.body == b"" and second.headers.get("content-length") == "0"


def test_a_read_follows_a_redirect_without_the_cookie_or_the_authorization(
    server: TlsServer, ca: LocalCA, bundle: Path
) -> None:
    with TlsServer(*leaf(ca, ("localhost", "127.0.0.1"))) as other:
        where = f"https://localhost:{other.port}/moved?x=1"
        server.add_fault(r"^/probe$", status=302, headers={"Location": where})
        http = client(server.url, bundle)
        try:
            response = http.request(
                "GET", "/probe", headers={"Cookie": "NITRO_AUTH_TOKEN=secret", "Authorization": "Bearer t"}
            )
        finally:
            http.close()
        assert response.status_code == 200 and response.url == where
        (followed,) = other.requests
        assert followed.path == "/moved" and followed.query == "x=1"
        names = {k.lower() for k in followed.headers}
        assert "cookie" not in names and "authorization" not in names


def test_a_303_turns_a_read_into_a_get_and_a_relative_location_resolves(
    server: TlsServer, bundle: Path
) -> None:
    server.add_fault(r"^/a$", method="PUT", status=303, headers={"Location": "/b"})
    http = client(server.url, bundle)
    try:
        response = http.request("PUT", "/a", json={"x": 1})
    finally:
        http.close()
    assert response.status_code == 200
    put, get = server.requests
    assert (put.method, put.path) == ("PUT", "/a")
    assert (get.method, get.path, get.body) == ("GET", "/b", b"")


def test_a_write_answered_with_a_redirect_is_not_sent_again(server: TlsServer, bundle: Path) -> None:
    """A 307 or 303 to an order: returned as it is, the order sent exactly once."""
    for status in (307, 303):
        server.add_fault(r"^/order$", status=status, headers={"Location": "/elsewhere"})
        http = client(server.url, bundle)
        try:
            response = http.request("POST", "/order", json={"cn": "x"})
        finally:
            http.close()
        assert response.status_code == status
    assert [(r.method, r.path) for r in server.requests] == [("POST", "/order"), ("POST", "/order")]


def test_failures_are_the_errors_requests_would_raise(ca: LocalCA, bundle: Path, tmp_path: Path) -> None:
    # refused: nothing sent, so even a write may be retried
    with TlsServer(*leaf(ca)) as gone:
        url = gone.url
    http = client(url, bundle)
    with pytest.raises(TransportError, match="cannot connect") as refused:
        http.request("POST", "/order")
    assert not refused.value.sent
    assert isinstance(refused.value.__cause__, requests.exceptions.ConnectionError)
    assert nothing_sent(refused.value.__cause__)
    # TLS: a server whose CA is not the bundle's
    other_ca = LocalCA.create("Someone Else")
    with TlsServer(*leaf(other_ca)) as stranger:
        http = client(stranger.url, bundle)
        with pytest.raises(TransportError) as tls:
            http.request("GET", "/x")
        assert tls.value.tls and "certificate" in str(tls.value)
        assert isinstance(tls.value.__cause__, requests.exceptions.SSLError)
        assert stranger.requests == []
    # verify off: the same server answers
    with TlsServer(*leaf(other_ca)) as stranger:
        http = client(stranger.url, False)
        assert http.request("GET", "/x").status_code == 200


def test_no_answer_in_time_after_sending(server: TlsServer, bundle: Path) -> None:
    server.add_fault(r"^/slow$", status=200, latency=2.0)
    http = HttpClient(server.url, verify=bundle, timeout=0.5, retry=RetryPolicy(attempts=1))
    try:
        with pytest.raises(TransportError, match="no answer in time") as late:
            http.request("POST", "/slow")
    finally:
        http.close()
    assert late.value.sent
    assert isinstance(late.value.__cause__, requests.exceptions.ReadTimeout)


def test_a_missing_ca_bundle_fails_as_requests_does(server: TlsServer, tmp_path: Path) -> None:
    http = client(server.url, tmp_path / "absent.pem")
    with pytest.raises(OSError, match="Could not find a suitable TLS CA certificate bundle"):
        http.request("GET", "/x")
    assert server.requests == []


def test_requests_through_a_proxy_still_go_through_it(server: TlsServer, bundle: Path) -> None:
    with ForwardProxy() as proxy:
        http = client(server.url, bundle, proxy=proxy.url)
        try:
            assert http.request("GET", "/x").status_code == 200
        finally:
            http.close()
        assert len(proxy.log) == 1


@pytest.mark.parametrize(
    ("path", "params", "query"),
    [
        ("/p", None, ""),
        ("/p", {"a": "1"}, "a=1"),
        ("/p?x=1", {"a": "1 2"}, "x=1&a=1+2"),
        ("/p", {"a": None}, ""),
        ("/p", {"a": "é", "n": ["1", "2"]}, "a=%C3%A9&n=1&n=2"),
        ("/a b", None, ""),
    ],
)
def test_the_url_sent_is_the_one_requests_builds(
    server: TlsServer, bundle: Path, path: str, params: dict[str, Any] | None, query: str
) -> None:
    http = client(server.url, bundle)
    try:
        response = http.request("GET", path, params=params)
    finally:
        http.close()
    assert response.url == requests.Request("GET", server.url + path, params=params).prepare().url
    (seen,) = server.requests
    assert seen.query == query and seen.path == path.split("?")[0]


def test_an_encrypted_client_key_is_a_tls_error_not_a_passphrase_prompt(
    server: TlsServer, bundle: Path, tmp_path: Path
) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP256R1())
    key_file = tmp_path / "client.key"
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"secret"),
        )
    )
    cert_file = tmp_path / "client.pem"
    cert_file.write_bytes(Path(bundle).read_bytes())  # any certificate: the key is refused first
    http = client(server.url, bundle, cert=(str(cert_file), str(key_file)))
    with pytest.raises(TransportError, match="TLS|certificate|key") as refused:
        http.request("POST", "/order")
    assert refused.value.tls and not refused.value.sent
    assert server.requests == []


def test_an_unusable_ca_bundle_is_a_tls_error(server: TlsServer, tmp_path: Path) -> None:
    empty = tmp_path / "empty.pem"
    empty.write_text("not a certificate\n")
    http = client(server.url, empty)
    with pytest.raises(TransportError) as failed:
        http.request("GET", "/x")
    assert failed.value.tls
    assert isinstance(failed.value.__cause__, requests.exceptions.SSLError)
    assert server.requests == []


def test_through_a_proxy_a_write_answered_with_a_redirect_is_not_sent_again(
    server: TlsServer, bundle: Path
) -> None:
    server.add_fault(r"^/order$", status=307, headers={"Location": "/order2"})
    with ForwardProxy() as proxy:
        http = client(server.url, bundle, proxy=proxy.url)
        try:
            assert http.request("POST", "/order", json={"cn": "x"}).status_code == 307
        finally:
            http.close()
    assert [(r.method, r.path) for r in server.requests] == [("POST", "/order")]


@pytest.mark.parametrize(
    ("status", "method", "then"), [(302, "PUT", "GET"), (301, "PUT", "PUT"), (308, "PUT", "PUT")]
)
def test_redirected_methods_as_requests_rebuilds_them(
    server: TlsServer, bundle: Path, status: int, method: str, then: str
) -> None:
    server.add_fault(r"^/a$", status=status, headers={"Location": "/b"})
    http = client(server.url, bundle)
    try:
        http.request(method, "/a", data=b"{}")
    finally:
        http.close()
    first, second = server.requests
    assert (first.method, second.method, second.path) == (method, then, "/b")
    assert second.body == (b"{}" if status == 308 else b"")


def test_the_session_keeps_its_cookies_as_requests_does(server: TlsServer, bundle: Path) -> None:
    """A sticky load balancer in front of SCM: its cookie comes back on the next request."""
    server.add_fault(r"^/first$", status=200, json_body={}, headers={"Set-Cookie": "LB=node-2; Path=/"})
    http = client(server.url, bundle)
    try:
        http.request("GET", "/first")
        http.request("GET", "/second")
        http.request("GET", "/third", headers={"Cookie": "own=1"})  # the call's own Cookie wins
    finally:
        http.close()
    _, second, third = server.requests
    assert second.headers.get("cookie") == "LB=node-2"
    assert third.headers.get("cookie") == "own=1"


def test_one_content_type_whatever_its_case(server: TlsServer, bundle: Path) -> None:
    http = client(server.url, bundle)
    try:
        http.request("POST", "/x", json={"a": 1}, headers={"content-type": "application/vnd.x+json"})
    finally:
        http.close()
    (seen,) = server.requests
    assert seen.headers.get("content-type") == "application/vnd.x+json"


def test_a_redirect_to_another_host_drops_the_scm_login_headers(
    server: TlsServer, ca: LocalCA, bundle: Path
) -> None:
    with TlsServer(*leaf(ca, ("localhost", "127.0.0.1"))) as other:
        server.add_fault(r"^/probe$", status=302, headers={"Location": f"https://localhost:{other.port}/p"})
        http = client(server.url, bundle)
        try:
            http.request(
                "GET", "/probe", headers={"login": "api-admin", "password": "s3cret", "customerUri": "c"}
            )
        finally:
            http.close()
        (followed,) = other.requests
        names = {k.lower() for k in followed.headers}
        assert "password" not in names and "login" not in names and "customeruri" in names


def test_a_redirect_loop_ends_as_requests_ends_it(server: TlsServer, bundle: Path) -> None:
    server.add_fault(r"^/loop$", status=302, headers={"Location": "/loop"}, times=None)
    http = client(server.url, bundle)
    try:
        with pytest.raises(TransportError, match="redirected more than 30 times"):
            http.request("GET", "/loop")
    finally:
        http.close()
    assert len(server.requests) == 31  # the first request and 30 redirects followed
