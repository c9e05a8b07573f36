"""Issue 6: everything the product does works the same with the SCM admin API and the REST Enrollment API.

Driven through the real CLI entry point against the sandbox (both SCM simulators run side by side; only
the one named by scm.yaml may see orders). Where the Enrollment API lacks something, the product says so
in one line.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import CliResult, scm_yaml_for

from citrix_connector.crypto import normalize_serial
from citrix_connector.sandbox.world import Sandbox
from citrix_connector.state import StateStore

Cli = Callable[..., CliResult]


def sim_for(world: Sandbox, api: str) -> Any:
    return world.enrollment if api == "enrollment" else world.scm


def other_sim(world: Sandbox, api: str) -> Any:
    return world.scm if api == "enrollment" else world.enrollment


def same(a: str | None, b: str | None) -> bool:
    return a is not None and b is not None and normalize_serial(a) == normalize_serial(b)


def scm_variant(world: Sandbox, api: str, name: str, **changes: Any) -> Path:
    """A copy of the sandbox's scm.yaml for ``api`` with top-level keys changed (None drops a key)."""
    data = yaml.safe_load(scm_yaml_for(world, api).read_text())
    for key, value in changes.items():
        if value is None:
            data.pop(key, None)
        else:
            data[key] = value
    path = world.directory / f"scm-{name}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def rows(res: CliResult) -> dict[str, dict[str, Any]]:
    return {r["profile"]: r for r in json.loads(res.out)}


def one_row(res: CliResult) -> dict[str, Any]:
    (row,) = json.loads(res.out)
    assert isinstance(row, dict)
    return row


def approve(sim: Any, api: str, order_id: str) -> None:
    sim.approve(int(order_id) if api == "admin" else order_id)


# ------------------------------------------------------------------ the whole command set, either API


def test_every_command_through_either_api(world: Sandbox, scm_api: str, cli: Cli, state_dir: Path) -> None:
    sim, other = sim_for(world, scm_api), other_sim(world, scm_api)
    ns = world.netscaler
    scm = scm_variant(world, scm_api, "fast", poll={"first_wait": 0, "interval": 0.02, "timeout": 30})
    lb = world.profile_path("lb-profile")
    onbox = world.profile_path("appliance-key-profile")
    store = StateStore(state_dir)

    # enroll: a local key and an appliance key
    res = cli("--json", "--scm-config", scm, "enroll", lb, onbox)
    assert res.code == 0, res.output
    enrolled = rows(res)
    assert {r["result"] for r in enrolled.values()} == {"ok"}
    assert sim.order_count() == 2
    for stem, vs in (("lb-profile", "vs_shop_https"), ("appliance-key-profile", "vs_onbox_https")):
        assert same(ns.serving_certificate(vs), enrolled[stem]["serial"])
        assert str(enrolled[stem]["order_id"]) in {str(k) for k in sim.orders}
        journal = store.load(stem)
        assert journal.current is not None and journal.current.order_id == enrolled[stem]["order_id"]

    # status: both fine, through this API
    res = cli("--json", "--scm-config", scm, "status", lb, onbox)
    assert res.code == 0, res.output
    for stem, row in rows(res).items():
        assert row["result"] == "ok" and same(row["serial"], enrolled[stem]["serial"]), row
        assert "scm_status" not in row["details"], row  # SCM is asked only about orders in flight

    # renew: a new order, a new certificate, installed in place
    res = cli("--json", "--scm-config", scm, "renew", lb, onbox)
    assert res.code == 0, res.output
    renewed = rows(res)
    assert sim.order_count() == 4
    for stem, vs in (("lb-profile", "vs_shop_https"), ("appliance-key-profile", "vs_onbox_https")):
        row = renewed[stem]
        assert row["action"] == "renew" and row["result"] == "ok", row
        assert row["order_id"] != enrolled[stem]["order_id"]
        assert not same(row["serial"], enrolled[stem]["serial"])
        assert same(ns.serving_certificate(vs), row["serial"])

    # replace after the names changed
    data = yaml.safe_load(lb.read_text())
    data["certificate"]["subject_alt_names"] = ["shop.sandbox.test", "store.sandbox.test"]
    lb.write_text(yaml.safe_dump(data, sort_keys=False))
    res = cli("--json", "--scm-config", scm, "replace", lb)
    assert res.code == 0, res.output
    replaced = one_row(res)
    assert replaced["action"] == "replace" and replaced["result"] == "ok"
    current = store.load("lb-profile").current
    assert current is not None and set(current.sans) == {"shop.sandbox.test", "store.sandbox.test"}
    assert same(ns.serving_certificate("vs_shop_https"), replaced["serial"])

    # run: nothing to do
    res = cli("--json", "--scm-config", scm, "run", lb, onbox)
    assert res.code == 0, res.output
    assert {r["action"] for r in rows(res).values()} == {"nothing"}
    orders = sim.order_count()

    # revoke: SCM revokes it; the agent warns that it is still bound; status wants attention
    res = cli("--json", "--scm-config", scm, "revoke", "--reason", "superseded", "--yes", lb)
    assert res.code == 0, res.output
    revoked = one_row(res)
    assert revoked["action"] == "revoke" and "still installed" in revoked["message"]
    order = sim.orders[int(replaced["order_id"]) if scm_api == "admin" else replaced["order_id"]]
    assert order.status == "Revoked"
    res = cli("--json", "--scm-config", scm, "status", lb)
    assert res.code == 5, res.output
    assert one_row(res)["details"]["next"] == "enroll"

    # run: enrolls anew, through the same API
    res = cli("--json", "--scm-config", scm, "run", lb)
    assert res.code == 0, res.output
    fresh = one_row(res)
    assert fresh["action"] == "enroll" and fresh["result"] == "ok"
    assert sim.order_count() == orders + 1
    assert same(ns.serving_certificate("vs_shop_https"), fresh["serial"])

    assert other.order_count() == 0  # the other API was never used
    assert ns.gaps() == []


# -------------------------------------------------------------------------- crash-safe resume, either API


def test_a_renewal_pending_at_the_deadline_is_collected_by_the_next_run(
    world: Sandbox, scm_api: str, cli: Cli, state_dir: Path
) -> None:
    sim = sim_for(world, scm_api)
    ns = world.netscaler
    fast = scm_variant(world, scm_api, "fast", poll={"first_wait": 0, "interval": 0.05, "timeout": 0.3})
    profile = world.profile_path("sni-profile")
    res = cli("--json", "--scm-config", fast, "enroll", profile)
    assert res.code == 0, res.output
    old = one_row(res)

    sim.set_defaults(mode="needs_approval")  # SCM keeps answering "being processed"
    res = cli("--scm-config", fast, "renew", profile)
    assert res.code == 4, res.output
    assert "Traceback" not in res.output
    assert sim.order_count() == 2
    pending = StateStore(state_dir).load("sni-profile").pending
    assert pending is not None and pending.kind == "renew"
    assert pending.order_id in res.output
    # meanwhile the old certificate keeps serving
    assert same(ns.serving_certificate("vs_sni_https", servername="api.sandbox.test"), old["serial"])

    # a scheduled run while still pending: exit 4 again, no second order
    res = cli("--scm-config", fast, "run", profile)
    assert res.code == 4, res.output
    assert sim.order_count() == 2

    approve(sim, scm_api, pending.order_id)
    res = cli("--json", "--scm-config", fast, "run", profile)
    assert res.code == 0, res.output
    row = one_row(res)
    assert row["action"] == "collect" and row["result"] == "ok", row
    assert row["order_id"] == pending.order_id
    assert sim.order_count() == 2
    assert same(ns.serving_certificate("vs_sni_https", servername="api.sandbox.test"), row["serial"])
    assert not same(row["serial"], old["serial"])
    assert StateStore(state_dir).load("sni-profile").pending is None


def test_an_order_whose_collection_failed_is_resumed_not_placed_again(
    world: Sandbox, scm_api: str, cli: Cli
) -> None:
    sim = sim_for(world, scm_api)
    scm = scm_variant(world, scm_api, "fast", poll={"first_wait": 0, "interval": 0.02, "timeout": 30})
    profile = world.profile_path("appliance-key-profile")
    # every collect/download answer fails hard (not "pending"): the run fails after ordering
    collect = r"/ssl/v1/collect/" if scm_api == "admin" else r"^/api/v1/certificates/[^/]+$"
    sim.add_fault(
        collect,
        method="GET",
        status=400,
        times=None,
        json_body={"code": -1, "description": "simulated failure"},
    )
    res = cli("--scm-config", scm, "enroll", profile)
    assert res.code == 1, res.output
    assert "Traceback" not in res.output
    assert sim.order_count() == 1
    assert world.netscaler.state()["certkeys"] == {}

    sim.clear_faults()
    res = cli("--json", "--scm-config", scm, "run", profile)
    assert res.code == 0, res.output
    row = one_row(res)
    assert row["action"] == "collect" and row["result"] == "ok", row
    assert sim.order_count() == 1
    assert str(row["order_id"]) == str(next(iter(sim.orders)))
    assert same(world.netscaler.serving_certificate("vs_onbox_https"), row["serial"])


def test_switching_api_with_an_order_pending_is_refused_clearly(
    world: Sandbox, scm_api: str, cli: Cli
) -> None:
    sim = sim_for(world, scm_api)
    fast = scm_variant(world, scm_api, "fast", poll={"first_wait": 0, "interval": 0.05, "timeout": 0.2})
    sim.set_defaults(mode="needs_approval")
    profile = world.profile_path("lb-profile")
    assert cli("--scm-config", fast, "enroll", profile).code == 4
    other = "admin" if scm_api == "enrollment" else "enrollment"
    res = cli("--scm-config", scm_yaml_for(world, other), "run", profile)
    assert res.code == 2, res.output
    assert f"placed through the SCM {scm_api} API" in res.output
    assert other_sim(world, scm_api).order_count() == 0


# ----------------------------------------------------------------- what the Enrollment API cannot do


@pytest.mark.parametrize("stem", ["lb-profile", "appliance-key-profile"])
def test_renew_without_a_profile_id_is_one_clear_line(
    world: Sandbox, cli: Cli, state_dir: Path, stem: str
) -> None:
    sim = world.enrollment
    scm = scm_variant(world, "enrollment", "no-profile-id", profile_id=None)
    profile = world.profile_path(stem)
    res = cli("--scm-config", scm, "enroll", profile)  # enrolling needs no profile id
    assert res.code == 0, res.output
    assert "profile_id" in res.err  # warned up front: renew will need it
    orders, writes = sim.order_count(), world.netscaler.count_writes()
    keys = sorted(state_dir.rglob("*.key*"))

    res = cli("--scm-config", scm, "renew", profile)

    assert res.code in (1, 2), res.output
    assert "Traceback" not in res.output and "internal error" not in res.output
    lines = [line for line in res.output.splitlines() if "renew needs profile_id" in line]
    assert len(lines) == 1, res.output
    assert sim.order_count() == orders
    assert world.netscaler.count_writes() == writes  # no key made on the appliance for nothing
    assert sorted(state_dir.rglob("*.key*")) == keys  # nor locally


def test_a_profile_with_mandatory_custom_fields_enrolls_and_renews(
    world: Sandbox, scm_api: str, cli: Cli, state_dir: Path
) -> None:
    sim = sim_for(world, scm_api)
    sim.set_defaults(mandatory_custom_fields=["Cost Center"])
    scm = scm_variant(world, scm_api, "fast", poll={"first_wait": 0, "interval": 0.02, "timeout": 30})
    data = yaml.safe_load(world.profile_path("lb-profile").read_text())
    data["sectigo"] = {"custom_fields": {"Cost Center": "4711"}}
    profile = world.write_profile("lb-profile", data)

    assert (res := cli("--scm-config", scm, "enroll", profile)).code == 0, res.output
    # the Enrollment API's renew takes customFields (the profile's mandatory ones included)
    assert (res := cli("--scm-config", scm, "renew", profile)).code == 0, res.output
    assert sim.order_count() == 2
    renewed = StateStore(state_dir).load("lb-profile").current
    assert renewed is not None
    assert same(world.netscaler.serving_certificate("vs_shop_https"), renewed.serial)
