"""Profiles on one appliance place all their orders before any is collected, so SCM's issuance
delays overlap instead of adding up (a fleet of new profiles waits about once, not once each)."""

from __future__ import annotations

from collections.abc import Callable

from conftest import AgentKit, CliResult

Cli = Callable[..., CliResult]

STEMS = ("lb-profile", "cs-profile", "vpn-profile", "authentication-profile")


def _orders_then_collects(paths: list[str], order_marker: str, collect_marker: str) -> tuple[int, int]:
    orders = [i for i, p in enumerate(paths) if order_marker in p]
    collects = [i for i, p in enumerate(paths) if collect_marker in p]
    assert orders and collects
    return max(orders), min(collects)


def test_every_order_of_an_appliance_is_placed_before_the_first_collect(kit: AgentKit) -> None:
    profiles = [kit.profile(stem) for stem in STEMS]
    outcomes = kit.agent().run(profiles)
    assert [o.result for o in outcomes] == ["ok"] * len(STEMS), [o.message for o in outcomes]
    assert [o.action for o in outcomes] == ["enroll"] * len(STEMS)
    assert all(o.message.startswith("enrolled and installed: order ") for o in outcomes)
    assert all(o.message.endswith("(because no certificate enrolled yet)") for o in outcomes)
    gets_and_posts = [r for r in kit.sim.requests if r.method in ("GET", "POST")]
    paths = [f"{r.method} {r.path}" for r in gets_and_posts]
    if kit.api == "admin":
        last_order, first_collect = _orders_then_collects(paths, "POST /api/ssl/v1/enroll", "/collect/")
    else:
        last_order, first_collect = _orders_then_collects(
            [p for p, r in zip(paths, gets_and_posts, strict=True) if r.status != 401],
            "POST /api/v1/certificates",
            "GET /api/v1/certificates/",
        )
    assert last_order < first_collect
    assert kit.sim.order_count() == len(STEMS)
    for outcome in outcomes:
        assert outcome.serial and outcome.vservers


def test_a_failed_collect_does_not_stop_the_other_profiles(kit: AgentKit) -> None:
    profiles = [kit.profile(stem) for stem in STEMS[:2]]
    collect = r"/collect/" if kit.api == "admin" else r"^/api/v1/certificates/[^/]+$"
    kit.sim.add_fault(collect, method="GET", status=400, json_body={"code": -110, "description": "revoked"})
    outcomes = kit.agent().run(profiles)
    assert [o.result for o in outcomes] == ["failed", "ok"], [o.message for o in outcomes]
    assert outcomes[0].action == "enroll" and "-110" in outcomes[0].message
    state = kit.store.load(profiles[0].name)
    assert state.pending is None and state.declined is not None  # terminal at SCM: not collected again


def test_a_declined_order_stops_unattended_reordering_until_a_person_acts(kit: AgentKit) -> None:
    profile = kit.profile("lb-profile")
    kit.sim.set_defaults(mode="declined")
    first = kit.agent().run([profile])[0]
    assert first.result == "failed" and "declined" in first.message
    state = kit.store.load(profile.name)
    assert state.pending is None and state.declined is not None
    kit.sim.set_defaults(mode="auto")
    again = kit.agent().run([profile])[0]  # a scheduled run: reports, orders nothing
    assert (again.action, again.result, again.exit_code) == ("blocked", "failed", 1)
    assert "by hand" in again.message
    assert kit.sim.order_count() == 1
    status = kit.agent().status([profile])[0]
    assert status.details["next"] == "blocked" and status.exit_code == 5
    by_hand = kit.agent().enroll([profile])[0]  # a person retries
    assert by_hand.result == "ok", by_hand.message
    assert kit.sim.order_count() == 2
    assert kit.store.load(profile.name).declined is None
    assert kit.agent().run([profile])[0].result == "nothing"
