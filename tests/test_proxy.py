"""HTTPS through a real forward proxy on loopback (the sandbox's CONNECT proxy), at the HTTP layer.

The environment (HTTPS_PROXY / NO_PROXY), an explicit proxy URL with credentials, ``none`` to bypass
the environment, TLS verified end to end through the tunnel, and a proxy that refuses (407, 403) or
cannot be reached: one line naming the proxy, never its password, no retry, nothing at the server.
Every test sets the proxy environment itself (CI machines often have NO_PROXY=127.0.0.1 and the like).
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from tls_servers import TlsServer, leaf

from citrix_connector.http import HttpClient, RetryPolicy, TransportError
from citrix_connector.proxy import ProxyChoice, redact_proxy_url
from citrix_connector.sandbox.ca import LocalCA
from citrix_connector.sandbox.forward_proxy import ForwardProxy

PROXY_USER = "svc-cert"
PROXY_PASSWORD = "pr0xy-s3cret-Pw"


pytestmark = pytest.mark.usefixtures("no_proxy_env")


@pytest.fixture(scope="module")
def ca() -> LocalCA:
    return LocalCA.create("Proxy Test")


@pytest.fixture
def bundle(tmp_path: Path, ca: LocalCA) -> Path:
    path = tmp_path / "ca.pem"
    path.write_bytes(ca.bundle_pem())
    return path


@pytest.fixture
def server(ca: LocalCA) -> Iterator[TlsServer]:
    with TlsServer(*leaf(ca)) as srv:
        yield srv


@pytest.fixture
def proxy() -> Iterator[ForwardProxy]:
    with ForwardProxy(auth=(PROXY_USER, PROXY_PASSWORD)) as px:
        yield px


@pytest.fixture
def open_proxy() -> Iterator[ForwardProxy]:
    with ForwardProxy() as px:
        yield px


def get(url: str, bundle: Path, proxy: str | None = None) -> tuple[int, list[float]]:
    sleeps: list[float] = []
    client = HttpClient(
        url, verify=bundle, timeout=5, proxy=proxy, retry=RetryPolicy(attempts=3), sleep=sleeps.append
    )
    try:
        return client.request("GET", "/probe").status_code, sleeps
    finally:
        client.close()


def fail(url: str, bundle: Path, proxy: str | None = None) -> tuple[str, list[float]]:
    sleeps: list[float] = []
    client = HttpClient(
        url, verify=bundle, timeout=5, proxy=proxy, retry=RetryPolicy(attempts=3), sleep=sleeps.append
    )
    try:
        with pytest.raises(TransportError) as caught:
            client.request("POST", "/order", json={"x": 1})
    finally:
        client.close()
    message = str(caught.value)
    assert "\n" not in message and PROXY_PASSWORD not in message
    return message, sleeps


def target(server: TlsServer) -> str:
    return f"127.0.0.1:{server.port}"


def test_explicit_proxy_with_credentials_carries_the_request(server, proxy, bundle) -> None:
    assert get(server.url, bundle, proxy.url_with(PROXY_USER, PROXY_PASSWORD))[0] == 200
    assert [(r.method, r.target, r.status, r.user) for r in proxy.log] == [
        ("CONNECT", target(server), 200, PROXY_USER)
    ]
    assert [r.path for r in server.requests] == ["/probe"]


def test_environment_proxy_is_used(server, open_proxy, bundle, monkeypatch) -> None:
    monkeypatch.setenv("HTTPS_PROXY", open_proxy.url)
    assert get(server.url, bundle)[0] == 200
    assert [r.target for r in open_proxy.log] == [target(server)]


def test_no_proxy_in_the_environment_is_honoured(server, open_proxy, bundle, monkeypatch) -> None:
    monkeypatch.setenv("HTTPS_PROXY", open_proxy.url)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    assert get(server.url, bundle)[0] == 200
    assert open_proxy.log == []
    assert len(server.requests) == 1


def test_proxy_none_bypasses_the_environment_proxy(server, open_proxy, bundle, monkeypatch) -> None:
    monkeypatch.setenv("HTTPS_PROXY", open_proxy.url)
    monkeypatch.setenv("ALL_PROXY", open_proxy.url)
    assert get(server.url, bundle, "none")[0] == 200
    assert open_proxy.log == []
    assert len(server.requests) == 1


def test_an_explicit_proxy_wins_over_environment_and_no_proxy(
    server, proxy, open_proxy, bundle, monkeypatch
) -> None:
    monkeypatch.setenv("HTTPS_PROXY", open_proxy.url)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    assert get(server.url, bundle, proxy.url_with(PROXY_USER, PROXY_PASSWORD))[0] == 200
    assert len(proxy.log) == 1 and open_proxy.log == []


def test_tls_is_verified_end_to_end_through_the_tunnel(proxy, bundle) -> None:
    impostor_ca = LocalCA.create("Impostor")
    with TlsServer(*leaf(impostor_ca)) as impostor:
        message, sleeps = fail(impostor.url, bundle, proxy.url_with(PROXY_USER, PROXY_PASSWORD))
        assert impostor.requests == []
    assert message.startswith(f"TLS verification failed for 127.0.0.1:{impostor.port}: ")
    # the certificate described is the one seen through the tunnel (a TLS-inspecting proxy's own)
    assert "issuer (issued by CN=Impostor ECC Issuing CA 1" in message and "not trusted" in message
    assert message.endswith(f"(through proxy http://{PROXY_USER}:***@127.0.0.1:{proxy.port})")
    # the tunnel was made and TLS refused the server; a second tunnel fetched the certificate to name it
    assert [(r.status, r.user) for r in proxy.log] == [(200, PROXY_USER), (200, PROXY_USER)]
    assert sleeps == []


def test_407_without_credentials_is_one_clear_line_and_not_retried(server, proxy, bundle) -> None:
    message, sleeps = fail(server.url, bundle, proxy.url)
    assert message == (
        f"proxy http://127.0.0.1:{proxy.port} refused the tunnel to {target(server)}: "
        "HTTP 407 Proxy Authentication Required (check the user and password in the proxy URL)"
    )
    assert sleeps == [] and server.requests == []
    assert [r.status for r in proxy.log] == [407]


def test_407_with_a_wrong_password_never_shows_it(server, proxy, bundle) -> None:
    wrong = "wr0ng-Pa55word"
    message, sleeps = fail(server.url, bundle, proxy.url_with(PROXY_USER, wrong))
    assert wrong not in message
    assert message.startswith(f"proxy http://{PROXY_USER}:***@127.0.0.1:{proxy.port} refused the tunnel")
    assert "407" in message and sleeps == [] and server.requests == []


def test_a_destination_the_proxy_forbids(proxy, bundle) -> None:
    message, _ = fail("https://forbidden.invalid:443", bundle, proxy.url_with(PROXY_USER, PROXY_PASSWORD))
    assert "refused the tunnel to forbidden.invalid:443: HTTP 403 Forbidden" in message
    assert [r.status for r in proxy.log] == [403]  # the proxy never connects outside loopback


def test_an_unreachable_proxy(server, bundle) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed again: nothing listens there
    message, sleeps = fail(server.url, bundle, f"http://{PROXY_USER}:{PROXY_PASSWORD}@127.0.0.1:{port}")
    assert message == (
        f"cannot connect to proxy http://{PROXY_USER}:***@127.0.0.1:{port} (for {target(server)}): "
        "refused, reset or unreachable"
    )
    assert server.requests == []
    assert len(sleeps) == 2  # a connect failure is transient: retried, even for a POST (nothing was sent)


def test_trace_names_the_proxy_without_its_password(server, proxy, bundle, caplog) -> None:
    with caplog.at_level(logging.DEBUG, logger="citrixagent"):
        get(server.url, bundle, proxy.url_with(PROXY_USER, PROXY_PASSWORD))
    assert f"via proxy http://{PROXY_USER}:***@127.0.0.1:{proxy.port}" in caplog.text
    assert PROXY_PASSWORD not in caplog.text


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("http://u:p%40ss@proxy.corp:3128", "http://u:***@proxy.corp:3128"),
        ("https://proxy.corp", "https://proxy.corp"),
        ("http://u@[::1]:8080/", "http://u@[::1]:8080"),
    ],
)
def test_redact_proxy_url(url: str, shown: str) -> None:
    assert redact_proxy_url(url) == shown


def test_proxy_choice_parse() -> None:
    assert ProxyChoice.parse(None) == ProxyChoice()
    assert ProxyChoice.parse(" None ").disabled
    assert ProxyChoice.parse("http://p:1").url == "http://p:1"


def test_a_netrc_login_is_never_sent(server, bundle, tmp_path, monkeypatch) -> None:
    """requests would send ~/.netrc's login for the host as Basic auth (and look for the file on
    every request); the agent's sessions send only their own credentials."""
    netrc = tmp_path / "netrc"
    netrc.write_text("machine 127.0.0.1 login netrc-user password netrc-pass\n")
    netrc.chmod(0o600)
    monkeypatch.setenv("NETRC", str(netrc))
    assert get(server.url, bundle)[0] == 200
    (request,) = server.requests
    assert "authorization" not in {name.lower() for name in request.headers}


def test_a_redirect_does_not_pick_a_netrc_login_up_either(server, ca, bundle, tmp_path, monkeypatch) -> None:
    with TlsServer(*leaf(ca, ("localhost", "127.0.0.1"))) as other:
        netrc = tmp_path / "netrc"
        netrc.write_text("machine localhost login netrc-user password netrc-pass\n")
        netrc.chmod(0o600)
        monkeypatch.setenv("NETRC", str(netrc))
        where = f"https://localhost:{other.port}/probe"
        server.add_fault(r"^/probe$", status=302, body="", headers={"Location": where}, times=1)
        assert get(server.url, bundle)[0] == 200
        (followed,) = other.requests
        assert "authorization" not in {name.lower() for name in followed.headers}
