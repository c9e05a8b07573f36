"""The TLS probe of every VIP, end to end: the agent deploys through NITRO over HTTPS, then hands shake
with each vserver's loopback VIP on the simulated NetScaler (real TLS, certificate chosen by SNI, the
linked chain, per-vserver protocols) and reports ok / wrong certificate / chain incomplete / old
protocol / unreachable. And the loopback-only guard: nothing is probed off this machine."""

from __future__ import annotations

import dataclasses
import json
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import requests
from conftest import AgentKit, CliResult
from lifecycle_helpers import count
from test_sandbox_netscaler import Pki, cert_pem, key_pem

from citrix_connector.config import Profile, load_profile
from citrix_connector.errors import LoopbackOnlyError
from citrix_connector.lifecycle import Outcome
from citrix_connector.lifecycle.verify import probe_installed, verify_target
from citrix_connector.nitro.checks import ApplianceView
from citrix_connector.nitro.client import NitroClient
from citrix_connector.probe import Expectation, NoHandshake, VipTarget, guard, probe_vips
from citrix_connector.probe.judge import name_matches
from citrix_connector.probe.targets import server_names
from citrix_connector.sandbox.netscaler import NetScalerSimulator
from citrix_connector.sandbox.world import ADC_PASSWORD, ADC_USER, Sandbox
from citrix_connector.state import StateStore


@pytest.fixture
def kit(world: Sandbox, tmp_path: Path) -> AgentKit:
    return AgentKit(world, "admin", StateStore(tmp_path / "probe-state"))


@pytest.fixture(scope="module")
def pki() -> Pki:
    return Pki("Probe Old")


def nitro_of(world: Sandbox, ns: NetScalerSimulator) -> NitroClient:
    return NitroClient(ns.url, username=ADC_USER, password=ADC_PASSWORD, verify=world.ca_bundle)


def vips(outcome: Outcome) -> list[dict[str, Any]]:
    return list(outcome.details["verification"]["vips"])


def run(kit: AgentKit, profile: Profile) -> Outcome:
    [outcome] = kit.agent().run([profile])
    return outcome


def free_port() -> int:
    """A loopback port nobody listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# ------------------------------------------------------------------------------------ the guard


def test_the_suite_runs_with_the_guard_on() -> None:
    assert guard.enabled()


@pytest.mark.parametrize("host", ["192.0.2.10", "2001:db8::1", "example.com", "0.0.0.0", "127.0.0.1.nip.io"])
def test_guard_refuses_a_non_loopback_target_before_connecting(
    host: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_socket(*args: object, **kwargs: object) -> None:
        raise AssertionError("a socket was opened")

    monkeypatch.setattr(socket, "create_connection", no_socket)
    connected: list[str] = []

    def connect(address: str, port: int, server_name: str | None, timeout: float) -> NoHandshake:
        connected.append(address)
        return NoHandshake("not reached")

    targets = [
        VipTarget("vs_local", "127.0.0.1", 443, "a.example"),  # loopback: would be fine on its own
        VipTarget("vs_far", host, 443, "a.example"),
    ]
    with pytest.raises(LoopbackOnlyError, match=r"vserver vs_far: refusing to probe .*only loopback"):
        probe_vips(targets, Expectation("1"), connect=connect)
    assert connected == []  # not even the loopback target was connected to


def test_guard_allows_loopback_only_and_needs_no_resolver(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(socket, "getaddrinfo", lambda *a, **k: pytest.fail("a name was resolved"))
    assert guard.checked_address("127.0.0.1", 1, what="x") == "127.0.0.1"
    assert guard.checked_address("127.8.9.10", 1, what="x") == "127.8.9.10"
    assert guard.checked_address("::1", 1, what="x") == "::1"
    assert guard.checked_address("[::1]", 1, what="x") == "::1"
    assert guard.checked_address("LOCALHOST", 1, what="x") == "127.0.0.1"


def test_guard_is_off_outside_tests_demo_and_sandbox(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(guard, "_enabled_here", False)
    monkeypatch.delenv(guard.ENV_VAR)
    assert not guard.enabled()
    assert guard.checked_address("adc-vip.example.com", 443, what="x") == "adc-vip.example.com"
    monkeypatch.setenv(guard.ENV_VAR, "0")
    assert not guard.enabled()
    monkeypatch.setenv(guard.ENV_VAR, "yes")
    assert guard.enabled()
    monkeypatch.delenv(guard.ENV_VAR)
    guard.enable()
    assert guard.enabled()


def test_a_profile_probe_override_off_this_machine_fails_before_connecting(
    kit: AgentKit, monkeypatch: pytest.MonkeyPatch
) -> None:
    profile = kit.profile("lb-profile", vservers=[{"name": "vs_shop_https", "probe": "192.0.2.7:443"}])
    outcome = run(kit, profile)
    assert outcome.result == "failed" and outcome.exit_code == 2
    assert outcome.action == "run" and kit.store.load(profile.name).current is None  # nothing ordered
    assert f"{profile.source}:" in outcome.message and "vservers[0].probe" in outcome.message
    assert "192.0.2.7:443" in outcome.message and "only loopback" in outcome.message


# ------------------------------------------------------------------------------------ pure parts


def test_names_and_sni_choice() -> None:
    assert name_matches("*.example.com", "a.example.com")
    assert not name_matches("*.example.com", "a.b.example.com")
    assert not name_matches("*.example.com", "example.com")
    assert name_matches("WWW.Example.com", "www.example.com.")
    names = ("api.example.com", "*.api.example.com", "www.api.example.com", "API.example.com")
    assert server_names(True, names) == ["api.example.com", "www.api.example.com"]
    assert server_names(False, names) == ["api.example.com"]
    assert server_names(False, ("*.example.com",)) == ["citrixagent-probe.example.com"]


# ---------------------------------------------------------------------------- after a deployment


def test_every_vip_serves_the_new_serial_after_a_run(kit: AgentKit, world: Sandbox) -> None:
    outcome = run(kit, kit.profile("lb-profile"))
    assert outcome.result == "ok", outcome.message
    [vip] = vips(outcome)
    host, port = world.netscaler.vip("vs_shop_https")
    assert vip["status"] == "ok" and vip["address"] == f"{host}:{port}"
    assert vip["served_serial"] == outcome.serial and vip["protocol"] == "TLSv1.2"
    assert vip["server_name"] == "shop.sandbox.test"
    assert "warning" not in outcome.message and "verif" not in outcome.message  # proven: nothing to add
    # SNI: every name of the profile is sent, each gets the new certificate
    sni = run(kit, kit.profile("sni-profile"))
    assert sni.result == "ok", sni.message
    assert [(v["server_name"], v["status"], v["served_serial"]) for v in vips(sni)] == [
        ("api.sandbox.test", "ok", sni.serial),
        ("www.api.sandbox.test", "ok", sni.serial),
    ]


def test_an_sni_binding_left_on_an_old_certificate_is_caught(kit: AgentKit, world: Sandbox, pki: Pki) -> None:
    old, key = pki.leaf("www.api.sandbox.test")
    with nitro_of(world, world.netscaler) as nitro:  # an older certificate for one of the names
        nitro.upload_file("old-www-api.crt", cert_pem(old))
        nitro.upload_file("old-www-api.key", key_pem(key))
        nitro.add_certkey("old_www_api", "old-www-api.crt", "old-www-api.key")
        nitro.bind_certkey("vs_sni_https", "old_www_api", sni=True)
    outcome = run(kit, kit.profile("sni-profile"))
    assert outcome.result == "failed" and outcome.exit_code == 1
    ok, stale = vips(outcome)
    assert (ok["server_name"], ok["status"]) == ("api.sandbox.test", "ok")
    assert (stale["server_name"], stale["status"]) == ("www.api.sandbox.test", "wrong-certificate")
    old_serial = format(old.serial_number, "X")
    assert stale["served_serial"] == old_serial and stale["served_subject"] == "CN=www.api.sandbox.test"
    assert f"serves serial {old_serial} (CN=www.api.sandbox.test), expected serial {outcome.serial}" in (
        outcome.message
    )
    assert "deployed and saved" in outcome.message  # the deployment itself happened


def test_a_missing_chain_link_is_caught(kit: AgentKit, world: Sandbox) -> None:
    profile = kit.profile("lb-profile")
    first = run(kit, profile)
    assert first.result == "ok"
    with nitro_of(world, world.netscaler) as nitro:
        nitro.unlink_certkey(profile.certificate.certkey_name)
        before = len(world.netscaler.requests)
        view = ApplianceView(nitro)
        # the NITRO link is gone: on its own it no longer says an intermediate is due
        [report] = probe_installed(profile, view, nitro.host, serial=str(first.serial))
        assert report.status == "ok"
        state = kit.store.load(profile.name)
        assert state.current is not None
        [report] = probe_installed(
            profile, view, nitro.host, serial=state.current.serial, chain_pem=state.current.chain_pem
        )
        requests_made = [f"{r.method} {r.path}" for r in world.netscaler.requests[before:]]
    # read-only, and from the view: certkeys (bulk), bindings (bulk), lb vservers (bulk), once each
    assert sorted(requests_made) == [
        "GET /nitro/v1/config/lbvserver",
        "GET /nitro/v1/config/sslcertkey",
        "GET /nitro/v1/config/sslvserver_sslcertkey_binding",
    ]
    assert report.status == "chain-incomplete"
    assert "Issuing CA" in report.detail and "not sent after the leaf" in report.detail


def test_a_tls10_only_vip_is_an_old_protocol(kit: AgentKit, world: Sandbox) -> None:
    flags = {"tls1": "ENABLED", "tls11": "DISABLED", "tls12": "DISABLED", "tls13": "DISABLED"}
    with nitro_of(world, world.netscaler) as nitro:
        nitro.session.call(
            "PUT", "sslvserver", payload={"sslvserver": {"vservername": "vs_shop_https", **flags}}
        )
    outcome = run(kit, kit.profile("lb-profile"))
    assert outcome.result == "failed" and outcome.exit_code == 1
    [vip] = vips(outcome)
    assert vip["status"] == "old-protocol" and vip["protocol"] == "TLSv1"
    assert vip["served_serial"] == outcome.serial  # the right certificate, served over TLS 1.0
    assert "old protocol: TLSv1 (TLS 1.2 or newer expected)" in outcome.message
    # warn-only: the same finding is a warning, the run succeeds
    relaxed = run(kit, kit.profile("lb-profile", name="lb-warn", probe="warn-only"))
    assert relaxed.result == "ok" and relaxed.exit_code == 0
    assert "warning: VIP vs_shop_https" in relaxed.message and "old protocol: TLSv1" in relaxed.message


def test_an_unreachable_vip_is_a_warning_unless_the_probe_is_required(kit: AgentKit, world: Sandbox) -> None:
    port = free_port()
    vservers = [{"name": "vs_shop_https", "probe": f"127.0.0.1:{port}"}]
    outcome = run(kit, kit.profile("lb-profile", vservers=vservers))
    assert outcome.result == "ok" and outcome.exit_code == 0
    [vip] = vips(outcome)
    assert vip["status"] == "unreachable" and vip["address"] == f"127.0.0.1:{port}"
    assert "connection refused" in vip["detail"] and "warning: VIP vs_shop_https" in outcome.message
    strict = run(
        kit, kit.profile("lb-profile", name="lb-strict", vservers=vservers, probe={"mode": "required"})
    )
    assert strict.result == "failed" and strict.exit_code == 1
    assert f"127.0.0.1:{port}" in strict.message and "unreachable: connection refused" in strict.message


def test_the_probe_override_is_where_the_probe_goes(kit: AgentKit, world: Sandbox) -> None:
    host, port = world.netscaler.vip("vs_shop_https")  # as if NAT put the VIP behind this address
    outcome = run(
        kit, kit.profile("lb-profile", vservers=[{"name": "vs_shop_https", "probe": f"localhost:{port}"}])
    )
    assert outcome.result == "ok", outcome.message
    [vip] = vips(outcome)
    assert vip["address"] == f"localhost:{port}" and vip["status"] == "ok"


def test_probe_off_probes_nothing(kit: AgentKit, world: Sandbox, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(socket, "create_connection", lambda *a, **k: pytest.fail("probed"))
    outcome = run(kit, kit.profile("lb-profile", probe="off"))
    assert outcome.result == "ok" and vips(outcome) == []
    assert outcome.details["verification"]["probe_mode"] == "off"


def test_verify_target_is_callable_on_its_own(kit: AgentKit, world: Sandbox) -> None:
    """The entry point a canary rollout uses: one target, after its save."""
    profile = kit.profile("lb-profile")
    outcome = run(kit, profile)
    with nitro_of(world, world.netscaler) as nitro:
        result = verify_target(profile, profile.appliance, nitro, serial=str(outcome.serial))
        wrong = verify_target(profile, profile.appliance, nitro, serial="1234")
    assert result.ok and result.ha is None and [v.status for v in result.vips] == ["ok"]
    assert not wrong.ok and wrong.failures[0].startswith("VIP vs_shop_https 127.0.0.1:")
    assert "wrong certificate" in wrong.failures[0]


def test_control_api_serving_agrees_with_the_probe(kit: AgentKit, world: Sandbox) -> None:
    outcome = run(kit, kit.profile("lb-profile"))
    r = requests.get(
        f"{world.netscaler.url}/_sim/serving/vs_shop_https", verify=str(world.ca_bundle), timeout=10
    )
    assert r.json()["serial"].lstrip("0").upper() == outcome.serial == vips(outcome)[0]["served_serial"]


# ------------------------------------------------------------------------------- status --probe


def test_status_probe_reports_each_vip_read_only(
    cli: Callable[..., CliResult], world: Sandbox, state_dir: Path
) -> None:
    lb, sni = world.profile_path("lb-profile"), world.profile_path("sni-profile")
    ran = cli("--scm-config", world.scm_yaml, "run", lb, sni)
    assert ran.code == 0, ran.output
    assert "  vip: vs_shop_https 127.0.0.1:" in ran.out and "(SNI shop.sandbox.test): ok: serial" in ran.out
    writes = world.netscaler.count_writes()
    res = cli("--scm-config", world.scm_yaml, "status", "--probe", lb, sni)
    assert res.code == 0, res.output
    host, port = world.netscaler.vip("vs_sni_https")
    assert f"  vip: vs_sni_https {host}:{port} (SNI www.api.sandbox.test): ok: serial" in res.out
    assert res.out.count("  vip: ") == 3  # lb: the CN; sni: both names
    plain = cli("--scm-config", world.scm_yaml, "status", lb)
    assert plain.code == 0 and "vip:" not in plain.out
    # break one: unlink the SNI certificate from its intermediate; status --probe says so (exit 5)
    profile = load_profile(sni)
    with nitro_of(world, world.netscaler) as nitro:
        nitro.unlink_certkey(profile.certificate.certkey_name)
    writes += 1
    broken = cli("--json", "--scm-config", world.scm_yaml, "status", "--probe", lb, sni)
    assert broken.code == 5, broken.output
    rows = {row["profile"]: row for row in json.loads(broken.out)}
    assert rows["lb-profile"]["result"] == "ok"
    assert rows["sni-profile"]["result"] == "attention"
    assert [v["status"] for v in rows["sni-profile"]["details"]["probe"]] == ["chain-incomplete"] * 2
    assert world.netscaler.count_writes() == writes  # status --probe wrote nothing
    assert count(world.netscaler, "/config/hafiles") == 0


def test_status_probe_honours_probe_off(cli: Callable[..., CliResult], kit: AgentKit, world: Sandbox) -> None:
    profile = kit.profile("lb-profile", probe="off")
    assert cli("--scm-config", world.scm_yaml, "run", profile.source).code == 0
    res = cli("--scm-config", world.scm_yaml, "status", "--probe", profile.source)
    assert res.code == 0 and "  vip: none probed: probe is off in the profile" in res.out


def test_after_a_renewal_the_vip_serves_the_renewed_certificate(kit: AgentKit, world: Sandbox) -> None:
    profile = kit.profile("lb-profile")
    first = run(kit, profile)
    [renewed] = kit.agent().renew([profile])
    assert renewed.result == "ok" and renewed.serial != first.serial, renewed.message
    [vip] = vips(renewed)
    assert vip["status"] == "ok" and vip["served_serial"] == renewed.serial


class _NoAddressView:
    """Stands in for the appliance view in a pure test of target building (no HTTP involved)."""

    def vserver(self, kind: str, name: str) -> Any:
        from citrix_connector.nitro.models import Vserver

        if name == "gone":
            return None
        return Vserver(name, kind, "SSL", "UP", "ENABLED", ipv46="0.0.0.0", port=0)


def test_a_vserver_without_a_vip_address_is_unreachable_with_a_hint() -> None:
    from citrix_connector.config.verify import HostPort
    from citrix_connector.nitro.models import VserverRef
    from citrix_connector.probe.targets import vip_targets

    @dataclasses.dataclass(frozen=True)
    class Vs(VserverRef):
        probe: HostPort | None = None

    view: Any = _NoAddressView()
    targets = vip_targets(
        view,
        "adc.example.test",
        [Vs("cs_inner", "cs"), Vs("gone", "lb"), Vs("vs_nat", "lb", probe=HostPort("127.0.0.2", 8443))],
        ["a.example.test"],
    )
    reports = probe_vips(targets, Expectation("1"), connect=lambda *a: NoHandshake("refused"))
    assert [r.status for r in reports] == ["unreachable"] * 3
    assert (
        "no VIP address on adc.example.test (ipv46 0.0.0.0, port 0); set probe: host:port"
        in reports[0].detail
    )
    assert "lb vserver gone not found on adc.example.test" in reports[1].detail
    assert reports[2].address == "127.0.0.2:8443" and reports[2].detail == "unreachable: refused"


def test_two_profiles_on_one_vserver_the_probe_sees_who_won(kit: AgentKit, world: Sandbox) -> None:
    """Both bind as the vserver's default certificate: the second replaces the first's binding, and
    only the probe of the first says so (its own read-back ran before the second deployment)."""
    first = kit.profile("lb-profile")
    second = kit.profile(
        "lb-profile",
        name="lb-other",
        certificate={"common_name": "other.sandbox.test", "subject_alt_names": ["other.sandbox.test"]},
    )
    one, two = kit.agent().run([first, second])
    assert (one.result, two.result) == ("failed", "ok"), (one.message, two.message)
    [vip] = vips(one)
    assert vip["status"] == "wrong-certificate" and vip["served_serial"] == two.serial
    assert vip["served_subject"] == "CN=other.sandbox.test"
    assert "name mismatch: the certificate served does not cover shop.sandbox.test" in one.message
