"""A new order whose answer was lost is found again by the tag stamped in its comments (issue 12:
no SCM list before each order, so a deployment costs one round trip less; issue 10's guarantee
holds: no second order where the admin API can tell)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from conftest import CliResult

from citrix_connector import crypto
from citrix_connector.config import load_profile, load_scm_config
from citrix_connector.sandbox.world import SCM_CERT_TYPE, SCM_ORG_ID, Sandbox
from citrix_connector.scm import AdminScmClient, EnrollRequest
from citrix_connector.state import StateStore

Cli = Callable[..., CliResult]
ENROLL = r"^/api/ssl/v1/enroll$"


def _lists(world: Sandbox) -> list[str]:
    return [r.method for r in world.scm.requests if r.path == "/api/ssl/v1"]


def _order_by_hand(world: Sandbox, common_name: str) -> str:
    """Another order for the same name, placed by a person in the meantime (no tag)."""
    client = AdminScmClient(load_scm_config(world.scm_yaml), sleep=lambda _s: None)
    key = crypto.generate_private_key(crypto.KeySpec("ECDSA", curve="P-256"))
    csr = crypto.csr_to_pem(crypto.build_csr(key, common_name, [common_name], None))
    try:
        request = EnrollRequest(
            csr_pem=csr,
            common_name=common_name,
            sans=(common_name,),
            org_id=SCM_ORG_ID,
            cert_type=SCM_CERT_TYPE,
        )
        return client.enroll(request)
    finally:
        client.close()


def test_a_lost_enroll_is_found_by_its_tag_not_by_another_order_for_the_name(
    world: Sandbox, cli: Cli, state_dir: Path
) -> None:
    path = world.profile_path("lb-profile")
    name = load_profile(path).certificate.common_name
    world.scm.lose_answer(ENROLL, status=500)  # SCM takes the order, the agent gets a 500

    first = cli("--scm-config", world.scm_yaml, "run", path)
    assert first.code == 1 and "the next run looks for it" in first.output, first.output
    assert _lists(world) == []  # nothing listed before the order
    intent = StateStore(state_dir).load("lb-profile").ordering
    assert intent is not None and intent.known_orders is None and intent.tag
    (ours,) = world.scm.orders
    hand = _order_by_hand(world, name)  # newer than ours, same common name
    assert int(hand) > ours

    second = cli("--scm-config", world.scm_yaml, "run", path)
    assert second.code == 0, second.output
    assert f"recovered enroll order {ours}" in second.err
    state = StateStore(state_dir).load("lb-profile")
    assert state.current is not None and state.current.order_id == str(ours)
    assert world.scm.order_count() == 2  # ours and the person's: no second order of ours
    assert intent.tag in world.scm.orders[ours].comments
    assert world.netscaler.serving_certificate("vs_shop_https") == state.current.serial


def test_an_enroll_scm_never_took_is_ordered_again_after_one_look(
    world: Sandbox, cli: Cli, state_dir: Path
) -> None:
    path = world.profile_path("lb-profile")
    world.scm.add_fault(ENROLL, method="POST", status=500, times=1)  # answered 500, nothing taken

    assert cli("--scm-config", world.scm_yaml, "run", path).code == 1
    assert world.scm.order_count() == 0
    assert StateStore(state_dir).load("lb-profile").ordering is not None

    second = cli("--scm-config", world.scm_yaml, "run", path)
    assert second.code == 0, second.output
    assert "recovered" not in second.err
    assert _lists(world) == ["GET"]  # one look for the tagged order, then ordered again
    assert world.scm.order_count() == 1
    state = StateStore(state_dir).load("lb-profile")
    assert state.ordering is None and state.current is not None
    assert [e["event"] for e in state.history if e["event"].startswith("order-")] == ["order-not-received"]


def test_a_list_that_fails_while_looking_keeps_the_intent_and_orders_nothing(
    world: Sandbox, cli: Cli, state_dir: Path
) -> None:
    """SCM busy or failing while recovery lists: the order may exist, so nothing is ordered again;
    the next run looks again and finds it (only a 403, a list this account may never make, gives up)."""
    path = world.profile_path("lb-profile")
    world.scm.lose_answer(ENROLL, status=500)
    assert cli("--scm-config", world.scm_yaml, "run", path).code == 1
    assert world.scm.order_count() == 1
    world.scm.add_fault(r"^/api/ssl/v1$", method="GET", status=429, times=None)  # busy, retries used up

    second = cli("--scm-config", world.scm_yaml, "run", path)
    assert second.code == 1, second.output
    assert world.scm.order_count() == 1  # no second order
    assert StateStore(state_dir).load("lb-profile").ordering is not None  # still looked for

    world.scm.clear_faults()
    third = cli("--scm-config", world.scm_yaml, "run", path)
    assert third.code == 0, third.output
    assert "recovered enroll order" in third.err
    assert world.scm.order_count() == 1


def test_an_order_this_account_may_not_read_is_skipped(world: Sandbox, cli: Cli, state_dir: Path) -> None:
    path = world.profile_path("lb-profile")
    name = load_profile(path).certificate.common_name
    world.scm.lose_answer(ENROLL, status=500)
    assert cli("--scm-config", world.scm_yaml, "run", path).code == 1
    (ours,) = world.scm.orders
    other = _order_by_hand(world, name)
    world.scm.add_fault(rf"^/api/ssl/v1/{other}$", method="GET", status=404, times=None)
    second = cli("--scm-config", world.scm_yaml, "run", path)
    assert second.code == 0, second.output
    assert f"recovered enroll order {ours}" in second.err
    assert world.scm.order_count() == 2
