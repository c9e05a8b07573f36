"""`run`'s unattended guarantees, end to end over HTTPS against the sandbox.

Directories, one bad profile among good ones, exit codes, concurrency with one NITRO session and one
save per appliance, the run lock, crash recovery (injected faults at each step and one real kill),
collection deadlines, transient-failure retries, the log file, and every SCM authentication mode.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import yaml
from lifecycle_helpers import FakeTime, count, logins, only, same_serial, saves, scm_writes

from citrix_connector.config import load_scm_config
from citrix_connector.errors import EXIT_LOCKED, EXIT_PENDING
from citrix_connector.lifecycle import Agent
from citrix_connector.sandbox.world import (
    ADC_PASSWORD,
    ADMIN_OAUTH_CLIENT_SECRET,
    ENROLL_CLIENT_SECRET,
    SCM_PASSWORD,
    Sandbox,
)
from citrix_connector.scm.admin import AdminScmClient
from citrix_connector.scm.enrollment import EnrollmentScmClient
from citrix_connector.state import StateStore

REPO = Path(__file__).resolve().parent.parent
VS = "vs_shop_https"

SCM_FILES = {
    "password": "scm.yaml",
    "client_cert": "scm-clientcert.yaml",
    "oauth": "scm-oauth.yaml",
    "enrollment": "scm-enrollment.yaml",
}


def _scm_sim(world: Sandbox, mode: str) -> Any:
    return world.enrollment if mode == "enrollment" else world.scm


# ------------------------------------------------------------------------------ SCM authentication


@pytest.mark.parametrize("mode", list(SCM_FILES))
def test_run_with_each_scm_authentication_mode(world: Sandbox, cli: Any, mode: str) -> None:
    scm_yaml = world.directory / SCM_FILES[mode]
    assert scm_yaml.is_file()
    sim = _scm_sim(world, mode)
    profile = world.profile_path("lb-profile")
    res = cli("--scm-config", scm_yaml, "--json", "run", profile)
    assert res.code == 0, res.output
    row = only(json.loads(res.out))
    assert (row["action"], row["result"]) == ("enroll", "ok")
    assert same_serial(world.netscaler.serving_certificate(VS), row["serial"])
    assert sim.order_count() == 1

    api_calls = [r for r in sim.requests if "/api/" in r.path]
    assert api_calls
    if mode == "client_cert":
        assert all(r.path.startswith("/private/api/") for r in api_calls)
        assert all("password" not in {k.lower() for k in r.headers} for r in api_calls)
    elif mode in ("oauth", "enrollment"):
        assert count(sim, "/openid-connect/token", method="POST", succeeded=True) >= 1
        assert all(r.status == 401 or "authorization" in {k.lower() for k in r.headers} for r in api_calls)
    else:
        assert all(r.path.startswith("/api/") for r in api_calls)

    seen = len(sim.requests)
    again = cli("--scm-config", scm_yaml, "--json", "run", profile)
    assert again.code == 0 and only(json.loads(again.out))["action"] == "nothing"
    assert sim.requests[seen:] == []


def test_client_certificate_of_another_login_is_refused(world: Sandbox, cli: Any, tmp_path: Path) -> None:
    from citrix_connector.sandbox.world import make_client_auth_pki

    _, cert, key = make_client_auth_pki("api-admin")  # right CN, but not signed by the CA SCM trusts
    (tmp_path / "c.pem").write_bytes(cert)
    (tmp_path / "k.pem").write_bytes(key)
    data = yaml.safe_load(world.scm_clientcert_yaml.read_text())
    data.update(client_cert=str(tmp_path / "c.pem"), client_key=str(tmp_path / "k.pem"))
    bad = tmp_path / "scm-bad.yaml"
    bad.write_text(yaml.safe_dump(data))
    res = cli("--scm-config", bad, "run", world.profile_path("lb-profile"))
    assert res.code == 1, res.output
    assert world.scm.order_count() == 0
    assert world.netscaler.count_writes() == 0


class _SteppingTime(FakeTime):
    """Every sleep moves time by ``step`` seconds (the client, the agent and the SCM simulator share it)."""

    def __init__(self, step: float) -> None:
        super().__init__()
        self.step = step
        self.base = datetime.now(timezone.utc)

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += self.step

    def wall(self) -> datetime:
        return self.base + timedelta(seconds=self.now - 1000.0)


@pytest.mark.parametrize("mode", ["oauth", "enrollment"])
def test_oauth_token_is_refreshed_before_it_expires(world: Sandbox, tmp_path: Path, mode: str) -> None:
    sim = _scm_sim(world, mode)
    t = _SteppingTime(step=45.0)
    sim.clock = t.wall
    if mode == "enrollment":
        sim.token_lifetime = 40
        sim.issue_after_polls = 0
    else:
        sim.set_defaults(token_lifetime=40, issue_after_polls=0)
    config = load_scm_config(world.directory / SCM_FILES[mode])

    def factory(cfg: Any) -> Any:
        cls = EnrollmentScmClient if mode == "enrollment" else AdminScmClient
        return cls(cfg, clock=t.monotonic, sleep=lambda _s: None)

    poll = dict(first_wait=1, interval=1, timeout=100)
    config = config.__class__(**{**config.__dict__, "poll": config.poll.__class__(**poll)})
    agent = Agent(
        config, StateStore(tmp_path / "st"), scm_factory=factory, monotonic=t.monotonic, sleep=t.sleep
    )
    profile_path = world.profile_path("lb-profile")
    from citrix_connector.config import load_profile

    out = only(agent.run([load_profile(profile_path)]))
    assert (out.action, out.result) == ("enroll", "ok"), out
    assert t.now - 1000.0 >= 45  # the collect happened after the first token's lifetime
    tokens = count(sim, "/openid-connect/token", method="POST", succeeded=True)
    assert tokens >= 2, "the token was not refreshed"
    # refreshed *before* expiry: no call with a token SCM considered expired
    expired = [
        r for r in sim.requests if r.status == 401 and "authorization" in {k.lower() for k in r.headers}
    ]
    assert expired == []


# ------------------------------------------------------------------------------ many profiles


def test_directory_one_bad_profile_others_run_worst_exit_code(world: Sandbox, cli: Any) -> None:
    (world.directory / "broken.yaml").write_text("name: broken\ncertificat: {}\n")
    data = yaml.safe_load(world.profile_path("cs-profile").read_text())
    data["name"] = "missing-vs"
    data["vservers"] = [{"name": "vs_does_not_exist", "type": "lb"}]
    world.write_profile("missing-vs", data)

    res = cli("--scm-config", world.scm_yaml, "--json", "run", world.directory)
    assert res.code == 2, res.output  # configuration error beats run-time failure
    rows = {r["profile"]: r for r in json.loads(res.out)}
    assert rows["broken"]["result"] == "failed" and "certificat" in rows["broken"]["message"]
    assert rows["missing-vs"]["result"] == "failed" and rows["missing-vs"]["exit_code"] == 1
    assert "vs_does_not_exist" in rows["missing-vs"]["message"]
    good = [r for name, r in rows.items() if name not in ("broken", "missing-vs")]
    assert len(good) == 6 and all(r["result"] == "ok" for r in good)
    assert world.scm.order_count() == 6  # nothing ordered for the failing profile (preflight first)

    (world.directory / "broken.yaml").unlink()
    res = cli("--scm-config", world.scm_yaml, "--json", "run", world.directory)
    assert res.code == 1, res.output
    assert world.scm.order_count() == 6


def test_a_profile_whose_local_key_vanished_fails_alone(world: Sandbox, cli: Any, state_dir: Path) -> None:
    assert cli("--scm-config", world.scm_yaml, "run", world.directory).code == 0
    current = StateStore(state_dir).load("lb-profile").current
    assert current is not None
    Path(current.key_ref).unlink()  # someone cleaned up the state directory by hand
    ns = world.netscaler
    ns.bind_certkey(VS, "cs-profile")  # and the appliance needs the certificate again
    ns.bind_certkey("cs_portal_https", "lb-profile")

    res = cli("--scm-config", world.scm_yaml, "--json", "run", world.directory)
    assert res.code == 1, res.output
    rows = {r["profile"]: r for r in json.loads(res.out)}
    assert rows["lb-profile"]["result"] == "failed"
    assert "key" in rows["lb-profile"]["message"] and current.key_ref in rows["lb-profile"]["message"]
    assert rows["cs-profile"]["action"] == "redeploy" and rows["cs-profile"]["result"] == "ok"
    assert all(r["result"] in ("ok", "nothing") for n, r in rows.items() if n != "lb-profile")


@pytest.fixture
def three_appliances(tmp_path: Path) -> Iterator[Sandbox]:
    with Sandbox(tmp_path / "sbx3", appliances=3, issue_after_polls=1, latency=0.01) as world:
        yield world


def _profiles_on_three(world: Sandbox) -> Path:
    directory = world.directory / "profiles"
    directory.mkdir()
    for i in range(3):
        for vs, kind, cn in (("vs_shop_https", "lb", "shop"), ("cs_portal_https", "cs", "portal")):
            name = f"{cn}-adc{i}"
            data = world.profile_dict(name, [(vs, kind, False)], f"{cn}{i}.sandbox.test", appliance_index=i)
            (directory / f"{name}.yaml").write_text(yaml.safe_dump(data))
    return directory


def test_one_session_and_one_save_per_appliance_concurrently(three_appliances: Sandbox, cli: Any) -> None:
    world = three_appliances
    profiles = _profiles_on_three(world)
    res = cli("--scm-config", world.scm_yaml, "--json", "run", "--workers", "3", profiles)
    assert res.code == 0, res.output
    rows = json.loads(res.out)
    assert len(rows) == 6 and all(r["result"] == "ok" for r in rows)
    for ns in world.netscalers:
        assert logins(ns) == 1, "one NITRO session per appliance per run"
        assert saves(ns) == 1, "one config save per appliance per run"
        assert ns.state()["saved"] is True
        assert ns.serving_certificate("vs_shop_https") and ns.serving_certificate("cs_portal_https")
    # concurrently: the appliances' busy periods overlap
    spans = [(ns.requests[0].at, ns.requests[-1].at) for ns in world.netscalers]
    assert any(a[0] < b[1] and b[0] < a[1] for i, a in enumerate(spans) for b in spans[i + 1 :]), (
        f"appliances were processed one after the other: {spans}"
    )

    writes = [ns.count_writes() for ns in world.netscalers]
    scm_seen = len(world.scm.requests)
    res = cli("--scm-config", world.scm_yaml, "--json", "run", "--workers", "3", profiles)
    assert res.code == 0
    assert all(r["action"] == "nothing" for r in json.loads(res.out))
    assert [ns.count_writes() for ns in world.netscalers] == writes
    assert [saves(ns) for ns in world.netscalers] == [1, 1, 1]
    # the idle run read without a session (credentials on each read): no second login
    assert [logins(ns) for ns in world.netscalers] == [1, 1, 1]
    assert scm_writes(world.scm, scm_seen) == []


def test_second_run_while_one_holds_the_lock_exits_3(world: Sandbox, cli: Any, state_dir: Path) -> None:
    with StateStore(state_dir).lock():
        started = time.monotonic()
        res = cli("--scm-config", world.scm_yaml, "run", world.profile_path("lb-profile"))
        assert time.monotonic() - started < 5
    assert res.code == EXIT_LOCKED
    assert "another citrixagent run holds the lock" in res.err
    assert world.scm.order_count() == 0 and world.netscaler.count_writes() == 0
    assert cli("--scm-config", world.scm_yaml, "run", world.profile_path("lb-profile")).code == 0


# ------------------------------------------------------------------------------ crash recovery

NITRO_FAILURE = {"errorcode": 1, "message": "Simulated failure", "severity": "ERROR"}


def _converges(kit: Any, profile: Any, orders: int) -> None:
    """The next run installs the issued certificate without another SCM order, then rests."""
    out = only(kit.agent().run([profile]))
    assert out.result == "ok", out
    state = kit.store.load(profile.name)
    assert state.pending is None and state.current is not None
    assert state.deployed is not None and state.deployed.saved
    assert same_serial(kit.world.netscaler.serving_certificate(VS), state.current.serial)
    assert kit.world.netscaler.state()["saved"] is True
    assert kit.sim.order_count() == orders
    assert only(kit.agent().run([profile])).action == "nothing"


def test_crash_between_order_and_collect(kit: Any) -> None:
    profile = kit.profile()
    collect = r"/collect/" if kit.api == "admin" else r"/api/v1/certificates/\d+$"
    kit.sim.add_fault(collect, method="GET", reset=True, times=None)
    out = only(kit.agent().run([profile]))
    assert out.result == "failed" and out.exit_code == 1
    assert kit.store.load(profile.name).pending is not None
    assert kit.world.netscaler.count_writes() == 0
    kit.sim.clear_faults()
    _converges(kit, profile, orders=1)


@pytest.mark.parametrize(
    "step, path, method",
    [
        ("upload", r"/config/systemfile$", "POST"),
        ("update", r"/config/sslcertkey$", "POST"),
    ],
)
def test_crash_during_the_deployment_of_a_renewal(kit: Any, step: str, path: str, method: str) -> None:
    profile = kit.profile()
    first = only(kit.agent().run([profile]))
    ns = kit.world.netscaler
    ns.add_fault(path, method=method, status=599, json_body=NITRO_FAILURE, times=1)
    out = only(kit.agent().renew([profile]))
    assert out.result == "failed" and out.exit_code == 1
    assert f"step {step}" in out.message and "errorcode 1" in out.message.lower()
    assert same_serial(ns.serving_certificate(VS), first.serial)  # the old one still serves
    assert ns.gaps() == []
    _converges(kit, profile, orders=2)


def test_crash_before_save(kit: Any) -> None:
    profile = kit.profile()
    ns = kit.world.netscaler
    ns.add_fault(r"/config/nsconfig$", method="POST", status=599, json_body=NITRO_FAILURE, times=1)
    out = only(kit.agent().run([profile]))
    assert out.result == "failed" and "sav" in out.message
    state = kit.store.load(profile.name)
    assert state.deployed is not None and not state.deployed.saved
    writes = ns.count_writes()
    again = only(kit.agent().run([profile]))
    assert again.result == "ok" and "unsaved" in again.message
    assert ns.count_writes() == writes + 1  # only the save
    assert kit.sim.order_count() == 1
    assert kit.store.load(profile.name).deployed.saved
    assert only(kit.agent().run([profile])).action == "nothing"


def test_real_kill_between_order_and_collect(world: Sandbox, cli: Any, state_dir: Path) -> None:
    world.scm.add_fault(r"/collect/", method="GET", status=0, latency=30, times=None)
    profile = world.profile_path("lb-profile")
    env = {**os.environ, "PYTHONPATH": str(REPO), "CITRIXAGENT_STATE_DIR": str(state_dir)}
    proc = subprocess.Popen(
        [
            sys.executable,
            str(REPO / "citrixagent.py"),
            "--scm-config",
            str(world.scm_yaml),
            "run",
            str(profile),
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    store = StateStore(state_dir)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            journal = store.path_for("lb-profile")
            if world.scm.order_count() == 1 and journal.exists() and store.load("lb-profile").pending:
                break
            assert proc.poll() is None, proc.communicate()
            time.sleep(0.02)
        else:
            pytest.fail("the agent never placed the order")
        proc.kill()
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    assert proc.returncode != 0
    assert world.netscaler.count_writes() == 0
    world.scm.clear_faults()

    res = cli("--scm-config", world.scm_yaml, "--json", "run", profile)
    assert res.code == 0, res.output
    row = only(json.loads(res.out))
    assert row["action"] == "collect"
    assert world.scm.order_count() == 1
    current = store.load("lb-profile").current
    assert current is not None
    assert same_serial(world.netscaler.serving_certificate(VS), current.serial)


def test_collection_deadline_leaves_the_order_pending_exit_4(
    world: Sandbox, cli: Any, tmp_path: Path
) -> None:
    data = yaml.safe_load(world.scm_yaml.read_text())
    data["poll"] = {"first_wait": 0.05, "interval": 0.1, "timeout": 0.5}
    quick = tmp_path / "scm-quick.yaml"
    quick.write_text(yaml.safe_dump(data))
    world.scm.set_defaults(mode="needs_approval")
    profile = world.profile_path("lb-profile")

    res = cli("--scm-config", quick, "--json", "run", profile)
    assert res.code == EXIT_PENDING, res.output
    row = only(json.loads(res.out))
    assert row["result"] == "pending" and row["order_id"]
    assert "run `citrixagent --scm-config" in row["message"] and row["message"].endswith("to resume")
    assert world.netscaler.count_writes() == 0

    res = cli("--scm-config", quick, "--json", "run", profile)  # still not approved: still 4, no new order
    assert res.code == EXIT_PENDING and world.scm.order_count() == 1

    world.scm.approve(int(row["order_id"]))
    res = cli("--scm-config", quick, "--json", "run", profile)
    assert res.code == 0, res.output
    assert only(json.loads(res.out))["action"] == "collect"
    assert world.scm.order_count() == 1


# ------------------------------------------------------------------------------ transient failures


def _recording_agent(kit: Any) -> tuple[Any, list[float]]:
    slept: list[float] = []
    return kit.agent(sleep=slept.append), slept


@pytest.mark.parametrize("code", [-195, -140])
def test_scm_transient_codes_are_retried(kit: Any, code: int) -> None:
    # a 4xx refusal saying "temporarily unavailable" proves nothing was ordered: sent again
    route = r"/enroll$" if kit.api == "admin" else r"/api/v1/certificates$"
    kit.sim.inject_transient(route, code=code, times=2, method="POST", status=400)
    agent, slept = _recording_agent(kit)
    out = only(agent.run([kit.profile()]))
    assert out.result == "ok", out
    assert kit.sim.order_count() == 1
    assert sum(1 for s in slept if s >= 1) >= 2  # backed off twice
    assert max(slept) <= 30


@pytest.mark.parametrize("code", [-195, -140])
def test_scm_transient_codes_in_a_5xx_order_answer_are_not_resent(kit: Any, code: int) -> None:
    # a 5xx may come after SCM took the order: the intent stays and the next run looks for it
    route = r"/enroll$" if kit.api == "admin" else r"/api/v1/certificates$"
    kit.sim.inject_transient(route, code=code, times=1, method="POST")
    agent, _ = _recording_agent(kit)
    first = only(agent.run([kit.profile()]))
    assert first.result == "failed" and "an order may exist in SCM" in first.message, first
    assert len([r for r in kit.sim.requests if r.method == "POST" and re.search(route, r.path)]) == 1
    assert kit.store.load("lb-profile").ordering is not None
    second = only(kit.agent().run([kit.profile()]))
    assert second.result == "ok", second
    assert kit.sim.order_count() == 1  # the 5xx answer came before SCM took it: one order in the end


def test_429_and_503_with_retry_after_and_connection_reset_are_retried(kit: Any) -> None:
    collect = r"/collect/" if kit.api == "admin" else r"/api/v1/certificates/\d+$"
    kit.sim.add_fault(collect, method="GET", status=429, headers={"Retry-After": "7"}, times=1)
    kit.sim.add_fault(collect, method="GET", status=503, headers={"Retry-After": "3"}, times=1, after=1)
    kit.sim.add_fault(collect, method="GET", reset=True, times=1, after=2)
    agent, slept = _recording_agent(kit)
    out = only(agent.run([kit.profile()]))
    assert out.result == "ok", out
    assert 7 in slept and 3 in slept
    assert max(slept) <= 30
    assert kit.sim.order_count() == 1


def test_netscaler_save_in_progress_is_retried(kit: Any) -> None:
    ns = kit.world.netscaler
    ns.save_in_progress_times = 2
    agent, slept = _recording_agent(kit)
    out = only(agent.run([kit.profile()]))
    assert out.result == "ok", out
    assert saves(ns) == 3 and ns.state()["saved"] is True
    assert len([s for s in slept if s > 0]) >= 2


def test_other_scm_errors_fail_fast_with_the_remote_code(kit: Any) -> None:
    route = r"/enroll$" if kit.api == "admin" else r"/api/v1/certificates$"
    kit.sim.add_fault(
        route,
        method="POST",
        status=400,
        json_body={"code": -1601, "description": "Invalid field"},
        times=None,
    )
    agent, slept = _recording_agent(kit)
    out = only(agent.run([kit.profile()]))
    assert out.result == "failed" and out.exit_code == 1
    assert "-1601" in out.message
    assert count(kit.sim, "", method="POST", succeeded=False) - count(kit.sim, "token", method="POST") <= 2
    assert len([r for r in kit.sim.requests if re.search(route, r.path) and r.status == 400]) == 1
    assert kit.world.netscaler.count_writes() == 0


def test_other_nitro_errors_fail_fast_with_the_remote_code(kit: Any) -> None:
    ns = kit.world.netscaler
    ns.add_fault(
        r"/config/sslcertkey$",
        method="POST",
        status=599,
        json_body={"errorcode": 1540, "message": "Simulated certkey failure", "severity": "ERROR"},
        times=None,
    )
    out = only(kit.agent().run([kit.profile()]))
    assert out.result == "failed" and out.exit_code == 1
    assert "1540" in out.message
    assert count(ns, "/config/sslcertkey", method="POST") == 1


# ------------------------------------------------------------------------------ log file


@pytest.mark.parametrize("mode", ["password", "oauth", "enrollment"])
def test_log_file_records_decisions_and_calls_without_secrets(
    world: Sandbox, cli: Any, tmp_path: Path, mode: str
) -> None:
    log_file = tmp_path / "logs" / "citrixagent.log"
    scm_yaml = world.directory / SCM_FILES[mode]
    profile = world.profile_path("lb-profile")
    assert cli("--scm-config", scm_yaml, "--log-file", log_file, "run", profile).code == 0
    assert cli("--scm-config", scm_yaml, "--log-file", log_file, "run", profile).code == 0
    text = log_file.read_text()
    assert "run decides enroll" in text and "run decides nothing" in text
    assert re.search(r"POST https://127\.0\.0\.1:\d+/\S*(enroll|certificates)", text)
    assert "/nitro/v1/config/sslcertkey" in text and "nsconfig?action=save" in text
    for secret in (SCM_PASSWORD, ADC_PASSWORD, ADMIN_OAUTH_CLIENT_SECRET, ENROLL_CLIENT_SECRET):
        assert secret not in text
    assert "PRIVATE KEY" not in text
    assert not re.search(r"Bearer [A-Za-z0-9_\-]{8}", text)
