"""The HA secondary in sync, end to end over HTTPS: the agent deploys and saves on the Primary of a
simulated pair, requests the SSL file sync there, and checks with read-only NITRO calls on the
Secondary that it holds the certkey with the new serial and its files; a Secondary whose file sync
never works is a failure of that target naming the peer. Nothing is ever written to the Secondary."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import requests
from conftest import AgentKit
from lifecycle_helpers import FakeTime, count

from citrix_connector.config import Profile, load_profile
from citrix_connector.lifecycle import Outcome
from citrix_connector.nitro.client import CertKey, NitroClient
from citrix_connector.nitro.hasync import SecondaryLook, chain_of, look_at_secondary
from citrix_connector.sandbox.netscaler import HaPair, NetScalerSimulator
from citrix_connector.sandbox.world import ADC_PASSWORD, ADC_USER, Sandbox
from citrix_connector.state import StateStore


@pytest.fixture
def ha_world(tmp_path: Path) -> Iterator[Sandbox]:
    with Sandbox(tmp_path / "sandbox", issue_after_polls=1, ha_pairs=1) as sandbox:
        yield sandbox


@pytest.fixture
def kit(ha_world: Sandbox, tmp_path: Path) -> AgentKit:
    return AgentKit(ha_world, "admin", StateStore(tmp_path / "ha-state"))


@pytest.fixture
def pair(ha_world: Sandbox) -> HaPair:
    return ha_world.pairs[0]


def serial_on(world: Sandbox, node: NetScalerSimulator, certkey: str) -> str | None:
    """Read-only, over NITRO: the serial the node holds under ``certkey``."""
    with NitroClient(node.url, username=ADC_USER, password=ADC_PASSWORD, verify=world.ca_bundle) as nitro:
        found = nitro.get_certkey(certkey)
    return found.serial if found is not None else None


def run(kit: AgentKit, time: FakeTime | None = None, **overrides: object) -> Outcome:
    profile = kit.profile(kit.world.ha_profile_stem(0), **overrides)
    agent = kit.agent(monotonic=time.monotonic, sleep=time.sleep) if time else kit.agent()
    [outcome] = agent.run([profile])
    return outcome


def test_the_secondary_holds_the_new_certificate_after_the_file_sync(
    kit: AgentKit, ha_world: Sandbox, pair: HaPair
) -> None:
    certkey = kit.profile(ha_world.ha_profile_stem(0)).certificate.certkey_name
    assert serial_on(ha_world, pair.secondary, certkey) is None
    before = len(pair.secondary.requests)
    outcome = run(kit)
    agent_on_secondary = pair.secondary.requests[before:]
    assert outcome.result == "ok", outcome.message
    ha = outcome.details["verification"]["ha"]
    peer = pair.secondary.url.split("://", 1)[1]
    ca_name = _leaf_and_ca(ha_world, pair, certkey)[1].name
    assert ha == {
        "peer": peer,
        "in_sync": True,
        "detail": f"secondary {peer} holds {certkey} serial {outcome.serial}, linked to its CA certkey "
        f"{ca_name!r}, and their files",
        "looks": 1,
        "file_sync_triggered": True,
    }
    assert serial_on(ha_world, pair.secondary, certkey) == outcome.serial
    # the SSL file sync is requested after the uploads and before each certkey add that names them
    # (the CA's, then the leaf's), never after the save; the Secondary was only read
    primary_log = [f"{r.method} {r.path}?{r.query}" for r in pair.primary.requests]
    syncs = [i for i, line in enumerate(primary_log) if "/config/hafiles" in line]
    uploads = [i for i, line in enumerate(primary_log) if line.startswith("POST /nitro/v1/config/systemfile")]
    adds = [i for i, line in enumerate(primary_log) if line == "POST /nitro/v1/config/sslcertkey?"]
    saves = [i for i, line in enumerate(primary_log) if "action=save" in line]
    assert len(syncs) == 2 and len(adds) == 2 and len(saves) == 1, primary_log
    assert uploads[0] < syncs[0] < adds[0] < uploads[1] < syncs[1] < adds[1] < saves[0], primary_log
    assert pair.sync_count == 2
    # every propagated command applied on the Secondary at once: none waited for, or failed on, a file
    assert pair.propagation_errors == [] and pair.held == [] and pair.pending == []
    assert pair.secondary.count_writes() == 0
    assert [r.path for r in agent_on_secondary if r.path.endswith(f"/sslcertkey/{certkey}")] == [
        f"/nitro/v1/config/sslcertkey/{certkey}"
    ]  # one look was enough: the sync had been requested before it
    assert all(r.method == "GET" or r.path.endswith(("/login", "/logout")) for r in agent_on_secondary)
    # the VIP floats on the Primary: the probe saw the new certificate there
    [vip] = outcome.details["verification"]["vips"]
    assert vip["status"] == "ok" and vip["served_serial"] == outcome.serial


def test_without_the_sync_the_secondary_does_not_hold_it(
    kit: AgentKit, ha_world: Sandbox, pair: HaPair
) -> None:
    """The propagated certkey waits on the Secondary for its files: only the sync brings it."""
    outcome = run(kit, ha_sync={"verify": False})
    assert outcome.result == "ok" and outcome.details["verification"]["ha"] is None
    certkey = kit.profile(ha_world.ha_profile_stem(0)).certificate.certkey_name
    assert serial_on(ha_world, pair.primary, certkey) == outcome.serial
    assert serial_on(ha_world, pair.secondary, certkey) is None
    assert count(pair.primary, "/config/hafiles") == 0 and pair.sync_count == 0


def test_a_secondary_that_never_syncs_fails_the_target_naming_the_peer(
    kit: AgentKit, ha_world: Sandbox, pair: HaPair
) -> None:
    knob = requests.post(
        f"{pair.primary.url}/_sim/ha_pair",
        json={"file_sync_broken": True},
        verify=str(ha_world.ca_bundle),
        timeout=10,
    )
    assert knob.ok, knob.text
    time = FakeTime()
    outcome = run(kit, time, ha_sync={"deadline": 30, "interval": 10})
    assert outcome.result == "failed" and outcome.exit_code == 1
    peer = pair.secondary.url.split("://", 1)[1]
    certkey = kit.profile(ha_world.ha_profile_stem(0)).certificate.certkey_name
    assert (
        f"secondary {peer} did not receive {certkey} serial {outcome.serial} within 30 s: "
        "it has no such certkey yet"
    ) in outcome.message
    assert outcome.message.startswith(f"deployed and saved on {pair.primary.url.split('://', 1)[1]}")
    ha = outcome.details["verification"]["ha"]
    assert ha["in_sync"] is False and ha["looks"] == 4  # at 0, 10, 20 and 30 s of the injected clock
    assert time.slept[-3:] == [10, 10, 10]  # (before them: SCM's polls)
    assert count(pair.secondary, f"/config/sslcertkey/{certkey}", method="GET") == 4
    # asked before the CA's add, before the leaf's add, and again after the save (the files never came)
    assert pair.secondary.count_writes() == 0 and pair.sync_failures == 3
    # the propagated adds failed on the Secondary for want of their files (held for a later sync)
    assert any("1647" in e or "1631" in e or "1632" in e for e in pair.propagation_errors)
    # the Primary holds and serves it: only the pair's other half is behind
    assert outcome.details["verification"]["vips"][0]["status"] == "ok"
    # the journal says so too
    events = [e for e in kit.store.load(outcome.profile).history if e["event"] == "verified"]
    assert events[-1]["ok"] is False and peer in events[-1]["failures"][0]


def test_a_pair_listed_by_its_primary_only_is_synced_and_warned_about(
    kit: AgentKit, ha_world: Sandbox, pair: HaPair
) -> None:
    app = {"url": pair.primary.url}
    outcome = run(kit, appliance=app)
    assert outcome.result == "ok" and outcome.exit_code == 0
    # requested before the CA's add and before the leaf's (the Secondary unknown: nothing looked at),
    # not again after the save
    assert count(pair.primary, "/config/hafiles") == 2
    assert (
        "the secondary (127.0.0.1) is not verified: list both node URLs in appliance.url" in outcome.message
    )
    assert pair.secondary.requests == []


def test_the_file_sync_comes_before_each_certkey_step_not_after_the_save(
    kit: AgentKit, ha_world: Sandbox, pair: HaPair
) -> None:
    first = kit.profile(ha_world.ha_profile_stem(0))
    second = kit.profile(
        ha_world.ha_profile_stem(0),
        name="ha1-second",
        certificate={"common_name": "second.sandbox.test", "subject_alt_names": ["second.sandbox.test"]},
        vservers=[{"name": "cs_portal_https", "type": "cs"}],
    )
    outcomes = kit.agent().run([first, second])
    assert [o.result for o in outcomes] == ["ok", "ok"], [o.message for o in outcomes]
    # before each certkey add naming new files (the CA once, each leaf), none after the one save:
    # the Secondary was seen holding every file
    assert count(pair.primary, "/config/hafiles") == 3
    assert pair.propagation_errors == []
    for outcome, profile in zip(outcomes, (first, second), strict=True):
        ha = outcome.details["verification"]["ha"]
        assert ha["in_sync"] is True and ha["file_sync_triggered"] is True  # for the pair, once
        assert serial_on(ha_world, pair.secondary, profile.certificate.certkey_name) == outcome.serial
    assert pair.secondary.count_writes() == 0


# ----------------------------------------------------- several appliances: every target, the canary


@pytest.fixture
def fleet(tmp_path: Path) -> Iterator[Sandbox]:
    with Sandbox(tmp_path / "fleet", appliances=2, ha_pairs=1, issue_after_polls=1) as sandbox:
        yield sandbox


def _multi(world: Sandbox, name: str, **top: object) -> Profile:
    pair = world.pairs[0]
    entries = [
        {
            "url": urls if len(urls) > 1 else urls[0],
            "username": ADC_USER,
            "password": ADC_PASSWORD,
            "verify_tls": str(world.ca_bundle),
        }
        for urls in (
            [world.netscalers[0].url],
            [world.netscalers[1].url],
            [pair.primary.url, pair.secondary.url],
        )
    ]
    data = world.profile_dict(name, [("vs_shop_https", "lb", False)], f"{name}.sandbox.test")
    del data["appliance"]
    return load_profile(world.write_profile(name, {**data, "appliances": entries, **top}))


def test_every_target_is_verified_and_the_pairs_secondary_checked(fleet: Sandbox, tmp_path: Path) -> None:
    profile = _multi(fleet, "multi")
    agent = AgentKit(fleet, "admin", StateStore(tmp_path / "s")).agent()
    outcomes = agent.run([profile])
    assert [o.result for o in outcomes] == ["ok"] * 3, [o.message for o in outcomes]
    for outcome, ns in zip(
        outcomes, (fleet.netscalers[0], fleet.netscalers[1], fleet.pairs[0].primary), strict=True
    ):
        [vip] = outcome.details["verification"]["vips"]
        assert vip["status"] == "ok" and vip["address"] == "{}:{}".format(*ns.vip("vs_shop_https"))
    assert [o.details["verification"]["ha"] is not None for o in outcomes] == [False, False, True]
    assert outcomes[2].details["verification"]["ha"]["in_sync"] is True
    assert (
        fleet.pairs[0].secondary.count_writes() == 0 and count(fleet.pairs[0].primary, "/config/hafiles") == 2
    )  # before the CA's add and the leaf's; none on the standalone appliances


def test_a_canary_serving_tls10_only_stops_the_rollout(fleet: Sandbox, tmp_path: Path) -> None:
    canary = fleet.netscalers[0]
    with NitroClient(canary.url, username=ADC_USER, password=ADC_PASSWORD, verify=fleet.ca_bundle) as nitro:
        nitro.session.call(
            "PUT",
            "sslvserver",
            payload={
                "sslvserver": {
                    "vservername": "vs_shop_https",
                    "tls1": "ENABLED",
                    "tls11": "DISABLED",
                    "tls12": "DISABLED",
                    "tls13": "DISABLED",
                }
            },
        )
    profile = _multi(fleet, "canary", rollout="canary")
    outcomes = AgentKit(fleet, "admin", StateStore(tmp_path / "s")).agent().run([profile])
    assert [o.result for o in outcomes] == ["failed", "nothing", "nothing"], [o.message for o in outcomes]
    assert "old protocol: TLSv1" in outcomes[0].message and "canary" in outcomes[0].message
    assert fleet.netscalers[1].count_writes() == 0 and fleet.pairs[0].primary.count_writes() == 0


def test_a_failed_check_is_shown_by_status_and_checked_again_by_the_next_run(
    kit: AgentKit, ha_world: Sandbox, pair: HaPair
) -> None:
    pair.file_sync_broken = True
    time = FakeTime()
    failed = run(kit, time, ha_sync={"deadline": 10, "interval": 10})
    assert failed.result == "failed"
    profile = kit.profile(ha_world.ha_profile_stem(0), ha_sync={"deadline": 10, "interval": 10})
    [status] = kit.agent().status([profile])
    assert status.result == "attention" and status.exit_code == 5
    assert status.details["last_check"].startswith("failed after the last save: secondary ")
    assert status.details["next"] == "check"  # what the next run does (below): it checks again
    assert "the next run checks again" in status.details["next_reason"]
    # the pair is repaired; the next run writes nothing, requests the sync again and checks: it passes
    pair.file_sync_broken = False
    writes = pair.primary.count_writes()
    [again] = kit.agent(monotonic=time.monotonic, sleep=time.sleep).run([profile])
    assert (again.action, again.result, again.exit_code) == ("nothing", "nothing", 0), again.message
    assert "checked again after the last failed check: it passes now" in again.message
    assert again.details["verification"]["ha"]["in_sync"] is True
    assert pair.primary.count_writes() == writes + 1  # the hafiles sync request, no configuration
    assert pair.secondary.count_writes() == 0
    # passed: the run after that checks nothing, and status is ok
    [idle] = kit.agent().run([profile])
    assert idle.result == "nothing" and "verification" not in idle.details
    assert pair.primary.count_writes() == writes + 1
    assert kit.agent().status([profile])[0].result == "ok"


def _protocols(world: Sandbox, ns: NetScalerSimulator, *, old_only: bool) -> None:
    flags = (
        {"tls1": "ENABLED", "tls11": "DISABLED", "tls12": "DISABLED", "tls13": "DISABLED"}
        if old_only
        else {"tls1": "DISABLED", "tls11": "DISABLED", "tls12": "ENABLED", "tls13": "ENABLED"}
    )
    with NitroClient(ns.url, username=ADC_USER, password=ADC_PASSWORD, verify=world.ca_bundle) as nitro:
        nitro.session.call(
            "PUT", "sslvserver", payload={"sslvserver": {"vservername": "vs_shop_https", **flags}}
        )


def test_a_target_that_failed_its_check_is_checked_again_alone(fleet: Sandbox, tmp_path: Path) -> None:
    second = fleet.netscalers[1]
    _protocols(fleet, second, old_only=True)
    profile = _multi(fleet, "recheck")
    kit = AgentKit(fleet, "admin", StateStore(tmp_path / "s"))
    first = kit.agent().run([profile])
    assert [o.result for o in first] == ["ok", "failed", "ok"]
    assert "old protocol: TLSv1" in first[1].message
    _protocols(fleet, second, old_only=False)  # fixed by hand (TLS 1.2 and 1.3 only)
    writes = [ns.count_writes() for ns in (fleet.netscalers[0], second, fleet.pairs[0].primary)]
    again = kit.agent().run([profile])
    assert [(o.action, o.result) for o in again] == [("nothing", "nothing")] * 3, [o.message for o in again]
    assert "checked again after the last failed check: it passes now" in again[1].message
    assert again[1].details["verification"]["vips"][0]["protocol"] == "TLSv1.3"
    assert "verification" not in again[0].details and "verification" not in again[2].details
    assert [ns.count_writes() for ns in (fleet.netscalers[0], second, fleet.pairs[0].primary)] == writes


def test_file_names_are_never_reused_so_the_secondary_never_loads_an_old_file(
    kit: AgentKit, ha_world: Sandbox, pair: HaPair, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Three deployments within one second: the second's save lets housekeeping delete the first's
    files on the primary, but the secondary keeps them (a file sync never deletes). Reusing that name
    for the third would make the secondary's propagated update load the first certificate again."""
    from citrix_connector.nitro import plan as nitro_plan

    monkeypatch.setattr(nitro_plan, "stamp", lambda _now: "20261202000000")
    profile = kit.profile(ha_world.ha_profile_stem(0))
    agent = kit.agent()
    serials = []
    for command in (agent.enroll, agent.replace, agent.replace):
        [outcome] = command([profile])
        assert outcome.result == "ok", outcome.message
        serials.append(outcome.serial)
    assert len(set(serials)) == 3
    assert serial_on(ha_world, pair.secondary, profile.certificate.certkey_name) == serials[-1]
    names = [r.body for r in pair.primary.requests if r.method == "POST" and r.path.endswith("/systemfile")]
    sent = [json.loads(b)["systemfile"] for b in names]
    uploaded = [f["filename"] for item in sent for f in (item if isinstance(item, list) else [item])]
    assert len(uploaded) == len(set(uploaded))  # every upload under a name never used before


def _damage_the_secondary(world: Sandbox, pair: HaPair, work: Callable[[NitroClient], None]) -> None:
    """Someone works on the Secondary directly (what CTX579137 warns against)."""
    pair.secondary.secondary_writes = "warn"
    try:
        with NitroClient(
            pair.secondary.url, username=ADC_USER, password=ADC_PASSWORD, verify=world.ca_bundle
        ) as nitro:
            work(nitro)
    finally:
        pair.secondary.secondary_writes = "reject"


def _leaf_and_ca(world: Sandbox, pair: HaPair, certkey: str) -> tuple[CertKey, CertKey]:
    with NitroClient(
        pair.primary.url, username=ADC_USER, password=ADC_PASSWORD, verify=world.ca_bundle
    ) as nitro:
        leaf = nitro.get_certkey(certkey)
        assert leaf is not None and leaf.linkcertkeyname
        ca = nitro.get_certkey(leaf.linkcertkeyname)
    assert ca is not None
    return leaf, ca


def test_the_secondary_check_reads_the_link_of_the_leaf(
    kit: AgentKit, ha_world: Sandbox, pair: HaPair
) -> None:
    """The leaf alone is not enough: a Secondary whose leaf lost its CA link would serve an incomplete
    chain after a failover; the check after the save sees it, read-only (review defect 8)."""
    first = run(kit)
    assert first.result == "ok", first.message
    certkey = kit.profile(ha_world.ha_profile_stem(0)).certificate.certkey_name
    _, ca = _leaf_and_ca(ha_world, pair, certkey)
    _damage_the_secondary(ha_world, pair, lambda nitro: nitro.unlink_certkey(certkey))
    writes = pair.secondary.count_writes()
    time = FakeTime()
    profile = kit.profile(ha_world.ha_profile_stem(0), ha_sync={"deadline": 10, "interval": 10})
    [renewed] = kit.agent(monotonic=time.monotonic, sleep=time.sleep).renew([profile])
    assert renewed.result == "failed" and renewed.exit_code == 1, renewed.message
    # the leaf itself reached the Secondary: only its link there is wrong
    assert serial_on(ha_world, pair.secondary, certkey) == renewed.serial
    assert f"certkey {certkey!r} is linked to None there, not to {ca.name!r}" in renewed.message
    assert renewed.details["verification"]["ha"]["in_sync"] is False
    assert pair.secondary.count_writes() == writes  # the agent only read the Secondary


def test_a_look_at_the_secondary_checks_the_ca_certkey_and_its_file(
    kit: AgentKit, ha_world: Sandbox, pair: HaPair
) -> None:
    assert run(kit).result == "ok"
    certkey = kit.profile(ha_world.ha_profile_stem(0)).certificate.certkey_name
    leaf, ca = _leaf_and_ca(ha_world, pair, certkey)

    def look() -> SecondaryLook:
        with NitroClient(
            pair.primary.url, username=ADC_USER, password=ADC_PASSWORD, verify=ha_world.ca_bundle
        ) as primary:
            chain = chain_of(primary.get_certkey, certkey)
        assert [c.certkey for c in chain] == [ca.name]
        with NitroClient(
            pair.secondary.url, username=ADC_USER, password=ADC_PASSWORD, verify=ha_world.ca_bundle
        ) as secondary:
            return look_at_secondary(secondary, certkey, chain)

    assert look().holds(leaf.serial)
    location, _, name = ca.cert.rpartition("/")
    _damage_the_secondary(ha_world, pair, lambda nitro: nitro.delete_file(name, location or None))
    gone = look()
    assert not gone.holds(leaf.serial) and gone.missing_files == (ca.cert,)
    assert gone.describe(leaf.serial) == f"its files {ca.cert} have not arrived"


def test_after_a_failover_the_run_writes_to_and_names_the_new_primary(
    kit: AgentKit, ha_world: Sandbox, pair: HaPair
) -> None:
    """The journal keeps the appliance's key (its first URL); the messages name the node written to
    (review defect 5)."""
    first = run(kit)
    assert first.result == "ok", first.message
    old_primary, old_secondary = pair.primary, pair.secondary
    knob = requests.post(
        f"{old_primary.url}/_sim/ha_pair/failover", verify=str(ha_world.ca_bundle), timeout=10
    )
    assert knob.ok, knob.text
    assert pair.primary is old_secondary
    new_host = old_secondary.url.split("://", 1)[1]
    old_host = old_primary.url.split("://", 1)[1]
    writes_on_old = old_primary.count_writes()
    [renewed] = kit.agent().renew([kit.profile(ha_world.ha_profile_stem(0))])
    assert renewed.result == "ok", renewed.message
    assert old_primary.count_writes() == writes_on_old  # now the Secondary: only read
    # a renewal (the CA is installed already): one file sync, before the update, none after the save
    assert count(old_secondary, "/config/hafiles") == 1
    certkey = kit.profile(ha_world.ha_profile_stem(0)).certificate.certkey_name
    assert serial_on(ha_world, old_secondary, certkey) == renewed.serial
    assert serial_on(ha_world, old_primary, certkey) == renewed.serial  # propagated, files synced
    assert renewed.message.endswith(f"bound to vs_shop_https on {new_host}"), renewed.message
    ha = renewed.details["verification"]["ha"]
    assert ha["peer"] == old_host and ha["in_sync"] is True
    assert ha["detail"].startswith(f"secondary {old_host} holds {certkey}")
    assert renewed.details["verification"]["target"] == new_host
    # the journal's key stays the configured first URL
    record = kit.store.load(renewed.profile).deployment(None)
    assert record is not None and record.appliance == old_host
    # revoke --dry-run names the node the certificate is on (the new Primary), not the first URL
    profile = kit.profile(ha_world.ha_profile_stem(0))
    [planned] = kit.agent(dry_run=True).revoke([profile], reason="superseded", reason_code=4)
    assert planned.result == "planned"
    assert f"installed as {certkey} on {new_host}, bound to vs_shop_https" in planned.message, planned.message
