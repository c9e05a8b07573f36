"""What the appliance serves, as ``status`` and ``run`` see it (end to end over HTTPS against the
sandbox): a CA link removed by hand is reported and repaired; a probe override the loopback guard
refuses is caught before anything is ordered; ``next:`` after a failed check."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from conftest import AgentKit, CliResult
from lifecycle_helpers import same_serial

from citrix_connector.config import Profile, load_profile
from citrix_connector.nitro.client import NitroClient
from citrix_connector.sandbox.netscaler import NetScalerSimulator
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


# ------------------------------------------------------- rows of a profile with several appliances

VS = "vs_shop_https"


@pytest.fixture
def pair_world(tmp_path: Path) -> Iterator[Sandbox]:
    with Sandbox(tmp_path / "sandbox", appliances=2, issue_after_polls=1) as sandbox:
        yield sandbox


def _protocols(world: Sandbox, ns: NetScalerSimulator, *, old_only: bool) -> None:
    on, off = ("ENABLED", "DISABLED") if old_only else ("DISABLED", "ENABLED")
    flags = {"tls1": on, "tls11": "DISABLED", "tls12": off, "tls13": off}
    with NitroClient(ns.url, username=ADC_USER, password=ADC_PASSWORD, verify=world.ca_bundle) as client:
        client.session.call("PUT", "sslvserver", payload={"sslvserver": {"vservername": VS, **flags}})


def _canary_profile(world: Sandbox) -> Profile:
    entries = [
        {"url": ns.url, "username": ADC_USER, "password": ADC_PASSWORD, "verify_tls": str(world.ca_bundle)}
        for ns in world.netscalers
    ]
    data = world.profile_dict("rows", [(VS, "lb", False)], "rows.sandbox.test")
    del data["appliance"]
    return load_profile(world.write_profile("rows", {**data, "appliances": entries, "rollout": "canary"}))


def test_rows_show_what_each_target_serves(pair_world: Sandbox, tmp_path: Path) -> None:
    world = pair_world
    canary, other = world.netscalers
    profile = _canary_profile(world)
    kit = AgentKit(world, "admin", StateStore(tmp_path / "rows-state"))
    first = kit.agent().run([profile])
    assert [o.result for o in first] == ["ok", "ok"], [o.message for o in first]
    old_serial, old_expires = first[1].serial, first[1].expires
    # a canary serving TLS 1.0 only stops the renewal's rollout: the other target still serves the old one
    _protocols(world, canary, old_only=True)
    renewed = kit.agent().renew([profile])
    assert [(o.action, o.result) for o in renewed] == [("renew", "failed"), ("renew", "nothing")]
    new_serial = renewed[0].serial
    assert new_serial != old_serial and same_serial(canary.serving_certificate(VS), new_serial)
    assert same_serial(other.serving_certificate(VS), old_serial)
    stopped = renewed[1]
    assert (stopped.serial, stopped.expires, stopped.vservers) == (old_serial, old_expires, [VS])
    assert stopped.order_id == renewed[0].order_id  # the order the row is about
    # the canary is fixed; the other target's update fails: its row says the old certificate serves
    _protocols(world, canary, old_only=False)
    other.add_fault(r"/config/sslcertkey$", method="POST", status=503, times=None)  # the update
    again = kit.agent().run([profile])
    assert [o.result for o in again] == ["ok", "failed"], [o.message for o in again]
    assert same_serial(other.serving_certificate(VS), old_serial)
    assert (again[1].serial, again[1].expires, again[1].vservers) == (old_serial, old_expires, [VS])
    other.clear_faults()
    # enroll --force while SCM refuses the order: each row says what its target still serves
    world.scm.add_fault(r"/enroll", method="POST", status=400, times=None)
    forced = kit.agent(force=True).enroll([profile])
    assert [o.result for o in forced] == ["failed", "failed"], [o.message for o in forced]
    assert [(o.serial, o.vservers) for o in forced] == [(new_serial, [VS]), (old_serial, [VS])]


# ------------------------------------------------------------------ the sandbox's appliances: profile


def test_the_sandbox_writes_an_appliances_profile_over_everything_it_started(
    tmp_path: Path, cli: Callable[..., CliResult]
) -> None:
    help_text = cli("sandbox", "serve", "--help").out
    assert "one profile set each" not in help_text and "multi-profile.yaml" in help_text
    with Sandbox(tmp_path / "sb", appliances=2, ha_pairs=1, issue_after_polls=1) as world:
        path = world.profile_path("multi-profile")
        assert any(line.endswith(str(path)) for line in world.describe())
        profile = load_profile(path)
        pair = world.pairs[0]
        urls = [list(t.appliance.urls) for t in profile.targets]
        assert urls == [
            [world.netscalers[0].url],
            [world.netscalers[1].url],
            [pair.primary.url, pair.secondary.url],
        ]
        assert [v.name for v in profile.vservers] == ["vs_multi_https"]
        checked = cli("--scm-config", world.scm_yaml, "validate", path)
        assert checked.code == 0 and "3 appliances, rollout all" in checked.out, checked.output
        # a run of the whole directory: every profile on its own vserver, nothing flipped
        ran = cli("--scm-config", world.scm_yaml, "--json", "run", world.directory)
        assert ran.code == 0, ran.output
        rows = json.loads(ran.out)
        multi = [r for r in rows if r["profile"] == "multi-profile"]
        assert [r["result"] for r in multi] == ["ok"] * 3
        serial = multi[0]["serial"]
        for node in (*world.netscalers, pair.primary):
            assert same_serial(node.serving_certificate("vs_multi_https"), serial)
        lb = next(r for r in rows if r["profile"] == "lb-profile")
        assert same_serial(world.netscalers[0].serving_certificate("vs_shop_https"), lb["serial"])
        again = cli("--scm-config", world.scm_yaml, "--json", "run", world.directory)
        assert again.code == 0 and {r["action"] for r in json.loads(again.out)} == {"nothing"}, again.out
    # one appliance and no pair: no such profile (nothing to spread over)
    with Sandbox(tmp_path / "one", issue_after_polls=1) as single:
        assert not single.profile_path("multi-profile").exists()


def test_a_check_that_could_not_run_is_journalled_as_a_failed_check(kit: AgentKit, world: Sandbox) -> None:
    from citrix_connector.lifecycle.context import ApplianceSession
    from citrix_connector.lifecycle.outcome import Done
    from citrix_connector.lifecycle.verify import last_check_failed, verified

    profile = kit.profile("lb-profile")
    [first] = kit.agent().run([profile])
    assert first.result == "ok", first.message
    # the same profile as a library caller might pass it (no preflight): a refused probe override
    far = kit.profile("lb-profile", vservers=[{"name": "vs_shop_https", "probe": "192.0.2.7:443"}])
    agent = kit.agent()
    session = ApplianceSession(far.appliance, agent.nitro_opener)
    try:
        done = verified(agent.ctx, far, session, Done("redeploy", "ok", "deployed"))
    finally:
        session.close()
    assert (done.result, done.exit_code) == ("failed", 2) and "could not be verified" in done.message
    state = kit.store.load(profile.name)
    failures = last_check_failed(state)
    assert failures is not None and "vservers[0].probe" in failures[0]
    # status of the profile says so, and what the next run does
    [status] = kit.agent().status([profile])
    assert status.result == "attention" and status.details["next"] == "check"
    assert status.details["last_check"].startswith("failed after the last save: ")
