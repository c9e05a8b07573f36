"""Issue 4: every NetScaler deployment shape, safely — proven at the product level.

Profiles on disk -> the real Agent / CLI -> the sandbox (simulated SCM, either API, and simulated
NetScaler) over HTTPS on 127.0.0.1. What the appliance ends up with is checked through the simulator's
own state (files, certkeys, links, bindings, what a TLS client would be served, gaps in coverage).
"""

from __future__ import annotations

import base64
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml
from conftest import AgentKit, CliResult, scm_yaml_for
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from citrix_connector.config import Profile, load_profile
from citrix_connector.crypto import csr_names, load_csr, normalize_serial
from citrix_connector.lifecycle import Outcome
from citrix_connector.sandbox.ca import LocalCA
from citrix_connector.sandbox.httpserver import SimServer
from citrix_connector.sandbox.netscaler import NetScalerSimulator
from citrix_connector.sandbox.world import Sandbox
from citrix_connector.state import StateStore

REPO = Path(__file__).resolve().parents[1]

# every vserver kind, plus an SNI binding, on the default sandbox appliance
ALL_KINDS: list[tuple[str, str, bool]] = [
    ("vs_shop_https", "lb", False),
    ("cs_portal_https", "cs", False),
    ("gw_remote_access", "vpn", False),
    ("aaa_login", "authentication", False),
    ("vs_sni_https", "lb", True),
]

Cli = Callable[..., CliResult]


# ------------------------------------------------------------------------------------------ helpers


def write_profile(
    world: Sandbox,
    name: str,
    vservers: Sequence[tuple[str, str, bool]],
    common_name: str,
    **kwargs: Any,
) -> Path:
    return world.write_profile(name, world.profile_dict(name, vservers, common_name, **kwargs))


def fast_scm_yaml(world: Sandbox, api: str) -> Path:
    """The sandbox's scm.yaml for ``api``, polling without the sandbox's human-friendly pauses."""
    data = yaml.safe_load(scm_yaml_for(world, api).read_text())
    data["poll"] = {"first_wait": 0, "interval": 0.02, "timeout": 30}
    path = world.directory / f"scm-fast-{api}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def load(world: Sandbox, name: str, vservers: Sequence[tuple[str, str, bool]], cn: str, **kw: Any) -> Profile:
    return load_profile(write_profile(world, name, vservers, cn, **kw))


def same(a: str | None, b: str | None) -> bool:
    return a is not None and b is not None and normalize_serial(a) == normalize_serial(b)


def serving(ns: NetScalerSimulator, vs: str, sni: bool, cn: str, partition: str = "default") -> str | None:
    """What a TLS client gets from ``vs`` (asking for ``cn`` by SNI when the binding is an SNI one)."""
    return ns.serving_certificate(vs, servername=cn if sni else None, partition=partition)


def binding_set(ns: NetScalerSimulator, partition: str = "default") -> set[tuple[str, str, bool, bool]]:
    return {
        (b["vserver"], b["certkey"], bool(b["snicert"]), bool(b["ca"]))
        for b in ns.state(partition)["bindings"]
    }


def only(outcomes: list[Outcome]) -> Outcome:
    assert len(outcomes) == 1, outcomes
    return outcomes[0]


def ok(outcome: Outcome) -> Outcome:
    assert outcome.result == "ok", f"{outcome.action} {outcome.result}: {outcome.message}"
    return outcome


def update_requests(ns: NetScalerSimulator, since: int = 0) -> list[dict[str, Any]]:
    """Bodies of every ``sslcertkey?action=update`` the appliance received."""
    return [
        r.json()["sslcertkey"]
        for r in ns.requests[since:]
        if r.method == "POST" and r.path.endswith("/config/sslcertkey") and "action=update" in r.query
    ]


def saves(ns: NetScalerSimulator, *, succeeded: bool = False) -> int:
    return sum(
        1
        for r in ns.requests
        if r.method == "POST"
        and r.path.endswith("/config/nsconfig")
        and "action=save" in r.query
        and (not succeeded or 200 <= r.status < 300)
    )


def request_texts(server: SimServer) -> Iterator[str]:
    """Every request body the server received, with base64 file contents decoded as well."""
    for r in server.requests:
        text = r.body.decode("utf-8", "replace")
        yield text
        yield r.query
        for blob in re.findall(r'"filecontent"\s*:\s*"([A-Za-z0-9+/=]+)"', text):
            yield base64.b64decode(blob).decode("utf-8", "replace")


def uploaded_files(ns: NetScalerSimulator) -> list[str]:
    files = []
    for r in ns.requests:
        if r.method == "POST" and r.path.endswith("/config/systemfile"):
            sent = r.json()["systemfile"]
            files += [str(f["filename"]) for f in (sent if isinstance(sent, list) else [sent])]  # bulk or one
    return files


def ca_certkeys(ns: NetScalerSimulator, partition: str = "default") -> dict[str, dict[str, Any]]:
    return {n: ck for n, ck in ns.state(partition)["certkeys"].items() if not ck.get("key")}


def issued_serial(store: StateStore, profile: str) -> str:
    current = store.load(profile).current
    assert current is not None
    return current.serial


# ------------------------------------------------------------------------- every vserver kind, both APIs


def test_every_vserver_kind_gets_the_same_certificate(kit: AgentKit) -> None:
    ns = kit.world.netscaler
    profile = load(kit.world, "every-kind", ALL_KINDS, "every.sandbox.test")
    outcome = ok(only(kit.agent().enroll([profile])))
    serial = issued_serial(kit.store, "every-kind")
    assert same(outcome.serial, serial)

    bindings = binding_set(ns)
    for vs, _kind, sni in ALL_KINDS:
        assert (vs, "every-kind", sni, False) in bindings
        assert same(serving(ns, vs, sni, "every.sandbox.test"), serial), vs
    assert ns.state()["vservers"]["aaa_login"]["kind"] == "authentication"
    assert ns.state()["vservers"]["gw_remote_access"]["kind"] == "vpn"
    # the row reports the verified read-back, and so does the journal
    deployed = kit.store.load("every-kind").deployed
    assert deployed is not None and deployed.saved
    assert outcome.vservers == deployed.vservers == [vs for vs, _k, _s in ALL_KINDS]
    assert ns.gaps() == []
    assert ns.state()["saved"]


@pytest.mark.parametrize("stem", ["lb-profile", "cs-profile", "vpn-profile", "authentication-profile"])
def test_each_kind_alone_through_the_cli(world: Sandbox, scm_api: str, cli: Cli, stem: str) -> None:
    data = yaml.safe_load(world.profile_path(stem).read_text())
    vs = data["vservers"][0]
    res = cli("--json", "--scm-config", fast_scm_yaml(world, scm_api), "enroll", world.profile_path(stem))
    assert res.code == 0, res.output
    row = json.loads(res.out)[0]
    assert row["result"] == "ok" and row["vservers"] == [vs["name"]]
    assert same(world.netscaler.serving_certificate(vs["name"]), row["serial"])
    assert world.netscaler.state()["vservers"][vs["name"]]["kind"] == vs["type"]


# ---------------------------------------------------------------------------------------- preflight


PREFLIGHT_CASES = {
    "missing": ([("vs_does_not_exist", "lb", False)], "vs_does_not_exist", "does not exist"),
    "wrong-kind": ([("vs_shop_https", "cs", False)], "vs_shop_https", "does not exist"),
    "not-ssl": ([("vs_plain_http", "lb", False)], "vs_plain_http", "not SSL"),
    "sni-not-enabled": ([("vs_shop_https", "lb", True)], "vs_shop_https", "SNI"),
    "one-bad-of-two": (
        [("cs_portal_https", "cs", False), ("gw_missing", "vpn", False)],
        "gw_missing",
        "does not exist",
    ),
}


@pytest.mark.parametrize(
    ("case", "key_location"),
    [(case, "local") for case in sorted(PREFLIGHT_CASES)]
    + [("missing", "appliance"), ("sni-not-enabled", "appliance")],
)
def test_preflight_refuses_before_anything_is_ordered(
    world: Sandbox, scm_api: str, cli: Cli, state_dir: Path, case: str, key_location: str
) -> None:
    ns = world.netscaler
    ns.add_vserver("vs_plain_http", "lb", servicetype="HTTP")
    vservers, bad_vs, why = PREFLIGHT_CASES[case]
    cert: dict[str, Any] = {"key_location": key_location}
    if key_location == "appliance":
        cert["subject"] = {"organization": "Sandbox Ltd", "state": "Lancashire", "country": "GB"}
    path = write_profile(world, f"pre-{case}", vservers, "pre.sandbox.test", certificate=cert)
    sim = world.enrollment if scm_api == "enrollment" else world.scm
    orders, writes = sim.order_count(), ns.count_writes()

    res = cli("--scm-config", scm_yaml_for(world, scm_api), "enroll", path)

    assert res.code == 1, res.output
    host = ns.url.split("://", 1)[1]
    line = next(line for line in res.output.splitlines() if bad_vs in line)
    assert host in line and why in line, line
    assert "Traceback" not in res.output
    assert sim.order_count() == orders  # nothing ordered
    assert ns.count_writes() == writes  # no key made, nothing uploaded
    assert not any(p.suffix == ".key" for p in state_dir.rglob("*"))


# ------------------------------------------------------------------------------------------------ SNI


def test_sni_profile_binds_an_sni_certificate(world: Sandbox, scm_api: str, cli: Cli) -> None:
    ns = world.netscaler
    res = cli(
        "--json", "--scm-config", fast_scm_yaml(world, scm_api), "enroll", world.profile_path("sni-profile")
    )
    assert res.code == 0, res.output
    serial = json.loads(res.out)[0]["serial"]
    assert ("vs_sni_https", "sni-profile", True, False) in binding_set(ns)
    assert not any(vs == "vs_sni_https" and not sni for vs, _ck, sni, _ca in binding_set(ns))
    assert same(ns.serving_certificate("vs_sni_https", servername="api.sandbox.test"), serial)
    # SNI enabled and only an SNI certificate: a client asking for another name gets nothing
    assert ns.serving_certificate("vs_sni_https", servername="other.sandbox.test") is None


# ------------------------------------------------------------------------ key types x key locations

KEY_CASES: list[tuple[dict[str, Any], str, str]] = [
    # (key overrides, location, SCM API): RSA 3072/4096 once per location, the APIs alternate
    ({"key_type": "RSA", "key_size": 2048}, "local", "admin"),
    ({"key_type": "RSA", "key_size": 2048}, "appliance", "enrollment"),
    ({"key_type": "RSA", "key_size": 3072}, "local", "enrollment"),
    ({"key_type": "RSA", "key_size": 3072}, "appliance", "admin"),
    ({"key_type": "RSA", "key_size": 4096}, "local", "admin"),
    ({"key_type": "RSA", "key_size": 4096}, "appliance", "enrollment"),
    ({"key_type": "ECDSA", "curve": "P-256"}, "local", "enrollment"),
    ({"key_type": "ECDSA", "curve": "P-256"}, "appliance", "admin"),
    ({"key_type": "ECDSA", "curve": "P-384"}, "local", "admin"),
    ({"key_type": "ECDSA", "curve": "P-384"}, "appliance", "enrollment"),
]


def _key_id(case: tuple[dict[str, Any], str, str]) -> str:
    key, location, api = case
    return f"{key['key_type']}-{key.get('key_size') or key.get('curve')}-{location}-{api}"


@pytest.mark.parametrize("case", KEY_CASES, ids=[_key_id(c) for c in KEY_CASES])
def test_every_key_type_in_every_key_location(
    world: Sandbox, tmp_path: Path, case: tuple[dict[str, Any], str, str]
) -> None:
    key, location, api = case
    ns = world.netscaler
    kit = AgentKit(world, api, StateStore(tmp_path / "state"))
    cn = "keys.sandbox.test"
    cert: dict[str, Any] = {**key, "key_location": location}
    if location == "appliance":
        cert["subject"] = {"organization": "Sandbox Ltd", "state": "Greater Manchester", "country": "GB"}
    profile = load(kit.world, "keys", [("vs_onbox_https", "lb", False)], cn, certificate=cert)

    outcome = ok(only(kit.agent().enroll([profile])))

    current = kit.store.load("keys").current
    assert current is not None and same(outcome.serial, current.serial)
    leaf = x509.load_pem_x509_certificate(current.cert_pem.encode())
    public = leaf.public_key()
    if key["key_type"] == "RSA":
        assert isinstance(public, rsa.RSAPublicKey) and public.key_size == key["key_size"]
    else:
        assert isinstance(public, ec.EllipticCurvePublicKey)
        assert public.curve.name == {"P-256": "secp256r1", "P-384": "secp384r1"}[key["curve"]]
    assert same(ns.serving_certificate("vs_onbox_https"), current.serial)
    certkey = ns.state()["certkeys"]["keys"]
    spki = public.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)

    if location == "appliance":
        # the key was made on the box, stays there, and is the certkey's key
        assert current.key_location == "appliance" and current.key_ref == certkey["key"]
        onbox = ns.get_file(current.key_ref)
        assert onbox is not None
        onbox_key = serialization.load_pem_private_key(onbox, None)
        assert (
            onbox_key.public_key().public_bytes(
                serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
            )
            == spki
        )
        assert not any(f.endswith(".key") for f in uploaded_files(ns))
        for server in (ns, world.scm, world.enrollment):
            assert not any("PRIVATE KEY" in t for t in request_texts(server)), server.name
        for path in kit.store.root.rglob("*"):
            if path.is_file():
                assert b"PRIVATE KEY" not in path.read_bytes(), path
        # the CSR made on the box carries the names
        csr_path = current.key_ref[: -len(".key")] + ".csr"
        csr_pem = ns.get_file(csr_path)
        assert csr_pem is not None
        csr_cn, csr_sans = csr_names(load_csr(csr_pem))
        assert csr_cn == cn and {n.lower() for n in csr_sans} == {cn, f"www.{cn}"}
    else:
        key_file = Path(current.key_ref)
        assert key_file.is_file() and (tmp_path / "state") in key_file.parents
        if os.name == "posix":
            assert key_file.stat().st_mode & 0o077 == 0
        assert any(f.endswith(".key") for f in uploaded_files(ns))
    sans = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert {n.lower() for n in sans.get_values_for_type(x509.DNSName)} == {cn, f"www.{cn}"}


# ------------------------------------------------------------------- in-place re-deployment, every shape


def _later(days: int) -> Callable[[], datetime]:
    return lambda: datetime.now(timezone.utc) + timedelta(days=days)


def test_renew_replace_and_run_update_in_place_keeping_every_binding(kit: AgentKit) -> None:
    world, ns = kit.world, kit.world.netscaler
    cn = "every.sandbox.test"
    profile = load(world, "every-kind", ALL_KINDS, cn)
    ok(only(kit.agent().enroll([profile])))
    before = binding_set(ns)
    certkeys_before = set(ns.state()["certkeys"])
    serials = {issued_serial(kit.store, "every-kind")}

    def check_in_place(outcome: Outcome, *, names_changed: bool, since: int) -> None:
        ok(outcome)
        serial = issued_serial(kit.store, "every-kind")
        assert serial not in serials, "a new certificate was issued"
        serials.add(serial)
        assert binding_set(ns) == before  # every binding, default and SNI, on every kind survived
        assert set(ns.state()["certkeys"]) == certkeys_before  # same certkey, updated in place
        for vs, _kind, sni in ALL_KINDS:
            assert same(serving(ns, vs, sni, cn), serial), vs
        updates = update_requests(ns, since)
        assert len(updates) == 1 and updates[0]["certkey"] == "every-kind"
        assert bool(updates[0].get("nodomaincheck")) is names_changed
        assert outcome.vservers == [vs for vs, _k, _s in ALL_KINDS]
        assert ns.gaps() == []

    since = len(ns.requests)
    check_in_place(only(kit.agent().renew([profile])), names_changed=False, since=since)

    # new names: replace, and the update needs nodomaincheck
    changed = load(world, "every-kind", ALL_KINDS, cn, certificate={"subject_alt_names": [cn, f"api.{cn}"]})
    since = len(ns.requests)
    check_in_place(only(kit.agent().replace([changed])), names_changed=True, since=since)

    # `run` in the renewal window renews in place as well
    since = len(ns.requests)
    outcome = only(kit.agent(clock=_later(340)).run([changed]))
    assert outcome.action == "renew"
    check_in_place(outcome, names_changed=False, since=since)


def test_an_unrelated_sni_certificate_on_the_vserver_survives(kit: AgentKit) -> None:
    ns = kit.world.netscaler
    other_ca = LocalCA.create("Someone Else")
    cert_pem, key_pem = other_ca.issue_tls_server_cert(("legacy.sandbox.test",), ())
    ns.install_certkey("legacy", cert_pem, key_pem)
    ns.bind_certkey("vs_sni_https", "legacy", snicert=True)
    profile = kit.profile("sni-profile")
    ok(only(kit.agent().enroll([profile])))
    ok(only(kit.agent().renew([profile])))
    serial = issued_serial(kit.store, "sni-profile")
    assert ("vs_sni_https", "legacy", True, False) in binding_set(ns)
    assert ns.serving_certificate("vs_sni_https", servername="legacy.sandbox.test") is not None
    assert same(ns.serving_certificate("vs_sni_https", servername="api.sandbox.test"), serial)
    assert ns.gaps() == []


# ------------------------------------------------------------------------------------------------ chain


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def test_one_ca_certkey_serves_many_profiles(kit: AgentKit) -> None:
    world, ns = kit.world, kit.world.netscaler
    stems = ["lb-profile", "cs-profile", "vpn-profile"]
    outcomes = kit.agent().run([kit.profile(s) for s in stems])
    assert [o.result for o in outcomes] == ["ok"] * 3, [o.message for o in outcomes]
    cas = ca_certkeys(ns)
    assert len(cas) == 1, cas
    (ca_name,) = cas
    assert normalize_serial(cas[ca_name]["serial"]) == normalize_serial(
        format(world.signing_ca.intermediate.serial_number, "X")
    )
    assert {ns.state()["links"][s] for s in stems} == {ca_name}
    # a later run for yet another profile reuses it too
    ok(only(kit.agent().enroll([kit.profile("authentication-profile")])))
    assert set(ca_certkeys(ns)) == {ca_name}
    assert ns.state()["links"]["authentication-profile"] == ca_name


def test_an_intermediate_installed_under_another_name_is_reused(kit: AgentKit) -> None:
    ns = kit.world.netscaler
    ns.install_certkey("Corp-Issuing-CA", _pem(kit.world.signing_ca.intermediate))
    ok(only(kit.agent().enroll([kit.profile("lb-profile")])))
    assert set(ca_certkeys(ns)) == {"Corp-Issuing-CA"}
    assert ns.state()["links"]["lb-profile"] == "Corp-Issuing-CA"


def test_issuer_rotation_relinks_to_the_new_ca(kit: AgentKit) -> None:
    world, ns = kit.world, kit.world.netscaler
    profile = load(world, "every-kind", ALL_KINDS, "every.sandbox.test")
    ok(only(kit.agent().enroll([profile])))
    (old_ca,) = ca_certkeys(ns)
    before = binding_set(ns)
    new_intermediate = world.signing_ca.rotate_intermediate()

    ok(only(kit.agent().renew([profile])))

    cas = ca_certkeys(ns)
    assert len(cas) == 2 and old_ca in cas
    (new_ca,) = set(cas) - {old_ca}
    assert normalize_serial(cas[new_ca]["serial"]) == normalize_serial(
        format(new_intermediate.serial_number, "X")
    )
    links = ns.state()["links"]
    assert links["every-kind"] == new_ca  # unlinked from the old CA, linked to the new one
    assert old_ca not in links.values()
    assert binding_set(ns) == before
    serial = issued_serial(kit.store, "every-kind")
    for vs, _kind, sni in ALL_KINDS:
        assert same(serving(ns, vs, sni, "every.sandbox.test"), serial)
    assert ns.gaps() == []
    # and `status` reads the new link back through NITRO
    status = only(kit.agent().status([profile]))
    assert status.details["link"] == new_ca and status.result == "ok"


def test_certkey_names_fit_31_characters(kit: AgentKit) -> None:
    ns = kit.world.netscaler
    long_a = "shop-example-com-production-frontend-2026-a"
    long_b = "shop-example-com-production-frontend-2026-b"
    profiles = [
        load(kit.world, long_a, [("vs_shop_https", "lb", False)], "a.sandbox.test"),
        load(kit.world, long_b, [("cs_portal_https", "cs", False)], "b.sandbox.test"),
    ]
    outcomes = kit.agent().enroll(profiles)
    assert [o.result for o in outcomes] == ["ok", "ok"], [o.message for o in outcomes]
    names = set(ns.state()["certkeys"])
    assert len(names) == 3  # two leaves, one CA
    assert all(len(n) <= 31 for n in names), names
    assert outcomes[0].certkey != outcomes[1].certkey
    assert {o.certkey for o in outcomes} <= names
    assert all(len(f.rsplit("/", 1)[-1]) <= 63 for f in ns.state()["files"])


# ---------------------------------------------------------------------------------- safety on failure

NITRO_FAILURE = {
    "errorcode": 1,
    "message": "Internal error while processing the request",
    "severity": "ERROR",
}


@pytest.mark.parametrize("step", ["update", "link", "bind", "verify", "save"])
def test_a_failed_step_leaves_the_old_certificate_serving_and_run_finishes(
    world: Sandbox, scm_api: str, cli: Cli, step: str
) -> None:
    ns = world.netscaler
    sim = world.enrollment if scm_api == "enrollment" else world.scm
    scm_yaml = fast_scm_yaml(world, scm_api)
    cn = "safe.sandbox.test"
    first = [("vs_shop_https", "lb", False), ("vs_sni_https", "lb", True)]
    path = write_profile(world, "safe", first, cn)
    res = cli("--json", "--scm-config", scm_yaml, "enroll", path)
    assert res.code == 0, res.output
    old = json.loads(res.out)[0]["serial"]
    vservers = first

    if step == "update":  # same issuer: the only POST to sslcertkey is the update
        ns.add_fault(r"/config/sslcertkey$", method="POST", status=599, json_body=NITRO_FAILURE)
    elif step == "link":  # new issuer: POST sslcertkey #1 adds the new CA, #2 updates, #3 links
        world.signing_ca.rotate_intermediate()
        ns.add_fault(r"/config/sslcertkey$", method="POST", status=599, json_body=NITRO_FAILURE, after=2)
    elif step == "bind":  # the profile gained a vserver: its binding fails
        vservers = [*first, ("cs_portal_https", "cs", False)]
        write_profile(world, "safe", vservers, cn)
        for method in ("POST", "PUT"):
            ns.add_fault(
                r"/config/sslvserver_sslcertkey_binding", method=method, status=599, json_body=NITRO_FAILURE
            )
    elif step == "verify":  # the appliance says "Done" to the new binding but does not make it
        vservers = [*first, ("cs_portal_https", "cs", False)]
        write_profile(world, "safe", vservers, cn)
        done = {"errorcode": 0, "message": "Done", "severity": "NONE"}
        for method in ("POST", "PUT"):
            ns.add_fault(r"/config/sslvserver_sslcertkey_binding", method=method, status=200, json_body=done)
    else:
        ns.add_fault(r"/config/nsconfig$", method="POST", status=599, json_body=NITRO_FAILURE)
    orders = sim.order_count()

    res = cli("--scm-config", scm_yaml, "renew", path)

    assert res.code == 1, res.output
    assert f"step {step}" in res.output, res.output
    assert "Traceback" not in res.output
    assert sim.order_count() == orders + 1
    if step == "save":
        # the new certificate went live in place; only the save is missing (the saved config is the old one)
        assert not ns.state()["saved"]
        live = issued_serial_from_cli(cli, scm_yaml, path)
        for vs, _kind, sni in first:
            assert same(serving(ns, vs, sni, cn), live)
    else:
        for vs, _kind, sni in first:
            assert same(serving(ns, vs, sni, cn), old), (vs, step)
        if step != "update":  # the certkey had been updated in place already: it was rolled back
            assert "rolled back" in res.output, res.output
    assert ns.gaps() == []

    ns.clear_faults()
    res = cli("--json", "--scm-config", scm_yaml, "run", path)
    assert res.code == 0, res.output
    row = json.loads(res.out)[0]
    assert row["result"] == "ok" and row["action"] == "redeploy", row
    assert sim.order_count() == orders + 1  # the issued certificate is installed, not ordered again
    assert not same(row["serial"], old)
    for vs, _kind, sni in vservers:
        assert same(serving(ns, vs, sni, cn), row["serial"]), vs
    assert row["vservers"] == [vs for vs, _k, _s in vservers]
    assert ns.state()["saved"]
    assert ns.gaps() == []
    res = cli("--json", "--scm-config", scm_yaml, "run", path)
    assert res.code == 0 and json.loads(res.out)[0]["action"] == "nothing", res.output


def issued_serial_from_cli(cli: Cli, scm_yaml: Path, path: Path) -> str:
    res = cli("--json", "--scm-config", scm_yaml, "status", path)
    serial = json.loads(res.out)[0]["serial"]
    assert serial
    return str(serial)


# ------------------------------------------------------------------------------------------------- HA


def test_on_an_ha_secondary_nothing_is_written_and_nothing_ordered(
    world: Sandbox, scm_api: str, cli: Cli
) -> None:
    ns = world.netscaler
    ns.set_ha("Secondary", peer="192.0.2.11")
    sim = world.enrollment if scm_api == "enrollment" else world.scm
    res = cli("--scm-config", scm_yaml_for(world, scm_api), "enroll", world.profile_path("lb-profile"))
    assert res.code == 1, res.output
    host = ns.url.split("://", 1)[1]
    assert re.search(rf"{re.escape(host)} is the HA secondary", res.output), res.output
    assert "Traceback" not in res.output
    assert sim.order_count() == 0
    assert ns.count_writes() == 0
    assert ns.state()["certkeys"] == {}


@pytest.fixture
def pair(tmp_path: Path) -> Iterator[Sandbox]:
    with Sandbox(tmp_path / "pair", appliances=2, issue_after_polls=1) as sandbox:
        yield sandbox


@pytest.mark.parametrize("primary", [0, 1])
def test_a_two_node_url_list_finds_the_primary(
    pair: Sandbox, scm_api: str, tmp_path: Path, primary: int
) -> None:
    nodes = pair.netscalers
    nodes[primary].set_ha("Primary", peer="192.0.2.12")
    nodes[1 - primary].set_ha("Secondary", peer="192.0.2.11")
    kit = AgentKit(pair, scm_api, StateStore(tmp_path / "state"))
    # two standalone simulators told their roles: nothing propagates, so the secondary is not checked
    # (tests/test_ha_verify.py covers a real pair)
    profile = kit.profile(
        "lb-profile", appliance={"url": [nodes[0].url, nodes[1].url]}, ha_sync={"verify": False}
    )
    outcome = ok(only(kit.agent().enroll([profile])))
    assert same(nodes[primary].serving_certificate("vs_shop_https"), outcome.serial)
    assert nodes[primary].state()["saved"]
    assert nodes[1 - primary].count_writes() == 0
    assert nodes[1 - primary].state()["certkeys"] == {}
    # `run` again finds the primary, sees the certificate, does nothing
    again = only(kit.agent().run([profile]))
    assert again.action == "nothing", again.message


def test_two_secondaries_is_a_clear_error(pair: Sandbox, tmp_path: Path) -> None:
    for ns in pair.netscalers:
        ns.set_ha("Secondary", peer="192.0.2.13")
    kit = AgentKit(pair, "admin", StateStore(tmp_path / "state"))
    profile = kit.profile("lb-profile", appliance={"url": [n.url for n in pair.netscalers]})
    outcome = only(kit.agent().enroll([profile]))
    assert outcome.result == "failed" and outcome.exit_code == 1
    assert "no HA primary node" in outcome.message
    assert pair.scm.order_count() == 0
    assert all(ns.count_writes() == 0 for ns in pair.netscalers)


# ----------------------------------------------------------------------------------- admin partitions


def _default_snapshot(ns: NetScalerSimulator) -> dict[str, Any]:
    state = ns.state()
    return {
        k: state[k] for k in ("files", "certkeys", "links", "bindings", "configchanged", "lastconfigsavetime")
    }


@pytest.mark.parametrize("key_location", ["local", "appliance"])
def test_a_partition_profile_touches_only_its_partition(kit: AgentKit, key_location: str) -> None:
    ns = kit.world.netscaler
    ns.add_partition("tenant1")
    ns.add_vserver("vs_tenant_https", "lb", partition="tenant1")
    ns.add_vserver("gw_tenant", "vpn", partition="tenant1")
    ok(only(kit.agent().enroll([kit.profile("cs-profile")])))  # something in the default partition
    default_before = _default_snapshot(ns)
    cert: dict[str, Any] = {"key_location": key_location}
    if key_location == "appliance":
        cert["subject"] = {"organization": "Tenant Ltd", "state": "Kent", "country": "GB"}
    profile = load(
        kit.world,
        "tenant",
        [("vs_tenant_https", "lb", False), ("gw_tenant", "vpn", False)],
        "tenant.sandbox.test",
        certificate=cert,
        appliance={"partition": "tenant1"},
    )

    outcome = ok(only(kit.agent().enroll([profile])))

    part = ns.state("tenant1")
    assert "tenant" in part["certkeys"] and len(ca_certkeys(ns, "tenant1")) == 1
    assert all(f.startswith("/var/partitions/tenant1/ssl/") for f in part["files"])
    assert any(f.endswith(".key") for f in part["files"])  # local: uploaded there; appliance: made there
    assert part["certkeys"]["tenant"]["key"].startswith("/var/partitions/tenant1/ssl/")
    for vs in ("vs_tenant_https", "gw_tenant"):
        assert same(ns.serving_certificate(vs, partition="tenant1"), outcome.serial)
    assert part["saved"] and part["lastconfigsavetime"]
    assert _default_snapshot(ns) == default_before  # the default partition untouched, not even saved
    assert "tenant1" in outcome.appliance
    # status and a second run read the partition back
    assert only(kit.agent().run([profile])).action == "nothing"


# ------------------------------------------------------------------------- one save per appliance per run


def test_one_save_per_appliance_per_run(pair: Sandbox, scm_api: str, tmp_path: Path) -> None:
    kit = AgentKit(pair, scm_api, StateStore(tmp_path / "state"))
    first, second = pair.netscalers
    profiles = [kit.profile(s) for s in ("lb-profile", "cs-profile", "vpn-profile")]
    profiles.append(kit.profile("lb-profile", name="lb-on-two", appliance={"url": second.url}))
    profiles.append(kit.profile("cs-profile", name="cs-on-two", appliance={"url": second.url}))
    outcomes = kit.agent().run(profiles)
    assert [o.result for o in outcomes] == ["ok"] * 5, [o.message for o in outcomes]
    assert saves(first) == 1 and saves(second) == 1
    assert first.state()["saved"] and second.state()["saved"]
    # nothing to do: nothing written, nothing saved
    outcomes = kit.agent().run(profiles)
    assert [o.action for o in outcomes] == ["nothing"] * 5
    assert saves(first) == 1 and saves(second) == 1


def test_save_is_retried_while_the_appliance_says_a_save_is_running(kit: AgentKit) -> None:
    ns = kit.world.netscaler
    ns.save_in_progress_times = 2
    profiles = [kit.profile("lb-profile"), kit.profile("sni-profile")]
    outcomes = kit.agent().run(profiles)
    assert [o.result for o in outcomes] == ["ok", "ok"], [o.message for o in outcomes]
    assert saves(ns) == 3 and saves(ns, succeeded=True) == 1
    assert ns.state()["saved"]
    assert all((kit.store.load(p.name).deployed or pytest.fail("not deployed")).saved for p in profiles)


# ------------------------------------------------------------------------------ `sandbox serve` profiles

EXAMPLES = {
    "lb-profile": "lb",
    "cs-profile": "cs",
    "vpn-profile": "vpn",
    "authentication-profile": "authentication",
    "sni-profile": "sni",
    "appliance-key-profile": "appliance key",
}


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Path]:
    """``citrixagent sandbox serve`` in a child process; yields its directory once it is ready."""
    directory = tmp_path / "served"
    proc = subprocess.Popen(
        [
            sys.executable,
            str(REPO / "citrixagent.py"),
            "sandbox",
            "serve",
            "--dir",
            str(directory),
            "--issue-after-polls",
            "1",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    try:
        assert proc.stdout is not None
        deadline = time.monotonic() + 60
        for line in proc.stdout:
            if line.startswith("Try:") or time.monotonic() > deadline:
                break
        assert proc.poll() is None, "sandbox serve exited"
        yield directory
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def _sim_get(url: str, route: str, bundle: Path) -> Any:
    response = requests.get(f"{url}/_sim/{route}", verify=str(bundle), timeout=10)
    response.raise_for_status()
    return response.json()


def test_sandbox_serve_profiles_all_enroll_and_a_second_run_does_nothing(
    served: Path, scm_api: str, cli: Cli
) -> None:
    for stem, _what in EXAMPLES.items():
        assert (served / f"{stem}.yaml").is_file(), stem
    profiles = {stem: yaml.safe_load((served / f"{stem}.yaml").read_text()) for stem in EXAMPLES}
    assert {p["vservers"][0]["type"] for p in profiles.values()} == {"lb", "cs", "vpn", "authentication"}
    assert profiles["sni-profile"]["vservers"][0].get("sni") is True
    assert profiles["appliance-key-profile"]["certificate"]["key_location"] == "appliance"
    written = served / ("scm-enrollment.yaml" if scm_api == "enrollment" else "scm.yaml")
    scm = yaml.safe_load(written.read_text())
    scm["poll"] = {"first_wait": 0, "interval": 0.05, "timeout": 30}  # the served file, polling faster
    scm_yaml = served / "scm-fast.yaml"
    scm_yaml.write_text(yaml.safe_dump(scm))
    scm_url = str(scm["url"]).removesuffix("/api/v1")
    bundle = served / "sandbox-ca.pem"
    ns_url = profiles["lb-profile"]["appliance"]["url"]

    res = cli("--json", "--scm-config", scm_yaml, "run", served)
    assert res.code == 0, res.output
    rows = {r["profile"]: r for r in json.loads(res.out)}
    assert set(rows) == set(EXAMPLES)
    for stem, row in rows.items():
        assert row["action"] == "enroll" and row["result"] == "ok", row
        vs = profiles[stem]["vservers"][0]
        query = f"?servername={profiles[stem]['certificate']['common_name']}" if vs.get("sni") else ""
        assert same(_sim_get(ns_url, f"serving/{vs['name']}{query}", bundle)["serial"], row["serial"]), stem
    writes = _sim_get(ns_url, "writes", bundle)["count"]
    uploads = [r for r in _sim_get(ns_url, "requests", bundle) if r["path"].endswith("/systemfile")]
    assert not any("appliance-key-profile" in r["body"] and ".key" in r["body"] for r in uploads)

    scm_requests = len(_sim_get(scm_url, "requests", bundle))

    res = cli("--json", "--scm-config", scm_yaml, "run", served)
    assert res.code == 0, res.output
    assert {r["action"] for r in json.loads(res.out)} == {"nothing"}
    assert _sim_get(ns_url, "writes", bundle)["count"] == writes
    assert len(_sim_get(scm_url, "requests", bundle)) == scm_requests  # SCM not even asked
