"""Issue 11: discovery of a brownfield fleet, over HTTPS against the brownfield sandbox.

The brownfield world (``sandbox/brownfield.py``) seeds the first appliance with certkeys the agent never
installed: SCM orders placed "by hand" and a foreign CA's certificates, covering every finding, in the
default partition and in ``web``. Discovery is read-only: every test that reads asserts zero NITRO
writes and zero SCM orders from the simulators' request logs.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import yaml
from conftest import CliResult

from citrix_connector.config import load_profile, load_scm_config
from citrix_connector.discovery.findings import all_findings, key_size
from citrix_connector.discovery.model import CertkeyEntry, Inventory
from citrix_connector.discovery.runner import discover
from citrix_connector.discovery.targets import load_targets
from citrix_connector.sandbox.netscaler import NetScalerSimulator
from citrix_connector.sandbox.world import (
    ADC_PASSWORD,
    ADC_PASSWORD_ENV,
    ADC_USER,
    ENROLL_CLIENT_SECRET,
    SCM_PASSWORD,
    Sandbox,
)

Cli = Callable[..., CliResult]
NOW = datetime.now(timezone.utc)

# certkey -> the finding codes the brownfield seed must produce for it (nothing else)
EXPECTED_FINDINGS: dict[str, set[str]] = {
    "api_revoked": {"revoked"},
    "old_shop": {"expired"},
    "weak_1024": {"key-size"},
    "foreign_www": {"no-intermediate"},
    "login_aaa": {"expiring"},
    "sha1_legacy": {"sha1", "no-intermediate"},
    "shop_2025": {"duplicate"},
    "shop_copy": {"duplicate"},
    "unused_test": {"unused"},
}


@pytest.fixture(scope="module")
def bf(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    """One brownfield sandbox for the read-only tests of this module (discovery writes nothing)."""
    with Sandbox(tmp_path_factory.mktemp("brownfield"), brownfield=True) as world:
        yield world


@pytest.fixture(autouse=True)
def password_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ADC_PASSWORD_ENV, ADC_PASSWORD)


@pytest.fixture
def clean_logs(bf: Sandbox) -> Sandbox:
    for server in bf.servers:
        server.clear_requests()
    return bf


def run_discovery(world: Sandbox, *sources: Path, api: str = "admin", **kwargs: Any) -> Inventory:
    targets, _ = load_targets(list(sources or [world.appliances_yaml]))
    scm = load_scm_config(world.scm_enrollment_yaml if api == "enrollment" else world.scm_yaml)
    kwargs.setdefault("now", NOW)
    return discover(targets, scm=scm, sleep=lambda _s: None, **kwargs)


def by_certkey(inv: Inventory, partition: str = "default") -> dict[str, CertkeyEntry]:
    return {e.certkey: e for e in inv.certkeys if e.partition == partition}


def assert_read_only(world: Sandbox, orders_before: int) -> None:
    for ns in world.netscalers:
        assert ns.count_writes() == 0
    assert world.scm.order_count() == orders_before
    assert all(r.method in ("GET", "HEAD") for r in world.scm.requests)
    assert world.enrollment.requests == [] or all(r.method == "GET" for r in world.enrollment.requests)


def write_appliances(path: Path, entries: list[dict[str, Any]]) -> Path:
    path.write_text(yaml.safe_dump({"appliances": entries}, sort_keys=False), encoding="utf-8")
    return path


def entry_for(
    world: Sandbox, ns: NetScalerSimulator | list[NetScalerSimulator], **extra: Any
) -> dict[str, Any]:
    urls = [n.url for n in ns] if isinstance(ns, list) else ns.url
    return {
        "url": urls,
        "username": ADC_USER,
        "password": "${" + ADC_PASSWORD_ENV + "}",
        "verify_tls": str(world.ca_bundle),
        **extra,
    }


# ------------------------------------------------------------------------------------ inventory


def test_inventory_has_every_certkey_with_its_facts(clean_logs: Sandbox) -> None:
    world = clean_logs
    assert world.seed is not None
    orders = world.scm.order_count()
    inv = run_discovery(world)
    assert [t.ok for t in inv.targets] == [True]
    assert inv.targets[0].partitions == ("default", "web")
    default, web = by_certkey(inv), by_certkey(inv, "web")
    assert set(default) == {
        "shop_2025", "portal", "login_aaa", "old_shop", "api_revoked", "unused_test", "foreign_www",
        "weak_1024", "sha1_legacy", "sandbox_root", "sandbox_issuing", "foreign_root", "foreign_ica",
    }  # fmt: skip
    assert set(web) == {"www_web", "shop_copy", "sandbox_root", "sandbox_issuing"}

    shop = default["shop_2025"]
    partition, serial, ssl_id = world.seed.certkeys["shop_2025"]
    assert (shop.serial, shop.common_name) == (serial, "shop.brownfield.test")
    assert shop.sans == ("shop.brownfield.test", "www.shop.brownfield.test")
    assert "Citrixagent Sandbox ECC Issuing CA 1" in shop.issuer
    assert (shop.key_type, shop.key_size, shop.key_on_box) == ("RSA", 2048, True)
    assert shop.not_after is not None and shop.days_left == (shop.not_after - NOW).days
    assert 298 <= shop.days_left <= 300
    assert shop.link == "sandbox_issuing" and shop.chain == ("sandbox_issuing", "sandbox_root")
    assert shop.chain_complete and shop.chain_problem is None
    assert [(b.vserver, b.kind, b.sni, b.ca) for b in shop.bindings] == [("bf_shop", "lb", False, False)]
    assert shop.scm is not None and shop.source == "scm"
    assert (shop.scm.ssl_id, shop.scm.org_id, shop.scm.cert_profile_id, shop.scm.term, shop.scm.status) == (
        str(ssl_id), 1234, 567, 365, "Issued",
    )  # fmt: skip
    assert shop.scm.cert_profile == "Sandbox OV SSL"
    assert shop.managed_by is None

    portal = default["portal"]  # one certkey on a cs vserver (SNI) and a vpn vserver (default)
    assert (portal.key_type, portal.curve) == ("ECDSA", "P-256")
    assert {(b.vserver, b.kind, b.sni) for b in portal.bindings} == {
        ("bf_portal", "cs", True),
        ("bf_gateway", "vpn", False),
    }
    assert [(b.vserver, b.kind) for b in default["login_aaa"].bindings] == [("bf_login", "authentication")]
    # a CA binding (client authentication) is kept apart: it serves nothing
    root = default["foreign_root"]
    assert root.is_ca and root.self_signed and root.served_by == ()
    assert [(b.vserver, b.ca) for b in root.bindings] == [("bf_gateway", True)]
    assert default["foreign_www"].source == "other" and default["foreign_www"].scm is None
    assert default["foreign_www"].chain_problem == "not linked to its issuer"
    assert web["www_web"].bindings[0].vserver == "web_shop"
    # SCM's certificate that no appliance holds
    assert [s.ssl_id for s in inv.scm_only] == [str(world.seed.orphan_ssl_id)]
    assert_read_only(world, orders)


def test_every_finding_on_the_brownfield_fleet(clean_logs: Sandbox) -> None:
    world = clean_logs
    orders = world.scm.order_count()
    inv = run_discovery(world)
    got: dict[str, set[str]] = {}
    for f in inv.findings:
        got.setdefault(f.where.rsplit(":", 1)[1], set()).add(f.code)
        assert f.advice and f.message and f.severity in ("critical", "warning", "info")
    assert got == EXPECTED_FINDINGS
    severity = {(f.where.rsplit(":", 1)[1], f.code): f.severity for f in inv.findings}
    assert severity[("api_revoked", "revoked")] == "critical"
    assert severity[("old_shop", "expired")] == "critical"
    assert severity[("weak_1024", "key-size")] == "critical"
    assert severity[("login_aaa", "expiring")] == "warning"
    assert severity[("unused_test", "unused")] == "info"
    no_ica = next(f for f in inv.findings if f.code == "no-intermediate" and "foreign_www" in f.where)
    assert "link ssl certkey foreign_www foreign_ica" in no_ica.advice  # the issuer is installed
    assert inv.needs_attention and not inv.failed
    assert_read_only(world, orders)


def test_expiring_threshold_is_configurable(clean_logs: Sandbox) -> None:
    assert not any(f.code == "expiring" for f in run_discovery(clean_logs, expiring_days=5).findings)
    wide = {
        f.where.rsplit(":", 1)[1]
        for f in run_discovery(clean_logs, expiring_days=310).findings
        if f.code == "expiring"
    }
    assert {"login_aaa", "shop_2025", "api_revoked"} <= wide and "old_shop" not in wide


def test_rsa_above_4096_and_at_the_bounds() -> None:
    """The appliance itself refuses RSA > 4096 on add, so this one is checked as a pure function."""

    def entry(size: int) -> CertkeyEntry:
        return CertkeyEntry(
            "adc", "adc", "default", f"rsa{size}", False, "x.test", ("x.test",), " CN=x.test", " CN=CA",
            "01", NOW + timedelta(days=200), 200, "RSA", size, "sha256WithRSAEncryption", True, False,
            None, (), False, "not linked to its issuer", (),
        )  # fmt: skip

    big = key_size(entry(8192))
    assert big is not None and big.severity == "warning" and "Citrix clients refuse" in big.advice
    assert key_size(entry(4096)) is None and key_size(entry(2048)) is None
    small = key_size(entry(1024))
    assert small is not None and small.severity == "warning"  # bound nowhere: not critical
    codes = {f.code for f in all_findings([entry(8192)])}
    assert codes == {"key-size", "unused"}


def test_bulk_reads_a_handful_of_requests_per_partition(clean_logs: Sandbox) -> None:
    world = clean_logs
    inv = run_discovery(world)
    ns = world.netscaler
    paths = [(r.method, r.path.rsplit("/", 1)[-1]) for r in ns.requests]
    per_partition = [
        ("GET", "sslcertkey"), ("GET", "sslvserver_sslcertkey_binding"), ("GET", "lbvserver"),
        ("GET", "csvserver"), ("GET", "vpnvserver"), ("GET", "authenticationvserver"), ("GET", "sslvserver"),
    ]  # fmt: skip
    assert paths == [
        ("POST", "login"), ("GET", "hanode"), ("GET", "nspartition"), *per_partition,
        ("POST", "nspartition"), *per_partition, ("POST", "logout"),
    ]  # fmt: skip
    assert inv.targets[0].requests == len(paths) == 19  # whatever the number of certkeys
    assert ns.count_writes() == 0
    # SCM: two paged lists (all, issued) and one details call per matched appliance certificate
    matched = {e.scm.ssl_id for e in inv.certkeys if e.scm}
    assert inv.scm_requests == len(world.scm.requests) == 2 + len({e.serial for e in inv.certkeys if e.scm})
    assert len(matched) == 7


def test_named_partition_only(clean_logs: Sandbox, tmp_path: Path) -> None:
    path = write_appliances(
        tmp_path / "apps.yaml", [entry_for(clean_logs, clean_logs.netscaler, partition="web")]
    )
    inv = run_discovery(clean_logs, path)
    assert inv.targets[0].partitions == ("web",)
    assert {e.partition for e in inv.certkeys} == {"web"}


def test_enrollment_api_cannot_match_but_the_appliance_side_works(clean_logs: Sandbox) -> None:
    world = clean_logs
    orders = world.scm.order_count()
    inv = run_discovery(world, api="enrollment")
    assert not inv.scm_checked and "needs the admin API" in inv.scm_note
    assert not inv.failed
    assert len(inv.certkeys) == 17 and all(e.scm is None and e.source == "unknown" for e in inv.certkeys)
    codes = {f.code for f in inv.findings}
    assert "revoked" not in codes and {"expired", "expiring", "key-size", "sha1"} <= codes
    assert world.enrollment.requests == []  # nothing asked of an API that cannot list
    assert_read_only(world, orders)


# ------------------------------------------------------------------------------------ failures


def test_a_failed_target_among_good_ones(clean_logs: Sandbox, tmp_path: Path) -> None:
    world = clean_logs
    spare = NetScalerSimulator(*world_tls(world), username=ADC_USER, password=ADC_PASSWORD)
    spare.set_ha("Secondary", "127.0.0.1")
    with spare:
        entries = [
            entry_for(world, world.netscaler),
            {**entry_for(world, world.netscaler, partition="nosuch")},
            {**entry_for(world, spare)},
            {**entry_for(world, world.netscaler), "url": "https://127.0.0.1:1"},
        ]
        path = write_appliances(tmp_path / "apps.yaml", entries)
        # a wrong password: the same appliance under another user name
        wrong = write_appliances(
            tmp_path / "wrong.yaml", [{**entry_for(world, world.netscaler), "username": "intruder"}]
        )
        inv = run_discovery(world, path, wrong)
    ok = [t for t in inv.targets if t.ok]
    failed = {t.error for t in inv.targets if not t.ok}
    assert len(ok) == 1 and ok[0].certkeys == 17
    assert inv.failed and len(failed) == 4
    assert any("no admin partition 'nosuch'" in e for e in failed)
    assert any("HA secondary" in e for e in failed)
    assert any("127.0.0.1:1" in e for e in failed)
    assert any("refused the login" in e and "intruder" in e for e in failed)
    assert not any(ADC_PASSWORD in e for e in failed)
    assert world.netscaler.count_writes() == 0 and spare.count_writes() == 0


def world_tls(world: Sandbox) -> tuple[bytes, bytes]:
    return world.tls_ca.issue_tls_server_cert(("localhost",), ("127.0.0.1",))


def test_ha_pair_is_one_target_read_from_the_primary(clean_logs: Sandbox, tmp_path: Path) -> None:
    world = clean_logs
    secondary = NetScalerSimulator(*world_tls(world), username=ADC_USER, password=ADC_PASSWORD)
    secondary.set_ha("Secondary", "127.0.0.1")
    world.netscaler.set_ha("Primary", "127.0.0.1")
    try:
        with secondary:
            path = write_appliances(tmp_path / "pair.yaml", [entry_for(world, [secondary, world.netscaler])])
            inv = run_discovery(world, path)
        assert [t.ok for t in inv.targets] == [True]
        assert (
            inv.targets[0].host == urlsplit(world.netscaler.url).netloc
            and inv.targets[0].ha_state == "Primary"
        )
        assert len(inv.certkeys) == 17
        assert [r.path.rsplit("/", 1)[-1] for r in secondary.requests] == ["login", "hanode", "logout"]
    finally:
        world.netscaler.set_ha("standalone")


# ------------------------------------------------------------------------------------ CLI


def test_cli_table_json_and_exit_codes(clean_logs: Sandbox, cli: Cli) -> None:
    world = clean_logs
    table = cli("--scm-config", world.scm_yaml, "discover", world.appliances_yaml)
    assert table.code == 5, table.output
    assert "shop_2025" in table.out and "CRITICAL revoked" in table.out and "advice:" in table.out
    assert "in SCM, on no appliance" in table.out
    result = cli("--json", "--scm-config", world.scm_yaml, "discover", world.appliances_yaml)
    assert result.code == 5
    data = json.loads(result.out)
    assert {c["certkey"] for c in data["certkeys"]} >= set(EXPECTED_FINDINGS)
    assert data["scm"]["checked"] is True and len(data["scm"]["not_on_any_appliance"]) == 1
    shop = next(c for c in data["certkeys"] if c["certkey"] == "shop_2025")
    assert shop["scm"]["ssl_id"] and shop["bindings"] == [
        {"vserver": "bf_shop", "type": "lb", "sni": False, "ca": False}
    ]
    for text in (table.output, result.output):
        for secret in (ADC_PASSWORD, SCM_PASSWORD, ENROLL_CLIENT_SECRET, "PRIVATE KEY"):
            assert secret not in text
    # nothing needs attention: a partition with only healthy certificates
    quiet = cli("--scm-config", world.scm_yaml, "discover", world.appliances_yaml, "--partition", "web")
    assert quiet.code == 0, quiet.output  # the duplicate is info only; www_web is valid and linked
    # a failed target wins over findings: exit 1
    bad = write_appliances(
        world.directory / "bad-apps.yaml", [{**entry_for(world, world.netscaler), "username": "x"}]
    )
    failed = cli("--scm-config", world.scm_yaml, "discover", world.appliances_yaml, bad)
    assert failed.code == 1 and "FAILED" in failed.out
    assert world.netscaler.count_writes() == 0


def test_cli_bad_appliances_file_is_a_config_error(clean_logs: Sandbox, cli: Cli, tmp_path: Path) -> None:
    path = write_appliances(tmp_path / "apps.yaml", [{"url": clean_logs.netscaler.url, "usernme": "x"}])
    result = cli("--scm-config", clean_logs.scm_yaml, "discover", path)
    assert result.code == 2
    assert f"{path}:3: appliances[0].usernme: unknown key; did you mean 'username'?" in result.err
    assert f"{path}:2: appliances[0].password: required field is missing" in result.err
    assert clean_logs.netscaler.requests == []  # validated before any network call


# ------------------------------------------------------------------------------------ profiles


def test_write_profiles_validate_as_written_and_never_overwrite(
    clean_logs: Sandbox, cli: Cli, tmp_path: Path
) -> None:
    world = clean_logs
    out = tmp_path / "profiles"
    defaults = ("--org-id", "1234", "--cert-type", "567", "--term", "365")
    first = cli(
        "--scm-config", world.scm_yaml, "discover", world.appliances_yaml, "--write-profiles", out, *defaults
    )
    assert first.code == 5, first.output
    files = sorted(p.name for p in out.glob("*.yaml"))
    # one per certkey bound to an SSL vserver: not the unused one, not the CAs
    assert files == sorted(
        f"{n}.yaml"
        for n in ("api_revoked", "foreign_www", "login_aaa", "old_shop", "portal", "sha1_legacy", "shop_2025",
                  "weak_1024", "www_web")
    )  # fmt: skip
    # shop_copy holds the same certificate (SCM order) as shop_2025: one profile, or one order would be
    # renewed twice
    assert "web:shop_copy" in first.out and "the same certificate (SCM sslId" in first.out
    check = cli("--scm-config", world.scm_yaml, "validate", out)
    assert check.code == 0, check.output
    for path in out.glob("*.yaml"):
        text = path.read_text(encoding="utf-8")
        assert ADC_PASSWORD not in text and "PRIVATE KEY" not in text and SCM_PASSWORD not in text
        assert "password: ${SANDBOX_ADC_PASSWORD}" in text
        assert text.startswith("# Written by citrixagent discover on ")
        assert f"from NetScaler {urlsplit(world.netscaler.url).netloc}" in text
    portal = load_profile(out / "portal.yaml")
    assert portal.certificate.certkey_name == "portal"
    assert [(v.name, v.type, v.sni) for v in portal.vservers] == [
        ("bf_portal", "cs", True),
        ("bf_gateway", "vpn", False),
    ]
    assert portal.certificate.key.describe() == "ECDSA P-256"
    assert (portal.certificate.common_name, portal.certificate.subject_alt_names[-1]) == (
        "portal.brownfield.test", "www.portal.brownfield.test",
    )  # fmt: skip
    assert (portal.sectigo.org_id, portal.sectigo.cert_type, portal.sectigo.term) == (1234, 567, 365)
    web = load_profile(out / "www_web.yaml")
    assert web.appliance.partition == "web"
    weak = (out / "weak_1024.yaml").read_text(encoding="utf-8")
    assert "# TODO: the installed key is RSA 1024: the profile asks for RSA 2048" in weak
    assert "not issued by SCM" in weak

    # never overwritten without --force
    (out / "portal.yaml").write_text("# mine\n" + (out / "portal.yaml").read_text(), encoding="utf-8")
    again = cli("--scm-config", world.scm_yaml, "discover", world.appliances_yaml, "--write-profiles", out)
    assert f"kept  {out / 'portal.yaml'}" in again.out and "--force overwrites" in again.out
    assert (out / "portal.yaml").read_text().startswith("# mine")
    forced = cli(
        "--scm-config", world.scm_yaml, "discover", world.appliances_yaml, "--write-profiles", out, "--force"
    )
    assert f"wrote {out / 'portal.yaml'}" in forced.out
    assert not (out / "portal.yaml").read_text().startswith("# mine")
    assert world.netscaler.count_writes() == 0


def test_other_ca_profiles_are_marked_without_defaults(clean_logs: Sandbox, cli: Cli, tmp_path: Path) -> None:
    out = tmp_path / "profiles"
    result = cli(
        "--json",
        "--scm-config",
        clean_logs.scm_yaml,
        "discover",
        clean_logs.appliances_yaml,
        "--write-profiles",
        out,
    )
    data = json.loads(result.out)
    notes = {Path(p["path"]).stem: p["notes"] for p in data["profiles"]}
    assert any("fill sectigo.org_id/cert_type/term" in n for n in notes["foreign_www"])
    assert notes["shop_2025"] == []
    text = (out / "foreign_www.yaml").read_text()
    assert "# TODO: not issued by SCM" in text and "sectigo:" not in text
    # valid with the Enrollment API (the REST account decides); the admin API needs them filled in
    assert cli("--scm-config", clean_logs.scm_enrollment_yaml, "validate", out / "foreign_www.yaml").code == 0
    # the sandbox's scm.yaml gives org_id/cert_type/term for every profile; one without them refuses it
    assert cli("--scm-config", clean_logs.scm_yaml, "validate", out / "foreign_www.yaml").code == 0
    bare = yaml.safe_load(clean_logs.scm_yaml.read_text())
    for key in ("org_id", "cert_type", "term"):
        del bare[key]
    bare_scm = tmp_path / "scm-bare.yaml"
    bare_scm.write_text(yaml.safe_dump(bare))
    refused = cli("--scm-config", bare_scm, "validate", out / "foreign_www.yaml")
    assert refused.code == 2 and "sectigo.org_id: required with api: admin" in refused.err


def test_a_profile_directory_is_a_source_and_marks_managed_certkeys(
    clean_logs: Sandbox, cli: Cli, tmp_path: Path
) -> None:
    world = clean_logs
    out = tmp_path / "profiles"
    cli("--scm-config", world.scm_yaml, "discover", world.appliances_yaml, "--write-profiles", out)
    inv = run_discovery(world, out)
    assert [t.ok for t in inv.targets] == [True] and inv.targets[0].partitions == ("default", "web")
    managed = {e.certkey: e.managed_by for e in inv.certkeys if e.managed_by}
    assert managed["portal"] == "portal" and managed["www_web"] == "www_web"
    assert "shop_copy" not in managed  # the duplicate of shop_2025 got no profile
    assert "unused_test" not in managed
    # a directory of managed profiles yields no new profile
    result = cli("--scm-config", world.scm_yaml, "discover", out, "--write-profiles", tmp_path / "more")
    assert "wrote " not in result.out and not list((tmp_path / "more").glob("*.yaml"))
    assert "the same certificate (SCM sslId" in result.out  # shop_copy: shop_2025's profile renews it


def test_scm_list_is_paged_and_filtered_by_org(tmp_path: Path) -> None:
    from citrix_connector.crypto import KeySpec, build_csr, generate_private_key
    from citrix_connector.discovery.scm_match import PAGE_SIZE, match_serials
    from citrix_connector.scm.admin import AdminScmClient

    with Sandbox(tmp_path / "sb", vservers=()) as world:
        key = generate_private_key(KeySpec("ECDSA", curve="P-256"))
        csr = build_csr(key, "many.test", ["many.test"])
        orders = [
            world.scm.add_issued_order(csr, org_id=1234, cert_type=567, term=365, not_before=NOW)
            for _ in range(PAGE_SIZE + 5)
        ]
        other_org = world.scm.add_issued_order(csr, org_id=1235, cert_type=567, term=365, not_before=NOW)
        assert orders[0].cert is not None and other_org.cert is not None
        wanted = [f"{orders[0].cert.serial_number:X}", f"{other_org.cert.serial_number:X}"]
        world.scm.clear_requests()
        client = AdminScmClient(load_scm_config(world.scm_yaml))
        try:
            matches, only, requests = match_serials(client, wanted)
            assert set(matches) == set(wanted) and len(only) == PAGE_SIZE + 4
            # two pages of the whole list, two of the issued ones, one details call per match
            assert requests == len(world.scm.requests) == 2 + 2 + 2
            pages = [parse_qs(r.query) for r in world.scm.requests if r.path.endswith("/ssl/v1")]
            assert [q["position"] for q in pages] == [["0"], ["200"], ["0"], ["200"]]
            assert [q.get("status") for q in pages] == [None, None, ["Issued"], ["Issued"]]
            world.scm.clear_requests()
            matches, only, requests = match_serials(client, wanted, org_id=1235)
            assert set(matches) == {wanted[1]} and only == []
            lists = [parse_qs(r.query) for r in world.scm.requests if r.path.endswith("/ssl/v1")]
            assert lists and all(q["orgId"] == ["1235"] for q in lists)
        finally:
            client.close()
