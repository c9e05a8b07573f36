"""Edge cases found in review, each driven through the real CLI against the sandbox."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import yaml
from conftest import CliResult

from citrix_connector.sandbox.world import Sandbox
from citrix_connector.state import StateStore

Cli = Callable[..., CliResult]


def test_revoking_an_order_scm_already_revoked_records_it(world: Sandbox, cli: Cli, state_dir: Path) -> None:
    profile = world.profile_path("lb-profile")
    assert cli("--scm-config", world.scm_yaml, "enroll", profile).code == 0
    current = StateStore(state_dir).load("lb-profile").current
    assert current is not None
    world.scm.revoke(int(current.order_id))  # e.g. a first revoke whose answer was lost
    result = cli("--scm-config", world.scm_yaml, "revoke", "--reason", "superseded", "--yes", profile)
    assert result.code == 0, result.output
    assert "already revoked at SCM" in result.out
    state = StateStore(state_dir).load("lb-profile")
    assert state.current is None and state.revoked[-1]["order_id"] == current.order_id


def test_an_admin_who_may_not_list_certificates_can_still_order(world: Sandbox, cli: Cli) -> None:
    world.scm.add_fault(
        r"^/api/ssl/v1$", method="GET", status=403, json_body={"code": -3, "description": "Not authorized"},
        times=None,
    )  # fmt: skip
    result = cli("--scm-config", world.scm_yaml, "run", world.profile_path("lb-profile"))
    assert result.code == 0, result.output
    assert "cannot list" not in result.err  # a new order needs no list (found by its tag)
    assert not [r for r in world.scm.requests if r.path == "/api/ssl/v1"]
    assert world.scm.order_count() == 1
    # a renewal lists before ordering: refused, it says so and still orders
    result = cli("--scm-config", world.scm_yaml, "renew", world.profile_path("lb-profile"))
    assert result.code == 0, result.output
    assert "cannot list SCM orders" in result.err
    assert world.scm.order_count() == 2


def test_scm_still_serving_the_old_certificate_after_replace_is_pending_not_a_failure(
    world: Sandbox, cli: Cli, state_dir: Path
) -> None:
    profile = world.profile_path("lb-profile")
    assert cli("--scm-config", world.scm_yaml, "enroll", profile).code == 0
    old = StateStore(state_dir).load("lb-profile").current
    assert old is not None
    # the first collect after the replace answers with the certificate from before it
    world.scm.add_fault(
        r"/collect/", method="GET", status=200, body=old.cert_pem + "".join(old.chain_pem), times=1,
        headers={"Content-Type": "application/octet-stream"},
    )  # fmt: skip
    first = cli("--scm-config", world.scm_yaml, "replace", profile)
    assert first.code == 4, first.output
    assert "still returns the certificate from before" in first.output
    assert world.netscaler.serving_certificate("vs_shop_https") == old.serial
    second = cli("--scm-config", world.scm_yaml, "run", profile)
    assert second.code == 0, second.output
    new = StateStore(state_dir).load("lb-profile").current
    assert new is not None and new.serial != old.serial and new.order_id == old.order_id
    assert world.netscaler.serving_certificate("vs_shop_https") == new.serial


def test_an_update_whose_answer_was_lost_is_saved_by_the_next_run(
    world: Sandbox, cli: Cli, state_dir: Path
) -> None:
    data = yaml.safe_load(world.profile_path("lb-profile").read_text())
    data["appliance"]["timeout"] = 1
    profile = world.write_profile("lb-profile", data)
    assert cli("--scm-config", world.scm_yaml, "enroll", profile).code == 0
    ns = world.netscaler
    # the appliance applies the update but answers after the agent gave up
    ns.add_fault(r"^/nitro/v1/config/sslcertkey$", method="POST", status=0, hold_answer=1.5, times=1)
    renew = cli("--scm-config", world.scm_yaml, "renew", profile)
    assert renew.code == 1, renew.output
    state = StateStore(state_dir).load("lb-profile")
    assert state.current is not None
    assert ns.serving_certificate("vs_shop_https") == state.current.serial  # applied, answer lost
    assert ns.state()["configchanged"]  # live, not saved
    ns.clear_requests()
    again = cli("--scm-config", world.scm_yaml, "run", profile)
    assert again.code == 0, again.output
    assert "no saved deployment of the last issued certificate" in again.out
    assert any("action=save" in r.query for r in ns.requests)
    assert not ns.state()["configchanged"]
    state = StateStore(state_dir).load("lb-profile")
    assert state.deployed is not None and state.current is not None
    assert state.deployed.serial == state.current.serial and state.deployed.saved
    ns.clear_requests()
    assert cli("--scm-config", world.scm_yaml, "run", profile).code == 0
    assert ns.count_writes() == 0
