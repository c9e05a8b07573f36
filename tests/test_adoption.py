"""Issue 11, adoption: discover -> --write-profiles -> run adopts (zero NITRO writes, zero SCM orders)
-> the clock moved into the renewal window -> the renewal updates the same certkey in place, bindings
and SNI kept, no moment without a certificate. Over HTTPS against the brownfield sandbox."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from conftest import CliResult

from citrix_connector.config import load_profile, load_scm_config
from citrix_connector.lifecycle import Agent
from citrix_connector.sandbox.world import ADC_PASSWORD, ADC_PASSWORD_ENV, Sandbox
from citrix_connector.state import StateStore

Cli = Callable[..., CliResult]
ADOPTABLE = ("shop_2025", "portal", "foreign_www", "www_web", "weak_1024")


@pytest.fixture
def bf(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Sandbox]:
    monkeypatch.setenv(ADC_PASSWORD_ENV, ADC_PASSWORD)
    with Sandbox(tmp_path / "sb", brownfield=True, issue_after_polls=0) as world:
        yield world


def bindings(world: Sandbox, certkey: str, partition: str = "default") -> set[tuple[str, bool]]:
    state = world.netscaler.state(partition)
    return {
        (b["vserver"], b["snicert"]) for b in state["bindings"] if b["certkey"] == certkey and not b["ca"]
    }


def serial_of(world: Sandbox, certkey: str, partition: str = "default") -> str:
    return str(world.netscaler.state(partition)["certkeys"][certkey]["serial"])


def write_profiles(world: Sandbox, cli: Cli, out: Path) -> None:
    result = cli(
        "--scm-config", world.scm_yaml, "discover", world.appliances_yaml, "--write-profiles", out,
        "--org-id", "1234", "--cert-type", "567", "--term", "365",
    )  # fmt: skip
    assert result.code == 5, result.output


def test_discover_write_run_adopts_then_renews_in_place(bf: Sandbox, cli: Cli, tmp_path: Path) -> None:
    world = bf
    assert world.seed is not None
    out = tmp_path / "profiles"
    write_profiles(world, cli, out)
    assert cli("--scm-config", world.scm_yaml, "validate", out).code == 0
    ns, scm = world.netscaler, world.scm
    ns.clear_requests()
    orders = scm.order_count()
    before = {ck: serial_of(world, ck) for ck in ("shop_2025", "portal", "foreign_www", "weak_1024")}

    # status says what run will do, and changes nothing
    looked = cli("--scm-config", world.scm_yaml, "status", out / "shop_2025.yaml")
    assert looked.code == 5 and "adopting certkey shop_2025" in looked.out
    assert "shop_2025.yaml` adopts it" in looked.out

    # the first run adopts: records, changes nothing
    paths = [out / f"{n}.yaml" for n in ADOPTABLE]
    first = cli("--json", "--scm-config", world.scm_yaml, "run", *paths)
    assert first.code == 0, first.output
    import json

    rows = {r["profile"]: r for r in json.loads(first.out)}
    assert {n: (r["action"], r["result"]) for n, r in rows.items()} == {
        n: ("adopt", "adopted") for n in ADOPTABLE
    }
    shop_serial = world.seed.certkeys["shop_2025"][1]
    assert (
        f"adopted certkey shop_2025, serial {shop_serial} (SCM order {world.seed.certkeys['shop_2025'][2]})"
        in (rows["shop_2025"]["message"])
    )
    assert "no SCM order found" in rows["foreign_www"]["message"]
    assert "the next run replaces it" in rows["weak_1024"]["message"]  # the profile asks for RSA 2048
    assert ns.count_writes() == 0 and scm.order_count() == orders
    assert all(r.method == "GET" for r in scm.requests)
    store = StateStore(tmp_path / "state")
    journal = store.load("shop_2025")
    assert journal.current is not None and journal.current.order_id == str(
        world.seed.certkeys["shop_2025"][2]
    )
    assert journal.current.serial == shop_serial and journal.deployed is not None and journal.deployed.saved
    assert store.load("foreign_www").current.order_id == ""  # type: ignore[union-attr]
    assert store.load("www_web").deployed.partition == "web"  # type: ignore[union-attr]
    for text in (first.out, first.err, *(p.read_text() for p in store.root.glob("*.json"))):
        assert "PRIVATE KEY" not in text and ADC_PASSWORD not in text

    # the next run: nothing to do
    second = cli("--scm-config", world.scm_yaml, "run", out / "shop_2025.yaml", out / "portal.yaml")
    assert second.code == 0 and "certificate valid and installed" in second.out
    assert ns.count_writes() == 0 and scm.order_count() == orders

    # the clock moves into the renewal window: renew (SCM match) or enroll (other CA), in place
    later = datetime.now(timezone.utc) + timedelta(days=310)
    agent = Agent(load_scm_config(world.scm_yaml), store, clock=lambda: later, sleep=lambda _s: None)
    profiles = [load_profile(out / f"{n}.yaml") for n in ("shop_2025", "portal", "foreign_www")]
    outcomes = {o.profile: o for o in agent.run(profiles)}
    assert {n: (o.action, o.result) for n, o in outcomes.items()} == {
        "shop_2025": ("renew", "ok"), "portal": ("renew", "ok"), "foreign_www": ("enroll", "ok"),
    }  # fmt: skip
    renewed = scm.orders[int(outcomes["shop_2025"].order_id or 0)]
    assert renewed.renewal_of == world.seed.certkeys["shop_2025"][2]  # a renewal of the by-hand order
    for ck in ("shop_2025", "portal", "foreign_www"):
        assert serial_of(world, ck) != before[ck]  # the same certkey, a new certificate
    assert bindings(world, "shop_2025") == {("bf_shop", False)}
    assert bindings(world, "portal") == {("bf_portal", True), ("bf_gateway", False)}  # SNI kept
    assert bindings(world, "foreign_www") == {("bf_api", True)}
    assert ns.serving_certificate("bf_shop") == serial_of(world, "shop_2025")
    assert ns.gaps() == []  # never a moment without a certificate
    # no new leaf certkey: updated in place (the SCM intermediate was already installed)
    leaves = {n for n, ck in ns.state()["certkeys"].items() if ck.get("key")}
    assert leaves == {
        "shop_2025", "portal", "login_aaa", "old_shop", "api_revoked", "unused_test", "foreign_www",
        "weak_1024", "sha1_legacy",
    }  # fmt: skip


def test_first_run_in_the_window_or_revoked_says_it_adopts(bf: Sandbox, cli: Cli, tmp_path: Path) -> None:
    world = bf
    assert world.seed is not None
    out = tmp_path / "profiles"
    write_profiles(world, cli, out)
    dry = cli("--scm-config", world.scm_yaml, "run", "--dry-run", out / "login_aaa.yaml")
    assert dry.code == 0, dry.output
    assert f"adopting certkey login_aaa, serial {world.seed.certkeys['login_aaa'][1]}" in dry.out
    serial = world.seed.certkeys["login_aaa"][1]
    update = f"update certkey 'login_aaa' in place: serial {serial} -> the certificate SCM will issue"
    assert update in dry.out
    assert world.netscaler.count_writes() == 0
    assert not StateStore(tmp_path / "state").load("login_aaa").history  # a dry run journals nothing

    result = cli(
        "--json", "--scm-config", world.scm_yaml, "run", out / "login_aaa.yaml", out / "api_revoked.yaml"
    )
    assert result.code == 0, result.output
    import json

    rows = {r["profile"]: r for r in json.loads(result.out)}
    assert (rows["login_aaa"]["action"], rows["login_aaa"]["result"]) == ("renew", "ok")
    assert rows["login_aaa"]["message"].startswith("renewed and installed: order ")
    assert "(because adopting certkey login_aaa, serial " in rows["login_aaa"]["message"]
    assert "expires in" in rows["login_aaa"]["message"]
    assert (rows["api_revoked"]["action"], rows["api_revoked"]["result"]) == ("enroll", "ok")
    assert "revoked at SCM" in rows["api_revoked"]["message"]
    assert serial_of(world, "login_aaa") != world.seed.certkeys["login_aaa"][1]
    assert bindings(world, "login_aaa") == {("bf_login", False)}
    assert bindings(world, "api_revoked") == {("bf_api", True)}
    assert world.netscaler.gaps() == []


def test_enroll_on_an_unrecorded_certkey_says_it_adopts(bf: Sandbox, cli: Cli, tmp_path: Path) -> None:
    out = tmp_path / "profiles"
    write_profiles(bf, cli, out)
    result = cli("--scm-config", bf.scm_yaml, "enroll", "--dry-run", out / "shop_2025.yaml")
    assert result.code == 0, result.output
    assert "adopting certkey shop_2025, serial" in result.out
    assert bf.netscaler.count_writes() == 0
