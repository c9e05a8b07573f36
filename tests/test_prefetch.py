"""SCM collections fetched ahead while the appliance installs (``lifecycle/prefetch.py``), against the
sandbox: the next order is collected before the current certificate's installation is over, a failed
collection is that profile's row only, and the requests are the same as collecting in line."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from citrix_connector.config import load_profile, load_scm_config
from citrix_connector.lifecycle import Agent
from citrix_connector.sandbox.world import Sandbox
from citrix_connector.state import StateStore

NAMES = ("pf0", "pf1", "pf2")


@pytest.fixture
def world(tmp_path: Path) -> Iterator[tuple[Sandbox, list[Path]]]:
    with Sandbox(tmp_path / "sandbox", issue_after_polls=0) as sandbox:
        paths = []
        for name in NAMES:
            sandbox.netscaler.add_vserver(f"vs_{name}", "lb")
            data = sandbox.profile_dict(
                name, [(f"vs_{name}", "lb", False)], f"{name}.example.com", certificate={"key_type": "ECDSA"}
            )
            paths.append(sandbox.write_profile(name, data))
        yield sandbox, paths


def _collects(world: Sandbox, start: int) -> list[tuple[float, str]]:
    return [(r.at, r.path) for r in world.scm.requests[start:] if "/collect/" in r.path]


def test_the_next_order_is_collected_while_the_current_one_installs(
    world: tuple[Sandbox, list[Path]], tmp_path: Path
) -> None:
    sandbox, paths = world
    sandbox.netscaler.latency = 0.05  # each NITRO exchange takes a while; SCM answers at once
    store = StateStore(tmp_path / "state")
    agent = Agent(load_scm_config(sandbox.scm_yaml), store, sleep=lambda _s: None)
    scm_seen = len(sandbox.scm.requests)
    outcomes = agent.run([load_profile(p) for p in paths])
    assert [o.result for o in outcomes] == ["ok"] * 3, [o.message for o in outcomes]
    order_of = {name: store.load(name).current.order_id for name in NAMES}  # type: ignore[union-attr]
    collected_at: dict[str, float] = {}
    for at, path in _collects(sandbox, scm_seen):
        owner = [n for n, oid in order_of.items() if path.endswith(f"/collect/{oid}")]
        collected_at.setdefault(owner[0], at)
    assert set(collected_at) == set(NAMES)  # each order collected (once: no extra request below)
    assert len(_collects(sandbox, scm_seen)) == 3
    first_bind = min(
        r.at
        for r in sandbox.netscaler.requests
        if r.method == "PUT" and "sslvserver_sslcertkey_binding" in r.path and "pf0" in r.body.decode()
    )
    # pf1's certificate was downloaded before pf0 was even bound: the collection ran ahead
    assert collected_at["pf1"] < first_bind


def test_a_failed_collection_is_that_profiles_row_only(
    world: tuple[Sandbox, list[Path]], tmp_path: Path
) -> None:
    sandbox, paths = world
    store = StateStore(tmp_path / "state")
    agent = Agent(load_scm_config(sandbox.scm_yaml), store, sleep=lambda _s: None)
    profiles = [load_profile(p) for p in paths]
    first = agent.run(profiles[:1])  # pf0 deployed; its order id tells the next ones
    assert first[0].result == "ok"
    next_id = int(store.load("pf0").current.order_id) + 2  # type: ignore[union-attr]  # pf1, pf2 follow
    sandbox.scm.add_fault(
        rf"/collect/{next_id}$", status=403, json_body={"code": -16, "description": "no"}, times=None
    )
    outcomes = agent.run(profiles)
    by_name = {o.profile: o for o in outcomes}
    assert by_name["pf0"].result == "nothing"
    assert by_name["pf1"].result == "ok", by_name["pf1"].message
    assert by_name["pf2"].result == "failed" and by_name["pf2"].action in ("enroll", "collect")
    assert store.load("pf2").pending is not None  # the order is kept: the next run collects it
    sandbox.scm.clear_faults()
    again = {o.profile: o for o in agent.run(profiles)}
    assert again["pf2"].result == "ok", again["pf2"].message


def test_stop_at_once_drops_the_collections_not_started(
    world: tuple[Sandbox, list[Path]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The second Ctrl-C (KeyboardInterrupt) during an install: the helper finishes the collection
    under way, the others are not made; their orders stay pending for the next run."""
    from citrix_connector.lifecycle import install, prefetch, runner

    sandbox, paths = world
    sandbox.netscaler.add_vserver("vs_pf3", "lb")
    paths.append(
        sandbox.write_profile(
            "pf3",
            sandbox.profile_dict(
                "pf3", [("vs_pf3", "lb", False)], "pf3.example.com", certificate={"key_type": "ECDSA"}
            ),
        )
    )

    class SlowScm(prefetch.Collections):
        def __init__(self, *args: object, **kwargs: object) -> None:
            sandbox.scm.latency = 0.3  # from the collections on: SCM answers slowly
            super().__init__(*args, **kwargs)  # type: ignore[arg-type]

    def interrupted(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(runner, "Collections", SlowScm)
    monkeypatch.setattr(install, "deploy_current", interrupted)
    store = StateStore(tmp_path / "state")
    agent = Agent(load_scm_config(sandbox.scm_yaml), store, sleep=lambda _s: None)
    scm_seen = len(sandbox.scm.requests)
    with pytest.raises(KeyboardInterrupt):
        agent.run([load_profile(p) for p in paths])
    assert len(_collects(sandbox, scm_seen)) <= 2  # pf0's, and the one under way
    assert store.load("pf2").pending is not None and store.load("pf3").pending is not None
