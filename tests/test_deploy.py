"""deploy.py against the NetScaler simulator over HTTPS (no mocked requests)."""

from __future__ import annotations

import base64
import re
import socket
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import NamedTuple

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID

from citrix_connector.crypto import (
    KeySpec,
    Subject,
    build_csr,
    csr_to_pem,
    generate_private_key,
    load_csr,
    normalize_serial,
    private_key_to_pem,
)
from citrix_connector.errors import ApplianceStateError, CryptoError, NitroError
from citrix_connector.http import RetryPolicy
from citrix_connector.nitro.checks import ApplianceView
from citrix_connector.nitro.client import Binding, NitroClient
from citrix_connector.nitro.deploy import (
    DeployPlan,
    ca_certkey_name,
    deploy,
    make_key_on_appliance,
    open_appliance,
    preflight,
    read_installed,
    remove_unreferenced_files,
    save,
)
from citrix_connector.sandbox.ca import LocalCA
from citrix_connector.sandbox.netscaler import NetScalerSimulator


class Vs(NamedTuple):
    """A vserver to bind to, as a profile's ``VserverSpec`` gives it (name, kind, SNI)."""

    name: str
    type: str
    sni: bool = False


DEFAULT_VS = Vs("vs_lb", "lb", False)
USER = "nsroot"
PASSWORD = "sandbox-nsroot"
SSL = "/nsconfig/ssl"

VSERVERS = [
    Vs("vs_lb", "lb", False),
    Vs("vs_lb2", "lb", False),
    Vs("vs_sni", "lb", True),
    Vs("vs_cs", "cs", False),
    Vs("vs_vpn", "vpn", False),
    Vs("vs_aaa", "authentication", False),
]


MISMATCH = {"errorcode": 1548, "message": "Issuer certificate mismatch", "severity": "ERROR"}


# ------------------------------------------------------------------------------------------ fixtures


@pytest.fixture(scope="module")
def tls_ca() -> LocalCA:
    return LocalCA.create("Deploy Test TLS")


@pytest.fixture(scope="module")
def tls_material(tls_ca):
    return tls_ca.issue_tls_server_cert(("localhost",), ("127.0.0.1",))


@pytest.fixture(scope="module")
def bundle(tls_ca, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("deploy-tls") / "ca.pem"
    path.write_bytes(tls_ca.bundle_pem())
    return path


def new_sim(tls_material) -> NetScalerSimulator:
    cert, key = tls_material
    ns = NetScalerSimulator(cert, key, username=USER, password=PASSWORD)
    for name, kind, sni in VSERVERS:
        ns.add_vserver(name, kind, snienable=sni)
    ns.add_vserver("vs_http", "lb", servicetype="HTTP")
    ns.add_vserver("vs_bridge", "lb", servicetype="SSL_BRIDGE")
    return ns


@pytest.fixture
def sim(tls_material):
    ns = new_sim(tls_material).start()
    try:
        yield ns
    finally:
        ns.stop()


def connect(sim, bundle, partition=None) -> NitroClient:
    client = NitroClient(
        sim.url,
        username=USER,
        password=PASSWORD,
        verify=bundle,
        timeout=10,
        partition=partition,
        sleep=lambda s: None,
        retry=RetryPolicy(attempts=2, base_delay=0.01, max_delay=0.01),
    )
    return client.__enter__()


@pytest.fixture
def nitro(sim, bundle):
    client = connect(sim, bundle)
    try:
        yield client
    finally:
        client.close()


@pytest.fixture
def ca() -> LocalCA:
    """A fresh CA per test (rotation changes it)."""
    return LocalCA.create("Deploy Test Issuing")


def issue(ca: LocalCA, cn: str, sans=(), spec: KeySpec | None = None):
    key = generate_private_key(spec or KeySpec("ECDSA", curve="P-256"))
    cert = ca.issue_from_csr(build_csr(key, cn, [cn, *sans]))
    return cert, private_key_to_pem(key)


def make_plan(
    ca: LocalCA,
    certkey="www",
    cn="www.example.com",
    sans=("example.com",),
    vservers=(DEFAULT_VS,),
    cert_and_key=None,
) -> DeployPlan:
    cert, key = cert_and_key or issue(ca, cn, sans)
    return DeployPlan(
        certkey=certkey,
        leaf=cert,
        chain=[c for c in ca.chain_for(cert) if c != ca.root],
        key_pem=key,
        appliance_keyfile=None,
        vservers=list(vservers),
        file_base=certkey,
    )


def serial_of(cert) -> str:
    return normalize_serial(cert.serial_number)


def serving_serial(sim, vs: str, servername: str = "www.example.com") -> str:
    served = sim.serving_certificate(vs, servername=servername)
    assert served is not None, f"{vs} serves nothing"
    return normalize_serial(served)


def writes(sim) -> int:
    return sim.count_writes()


# ------------------------------------------------------------------------------------------ fresh


def test_fresh_deploy_lb(sim, nitro, ca):
    plan = make_plan(ca)
    result = deploy(nitro, plan)
    assert result.changed and result.certkey == "www"
    assert result.serial == serial_of(plan.leaf)
    assert result.vservers_bound == ["vs_lb"]
    assert re.fullmatch(rf"{SSL}/www-\d{{14}}\.crt", result.cert_file)
    assert result.key_file == result.cert_file[:-4] + ".key"

    ck = nitro.get_certkey("www")
    assert ck.serial == result.serial and ck.cert == result.cert_file and ck.key == result.key_file
    ca_name = ca_certkey_name(ca.intermediate)
    assert len(ca_name) <= 31
    assert ck.linkcertkeyname == ca_name
    assert nitro.get_certkey(ca_name).key is None
    assert serving_serial(sim, "vs_lb") == result.serial
    assert nitro.get_vserver("lb", "vs_lb").curstate == "UP"
    assert any(a.startswith("add certkey 'www'") for a in result.actions)
    assert nitro.config_changed() is True
    save(nitro)
    assert nitro.config_changed() is False


@pytest.mark.parametrize(
    "vs,kind", [("vs_lb", "lb"), ("vs_cs", "cs"), ("vs_vpn", "vpn"), ("vs_aaa", "authentication")]
)
def test_each_vserver_kind(sim, nitro, ca, vs, kind):
    plan = make_plan(ca, vservers=[Vs(vs, kind, False)])
    preflight(nitro, plan.vservers)
    result = deploy(nitro, plan)
    assert result.vservers_bound == [vs]
    assert nitro.certkey_vservers("www") == [vs]
    assert serving_serial(sim, vs) == result.serial


def test_sni_binding(sim, nitro, ca):
    plan = make_plan(ca, vservers=[Vs("vs_sni", "lb", True)])
    deploy(nitro, plan)
    [binding] = nitro.vserver_bindings("vs_sni")
    assert binding.certkey == "www" and binding.sni is True
    put = [
        r for r in sim.requests if r.method in ("PUT", "POST") and "sslvserver_sslcertkey_binding" in r.path
    ]
    assert put[-1].json()["sslvserver_sslcertkey_binding"]["snicert"] is True


def test_same_certificate_again_writes_nothing(sim, nitro, ca):
    plan = make_plan(ca, vservers=VSERVERS)
    deploy(nitro, plan)
    before = writes(sim)
    again = deploy(nitro, plan)
    assert again.changed is False
    assert writes(sim) == before
    assert set(again.vservers_bound) == {v[0] for v in VSERVERS}


# ------------------------------------------------------------------------------------------ renewal


def test_renewal_updates_in_place_without_gap(sim, nitro, ca):
    first = deploy(nitro, make_plan(ca, vservers=VSERVERS))
    bindings_before = {v[0]: nitro.vserver_bindings(v[0]) for v in VSERVERS}
    plan = make_plan(ca, vservers=VSERVERS)
    second = deploy(nitro, plan)
    assert second.changed and second.serial != first.serial
    assert second.cert_file != first.cert_file and second.key_file != first.key_file
    assert {v[0]: nitro.vserver_bindings(v[0]) for v in VSERVERS} == bindings_before
    for vs, _kind, _sni in VSERVERS:
        assert serving_serial(sim, vs) == second.serial
    assert sim.gaps() == []
    update = [r for r in sim.requests if r.method == "POST" and "action=update" in r.query]
    assert len(update) == 1
    assert "nodomaincheck" not in update[0].json()["sslcertkey"]
    assert not [r for r in sim.requests if r.method == "DELETE" and "binding" in r.path]
    assert any("update certkey 'www' in place" in a for a in second.actions)
    # the old files stay (the running config referenced them until now); they can go now, the new
    # ones cannot (a certkey refers to them)
    assert first.cert_file.rsplit("/", 1)[1] in nitro.list_files()
    files = [first.cert_file, first.key_file, second.cert_file, second.key_file]
    assert remove_unreferenced_files(nitro, files, dry_run=True) == [first.cert_file, first.key_file]
    assert first.cert_file.rsplit("/", 1)[1] in nitro.list_files()
    deleted = remove_unreferenced_files(nitro, files)
    assert deleted == [first.cert_file, first.key_file]
    remaining = nitro.list_files()
    assert (
        first.cert_file.rsplit("/", 1)[1] not in remaining
        and first.key_file.rsplit("/", 1)[1] not in remaining
    )
    assert second.cert_file.rsplit("/", 1)[1] in remaining and second.key_file.rsplit("/", 1)[1] in remaining


@pytest.mark.parametrize("missing_code", [258, 3441])
def test_removing_files_already_gone_is_not_an_error(sim, nitro, missing_code):
    # a cleanup that failed half-way (or an admin) removed some files already: the rest still goes,
    # otherwise the journal's list of superseded files could never be emptied
    sim.systemfile_missing_errorcode = missing_code
    for name in ("gone.crt", "left.key"):
        nitro.upload_file(name, b"x")
    nitro.delete_file("gone.crt")
    deleted = remove_unreferenced_files(nitro, [f"{SSL}/gone.crt", f"{SSL}/left.key"])
    assert deleted == [f"{SSL}/left.key"]
    assert "left.key" not in nitro.list_files()


def test_domain_change_sends_nodomaincheck(sim, nitro, ca):
    deploy(nitro, make_plan(ca))
    plan = make_plan(ca, cn="portal.example.org", sans=("portal2.example.org",))
    result = deploy(nitro, plan)
    assert serving_serial(sim, "vs_lb") == result.serial
    update = [r for r in sim.requests if r.method == "POST" and "action=update" in r.query]
    assert update[-1].json()["sslcertkey"]["nodomaincheck"] is True
    assert any("nodomaincheck" in a for a in result.actions)
    assert sim.gaps() == []


# ------------------------------------------------------------------------------------------ chain


def test_intermediate_installed_once_for_two_certkeys(sim, nitro, ca):
    deploy(
        nitro, make_plan(ca, certkey="one", cn="one.example.com", sans=(), vservers=[Vs("vs_lb", "lb")])
    )
    deploy(
        nitro, make_plan(ca, certkey="two", cn="two.example.com", sans=(), vservers=[Vs("vs_cs", "cs")])
    )
    ca_keys = [c for c in nitro.list_certkeys() if c.serial == serial_of(ca.intermediate)]
    assert len(ca_keys) == 1
    assert nitro.get_certkey("one").linkcertkeyname == ca_keys[0].name
    assert nitro.get_certkey("two").linkcertkeyname == ca_keys[0].name


def test_intermediate_reused_whatever_its_name(sim, nitro, ca):
    nitro.upload_file("admin-ca.crt", ca.intermediate.public_bytes(Encoding.PEM))
    nitro.add_certkey("Admins CA", f"{SSL}/admin-ca.crt")
    result = deploy(nitro, make_plan(ca))
    assert nitro.get_certkey("www").linkcertkeyname == "Admins CA"
    assert nitro.get_certkey(ca_certkey_name(ca.intermediate)) is None
    assert any("installed as certkey 'Admins CA'" in a for a in result.actions)


def test_duplicate_content_answer_reuses_existing(sim, nitro, ca):
    nitro.upload_file("hidden-ca.crt", ca.intermediate.public_bytes(Encoding.PEM))
    nitro.add_certkey("hidden", f"{SSL}/hidden-ca.crt")
    # the serial lookups find nothing (as when the box prints the serial differently)
    sim.add_fault(
        r"/config/sslcertkey$",
        method="GET",
        status=200,
        json_body={"errorcode": 0, "message": "Done", "severity": "NONE"},
        times=3,
    )
    deploy(nitro, make_plan(ca))
    assert nitro.get_certkey("www").linkcertkeyname == "hidden"


def test_issuer_rotation_relinks(sim, nitro, ca):
    old_ca_name = ca_certkey_name(ca.intermediate)
    deploy(nitro, make_plan(ca, vservers=VSERVERS))
    ca.rotate_intermediate()
    plan = make_plan(ca, vservers=VSERVERS)
    result = deploy(nitro, plan)
    new_ca_name = ca_certkey_name(ca.intermediate)
    assert new_ca_name != old_ca_name
    ck = nitro.get_certkey("www")
    assert ck.serial == result.serial and ck.linkcertkeyname == new_ca_name
    assert nitro.get_certkey(old_ca_name) is not None  # other certs may still use it
    for vs, _kind, _sni in VSERVERS:
        assert serving_serial(sim, vs) == result.serial
    assert sim.gaps() == []


def _cert(
    subject: str, key, issuer: str, signer, *, days: int, ca_cert: bool, serial: int
) -> x509.Certificate:
    now = datetime.now(timezone.utc)
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
        .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)]))
        .public_key(key.public_key())
        .serial_number(serial)
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=ca_cert, path_length=None), critical=True)
    )
    if not ca_cert:
        builder = builder.add_extension(x509.SubjectAlternativeName([x509.DNSName(subject)]), critical=False)
    return builder.sign(signer, hashes.SHA256())


def test_a_ca_certkey_linked_to_a_superseded_issuer_is_relinked(sim, nitro):
    # leaf <- "Issuing CA" <- "Cross CA" (re-issued: same name and key, new serial) <- root.
    # The issuing CA is installed already, linked to the old "Cross CA" certificate; the chain SCM
    # sends now names the new one, so the CA certkey must follow it (as the leaf follows its issuer).
    root_key, cross_key, issuing_key, leaf_key = (ec.generate_private_key(ec.SECP256R1()) for _ in range(4))
    cross_old = _cert("Cross CA", cross_key, "Root", root_key, days=30, ca_cert=True, serial=0x1111)
    cross_new = _cert("Cross CA", cross_key, "Root", root_key, days=900, ca_cert=True, serial=0x2222)
    issuing = _cert("Issuing CA", issuing_key, "Cross CA", cross_key, days=800, ca_cert=True, serial=0x3333)
    leaf = _cert(
        "www.example.com", leaf_key, "Issuing CA", issuing_key, days=90, ca_cert=False, serial=0x4444
    )
    sim.install_certkey("cross-old", cross_old.public_bytes(Encoding.PEM))
    sim.install_certkey("issuing", issuing.public_bytes(Encoding.PEM), link="cross-old")
    plan = DeployPlan(
        certkey="www",
        leaf=leaf,
        chain=[issuing, cross_new],
        key_pem=private_key_to_pem(leaf_key),
        appliance_keyfile=None,
        vservers=[Vs("vs_lb", "lb", False)],
        file_base="www",
    )
    deploy(nitro, plan)
    new_cross = nitro.find_certkeys_by_serial(0x2222)
    assert len(new_cross) == 1
    assert nitro.get_certkey("issuing").linkcertkeyname == new_cross[0].name
    assert nitro.get_certkey("www").linkcertkeyname == "issuing"
    # a second run changes nothing
    assert not deploy(nitro, plan).changed


def test_rotation_when_update_refuses_to_break_the_link(sim, nitro, ca):
    sim.link_break_mode = "error"  # this appliance answers 599/1587 instead of a warning
    deploy(nitro, make_plan(ca, vservers=VSERVERS))
    ca.rotate_intermediate()
    result = deploy(nitro, make_plan(ca, vservers=VSERVERS))
    assert nitro.get_certkey("www").linkcertkeyname == ca_certkey_name(ca.intermediate)
    for vs, _kind, _sni in VSERVERS:
        assert serving_serial(sim, vs) == result.serial
    assert sim.gaps() == []


# ------------------------------------------------------------------------------------------ faults


def _deploy_fails(nitro, plan, step: str) -> NitroError:
    with pytest.raises(NitroError) as info:
        deploy(nitro, plan)
    assert info.value.step == step, str(info.value)
    assert str(info.value).startswith(f"step {step}: ")
    return info.value


def test_fault_at_update_keeps_old_certificate(sim, nitro, ca):
    first = deploy(nitro, make_plan(ca, vservers=VSERVERS))
    plan = make_plan(ca, vservers=VSERVERS)
    sim.add_fault(
        r"/config/sslcertkey$",
        method="POST",
        status=599,
        json_body={
            "errorcode": 1538,
            "message": "Certificate and private key do not match",
            "severity": "ERROR",
        },
    )
    err = _deploy_fails(nitro, plan, "update")
    assert err.errorcode == 1538
    for vs, _kind, _sni in VSERVERS:
        assert serving_serial(sim, vs) == first.serial
    result = deploy(nitro, plan)
    assert result.changed
    for vs, _kind, _sni in VSERVERS:
        assert serving_serial(sim, vs) == result.serial
    assert sim.gaps() == []


def test_fault_at_link_of_new_certkey_keeps_old_serving(sim, nitro, ca):
    old = deploy(nitro, make_plan(ca, certkey="old", cn="www.example.com"))
    plan = make_plan(ca, certkey="new", cn="www.example.com")
    # POST sslcertkey #1 is the add of 'new', #2 its link
    sim.add_fault(r"/config/sslcertkey$", method="POST", status=599, after=1, json_body=MISMATCH)
    _deploy_fails(nitro, plan, "link")
    assert serving_serial(sim, "vs_lb") == old.serial
    result = deploy(nitro, plan)
    assert serving_serial(sim, "vs_lb") == result.serial
    assert nitro.get_certkey("new").linkcertkeyname == ca_certkey_name(ca.intermediate)
    assert [b.certkey for b in nitro.vserver_bindings("vs_lb")] == ["new"]
    assert sim.gaps() == []


def test_fault_at_relink_after_update_rolls_back(sim, nitro, ca):
    first = deploy(nitro, make_plan(ca, vservers=VSERVERS))
    ca.rotate_intermediate()
    plan = make_plan(ca, vservers=VSERVERS)
    # POST sslcertkey: #1 add the new CA, #2 update 'www', then unlink/link fail
    sim.add_fault(r"/config/sslcertkey$", method="POST", status=599, after=2, json_body=MISMATCH)
    err = _deploy_fails(nitro, plan, "link")
    assert "rolled back" in str(err)
    for vs, _kind, _sni in VSERVERS:
        assert serving_serial(sim, vs) == first.serial
    assert nitro.get_certkey("www").linkcertkeyname == ca_certkey_name(ca.intermediates[0])
    result = deploy(nitro, plan)
    for vs, _kind, _sni in VSERVERS:
        assert serving_serial(sim, vs) == result.serial
    assert nitro.get_certkey("www").linkcertkeyname == ca_certkey_name(ca.intermediate)
    assert sim.gaps() == []


def test_fault_at_bind_keeps_old_serving(sim, nitro, ca):
    old = deploy(nitro, make_plan(ca, certkey="old"))
    plan = make_plan(ca, certkey="new")
    sim.add_fault(
        r"/config/sslvserver_sslcertkey_binding",
        method="PUT",
        status=599,
        json_body={
            "errorcode": 1547,
            "message": "Certificate is not a server certificate",
            "severity": "ERROR",
        },
    )
    sim.add_fault(
        r"/config/sslvserver_sslcertkey_binding",
        method="POST",
        status=599,
        json_body={
            "errorcode": 1547,
            "message": "Certificate is not a server certificate",
            "severity": "ERROR",
        },
    )
    _deploy_fails(nitro, plan, "bind")
    assert serving_serial(sim, "vs_lb") == old.serial
    sim.clear_faults()
    result = deploy(nitro, plan)
    assert serving_serial(sim, "vs_lb") == result.serial
    assert sim.gaps() == []


def test_fault_at_second_bind_of_a_new_certkey_says_what_serves_the_new_certificate(sim, nitro, ca):
    old = deploy(
        nitro, make_plan(ca, certkey="old", vservers=[Vs("vs_lb", "lb", False), Vs("vs_cs", "cs", False)])
    )
    plan = make_plan(ca, certkey="new", vservers=[Vs("vs_lb", "lb", False), Vs("vs_cs", "cs", False)])
    sim.add_fault(
        r"/config/sslvserver_sslcertkey_binding",
        method="PUT",
        status=599,
        after=1,
        json_body={
            "errorcode": 1547,
            "message": "Certificate is not a server certificate",
            "severity": "ERROR",
        },
    )
    err = _deploy_fails(nitro, plan, "bind")
    new_serial = serial_of(plan.leaf)
    # vs_lb was switched to the new certificate before vs_cs failed: the error must say so
    assert serving_serial(sim, "vs_lb") == new_serial and serving_serial(sim, "vs_cs") == old.serial
    assert "vs_lb" in str(err) and new_serial in str(err)
    assert sim.gaps() == []


# ------------------------------------------------------------------------------------------ dry run


def test_dry_run_fresh_writes_nothing(sim, nitro, ca):
    before = writes(sim)
    result = deploy(nitro, make_plan(ca, vservers=VSERVERS), dry_run=True)
    assert writes(sim) == before
    assert result.changed
    assert nitro.get_certkey("www") is None
    text = "\n".join(result.actions)
    assert "add CA certkey" in text and "add certkey 'www'" in text and "bind certkey 'www'" in text
    assert "SNI" in text


def test_dry_run_renewal_writes_nothing(sim, nitro, ca):
    first = deploy(nitro, make_plan(ca, vservers=VSERVERS))
    ca.rotate_intermediate()
    before = writes(sim)
    result = deploy(nitro, make_plan(ca, vservers=VSERVERS), dry_run=True)
    assert writes(sim) == before
    assert serving_serial(sim, "vs_lb") == first.serial
    text = "\n".join(result.actions)
    assert "update certkey 'www' in place" in text and "link certkey 'www'" in text


def _not_issued(key_location="local", vservers=None) -> DeployPlan:
    return DeployPlan.not_issued(
        "www",
        common_name="www.example.com",
        sans=("www.example.com", "example.com"),
        key_location=key_location,
        vservers=list(vservers or VSERVERS),
    )


def test_plan_of_a_certificate_not_issued_yet_is_deploys_read_only_pass(sim, nitro):
    sim.put_file(f"{SSL}/www-20250101120000.crt", b"taken")  # a name in use is not planned
    before = writes(sim)
    now = lambda: datetime(2025, 1, 1, 12, 0, tzinfo=timezone.utc)  # noqa: E731
    result = deploy(nitro, _not_issued(), dry_run=True, now=now)
    assert writes(sim) == before
    assert result.changed and result.serial == ""
    assert result.actions == [
        "install the issuing CA certificate(s) unless installed already (found by serial), and link",
        f"upload certificate {SSL}/www-20250101120000-2.crt",
        f"upload private key {SSL}/www-20250101120000-2.key",
        "add certkey 'www' (the certificate SCM will issue, www.example.com, example.com)",
        "link certkey 'www' to its issuer's certkey (unless linked to it already)",
        *(
            f"bind certkey 'www' to {vs.type} vserver {vs.name!r}" + (" as SNI certificate" if vs.sni else "")
            for vs in VSERVERS
        ),
    ]
    # a key made on the appliance is not uploaded
    onbox = deploy(nitro, _not_issued("appliance", [DEFAULT_VS]), dry_run=True, now=now)
    assert not any("private key" in a for a in onbox.actions)
    assert writes(sim) == before


def test_plan_of_a_renewal_not_issued_yet_updates_in_place_and_keeps_bindings(sim, nitro, ca):
    first = deploy(nitro, make_plan(ca, vservers=VSERVERS[:2]))
    before = writes(sim)
    result = deploy(nitro, _not_issued(), dry_run=True)
    assert writes(sim) == before
    text = "\n".join(result.actions)
    assert f"update certkey 'www' in place: serial {first.serial} -> the certificate SCM will issue" in text
    assert "nodomaincheck" not in text  # the same names as the installed certificate
    for vs in VSERVERS[:2]:
        assert f"certkey 'www' is bound to lb vserver {vs.name!r}" in text
    for vs in VSERVERS[2:]:
        assert f"vserver {vs.name!r}" in text and f"is bound to {vs.type} vserver {vs.name!r}" not in text
    other = DeployPlan.not_issued(
        "www", common_name="other.example.net", sans=(), key_location="local", vservers=[DEFAULT_VS]
    )
    assert "(names change: nodomaincheck)" in "\n".join(deploy(nitro, other, dry_run=True).actions)


def test_a_certificate_not_issued_yet_is_never_written(sim, nitro):
    seen = len(sim.requests)
    with pytest.raises(CryptoError, match="not issued yet"):
        deploy(nitro, _not_issued())
    assert len(sim.requests) == seen  # refused before asking the appliance anything


# ------------------------------------------------------------------------------------------ HA, partitions


def test_single_url_on_secondary_is_refused(sim, bundle):
    sim.set_ha("Secondary", peer="127.0.0.2")
    with pytest.raises(ApplianceStateError, match="HA secondary node; point appliance.url at the primary"):
        open_appliance([sim.url], username=USER, password=PASSWORD, verify=bundle, timeout=10, partition=None)


def test_primary_found_from_two_nodes(tls_material, bundle):
    secondary, primary = new_sim(tls_material), new_sim(tls_material)
    secondary.start()
    primary.start()
    try:
        secondary.set_ha("Secondary", peer="127.0.0.1")
        primary.set_ha("Primary", peer="127.0.0.1")
        client = open_appliance(
            [secondary.url, primary.url],
            username=USER,
            password=PASSWORD,
            verify=bundle,
            timeout=10,
            partition=None,
        )
        try:
            assert client.url == primary.url
            assert client.ha_info().state == "Primary"
        finally:
            client.close()
        secondary.set_ha("Secondary", peer="x")
        primary.set_ha("Secondary", peer="y")
        with pytest.raises(ApplianceStateError, match="no HA primary"):
            open_appliance(
                [secondary.url, primary.url],
                username=USER,
                password=PASSWORD,
                verify=bundle,
                timeout=10,
                partition=None,
            )
    finally:
        secondary.stop()
        primary.stop()


def test_unreachable_node_is_skipped(sim, bundle):
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    dead = f"https://127.0.0.1:{sock.getsockname()[1]}"
    sock.close()
    sim.set_ha("Primary", peer="127.0.0.1")
    client = open_appliance(
        [dead, sim.url],
        username=USER,
        password=PASSWORD,
        verify=bundle,
        timeout=5,
        partition=None,
        sleep=lambda s: None,
    )
    try:
        assert client.url == sim.url
    finally:
        client.close()
    with pytest.raises(NitroError, match="cannot connect"):
        open_appliance(
            [dead],
            username=USER,
            password=PASSWORD,
            verify=bundle,
            timeout=5,
            partition=None,
            sleep=lambda s: None,
        )


def test_partition_isolation(sim, bundle, ca):
    sim.add_partition("p1")
    sim.add_vserver("vs_p1", "lb", partition="p1")
    client = open_appliance(
        [sim.url], username=USER, password=PASSWORD, verify=bundle, timeout=10, partition="p1"
    )
    try:
        result = deploy(client, make_plan(ca, vservers=[Vs("vs_p1", "lb", False)]))
        installed = client.get_certkey("www")
        assert installed is not None and installed.serial == result.serial
    finally:
        client.close()
    default = connect(sim, bundle)
    try:
        assert default.get_certkey("www") is None
        assert default.get_vserver("lb", "vs_p1") is None
    finally:
        default.close()


# ---------------------------------------------------------------------------------- key on the appliance


@pytest.mark.parametrize(
    "spec", [KeySpec("RSA", size=2048), KeySpec("ECDSA", curve="P-256"), KeySpec("ECDSA", curve="P-384")]
)
def test_key_made_on_appliance(sim, nitro, ca, spec):
    subject = Subject(organization="Example Ltd", state="Somerset", country="GB")
    keyfile, csr_pem = make_key_on_appliance(
        nitro,
        base="www-20250101",
        key=spec,
        common_name="www.example.com",
        sans=["example.com"],
        subject=subject,
    )
    assert keyfile == f"{SSL}/www-20250101.key"
    csr = load_csr(csr_pem)
    cert = ca.issue_from_csr(csr)
    plan = DeployPlan(
        certkey="www",
        leaf=cert,
        chain=[ca.intermediate],
        key_pem=None,
        appliance_keyfile=keyfile,
        vservers=[Vs("vs_lb", "lb", False)],
        file_base="www",
    )
    result = deploy(nitro, plan)
    assert result.key_file == keyfile
    assert nitro.get_certkey("www").key == keyfile
    assert serving_serial(sim, "vs_lb") == result.serial
    # the key never left the box
    assert not [r for r in sim.requests if r.method == "GET" and ".key" in r.query]
    # a second call gets fresh names
    keyfile2, _ = make_key_on_appliance(
        nitro, base="www-20250101", key=spec, common_name="www.example.com", sans=[], subject=subject
    )
    assert keyfile2 != keyfile and len(keyfile2) <= 63


def test_key_on_appliance_csr_names_checked(sim, nitro):
    # the appliance's CSR is replaced by one for other names: must be refused
    other = build_csr(
        generate_private_key(KeySpec("ECDSA", curve="P-256")), "evil.example.com", ["evil.example.com"]
    )
    sim.add_fault(
        r"/config/systemfile$",
        method="GET",
        status=200,
        json_body={
            "errorcode": 0,
            "message": "Done",
            "severity": "NONE",
            "systemfile": [
                {
                    "filename": "k.csr",
                    "filelocation": SSL,
                    "filecontent": base64.b64encode(csr_to_pem(other).encode()).decode(),
                    "fileencoding": "BASE64",
                }
            ],
        },
        after=1,
    )
    with pytest.raises(CryptoError, match="expected"):
        make_key_on_appliance(
            nitro,
            base="k",
            key=KeySpec("ECDSA", curve="P-256"),
            common_name="www.example.com",
            sans=[],
            subject=Subject(organization="O", state="S", country="GB"),
        )


def test_long_base_names_fit(sim, nitro, ca):
    base = "x" * 80
    keyfile, _ = make_key_on_appliance(
        nitro,
        base=base,
        key=KeySpec("ECDSA", curve="P-256"),
        common_name="a.example.com",
        sans=[],
        subject=Subject(organization="O", state="S", country="GB"),
    )
    assert len(keyfile) <= 63 and keyfile.startswith(f"{SSL}/xxxx")
    plan = make_plan(ca)
    plan.file_base = "y" * 80
    result = deploy(nitro, plan)
    assert len(result.cert_file.rsplit("/", 1)[1]) <= 63


# ---------------------------------------------------------------------------------- preflight, plan, state


def test_preflight_lists_every_problem(sim, nitro):
    with pytest.raises(ApplianceStateError) as info:
        preflight(
            nitro,
            [
                Vs("nope", "lb", False),
                Vs("vs_http", "lb", False),
                Vs("vs_bridge", "lb", False),
                Vs("vs_lb", "lb", True),
                Vs("vs_cs", "lb", False),
                Vs("vs_sni", "lb", True),
            ],
        )
    text = str(info.value)
    for name in ("nope", "vs_http", "vs_bridge", "vs_lb", "vs_cs"):
        assert f"'{name}'" in text
    assert "vs_sni" not in text
    assert "SNI" in text and "SSL_BRIDGE" in text and "127.0.0.1" in text


def test_plan_with_wrong_key_writes_nothing(sim, nitro, ca):
    plan = make_plan(ca)
    plan.key_pem = private_key_to_pem(generate_private_key(KeySpec("ECDSA", curve="P-256")))
    before = writes(sim)
    with pytest.raises(CryptoError, match="does not match"):
        deploy(nitro, plan)
    assert writes(sim) == before


def test_read_installed(sim, nitro, ca):
    assert read_installed(nitro, "www", VSERVERS).serial is None
    plan = make_plan(ca, vservers=[Vs("vs_lb", "lb", False), Vs("vs_sni", "lb", True)])
    deploy(nitro, plan)
    state = read_installed(nitro, "www", VSERVERS)
    assert state.serial == serial_of(plan.leaf)
    assert state.bound_vservers == ["vs_lb", "vs_sni"]
    assert state.link == ca_certkey_name(ca.intermediate)
    assert "www.example.com" in state.names and "example.com" in state.names
    assert state.not_after is not None
    assert isinstance(plan.leaf, x509.Certificate)
    assert abs(state.not_after - plan.leaf.not_valid_after_utc) < timedelta(seconds=2)


def test_one_read_of_all_certkeys_and_bindings_answers_like_read_installed(sim, nitro, ca):
    deploy(nitro, make_plan(ca, vservers=[Vs("vs_lb", "lb"), Vs("vs_sni", "lb", True)]))
    deploy(nitro, make_plan(ca, certkey="two", cn="two.example.com", sans=(), vservers=[Vs("vs_cs", "cs")]))
    sim.bind_certkey("vs_vpn", "www", ca=True)  # client authentication only: serves nothing
    seen = len(sim.requests)
    view = ApplianceView.read(nitro)
    reads = sim.requests[seen:]
    assert [(r.method, r.path.rsplit("/", 1)[-1]) for r in reads] == [
        ("GET", "sslcertkey"),
        ("GET", "sslvserver_sslcertkey_binding"),
    ]
    assert "bulkbindings=yes" in reads[1].query
    assert set(view.certkeys) == {"www", "two", ca_certkey_name(ca.intermediate)}
    assert Binding("vs_vpn", "www", sni=False, ca=True) in view.bindings
    assert Binding("vs_sni", "www", sni=True, ca=False) in view.bindings
    for name in ("www", "two", "missing"):
        for wanted in (VSERVERS, ()):
            assert view.installed(name, wanted) == read_installed(nitro, name, wanted), (name, wanted)
    assert view.served_by("www") == ["vs_lb", "vs_sni"]
    assert view.installed("www").bound_vservers == ["vs_lb", "vs_sni"]


def test_vservers_of_a_kind_and_sni_flags_in_one_read_each(sim, nitro):
    seen = len(sim.requests)
    lb = nitro.list_vservers("lb")
    assert {v.name for v in lb} == {"vs_lb", "vs_lb2", "vs_sni", "vs_http", "vs_bridge"}
    assert all(v.kind == "lb" for v in lb)
    assert {v.name: v.is_ssl for v in lb}["vs_bridge"] is False
    assert [v.name for v in nitro.list_vservers("authenticationvserver")] == ["vs_aaa"]
    assert nitro.sni_enabled_vservers() == {"vs_sni"}
    assert len(sim.requests) - seen == 3


def test_deploy_timestamps_are_utc(sim, nitro, ca):
    when = datetime(2030, 1, 2, 3, 4, 5, tzinfo=timezone(timedelta(hours=2)))
    result = deploy(nitro, make_plan(ca), now=lambda: when)
    assert result.cert_file == f"{SSL}/www-20300102010405.crt"
