"""Several appliances, one certificate (``appliances:``), end to end over HTTPS against the sandbox:
two standalone simulated NetScalers and one HA pair. Request counts come from the simulators' logs."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from lifecycle_helpers import same_serial, saves, scm_writes

from citrix_connector.config import load_profile, load_scm_config
from citrix_connector.errors import EXIT_FAILURE
from citrix_connector.lifecycle import Agent, Outcome, worst_exit_code
from citrix_connector.sandbox.netscaler import NetScalerSimulator
from citrix_connector.sandbox.world import ADC_PASSWORD, ADC_USER, Sandbox
from citrix_connector.state import StateStore

VS = "vs_shop_https"


@pytest.fixture
def world(tmp_path: Path) -> Iterator[Sandbox]:
    with Sandbox(tmp_path / "sandbox", appliances=2, ha_pairs=1, issue_after_polls=1) as sandbox:
        yield sandbox


def _entry(world: Sandbox, urls: list[str], **extra: Any) -> dict[str, Any]:
    return {
        "url": urls if len(urls) > 1 else urls[0],
        "username": ADC_USER,
        "password": ADC_PASSWORD,
        "verify_tls": str(world.ca_bundle),
        **extra,
    }


def _entries(world: Sandbox) -> list[dict[str, Any]]:
    pair = world.pairs[0]
    return [
        _entry(world, [world.netscalers[0].url]),
        _entry(world, [world.netscalers[1].url]),
        _entry(world, [pair.primary.url, pair.secondary.url]),
    ]


def _write(
    world: Sandbox,
    name: str,
    entries: list[dict[str, Any]],
    certificate: dict[str, Any] | None = None,
    **top: Any,
) -> Path:
    data = world.profile_dict(name, [(VS, "lb", False)], f"{name}.sandbox.test", certificate=certificate)
    del data["appliance"]
    data = {"name": name, "appliances": entries, **{k: v for k, v in data.items() if k != "name"}, **top}
    return world.write_profile(name, data)


def _targets(world: Sandbox) -> list[NetScalerSimulator]:
    """The node of each target that gets the writes (the HA pair's primary)."""
    return [world.netscalers[0], world.netscalers[1], world.pairs[0].primary]


def _agent(world: Sandbox, tmp_path: Path) -> Agent:
    return Agent(load_scm_config(world.scm_yaml), StateStore(tmp_path / "state"), sleep=lambda _s: None)


def _writes(world: Sandbox) -> list[int]:
    return [ns.count_writes() for ns in (*_targets(world), world.pairs[0].secondary)]


def _clear(world: Sandbox) -> None:
    for server in world.servers:
        server.clear_requests()


def _rows(outcomes: list[Outcome]) -> list[tuple[str, str]]:
    return [(o.action, o.result) for o in outcomes]


# ------------------------------------------------------------------------------------------ tests


def test_one_order_deployed_to_two_appliances_and_an_ha_pair(
    world: Sandbox, cli: Any, state_dir: Path
) -> None:
    path = _write(world, "multi", _entries(world))
    res = cli("--scm-config", world.scm_yaml, "--json", "run", path)
    assert res.code == 0, res.output
    rows = json.loads(res.out)
    labels = [ns.url.split("://")[1] for ns in _targets(world)]
    assert [(r["appliance"], r["target"], r["action"], r["result"]) for r in rows] == [
        (label, i, "enroll", "ok") for i, label in enumerate(labels)
    ]
    serial = rows[0]["serial"]
    assert {r["serial"] for r in rows} == {serial} and {r["order_id"] for r in rows} == {rows[0]["order_id"]}
    assert world.scm.order_count() == 1  # one SCM order for the three targets
    for ns in _targets(world):
        assert same_serial(ns.serving_certificate(VS), serial)
        assert saves(ns) == 1
    assert world.pairs[0].secondary.count_writes() == 0  # never written to directly
    # the journal: one certificate, one deployment record per target, each saved
    journal = json.loads((state_dir / "profiles" / "multi.json").read_text())
    assert journal["deployed"] is None
    assert sorted(t["appliance"] for t in journal["targets"]) == sorted(labels)
    assert all(t["saved"] and same_serial(t["serial"], serial) for t in journal["targets"])

    # the next run: nothing to do, nothing written anywhere, SCM not asked to order
    _clear(world)
    res = cli("--scm-config", world.scm_yaml, "--json", "run", path)
    assert res.code == 0, res.output
    assert [(r["action"], r["result"]) for r in json.loads(res.out)] == [("nothing", "nothing")] * 3
    assert _writes(world) == [0, 0, 0, 0]
    assert scm_writes(world.scm) == []

    # status: a row per target, --json names it
    res = cli("--scm-config", world.scm_yaml, "--json", "status", path)
    assert res.code == 0, res.output
    status = json.loads(res.out)
    assert [(r["appliance"], r["target"], r["result"]) for r in status] == [
        (label, i, "ok") for i, label in enumerate(labels)
    ]
    # the table: a row per target, with the appliance
    res = cli("--scm-config", world.scm_yaml, "status", path)
    assert res.code == 0, res.output
    header, *table = res.out.splitlines()[:4]
    assert header.split()[:3] == ["PROFILE", "APPLIANCE", "ACTION"]
    assert [row.split()[:4] for row in table] == [["multi", label, "status", "ok"] for label in labels]
    assert _writes(world) == [0, 0, 0, 0]
    # validate says it
    res = cli("--scm-config", world.scm_yaml, "validate", path)
    assert res.code == 0 and "1 vserver(s), 3 appliances, rollout all)" in res.out


def test_a_target_failing_midway_converges_alone_on_the_next_run(world: Sandbox, tmp_path: Path) -> None:
    profile = load_profile(_write(world, "midway", _entries(world)))
    second = world.netscalers[1]
    second.add_fault(r"/config/sslcertkey$", method="POST", status=503, times=None)
    outcomes = _agent(world, tmp_path).run([profile])
    assert _rows(outcomes) == [("enroll", "ok"), ("enroll", "failed"), ("enroll", "ok")]
    failed = outcomes[1]
    assert failed.appliance == second.url.split("://")[1] and failed.target == 1
    assert failed.appliance in failed.message  # the row names the appliance
    assert failed.order_id == outcomes[0].order_id and failed.serial is None  # the order it was installing
    assert worst_exit_code(outcomes) == EXIT_FAILURE
    serial = outcomes[0].serial
    assert same_serial(world.netscalers[0].serving_certificate(VS), serial)
    assert same_serial(world.pairs[0].primary.serving_certificate(VS), serial)
    assert not same_serial(second.serving_certificate(VS), serial)  # and the others were not rolled back
    assert world.scm.order_count() == 1

    second.clear_faults()
    _clear(world)
    outcomes = _agent(world, tmp_path).run([profile])
    assert _rows(outcomes) == [("nothing", "nothing"), ("redeploy", "ok"), ("nothing", "nothing")]
    assert worst_exit_code(outcomes) == 0
    assert same_serial(second.serving_certificate(VS), serial)
    # the already-issued certificate: no new order, SCM not written to; the good targets not written to
    assert world.scm.order_count() == 1 and scm_writes(world.scm) == []
    first, _, pair = _writes(world)[:3]
    assert (first, pair, world.pairs[0].secondary.count_writes()) == (0, 0, 0)
    assert second.count_writes() > 0 and saves(second) == 1


def test_canary_failure_stops_the_rollout_and_the_next_run_tries_it_again(
    world: Sandbox, tmp_path: Path
) -> None:
    profile = load_profile(_write(world, "canary", _entries(world), rollout="canary"))
    assert profile.rollout == "canary"
    canary = world.netscalers[0]
    canary.add_fault(r"/config/sslcertkey$", method="POST", status=503, times=None)
    outcomes = _agent(world, tmp_path).run([profile])
    assert _rows(outcomes) == [("enroll", "failed"), ("enroll", "nothing"), ("enroll", "nothing")]
    assert worst_exit_code(outcomes) == EXIT_FAILURE
    assert all("canary" in o.message and canary.url.split("://")[1] in o.message for o in outcomes[1:])
    # the others untouched: not one write on them
    assert [ns.count_writes() for ns in _targets(world)[1:]] == [0, 0]
    assert world.scm.order_count() == 1

    canary.clear_faults()
    _clear(world)
    outcomes = _agent(world, tmp_path).run([profile])
    assert _rows(outcomes) == [("redeploy", "ok")] * 3, [o.message for o in outcomes]
    assert "canary checked" in outcomes[0].message
    assert world.scm.order_count() == 1 and scm_writes(world.scm) == []
    serial = outcomes[0].serial
    assert all(same_serial(ns.serving_certificate(VS), serial) for ns in _targets(world))
    assert [saves(ns) for ns in _targets(world)] == [1, 1, 1]
    state = StateStore(tmp_path / "state").load("canary")
    assert state.deployment(canary.url.split("://")[1]).verified_at is not None  # type: ignore[union-attr]
    events = [e["event"] for e in state.history]
    assert events.index("verified") < max(i for i, e in enumerate(events) if e == "deployed")


def test_canary_success_checks_the_first_target_before_the_others(world: Sandbox, tmp_path: Path) -> None:
    profile = load_profile(_write(world, "canary-ok", _entries(world), rollout="canary"))
    outcomes = _agent(world, tmp_path).run([profile])
    assert _rows(outcomes) == [("enroll", "ok")] * 3
    canary = world.netscalers[0]
    # the canary's appliance was saved (and read back) before any write reached the second target
    save_at = next(r.at for r in canary.requests if "action=save" in r.query)
    first_write = next(
        r.at for r in world.netscalers[1].requests if r.method != "GET" and "login" not in r.path
    )
    assert save_at <= first_write
    assert [saves(ns) for ns in _targets(world)] == [1, 1, 1]


def test_key_location_appliance_with_several_targets_is_refused_at_load(world: Sandbox, cli: Any) -> None:
    subject = {"country": "DE", "state": "Berlin", "organization": "Example"}
    path = _write(world, "onbox", _entries(world), {"key_location": "appliance", "subject": subject})
    text = path.read_text()
    line = next(i for i, line in enumerate(text.splitlines(), 1) if line.startswith("  key_location:"))
    res = cli("--scm-config", world.scm_yaml, "validate", path)
    assert res.code == 2, res.output
    assert res.err.splitlines() == [
        f"error: {path}:{line}: certificate.key_location: key_location: appliance cannot serve 3 "
        "appliances (a key made on one box cannot be installed on another); use key_location: local"
    ]
    assert "cannot be installed on another" in res.err
    res = cli("--scm-config", world.scm_yaml, "run", path)
    assert res.code == 2 and "Traceback" not in res.output
    assert world.scm.order_count() == 0 and _writes(world) == [0, 0, 0, 0]


def test_preflight_of_the_third_target_stops_the_order(world: Sandbox, tmp_path: Path) -> None:
    entries = _entries(world)
    entries[2]["vservers"] = ["vs_missing_here"]
    profile = load_profile(_write(world, "preflight", entries))
    assert [t.vservers[0].name for t in profile.targets] == [VS, VS, "vs_missing_here"]
    outcomes = _agent(world, tmp_path).run([profile])
    assert [o.result for o in outcomes] == ["nothing", "nothing", "failed"]
    assert "vs_missing_here" in outcomes[2].message and "does not exist" in outcomes[2].message
    assert all("nothing ordered" in o.message for o in outcomes[:2])
    assert worst_exit_code(outcomes) == EXIT_FAILURE  # as a preflight failure of one appliance
    assert world.scm.order_count() == 0 and scm_writes(world.scm) == []
    assert _writes(world) == [0, 0, 0, 0]


def test_renew_is_one_order_for_every_target_and_a_dry_run_writes_nothing(
    world: Sandbox, tmp_path: Path
) -> None:
    profile = load_profile(_write(world, "renewed", _entries(world)))
    dry = Agent(
        load_scm_config(world.scm_yaml), StateStore(tmp_path / "state"), sleep=lambda _s: None, dry_run=True
    ).run([profile])
    assert _rows(dry) == [("enroll", "planned")] * 3
    assert any("order a new certificate" in line for line in dry[0].plan)
    assert all(f"save the configuration of {o.appliance}" in o.plan for o in dry)
    assert world.scm.order_count() == 0 and _writes(world) == [0, 0, 0, 0]

    first = _agent(world, tmp_path).run([profile])
    assert _rows(first) == [("enroll", "ok")] * 3
    renewed = _agent(world, tmp_path).renew([profile])
    assert _rows(renewed) == [("renew", "ok")] * 3
    assert world.scm.order_count() == 2  # one renewal order for the three targets
    serial = renewed[0].serial
    assert serial != first[0].serial and {o.serial for o in renewed} == {serial}
    assert all(same_serial(ns.serving_certificate(VS), serial) for ns in _targets(world))


def test_a_profile_turned_into_appliances_keeps_its_deployment(world: Sandbox, tmp_path: Path) -> None:
    single = world.profile_dict("grown", [(VS, "lb", False)], "grown.sandbox.test")
    path = world.write_profile("grown", single)
    before = _agent(world, tmp_path).run([load_profile(path)])
    assert _rows(before) == [("enroll", "ok")]
    path = _write(world, "grown", _entries(world))
    _clear(world)
    after = _agent(world, tmp_path).run([load_profile(path)])
    # the first appliance keeps what it had (read only); the others get the same certificate
    assert _rows(after) == [("nothing", "nothing"), ("redeploy", "ok"), ("redeploy", "ok")]
    assert world.netscalers[0].count_writes() == 0
    assert world.scm.order_count() == 1 and scm_writes(world.scm) == []
    assert all(same_serial(ns.serving_certificate(VS), before[0].serial) for ns in _targets(world))


def test_a_target_whose_save_failed_is_only_saved_on_the_next_run(world: Sandbox, tmp_path: Path) -> None:
    profile = load_profile(_write(world, "unsaved", _entries(world)))
    second = world.netscalers[1]
    second.add_fault(r"/config/nsconfig$", method="POST", status=503, times=None)
    outcomes = _agent(world, tmp_path).run([profile])
    assert _rows(outcomes) == [("enroll", "ok"), ("enroll", "failed"), ("enroll", "ok")]
    assert "saving the configuration failed" in outcomes[1].message
    label = second.url.split("://")[1]
    record = StateStore(tmp_path / "state").load("unsaved").deployment(label)
    assert record is not None and not record.saved

    second.clear_faults()
    _clear(world)
    outcomes = _agent(world, tmp_path).run([profile])
    assert _rows(outcomes) == [("nothing", "nothing"), ("redeploy", "ok"), ("nothing", "nothing")]
    assert outcomes[1].message.startswith(f"saved the configuration a previous run left unsaved on {label}")
    # only the save was sent to that target; nothing to the others, nothing to SCM
    assert (second.count_writes(), saves(second)) == (1, 1)
    assert _writes(world)[0] == 0 and _writes(world)[2:] == [0, 0]
    assert scm_writes(world.scm) == []
    record = StateStore(tmp_path / "state").load("unsaved").deployment(label)
    assert record is not None and record.saved


def test_a_canary_never_checked_is_checked_first_without_writes(world: Sandbox, tmp_path: Path) -> None:
    path = _write(world, "later", _entries(world))
    assert _rows(_agent(world, tmp_path).run([load_profile(path)])) == [("enroll", "ok")] * 3
    # every target was checked after its save; a journal written before that check existed lacks it
    store = StateStore(tmp_path / "state")
    state = store.load("later")
    assert all(t.verified_at is not None for t in state.targets)
    for record in state.targets:
        record.verified_at = None
    store.save(state)
    # the profile turns to a canary rollout: its first target never had the check after its save
    profile = load_profile(_write(world, "later", _entries(world), rollout="canary"))
    status = _agent(world, tmp_path).status([profile])
    assert [o.result for o in status] == ["attention", "ok", "ok"]
    assert status[0].details["next"] == "check" and "has not passed yet" in status[0].message
    _clear(world)
    outcomes = _agent(world, tmp_path).run([profile])
    assert _rows(outcomes) == [("nothing", "ok"), ("nothing", "nothing"), ("nothing", "nothing")]
    assert "checked" in outcomes[0].message
    assert _writes(world) == [0, 0, 0, 0] and scm_writes(world.scm) == []
    assert [o.result for o in _agent(world, tmp_path).status([profile])] == ["ok"] * 3


def test_enroll_replace_and_revoke_with_several_targets(world: Sandbox, tmp_path: Path, cli: Any) -> None:
    path = _write(world, "cycle", _entries(world))
    profile = load_profile(path)
    assert _rows(_agent(world, tmp_path).enroll([profile])) == [("enroll", "ok")] * 3
    # a replace that fails on the second target; enroll then installs the journal's certificate there only
    second = world.netscalers[1]
    second.add_fault(r"/config/sslcertkey$", method="POST", status=503, times=None)
    assert _rows(_agent(world, tmp_path).replace([profile]))[1] == ("replace", "failed")
    second.clear_faults()
    _clear(world)
    rows = _agent(world, tmp_path).enroll([profile])
    assert _rows(rows) == [("nothing", "nothing"), ("redeploy", "ok"), ("nothing", "nothing")]
    assert scm_writes(world.scm) == []
    assert [ns.count_writes() > 0 for ns in _targets(world)] == [False, True, False]
    # other names: run replaces, one order for every target
    changed = load_profile(
        _write(
            world, "cycle", _entries(world), {"subject_alt_names": ["cycle.sandbox.test", "new.sandbox.test"]}
        )
    )
    _clear(world)
    rows = _agent(world, tmp_path).run([changed])
    assert _rows(rows) == [("replace", "ok")] * 3, [o.message for o in rows]
    assert len([w for w in scm_writes(world.scm) if "replace" in w]) == 1  # one order for all three
    serial = rows[0].serial
    assert all(same_serial(ns.serving_certificate(VS), serial) for ns in _targets(world))
    # revoke: one revocation at SCM, a row per target saying it is still bound there
    res = cli(
        "--scm-config", world.scm_yaml, "--json", "revoke", "--yes", "--reason", "superseded", changed.source
    )
    assert res.code == 0, res.output
    revoked = json.loads(res.out)
    assert [(r["action"], r["result"], r["target"]) for r in revoked] == [
        ("revoke", "ok", i) for i in range(3)
    ]
    assert all("still installed" in r["message"] for r in revoked)
    assert len([r for r in world.scm.requests if r.method == "POST" and "revoke" in r.path]) == 1
