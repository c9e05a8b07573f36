"""What the appliance serves, as ``status`` and ``run`` see it (end to end over HTTPS against the
sandbox): a CA link removed by hand is reported and repaired; a probe override the loopback guard
refuses is caught before anything is ordered; ``next:`` after a failed check."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import AgentKit

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
