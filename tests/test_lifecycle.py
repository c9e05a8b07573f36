"""Lifecycle commands (enroll, renew, replace, revoke, status, run decisions) against the sandbox.

Everything goes over real HTTPS to the simulated SCM (both APIs, via ``scm_api``/``kit``) and the
simulated NetScaler; the assertions read the simulators' request logs and state.
"""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from lifecycle_helpers import FakeTime, count, only, public_key_der, same_serial, scm_writes

from citrix_connector.errors import EXIT_PENDING
from citrix_connector.lifecycle import EXIT_ATTENTION, Outcome
from citrix_connector.sandbox.world import Sandbox

VS = "vs_shop_https"


def _serving(world: Sandbox, vs: str = VS) -> str | None:
    return world.netscaler.serving_certificate(vs)


def _ok(outcomes: list[Outcome], action: str) -> Outcome:
    outcome: Outcome = only(outcomes)
    assert (outcome.action, outcome.result) == (action, "ok"), outcome
    assert outcome.exit_code == 0
    return outcome


def _later(days: float) -> Any:
    moment = datetime.now(timezone.utc) + timedelta(days=days)
    return lambda: moment


# ------------------------------------------------------------------------------------------- run


def test_run_enrolls_then_running_again_does_nothing(kit: Any) -> None:
    profile = kit.profile()
    first = _ok(kit.agent().run([profile]), "enroll")
    ns = kit.world.netscaler
    assert same_serial(_serving(kit.world), first.serial)
    assert kit.sim.order_count() == 1
    assert ns.state()["saved"] is True

    scm_seen, writes = len(kit.sim.requests), ns.count_writes()
    again = only(kit.agent().run([profile]))
    assert (again.action, again.result, again.exit_code) == ("nothing", "nothing", 0)
    assert scm_writes(kit.sim, scm_seen) == []  # no order, no token, nothing
    assert kit.sim.requests[scm_seen:] == []
    assert ns.count_writes() == writes
    assert kit.sim.order_count() == 1


def test_run_collects_a_pending_order_without_ordering_again(kit: Any) -> None:
    kit.sim.set_defaults(mode="needs_approval")
    profile = kit.profile()
    fake = FakeTime()
    pending = only(kit.agent(monotonic=fake.monotonic, sleep=fake.sleep).run([profile]))
    assert (pending.result, pending.exit_code) == ("pending", EXIT_PENDING)
    state = kit.store.load(profile.name)
    assert state.pending is not None and state.pending.order_id == pending.order_id
    assert _serving(kit.world) is None
    assert kit.world.netscaler.count_writes() == 0  # nothing written while waiting

    # the agent waited (in simulated time) about the configured deadline, not forever
    assert 29 <= fake.now - 1000.0 <= 31

    kit.sim.approve(int(pending.order_id) if kit.api == "admin" else pending.order_id)
    done = _ok(kit.agent().run([profile]), "collect")
    assert done.order_id == pending.order_id
    assert kit.sim.order_count() == 1
    assert same_serial(_serving(kit.world), done.serial)
    assert kit.store.load(profile.name).pending is None


def test_run_renews_inside_the_window_days_before_expiry(kit: Any) -> None:
    profile = kit.profile()
    first = _ok(kit.agent().run([profile]), "enroll")

    kit.clock = _later(300)  # 65 days left: outside the 30-day window
    assert only(kit.agent().run([profile])).action == "nothing"

    kit.clock = _later(340)  # 25 days left
    renewed = _ok(kit.agent().run([profile]), "renew")
    assert renewed.order_id != first.order_id
    assert "expires in" in renewed.message
    assert kit.sim.order_count() == 2
    assert same_serial(_serving(kit.world), renewed.serial)


def test_run_renews_by_percent_of_lifetime(kit: Any) -> None:
    profile = kit.profile(renewal={"percent_of_lifetime": 50})
    _ok(kit.agent().run([profile]), "enroll")
    kit.clock = _later(150)  # < 50 % of 365 days
    assert only(kit.agent().run([profile])).action == "nothing"
    kit.clock = _later(190)  # > 50 %
    renewed = _ok(kit.agent().run([profile]), "renew")
    assert "50% of the certificate's lifetime" in renewed.message
    assert kit.sim.order_count() == 2


def test_run_replaces_when_the_names_change(kit: Any) -> None:
    profile = kit.profile()
    first = _ok(kit.agent().run([profile]), "enroll")
    changed = kit.profile(
        certificate={
            "subject_alt_names": ["shop.sandbox.test", "www.shop.sandbox.test", "m.shop.sandbox.test"]
        }
    )
    replaced = _ok(kit.agent().run([changed]), "replace")
    assert replaced.serial != first.serial
    state = kit.store.load(profile.name)
    assert state.current is not None and "m.shop.sandbox.test" in state.current.sans
    assert same_serial(_serving(kit.world), replaced.serial)
    replace_calls = count(kit.sim, "/replace", method="POST", succeeded=True)
    assert replace_calls == 1
    assert kit.world.netscaler.gaps() == []
    assert only(kit.agent().run([changed])).action == "nothing"


def test_run_replaces_when_the_key_type_changes(kit: Any) -> None:
    profile = kit.profile()
    first = _ok(kit.agent().run([profile]), "enroll")
    ec_profile = kit.profile(certificate={"key_type": "ECDSA", "curve": "P-256", "key_size": None})
    replaced = _ok(kit.agent().run([ec_profile]), "replace")
    assert "key" in replaced.message
    state = kit.store.load(profile.name)
    assert state.current is not None and state.current.key_desc == "ECDSA P-256"
    assert public_key_der(state.current.cert_pem) != b""
    assert replaced.serial != first.serial
    assert same_serial(_serving(kit.world), replaced.serial)
    assert only(kit.agent().run([ec_profile])).action == "nothing"


def test_run_redeploys_when_the_appliance_serves_something_else(kit: Any, local_ca: Any) -> None:
    profile = kit.profile()
    first = _ok(kit.agent().run([profile]), "enroll")
    ns = kit.world.netscaler
    # someone binds another certificate to the vserver by hand
    cert_pem, key_pem = local_ca.issue_tls_server_cert(("shop.sandbox.test",), ())
    ns.install_certkey("manual", cert_pem, key_pem)
    ns.bind_certkey(VS, "manual")
    assert not same_serial(_serving(kit.world), first.serial)

    orders = kit.sim.order_count()
    again = _ok(kit.agent().run([profile]), "redeploy")
    assert same_serial(_serving(kit.world), first.serial)
    assert again.serial == first.serial
    assert kit.sim.order_count() == orders  # no new order
    assert only(kit.agent().run([profile])).action == "nothing"


# ----------------------------------------------------------------------------------- renew/replace


def test_renew_tracks_the_new_order_with_a_fresh_key(kit: Any) -> None:
    profile = kit.profile()
    _ok(kit.agent().enroll([profile]), "enroll")
    before = kit.store.load(profile.name).current
    renewed = _ok(kit.agent().renew([profile]), "renew")
    after = kit.store.load(profile.name)
    assert after.current is not None and after.pending is None
    assert after.current.order_id == renewed.order_id != before.order_id
    ordered = [e for e in after.history if e["event"] == "ordered"]
    assert ordered[-1]["kind"] == "renew" and ordered[-1]["order_id"] == renewed.order_id
    assert after.current.key_ref != before.key_ref
    assert public_key_der(after.current.cert_pem) != public_key_der(before.cert_pem)
    renew_path = "/renewById/" if kit.api == "admin" else "/renew"
    assert count(kit.sim, renew_path, method="POST", succeeded=True) == 1
    # installed in place: same certkey, still bound, never a gap
    ns = kit.world.netscaler
    assert same_serial(_serving(kit.world), after.current.serial)
    assert list(ns.state()["certkeys"]).count(profile.certificate.certkey_name) == 1
    assert ns.gaps() == []


def test_renew_with_reuse_key_keeps_the_local_key(kit: Any) -> None:
    profile = kit.profile(renewal={"reuse_key": True})
    _ok(kit.agent().enroll([profile]), "enroll")
    before = kit.store.load(profile.name).current
    renewed = _ok(kit.agent().renew([profile]), "renew")
    after = kit.store.load(profile.name).current
    assert renewed.serial != before.serial
    assert after.key_ref == before.key_ref
    assert public_key_der(after.cert_pem) == public_key_der(before.cert_pem)
    assert same_serial(_serving(kit.world), after.serial)


def test_renew_with_reuse_key_keeps_the_appliance_key(kit: Any) -> None:
    profile = kit.profile("appliance-key-profile", renewal={"reuse_key": True})
    _ok(kit.agent().enroll([profile]), "enroll")
    before = kit.store.load(profile.name).current
    assert before.key_location == "appliance"
    _ok(kit.agent().renew([profile]), "renew")
    after = kit.store.load(profile.name).current
    assert after.key_ref == before.key_ref
    assert public_key_der(after.cert_pem) == public_key_der(before.cert_pem)
    assert same_serial(_serving(kit.world, "vs_onbox_https"), after.serial)


def test_renew_of_appliance_key_makes_a_new_key_by_default(kit: Any) -> None:
    profile = kit.profile("appliance-key-profile")
    _ok(kit.agent().enroll([profile]), "enroll")
    before = kit.store.load(profile.name).current
    _ok(kit.agent().renew([profile]), "renew")
    after = kit.store.load(profile.name).current
    assert after.key_ref != before.key_ref
    assert public_key_der(after.cert_pem) != public_key_der(before.cert_pem)


def test_replace_on_demand_makes_a_new_key_and_deploys(kit: Any) -> None:
    profile = kit.profile()
    _ok(kit.agent().enroll([profile]), "enroll")
    before = kit.store.load(profile.name).current
    replaced = _ok(kit.agent().replace([profile]), "replace")
    after = kit.store.load(profile.name).current
    assert replaced.serial != before.serial
    assert public_key_der(after.cert_pem) != public_key_der(before.cert_pem)
    assert count(kit.sim, "/replace", method="POST", succeeded=True) == 1
    assert same_serial(_serving(kit.world), after.serial)
    assert kit.world.netscaler.gaps() == []


def test_renew_without_an_enrolled_certificate_is_a_usage_error(kit: Any) -> None:
    out = only(kit.agent().renew([kit.profile()]))
    assert out.result == "failed" and out.exit_code == 2
    assert "nothing to renew" in out.message
    assert kit.sim.order_count() == 0


# ----------------------------------------------------------------------------------------- dry run


@pytest.mark.parametrize("command", ["run", "enroll", "renew", "replace"])
def test_dry_run_orders_nothing_and_writes_nothing(kit: Any, command: str) -> None:
    profile = kit.profile()
    if command in ("renew", "replace"):
        _ok(kit.agent().enroll([profile]), "enroll")
    scm_seen = len(kit.sim.requests)
    writes = kit.world.netscaler.count_writes()
    orders = kit.sim.order_count()
    out = only(getattr(kit.agent(dry_run=True), command)([profile]))
    assert out.result == "planned", out
    assert out.exit_code == 0
    assert scm_writes(kit.sim, scm_seen) == []
    assert kit.sim.order_count() == orders
    assert kit.world.netscaler.count_writes() == writes
    text = "\n".join(out.plan)
    assert "save the configuration" in text
    # the installation steps come from deploy's read-only pass over what the appliance holds
    assert re.search(r"upload certificate /nsconfig/ssl/lb-profile-\d{14}(-\d)?\.crt", text), text
    assert "upload private key /nsconfig/ssl/lb-profile-" in text  # the key is made locally
    if command in ("run", "enroll"):
        assert "order a new certificate" in text
        assert "add certkey 'lb-profile' (the certificate SCM will issue" in text
        assert f"bind certkey 'lb-profile' to lb vserver {VS!r}" in text
    else:
        serial = kit.store.load(profile.name).current.serial
        assert f"{command} SCM order" in text
        update = f"update certkey 'lb-profile' in place: serial {serial} -> the certificate SCM will issue"
        assert update in text
        assert f"certkey 'lb-profile' is bound to lb vserver {VS!r}" in text and "bind certkey" not in text


# ------------------------------------------------------------------------------------------ status


def test_status_rows_and_exit_codes(kit: Any, cli: Any) -> None:
    profile = kit.profile()
    scm_yaml = str(kit.world.scm_enrollment_yaml if kit.api == "enrollment" else kit.world.scm_yaml)
    state_dir = str(kit.store.root)
    args = ["--scm-config", scm_yaml, "--state-dir", state_dir]

    res = cli(*args, "status", kit.world.profile_path("lb-profile"))
    assert res.code == EXIT_ATTENTION, res.output
    assert "no certificate enrolled yet" in res.out and "next: enroll" in res.out

    _ok(kit.agent().run([profile]), "enroll")
    res = cli(*args, "--json", "status", kit.world.profile_path("lb-profile"))
    assert res.code == 0, res.output
    row = only(json.loads(res.out))
    current = kit.store.load(profile.name).current
    assert row["certkey"] == "lb-profile"
    assert row["serial"] == current.serial
    assert row["vservers"] == [VS]
    assert row["order_id"] == current.order_id
    assert row["days_left"] in (364, 365)
    assert row["expires"] == current.not_after[:10]
    assert "scm_status" not in row["details"]  # settled: SCM is asked only about orders in flight
    assert row["details"]["next"] == "nothing"
    assert row["details"]["pending"] is None
    assert same_serial(row["details"]["installed_serial"], current.serial)
    assert row["exit_code"] == 0
    # status never writes
    writes = kit.world.netscaler.count_writes()
    res = cli(*args, "status", kit.world.directory)
    assert kit.world.netscaler.count_writes() == writes
    assert res.code == EXIT_ATTENTION  # the other sandbox profiles are not enrolled
    assert "lb-profile" in res.out and "cs-profile" in res.out


def test_status_reports_pending_work_and_what_run_would_do(kit: Any, cli: Any) -> None:
    kit.sim.set_defaults(mode="needs_approval")
    profile = kit.profile()
    fake = FakeTime()
    pending = only(kit.agent(monotonic=fake.monotonic, sleep=fake.sleep).run([profile]))
    scm_yaml = str(kit.world.scm_enrollment_yaml if kit.api == "enrollment" else kit.world.scm_yaml)
    res = cli(
        "--scm-config",
        scm_yaml,
        "--state-dir",
        kit.store.root,
        "--json",
        "status",
        kit.world.profile_path("lb-profile"),
    )
    assert res.code == EXIT_ATTENTION
    row = only(json.loads(res.out))
    assert row["order_id"] == pending.order_id
    assert row["details"]["next"] == "collect"
    assert pending.order_id in row["details"]["pending"]
    assert row["result"] == "attention"


def test_dry_run_of_a_pending_order_plans_its_installation_from_deploy(kit: Any) -> None:
    kit.sim.set_defaults(mode="needs_approval")
    profile = kit.profile()
    fake = FakeTime()
    pending = only(kit.agent(monotonic=fake.monotonic, sleep=fake.sleep).run([profile]))
    scm_seen, writes = len(kit.sim.requests), kit.world.netscaler.count_writes()
    out = only(kit.agent(dry_run=True).run([profile]))
    assert out.result == "planned", out
    assert scm_writes(kit.sim, scm_seen) == [] and kit.world.netscaler.count_writes() == writes
    assert out.plan[0] == f"collect SCM order {pending.order_id} (enroll)"
    text = "\n".join(out.plan)
    assert "add certkey 'lb-profile' (the certificate SCM will issue, shop.sandbox.test" in text
    assert f"bind certkey 'lb-profile' to lb vserver {VS!r}" in text


# ------------------------------------------------------------------------------------------ revoke


def test_revoke_warns_when_still_bound_and_run_enrolls_anew(kit: Any, cli: Any) -> None:
    profile = kit.profile()
    first = _ok(kit.agent().run([profile]), "enroll")
    scm_yaml = str(kit.world.scm_enrollment_yaml if kit.api == "enrollment" else kit.world.scm_yaml)
    args = ["--scm-config", scm_yaml, "--state-dir", str(kit.store.root)]
    path = kit.world.profile_path("lb-profile")

    # no --yes without a terminal: refused, nothing revoked
    res = cli(*args, "revoke", path, "--reason", "key-compromise")
    assert res.code == 2 and "--yes" in res.err

    res = cli(*args, "revoke", path, "--reason", "key-compromise", "--yes")
    assert res.code == 0, res.output
    assert "still installed" in res.out and VS in res.out and "citrixagent --scm-config" in res.out
    row_line = next(line for line in res.out.splitlines() if line.startswith("lb-profile  revoke"))
    assert row_line.rstrip().endswith(VS)  # VSERVERS: where the revoked certificate is still bound
    assert first.order_id is not None
    order = kit.sim.orders[int(first.order_id) if kit.api == "admin" else first.order_id]
    assert order.status == "Revoked"
    assert order.reason_code == 1  # keyCompromise
    reason_text = order.revoke_reason if kit.api == "admin" else order.revoke_message
    assert "key-compromise" in reason_text and "lb-profile" in reason_text

    state = kit.store.load(profile.name)
    assert state.current is None and state.revoked[-1]["order_id"] == first.order_id
    again = _ok(kit.agent().run([profile]), "enroll")
    assert "revoked" in again.message
    assert same_serial(_serving(kit.world), again.serial)
    assert not same_serial(again.serial, first.serial)


def test_revoke_nothing_enrolled_fails_cleanly(kit: Any) -> None:
    out = only(kit.agent().revoke([kit.profile()], reason="superseded", reason_code=4))
    assert out.result == "failed" and "nothing to revoke" in out.message
