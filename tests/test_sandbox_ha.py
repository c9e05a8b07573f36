"""A simulated HA pair over HTTPS: configuration written on the Primary reaches the Secondary, SSL files
only with a file sync (on demand or periodic), and the Secondary refuses writes. Every call is plain
``requests`` to the nodes' NITRO APIs; the Secondary is only ever read."""

from __future__ import annotations

import socket
import ssl
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import requests
from cryptography import x509
from test_sandbox_netscaler import PASSWORD, USER, Nitro, Pki, cert_pem, err, items, key_pem

from citrix_connector.sandbox.ca import LocalCA
from citrix_connector.sandbox.netscaler import HaPair, NetScalerSimulator


class Clock:
    def __init__(self) -> None:
        self.now = datetime.now(timezone.utc)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


@pytest.fixture(scope="module")
def tls() -> tuple[bytes, bytes, bytes]:
    ca = LocalCA.create("HA Test")
    cert, key = ca.issue_tls_server_cert()
    return cert, key, ca.bundle_pem()


@pytest.fixture(scope="module")
def pki() -> Pki:
    return Pki("Ha")


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def pair(tls: tuple[bytes, bytes, bytes], clock: Clock) -> Iterator[HaPair]:
    nodes = [NetScalerSimulator(tls[0], tls[1]), NetScalerSimulator(tls[0], tls[1])]
    for node in nodes:
        node.clock = clock
    ha = HaPair(nodes[0], nodes[1])
    ha.add_vserver("vs_www", "lb")
    for node in nodes:
        node.start()
    try:
        yield ha
    finally:
        for node in nodes:
            node.stop()


def client(node: NetScalerSimulator, tls: tuple[bytes, bytes, bytes], tmp_path: Path) -> Nitro:
    bundle = tmp_path / "ca.pem"
    bundle.write_bytes(tls[2])
    nitro = Nitro(node, str(bundle))
    nitro.headers = {"X-NITRO-USER": USER, "X-NITRO-PASS": PASSWORD}
    return nitro


@pytest.fixture
def primary(pair: HaPair, tls: tuple[bytes, bytes, bytes], tmp_path: Path) -> Nitro:
    return client(pair.primary, tls, tmp_path)


@pytest.fixture
def secondary(pair: HaPair, tls: tuple[bytes, bytes, bytes], tmp_path: Path) -> Nitro:
    return client(pair.secondary, tls, tmp_path)


def sync(nitro: Nitro, mode: Any = ("ssl",)) -> None:
    body = {"hafiles": {"mode": list(mode)}}
    r = nitro.call("POST", "hafiles", query="action=sync", body=body)
    assert r.status_code == 200, r.text


def serial_on(nitro: Nitro, certkey: str) -> str | None:
    r = nitro.get("sslcertkey", certkey)
    if r.status_code == 404:
        return None
    return str(items(r, "sslcertkey")[0]["serial"])


def listing(nitro: Nitro) -> list[str]:
    return [
        e["filename"]
        for e in items(nitro.get("systemfile", query="args=filelocation:%2Fnsconfig%2Fssl"), "systemfile")
    ]


def deploy(primary: Nitro, name: str, cert: Any, key: Any, *, update: bool = False) -> None:
    assert primary.upload(f"{name}.crt", cert_pem(cert)).status_code == 201
    assert primary.upload(f"{name}.key", key_pem(key)).status_code == 201
    fields = {"certkey": "www", "cert": f"{name}.crt", "key": f"{name}.key"}
    if update:
        r = primary.call("POST", "sslcertkey", query="action=update", body={"sslcertkey": fields})
        assert r.status_code == 200, r.text
    else:
        assert primary.add("www", f"{name}.crt", f"{name}.key").status_code == 201
        assert primary.bind("vs_www", "www").status_code == 201


def test_roles_and_peers_as_hanode_reports_them(pair: HaPair, primary: Nitro, secondary: Nitro) -> None:
    for nitro, local, peer in ((primary, "Primary", "Secondary"), (secondary, "Secondary", "Primary")):
        nodes = items(nitro.get("hanode"), "hanode")
        assert [(n["id"], n["state"]) for n in nodes] == [(0, local), (1, peer)]
        assert nodes[1]["ipaddress"] == "127.0.0.1"  # both nodes on loopback (profiles list both URLs)
        stat = nitro.call("GET", "hanode", api="stat").json()["hanode"]
        assert stat["hacurstatus"] == "YES" and stat["hacurmasterstate"] == local


def test_config_reaches_the_secondary_and_ssl_files_only_after_a_sync(
    pair: HaPair, primary: Nitro, secondary: Nitro, pki: Pki
) -> None:
    pair.propagation_without_files = "wait"  # the forgiving model: commands wait for their files
    leaf, key = pki.leaf("www.example.com")
    deploy(primary, "www-1", leaf, key)
    assert primary.call("POST", "nsconfig", query="action=save", body={"nsconfig": {}}).ok
    # the add needs files the Secondary does not have: it (and the bind and save after it) waits
    assert serial_on(primary, "www") is not None
    assert serial_on(secondary, "www") is None
    assert "www-1.crt" not in listing(secondary)
    assert pair.describe()["pending"][0].startswith("POST /nitro/v1/config/sslcertkey")
    sync(primary)
    assert serial_on(secondary, "www") == serial_on(primary, "www")
    assert {"www-1.crt", "www-1.key"} <= set(listing(secondary))
    bound = items(secondary.get("sslvserver_sslcertkey_binding", "vs_www"), "sslvserver_sslcertkey_binding")
    assert [b["certkeyname"] for b in bound] == ["www"]
    saved = secondary.get("nsconfig").json()["nsconfig"]
    assert saved["configchanged"] is False  # the propagated save ran after the waiting commands
    # a renewal: the update waits on the Secondary (old certificate) until the next file sync
    old = serial_on(secondary, "www")
    new_leaf, new_key = pki.leaf("www.example.com")
    deploy(primary, "www-2", new_leaf, new_key, update=True)
    assert serial_on(primary, "www") != old and serial_on(secondary, "www") == old
    sync(primary)
    assert serial_on(secondary, "www") == serial_on(primary, "www")
    # commands that need no new file are applied on the Secondary at once
    body = {"sslcertkey": {"certkey": "www", "expirymonitor": "ENABLED", "notificationperiod": 45}}
    assert primary.call("PUT", "sslcertkey", body=body).status_code == 200
    assert items(secondary.get("sslcertkey", "www"), "sslcertkey")[0]["notificationperiod"] == "45"
    # nothing was ever sent to the Secondary but reads (and the Primary's sync request)
    assert pair.secondary.count_writes() == 0
    assert all(r.method == "GET" for r in pair.secondary.requests)


def test_sync_on_the_secondary_pulls_too(pair: HaPair, primary: Nitro, secondary: Nitro, pki: Pki) -> None:
    leaf, key = pki.leaf("www.example.com")
    deploy(primary, "www-1", leaf, key)
    sync(secondary, mode=["all"])  # the secondary-initiated sync
    assert serial_on(secondary, "www") == serial_on(primary, "www")


def test_the_secondary_refuses_writes(pair: HaPair, primary: Nitro, secondary: Nitro, pki: Pki) -> None:
    leaf, key = pki.leaf("www.example.com")
    assert err(secondary.upload("x.crt", cert_pem(leaf))) == (599, 1028)
    assert err(secondary.add("www", "x.crt")) == (599, 1028)
    assert err(secondary.call("POST", "nsconfig", query="action=save", body={"nsconfig": {}})) == (599, 1028)
    assert pair.secondary.get_file("/nsconfig/ssl/x.crt") is None
    assert serial_on(secondary, "www") is None


def test_periodic_file_sync_follows_the_clock(
    pair: HaPair, primary: Nitro, secondary: Nitro, pki: Pki, clock: Clock
) -> None:
    pair.file_sync_interval = 60
    clock.advance(61)  # the pair's last sync is now overdue; a sync with nothing to copy happens first
    leaf, key = pki.leaf("www.example.com")
    deploy(primary, "www-1", leaf, key)
    clock.advance(59)
    assert serial_on(secondary, "www") is None
    clock.advance(2)
    assert serial_on(secondary, "www") == serial_on(primary, "www")


def test_a_broken_sync_never_delivers_and_says_so(
    pair: HaPair, primary: Nitro, secondary: Nitro, pki: Pki, tls: tuple[bytes, bytes, bytes], tmp_path: Path
) -> None:
    bundle = tmp_path / "ctl.pem"
    bundle.write_bytes(tls[2])
    knobs = requests.post(
        f"{pair.primary.url}/_sim/ha_pair", json={"file_sync_broken": True}, verify=str(bundle), timeout=10
    )
    assert knobs.status_code == 204
    leaf, key = pki.leaf("www.example.com")
    deploy(primary, "www-1", leaf, key)
    sync(primary)
    sync(primary)
    assert serial_on(secondary, "www") is None
    stat = secondary.call("GET", "hanode", api="stat").json()["hanode"]
    assert stat["haerrsyncfailure"] == "2"
    state = requests.get(f"{pair.secondary.url}/_sim/ha_pair", verify=str(bundle), timeout=10).json()
    assert state["sync_failures"] == 2 and state["held"] and not state["pending"]
    assert state["propagation_without_files"] == "fail"


def test_a_propagated_add_before_its_files_fails_on_the_secondary(
    pair: HaPair, primary: Nitro, secondary: Nitro, pki: Pki
) -> None:
    """The realistic default (reference §6): the add fails there, the bind after it too; the next file
    sync (the config sync fixing the Secondary up) replays them. Files first: no error at all."""
    leaf, key = pki.leaf("www.example.com")
    deploy(primary, "www-1", leaf, key)
    errors = pair.describe()["propagation_errors"]
    assert len(errors) == 2 and errors[0].startswith("POST /nitro/v1/config/sslcertkey")
    assert "1647" in errors[0]
    assert "sslvserver_sslcertkey_binding" in errors[1]
    assert serial_on(secondary, "www") is None and len(pair.held) == 2
    sync(primary)
    assert serial_on(secondary, "www") == serial_on(primary, "www") and pair.held == []
    bound = items(secondary.get("sslvserver_sslcertkey_binding", "vs_www"), "sslvserver_sslcertkey_binding")
    assert [b["certkeyname"] for b in bound] == ["www"]
    # files synced before the update that names them: applied on the Secondary at once, no error
    new_leaf, new_key = pki.leaf("www.example.com")
    assert primary.upload("www-2.crt", cert_pem(new_leaf)).status_code == 201
    assert primary.upload("www-2.key", key_pem(new_key)).status_code == 201
    sync(primary)
    fields = {"certkey": "www", "cert": "www-2.crt", "key": "www-2.key"}
    assert primary.call("POST", "sslcertkey", query="action=update", body={"sslcertkey": fields}).ok
    assert serial_on(secondary, "www") == serial_on(primary, "www")
    assert pair.describe()["propagation_errors"] == errors and pair.held == []


def vip_serial(node: NetScalerSimulator) -> str:
    host, port = node.vip("vs_www")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    with socket.create_connection((host, port), timeout=10) as raw, context.wrap_socket(raw) as conn:
        der = conn.getpeercert(binary_form=True)
    assert der is not None
    text = format(x509.load_der_x509_certificate(der).serial_number, "X")
    return "0" + text if len(text) % 2 else text


def test_the_vip_floats_to_the_primary(pair: HaPair, primary: Nitro, secondary: Nitro, pki: Pki) -> None:
    assert pair.primary.vip("vs_www") == pair.secondary.vip("vs_www")  # one VIP for the pair
    leaf, key = pki.leaf("www.example.com")
    deploy(primary, "www-1", leaf, key)
    assert vip_serial(pair.primary) == serial_on(primary, "www")
    old_primary = pair.primary
    pair.failover()  # before any file sync: the new Primary never got the certificate
    assert pair.primary is not old_primary and pair.primary.model.ha_state == "Primary"
    with pytest.raises((ssl.SSLError, ConnectionError, OSError)):
        vip_serial(pair.primary)  # the VIP is up on the new Primary, but with no certificate bound
    # the old Primary is now the Secondary and refuses writes
    assert err(primary.upload("late.crt", cert_pem(leaf))) == (599, 1028)


def test_the_world_offers_ha_pairs_and_loopback_vips(tmp_path: Path) -> None:
    import yaml

    from citrix_connector.sandbox.world import Sandbox

    with Sandbox(tmp_path, appliances=2, ha_pairs=1, ha_file_sync_seconds=30) as world:
        (pair,) = world.pairs
        assert pair.file_sync_interval == 30 and pair.secondary.model.ha_state == "Secondary"
        profile = yaml.safe_load(world.profile_path(world.ha_profile_stem(0)).read_text())
        assert profile["appliance"]["url"] == [pair.primary.url, pair.secondary.url]
        text = "\n".join(world.describe())
        assert "HA pair #1" in text and "every 30 s" in text
        vips = [ns.vip(vs) for ns in [*world.netscalers, pair.primary] for vs, _, _ in world.vservers]
        assert all(host == "127.0.0.1" for host, _ in vips)
        assert len({port for _, port in vips}) == len(vips)  # one port per VIP on the whole machine
        for ns in world.servers:
            assert ns.host == "127.0.0.1"
