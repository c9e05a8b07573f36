"""What the appliance serves, as ``status`` and ``run`` see it (end to end over HTTPS against the
sandbox): a CA link removed by hand is reported and repaired; a probe override the loopback guard
refuses is caught before anything is ordered; ``next:`` after a failed check."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import AgentKit, CliResult

from citrix_connector.nitro.client import NitroClient
from citrix_connector.sandbox.world import ADC_PASSWORD, ADC_USER, Sandbox
from citrix_connector.state import StateStore


@pytest.fixture
def kit(world: Sandbox, tmp_path: Path) -> AgentKit:
    return AgentKit(world, "admin", StateStore(tmp_path / "truth-state"))


def nitro(world: Sandbox) -> NitroClient:
    ns = world.netscaler
    return NitroClient(ns.url, username=ADC_USER, password=ADC_PASSWORD, verify=world.ca_bundle)


def test_a_removed_ca_link_is_reported_by_status_and_repaired_by_run(kit: AgentKit, world: Sandbox) -> None:
    profile = kit.profile("lb-profile")
    certkey = profile.certificate.certkey_name
    [first] = kit.agent().run([profile])
    assert first.result == "ok", first.message
    with nitro(world) as client:
        issuer = client.get_certkey(certkey).linkcertkeyname  # type: ignore[union-attr]
        assert issuer
        unlink = {"sslcertkey": {"certkey": certkey}}
        client.session.call("POST", "sslcertkey", action="unlink", payload=unlink)
        assert client.get_certkey(certkey).linkcertkeyname is None  # type: ignore[union-attr]
    [status] = kit.agent().status([profile])
    assert (status.result, status.exit_code) == ("attention", 5), status.message
    assert status.details["next"] == "redeploy" and status.details["link"] is None
    assert "is not linked to its issuing CA" in status.details["next_reason"]
    before = len(world.netscaler.requests)
    [again] = kit.agent().run([profile])
    assert again.action == "redeploy" and again.exit_code == 0, again.message
    with nitro(world) as client:
        assert client.get_certkey(certkey).linkcertkeyname == issuer  # type: ignore[union-attr]
    writes = [
        f"{r.method} {r.path}?{r.query}" for r in world.netscaler.requests[before:] if r.method != "GET"
    ]
    # re-linked in place: no upload, no add or update; the link, and the save
    assert not [w for w in writes if "systemfile" in w or w.startswith("PUT /nitro/v1/config/sslcertkey")]
    assert [w for w in writes if "action=link" in w] == ["POST /nitro/v1/config/sslcertkey?action=link"]
    assert sum("action=save" in w for w in writes) == 1
    [idle] = kit.agent().run([profile])
    assert idle.action == "nothing", idle.message
    assert kit.agent().status([profile])[0].result == "ok"


def test_a_refused_probe_override_is_caught_before_anything_is_ordered(
    kit: AgentKit, world: Sandbox, cli: Callable[..., CliResult]
) -> None:
    profile = kit.profile(
        "lb-profile", name="far", vservers=[{"name": "vs_shop_https", "probe": "192.0.2.7:443"}]
    )
    where = f"{profile.source}:{profile.line_of('vservers[0].probe')}: vservers[0].probe"
    scm_before, ns_before = len(world.scm.requests), len(world.netscaler.requests)
    checked = cli("--scm-config", world.scm_yaml, "validate", profile.source)
    assert checked.code == 2, checked.output
    assert where in checked.output and "only loopback" in checked.output
    ran = cli("--scm-config", world.scm_yaml, "run", profile.source)
    assert ran.code == 2, ran.output
    assert where in ran.output and "192.0.2.7:443" in ran.output
    # refused before any network call: SCM and the appliance were not asked anything
    assert len(world.scm.requests) == scm_before and len(world.netscaler.requests) == ns_before
    # the library's run refuses it the same way, before ordering
    [outcome] = kit.agent().run([profile])
    assert (outcome.result, outcome.exit_code) == ("failed", 2), outcome.message
    assert where in outcome.message
    assert len(world.scm.requests) == scm_before and len(world.netscaler.requests) == ns_before
    assert kit.store.load(profile.name).current is None
