"""A run that dies while SCM is taking an order: the next run finds that order instead of placing a
second one (write-ahead intent in the journal + SCM's order list / status).

The "death" is real at the HTTP level: the simulated SCM takes the order but answers after the
client's timeout, so the agent never learns the order id.
"""

from __future__ import annotations

import re
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import CliResult

from citrix_connector.config import load_profile, load_scm_config
from citrix_connector.errors import ScmError
from citrix_connector.lifecycle import Agent
from citrix_connector.sandbox.world import Sandbox
from citrix_connector.scm import AdminScmClient
from citrix_connector.state import StateStore

Cli = Callable[..., CliResult]

ENROLL_PATHS = {"admin": r"^/api/ssl/v1/enroll$", "enrollment": r"^/api/v1/certificates$"}


def _slow_scm_yaml(world: Sandbox, api: str) -> Path:
    """The sandbox's scm.yaml for ``api`` with a 1 s HTTP timeout."""
    source = world.scm_enrollment_yaml if api == "enrollment" else world.scm_yaml
    data = yaml.safe_load(source.read_text())
    data["timeout"] = 1
    path = world.directory / f"scm-{api}-1s.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def _wait_for(condition: Callable[[], Any], timeout: float = 5.0) -> None:
    """The simulator takes the order after the client gave up: wait until it has."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "the simulator never took the order"
        time.sleep(0.05)


def _lose_next_answer(world: Sandbox, api: str, path: str, *, after: int = 0) -> None:
    sim = world.enrollment if api == "enrollment" else world.scm
    sim.add_fault(path, method="POST", status=0, latency=1.6, times=1, after=after)  # taken, answered late


def test_admin_api_enroll_interrupted_is_recovered_not_reordered(
    world: Sandbox, cli: Cli, state_dir: Path
) -> None:
    scm_yaml = _slow_scm_yaml(world, "admin")
    profile = world.profile_path("lb-profile")
    _lose_next_answer(world, "admin", ENROLL_PATHS["admin"])

    first = cli("--scm-config", scm_yaml, "run", profile)
    assert first.code == 1, first.output
    assert "request sent to 127.0.0.1" in first.output
    assert "no answer in time: an order may exist in SCM; the next run looks for it" in first.output
    _wait_for(lambda: world.scm.order_count() == 1)  # SCM took it
    state = StateStore(state_dir).load("lb-profile")
    assert state.ordering is not None and state.pending is None

    status = cli("--scm-config", scm_yaml, "--json", "status", profile)
    assert "interrupted" in status.out
    dry = cli("--scm-config", scm_yaml, "run", "--dry-run", profile)
    assert dry.code == 0 and "interrupted" in dry.out, dry.output
    assert StateStore(state_dir).load("lb-profile").ordering is not None  # a dry run changes nothing

    second = cli("--scm-config", scm_yaml, "run", profile)
    assert second.code == 0, second.output
    assert "recovered enroll order" in second.err
    assert world.scm.order_count() == 1  # no second order
    state = StateStore(state_dir).load("lb-profile")
    assert state.ordering is None and state.current is not None
    assert world.netscaler.serving_certificate("vs_shop_https") == state.current.serial
    assert cli("--scm-config", scm_yaml, "run", profile).code == 0
    assert world.scm.order_count() == 1


def test_admin_api_renew_and_replace_interrupted_are_recovered(
    world: Sandbox, cli: Cli, state_dir: Path
) -> None:
    scm_yaml = _slow_scm_yaml(world, "admin")
    profile = world.profile_path("lb-profile")
    assert cli("--scm-config", scm_yaml, "enroll", profile).code == 0
    store = StateStore(state_dir)

    _lose_next_answer(world, "admin", r"^/api/ssl/v1/renewById/")
    assert cli("--scm-config", scm_yaml, "renew", profile).code == 1
    _wait_for(lambda: world.scm.order_count() == 2)
    assert cli("--scm-config", scm_yaml, "run", profile).code == 0
    assert world.scm.order_count() == 2
    renewed = store.load("lb-profile").current
    assert renewed is not None and renewed.order_id != "1001"

    _lose_next_answer(world, "admin", r"^/api/ssl/v1/replace/")
    assert cli("--scm-config", scm_yaml, "replace", profile).code == 1
    _wait_for(lambda: [r for r in world.scm.requests if "/replace/" in r.path])
    result = cli("--scm-config", scm_yaml, "run", profile)
    assert result.code == 0, result.output
    assert "recovered replace order" in result.err
    assert len([r for r in world.scm.requests if "/replace/" in r.path]) == 1  # not replaced twice
    replaced = store.load("lb-profile").current
    assert replaced is not None and replaced.serial != renewed.serial
    assert world.netscaler.serving_certificate("vs_shop_https") == replaced.serial


def test_enrollment_api_cannot_list_so_it_warns_before_ordering_again(
    world: Sandbox, cli: Cli, state_dir: Path
) -> None:
    scm_yaml = _slow_scm_yaml(world, "enrollment")
    profile = world.profile_path("lb-profile")
    # the client's first call is its token discovery (an unauthenticated 401): lose the one after it
    _lose_next_answer(world, "enrollment", ENROLL_PATHS["enrollment"], after=1)
    assert cli("--scm-config", scm_yaml, "run", profile).code == 1
    _wait_for(lambda: world.enrollment.order_count() == 1)

    second = cli("--scm-config", scm_yaml, "run", profile)
    assert second.code == 0, second.output
    assert "cannot list orders" in second.err and "check it in SCM" in second.err
    assert world.enrollment.order_count() == 2  # documented limit of that API
    assert StateStore(state_dir).load("lb-profile").ordering is None


def test_an_order_scm_refused_leaves_no_intent(world: Sandbox, cli: Cli, state_dir: Path) -> None:
    profile = world.profile_path("lb-profile")
    world.scm.add_fault(
        ENROLL_PATHS["admin"], method="POST", status=400, json_body={"code": -36, "description": "bad term"}
    )
    result = cli("--scm-config", world.scm_yaml, "run", profile)
    assert result.code == 1 and "-36" in result.output
    assert StateStore(state_dir).load("lb-profile").ordering is None
    assert cli("--scm-config", world.scm_yaml, "run", profile).code == 0
    assert world.scm.order_count() == 1


class _AnswerWithoutId:
    """An admin client whose enroll reaches SCM, but whose 200 answer cannot be read (no sslId)."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def enroll(self, request: Any) -> str:
        self._inner.enroll(request)  # SCM takes the order...
        raise ScmError(  # ...but the client cannot read its id (as new_order_id does on a 2xx)
            "SCM answered enroll without an sslId [POST /api/ssl/v1/enroll]",
            status=200,
            endpoint="POST /api/ssl/v1/enroll",
        )


def test_an_order_scm_answered_2xx_without_an_id_is_recovered_not_reordered(
    world: Sandbox, state_dir: Path
) -> None:
    config = load_scm_config(world.scm_yaml)
    store = StateStore(state_dir)
    profile = load_profile(world.profile_path("lb-profile"))

    def factory(cfg: Any) -> Any:
        return _AnswerWithoutId(AdminScmClient(cfg, sleep=lambda _s: None))

    agent = Agent(config, store, scm_factory=factory, sleep=lambda _s: None)
    (first,) = agent.run([profile])
    assert first.result == "failed" and "without an sslId" in first.message
    assert world.scm.order_count() == 1
    state = store.load("lb-profile")
    assert state.ordering is not None, "SCM answered 2xx: the order exists, the intent must stay"
    assert Path(state.ordering.key_ref).is_file()  # the key of an order SCM holds is kept

    again = Agent(config, store, sleep=lambda _s: None)
    (second,) = again.run([profile])
    assert second.result == "ok", second.message
    assert world.scm.order_count() == 1  # recovered, not ordered a second time


# ------------------------------------------------------------------ issue 10: every order converges

ORDER_ROUTES = {
    ("admin", "enroll"): r"^/api/ssl/v1/enroll$",
    ("admin", "renew"): r"^/api/ssl/v1/renewById/",
    ("admin", "replace"): r"^/api/ssl/v1/replace/",
    ("enrollment", "enroll"): r"^/api/v1/certificates$",
    ("enrollment", "renew"): r"^/api/v1/certificates/\d+/renew$",
    ("enrollment", "replace"): r"^/api/v1/certificates/\d+/replace$",
}


def _sim_of(world: Sandbox, api: str) -> Any:
    return world.enrollment if api == "enrollment" else world.scm


def _taken(world: Sandbox, api: str, command: str) -> int:
    """Order calls of ``command`` SCM carried out (whatever it answered)."""
    route = re.compile(ORDER_ROUTES[(api, command)])
    # a lost answer is logged with the status the client got (500); a refusal (4xx) did nothing
    return sum(
        1
        for r in _sim_of(world, api).requests
        if r.method == "POST" and route.search(r.path) and r.status not in (400, 401, 403, 404)
    )


def _yaml_for(world: Sandbox, api: str) -> Path:
    return world.scm_enrollment_yaml if api == "enrollment" else world.scm_yaml


@pytest.mark.parametrize("command", ["enroll", "renew", "replace"])
def test_a_5xx_after_scm_took_the_order_keeps_the_intent_and_the_next_run_converges(
    world: Sandbox, cli: Cli, state_dir: Path, scm_api: str, command: str
) -> None:
    scm_yaml, profile = _yaml_for(world, scm_api), world.profile_path("lb-profile")
    sim = _sim_of(world, scm_api)
    if command != "enroll":
        assert cli("--scm-config", scm_yaml, "enroll", profile).code == 0
    store = StateStore(state_dir)
    before = store.load("lb-profile").current
    # the Enrollment client's first call is its token discovery (a 401): for enroll that is the order
    # call itself, so lose the answer of the one after it (renew/replace read the order's status first)
    sim.lose_answer(
        ORDER_ROUTES[(scm_api, command)],
        status=500,
        after=int(scm_api == "enrollment" and command == "enroll"),
    )

    first = cli("--scm-config", scm_yaml, command, profile)
    assert first.code == 1, first.output
    assert "the next run looks for it" in first.output
    assert _taken(world, scm_api, command) == 1  # sent once, never re-sent after the 500
    intent = store.load("lb-profile").ordering
    assert intent is not None and intent.kind == command and intent.tag
    stamped = not (scm_api == "admin" and command == "renew")  # renewById takes no comments
    assert (intent.tag in first.err) == stamped  # the warning names the order's tag where it has one

    second = cli("--scm-config", scm_yaml, "run", profile)
    assert second.code == 0, second.output
    state = store.load("lb-profile")
    assert state.ordering is None and state.pending is None and state.reorder is None
    assert state.current is not None
    assert world.netscaler.serving_certificate("vs_shop_https") == state.current.serial
    if before is not None:
        assert state.current.serial != before.serial  # what was ordered was collected
    lost_for_good = scm_api == "enrollment"  # no order list: the order cannot be found
    if command == "replace" and lost_for_good:
        # SCM replaced the order: recognised by its status; the replacement cannot be named by that
        # API, so a new certificate was ordered instead (not a replace refused with -130 forever)
        assert "cannot name the replacement" in second.err and intent.tag in second.err
        assert _taken(world, scm_api, "replace") == 1
        assert _taken(world, scm_api, "enroll") == 2
    elif lost_for_good:
        assert "cannot list orders" in second.err and intent.tag in second.err
        assert _taken(world, scm_api, command) == 2  # the documented extra order
    else:
        assert "recovered" in second.err
        assert _taken(world, scm_api, command) == 1  # no second order
    assert not [k for k in _key_files(state_dir) if k != state.current.key_ref and k not in _old_keys(before)]
    third = cli("--scm-config", scm_yaml, "--json", "run", profile)
    assert third.code == 0 and '"action": "nothing"' in third.out


def _key_files(state_dir: Path) -> list[str]:
    return [str(p) for p in (state_dir / "keys" / "lb-profile").glob("*.key.pem")]


def _old_keys(before: Any) -> set[str]:
    return {before.key_ref} if before is not None else set()


def test_a_replace_of_changed_names_lost_on_the_enrollment_api_converges(
    world: Sandbox, cli: Cli, state_dir: Path
) -> None:
    """The issue's case: names changed, `run` replaces, the answer is lost; every later run used to
    fail with -130 "SSL state is not 'ISSUED': Replaced"."""
    scm_yaml = world.scm_enrollment_yaml
    assert cli("--scm-config", scm_yaml, "run", world.profile_path("lb-profile")).code == 0
    data = yaml.safe_load(world.profile_path("lb-profile").read_text())
    data["certificate"]["subject_alt_names"].append("m.shop.sandbox.test")
    profile = world.write_profile("lb-profile", data)
    world.enrollment.add_fault(
        ORDER_ROUTES[("enrollment", "replace")], method="POST", status=0, hold_answer=1.6
    )
    slow = _slow_scm_yaml(world, "enrollment")
    assert cli("--scm-config", slow, "run", profile).code == 1
    _wait_for(lambda: any(o.status == "Replaced" for o in world.enrollment.orders.values()))

    for _ in range(2):
        res = cli("--scm-config", scm_yaml, "--json", "run", profile)
        assert res.code == 0, res.output
    assert '"action": "nothing"' in res.out
    state = StateStore(state_dir).load("lb-profile")
    assert state.current is not None and "m.shop.sandbox.test" in state.current.sans
    assert world.netscaler.serving_certificate("vs_shop_https") == state.current.serial
    assert not [r for r in world.enrollment.requests if r.status == 400 and "/replace" in r.path]


def test_a_refused_connection_leaves_no_intent_and_no_key(
    world: Sandbox, cli: Cli, state_dir: Path, scm_api: str
) -> None:
    data = yaml.safe_load(_yaml_for(world, scm_api).read_text())
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    data["url"] = f"https://127.0.0.1:{port}"
    data.pop("token_url", None)
    refused = world.directory / "scm-refused.yaml"
    refused.write_text(yaml.safe_dump(data))
    res = cli("--scm-config", refused, "run", world.profile_path("lb-profile"))
    assert res.code == 1, res.output
    state = StateStore(state_dir).load("lb-profile")
    assert state.ordering is None and state.pending is None
    assert _key_files(state_dir) == []
    assert "an order may exist" not in res.output
    assert world.netscaler.count_writes() == 0
    ok = cli("--scm-config", _yaml_for(world, scm_api), "run", world.profile_path("lb-profile"))
    assert ok.code == 0 and "interrupted" not in ok.err


def test_admin_api_whose_order_list_failed_says_so_not_that_it_cannot_list(
    world: Sandbox, cli: Cli, state_dir: Path
) -> None:
    profile = world.profile_path("lb-profile")
    world.scm.add_fault(
        r"^/api/ssl/v1$", method="GET", status=403, json_body={"code": -14, "description": "no privilege"}
    )
    world.scm.lose_answer(ORDER_ROUTES[("admin", "enroll")], status=500)
    assert cli("--scm-config", world.scm_yaml, "run", profile).code == 1
    second = cli("--scm-config", world.scm_yaml, "run", profile)
    assert second.code == 0, second.output
    assert "cannot list orders" not in second.err
    assert "SCM holds for shop.sandbox.test cannot be listed, so that order cannot be told" in second.err
    assert "citrixagent:lb-profile:" in second.err
