"""Real TLS on the simulated NetScaler's VIPs, seen by a plain ``ssl`` client (no agent code).

Configuration goes through NITRO over HTTPS (``requests``); what a client receives is read from a real
TLS handshake to the vserver's ``ipv46:port``: the leaf by SNI, the chain the links make, the protocol.
"""

from __future__ import annotations

import ipaddress
import socket
import ssl
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from test_sandbox_netscaler import PASSWORD, USER, Nitro, Pki, cert_pem, items, key_pem

from citrix_connector.sandbox.ca import LocalCA
from citrix_connector.sandbox.netscaler import NetScalerSimulator


@pytest.fixture(scope="module")
def tls() -> tuple[bytes, bytes, bytes]:
    ca = LocalCA.create("VIP Test")
    cert, key = ca.issue_tls_server_cert()
    return cert, key, ca.bundle_pem()


@pytest.fixture(scope="module")
def pki() -> Pki:
    return Pki("Vip")


@pytest.fixture
def sim(tls: tuple[bytes, bytes, bytes]) -> Iterator[NetScalerSimulator]:
    server = NetScalerSimulator(tls[0], tls[1])
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def nitro(sim: NetScalerSimulator, tls: tuple[bytes, bytes, bytes], tmp_path: Path) -> Nitro:
    bundle = tmp_path / "mgmt-ca.pem"
    bundle.write_bytes(tls[2])
    client = Nitro(sim, str(bundle))
    client.headers = {"X-NITRO-USER": USER, "X-NITRO-PASS": PASSWORD}
    return client


def trust(tmp_path: Path, *certs: x509.Certificate) -> str:
    path = tmp_path / f"trust-{len(list(tmp_path.iterdir()))}.pem"
    path.write_bytes(b"".join(cert_pem(c) for c in certs))
    return str(path)


def handshake(
    sim: NetScalerSimulator,
    vserver: str,
    servername: str | None = None,
    *,
    cafile: str | None = None,
    legacy: bool = False,
) -> tuple[str, x509.Certificate]:
    """(protocol, leaf) a client gets from the VIP. With ``cafile`` the chain is verified (so the server
    must send the intermediate); ``legacy`` lets the client speak TLS 1.0/1.1 too."""
    host, port = sim.vip(vserver)
    assert host.startswith("127.")  # never anything but loopback
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    if cafile:
        context.load_verify_locations(cafile)
    else:
        context.verify_mode = ssl.CERT_NONE
    if legacy:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            context.minimum_version = ssl.TLSVersion.TLSv1
        context.set_ciphers("DEFAULT:@SECLEVEL=0")
    with (
        socket.create_connection((host, port), timeout=10) as raw,
        context.wrap_socket(raw, server_hostname=servername) as conn,
    ):
        der = conn.getpeercert(binary_form=True)
        assert der is not None
        version = conn.version()
        assert version is not None
        return version, x509.load_der_x509_certificate(der)


def serial(cert: x509.Certificate) -> str:
    text = format(cert.serial_number, "X")
    return "0" + text if len(text) % 2 else text


def link(nitro: Nitro, certkey: str, ca: str) -> None:
    body = {"sslcertkey": {"certkey": certkey, "linkcertkeyname": ca}}
    assert nitro.call("POST", "sslcertkey", query="action=link", body=body).ok


def set_ssl(nitro: Nitro, vserver: str, **params: Any) -> None:
    r = nitro.call("PUT", "sslvserver", body={"sslvserver": {"vservername": vserver, **params}})
    assert r.status_code == 200, r.text


def test_vip_serves_the_bound_certificate_and_the_linked_chain(
    nitro: Nitro, pki: Pki, tmp_path: Path
) -> None:
    sim = nitro.sim
    sim.add_vserver("vs_www", "lb")
    (view,) = items(nitro.get("lbvserver", "vs_www"), "lbvserver")
    assert (view["ipv46"], view["port"]) == sim.vip("vs_www")  # what NITRO reports is where TLS is
    leaf, key = pki.leaf("www.example.com")
    assert nitro.install("www", leaf, key).status_code == 201
    assert nitro.install("Vip-IC", pki.ic).status_code == 201
    assert nitro.bind("vs_www", "www").status_code == 201
    root_only = trust(tmp_path, pki.root)
    # not linked yet: the leaf comes alone, a client trusting only the root cannot build the chain
    version, served = handshake(sim, "vs_www")
    assert serial(served) == serial(leaf) and version == "TLSv1.2"  # 13.x default: TLS 1.0-1.2
    with pytest.raises(ssl.SSLCertVerificationError):
        handshake(sim, "vs_www", cafile=root_only)
    link(nitro, "www", "Vip-IC")
    _, served = handshake(sim, "vs_www", cafile=root_only)  # the intermediate is on the wire now
    assert serial(served) == serial(leaf)
    # an update in place is served at once, with the same link
    new_leaf, new_key = pki.leaf("www.example.com", sans=["www.example.com"])
    assert nitro.upload("www-2.crt", cert_pem(new_leaf)).status_code == 201
    assert nitro.upload("www-2.key", key_pem(new_key)).status_code == 201
    body = {"sslcertkey": {"certkey": "www", "cert": "www-2.crt", "key": "www-2.key"}}
    assert nitro.call("POST", "sslcertkey", query="action=update", body=body).status_code == 200
    _, served = handshake(sim, "vs_www", cafile=root_only)
    assert serial(served) == serial(new_leaf)


def test_vip_chooses_the_certificate_by_sni(nitro: Nitro, pki: Pki, tmp_path: Path) -> None:
    sim = nitro.sim
    sim.add_vserver("vs_sni", "lb", snienable=True)
    default, default_key = pki.leaf("default.example.com")
    api_old, api_old_key = pki.leaf("api.example.com")
    api_new, api_new_key = pki.leaf("api.example.com")
    for name, cert, key in (
        ("default", default, default_key),
        ("api-old", api_old, api_old_key),
        ("api-new", api_new, api_new_key),
    ):
        assert nitro.install(name, cert, key).status_code == 201
    assert nitro.bind("vs_sni", "default").status_code == 201
    assert nitro.bind("vs_sni", "api-old", snicert=True).status_code == 201
    # a stale SNI binding: the new certificate is installed, but SNI clients still get the old one
    assert serial(handshake(sim, "vs_sni", "api.example.com")[1]) == serial(api_old)
    assert serial(handshake(sim, "vs_sni", "other.example.com")[1]) == serial(default)
    assert serial(handshake(sim, "vs_sni")[1]) == serial(default)  # no SNI: the default binding
    r = nitro.call(
        "DELETE", "sslvserver_sslcertkey_binding", "vs_sni", query="args=certkeyname:api-old,snicert:true"
    )
    assert r.ok
    assert nitro.bind("vs_sni", "api-new", snicert=True).status_code == 201
    assert serial(handshake(sim, "vs_sni", "API.example.com")[1]) == serial(api_new)
    # SNI switched off on the vserver: every client gets the default certificate
    set_ssl(nitro, "vs_sni", snienable="DISABLED")
    assert serial(handshake(sim, "vs_sni", "api.example.com")[1]) == serial(default)


def test_vip_speaks_the_protocols_the_vserver_enables(nitro: Nitro, pki: Pki) -> None:
    sim = nitro.sim
    sim.add_vserver("vs_old", "cs")
    leaf, key = pki.leaf("old.example.com")
    assert nitro.install("old", leaf, key).status_code == 201
    assert nitro.bind("vs_old", "old").status_code == 201
    set_ssl(nitro, "vs_old", tls1="ENABLED", tls11="DISABLED", tls12="DISABLED", tls13="DISABLED")
    with pytest.raises(ssl.SSLError):  # a modern client refuses a TLS-1.0-only VIP
        handshake(sim, "vs_old")
    version, served = handshake(sim, "vs_old", legacy=True)
    assert version == "TLSv1" and serial(served) == serial(leaf)
    set_ssl(nitro, "vs_old", tls1="DISABLED", tls12="ENABLED", tls13="ENABLED")
    assert handshake(sim, "vs_old")[0] == "TLSv1.3"
    set_ssl(nitro, "vs_old", tls13="DISABLED")
    assert handshake(sim, "vs_old", legacy=True)[0] == "TLSv1.2"


def test_vip_without_certificate_or_simulator_does_not_answer(nitro: Nitro, pki: Pki) -> None:
    sim = nitro.sim
    sim.add_vserver("vs_empty", "vpn")
    with pytest.raises((ssl.SSLError, ConnectionError, OSError)):
        handshake(sim, "vs_empty")  # no server certificate: the vserver is DOWN, the connection reset
    leaf, key = pki.leaf("gw.example.com")
    assert nitro.install("gw", leaf, key).status_code == 201
    assert nitro.bind("vs_empty", "gw").status_code == 201
    assert serial(handshake(sim, "vs_empty")[1]) == serial(leaf)
    # a plain HTTP request over the VIP's TLS gets an answer too (curl works against it)
    host, port = sim.vip("vs_empty")
    context = ssl.create_default_context(cafile=None)
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    with socket.create_connection((host, port), timeout=10) as raw, context.wrap_socket(raw) as conn:
        conn.sendall(b"GET / HTTP/1.1\r\nHost: gw.example.com\r\n\r\n")
        assert conn.recv(4096).startswith(b"HTTP/1.1 200 OK")
    sim.stop()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection((host, port), timeout=5)


RFC1918 = ((10 << 24, 8), ((172 << 24) | (16 << 16), 12), ((192 << 24) | (168 << 16), 16))


def test_vips_are_loopback_only(sim: NetScalerSimulator) -> None:
    # the first host of each RFC 1918 private range, a documentation address, a name
    # (built from integers: never a literal a client could follow; nothing here connects)
    private = [str(next(ipaddress.ip_network((net, bits)).hosts())) for net, bits in RFC1918]
    for address in (*private, "192.0.2.10", "www.example.com"):
        with pytest.raises(ValueError, match="loopback|not an IP"):
            sim.add_vserver("vs_far", "lb", ipv46=address)
    sim.add_vserver("vs_near", "lb", ipv46="127.0.0.1")
    assert sim.vip("vs_near")[0] == "127.0.0.1"
