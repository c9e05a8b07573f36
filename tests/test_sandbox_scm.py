"""The simulated SCM admin API, driven over real HTTPS with plain ``requests``."""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterator
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives.serialization import pkcs7

from citrix_connector.crypto import (
    KeySpec,
    PrivateKey,
    build_csr,
    cert_matches_key,
    csr_to_der_b64,
    csr_to_pem,
    generate_private_key,
)
from citrix_connector.sandbox.ca import LocalCA
from citrix_connector.sandbox.scm import ScmSimulator
from citrix_connector.sandbox.world import make_client_auth_pki

HEADERS = {"login": "api-admin", "password": "sandbox-password", "customerUri": "sandbox"}
US_DATE = re.compile(r"^\d{2}/\d{2}/\d{4}$")


# ------------------------------------------------------------------------------------ fixtures


@pytest.fixture(scope="module")
def ca() -> LocalCA:
    return LocalCA.create("SCM Sim Test")


@pytest.fixture(scope="module")
def bundle(ca: LocalCA, tmp_path_factory: pytest.TempPathFactory) -> str:
    path = tmp_path_factory.mktemp("scm-ca") / "bundle.pem"
    path.write_bytes(ca.bundle_pem())
    return str(path)


@pytest.fixture(scope="module")
def ec_key() -> PrivateKey:
    return generate_private_key(KeySpec("ECDSA", curve="P-256"))


@pytest.fixture(scope="module")
def rsa_key() -> PrivateKey:
    return generate_private_key(KeySpec("RSA", size=2048))


@pytest.fixture(scope="module")
def client_pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    d = tmp_path_factory.mktemp("client-pki")
    ca_pem, cert_pem, key_pem = make_client_auth_pki("api-admin", days=30)
    (d / "good.crt").write_bytes(cert_pem)
    (d / "good.key").write_bytes(key_pem)
    _, other_cert, other_key = make_client_auth_pki("someone-else", days=30)  # signed by an untrusted CA
    (d / "other.crt").write_bytes(other_cert)
    (d / "other.key").write_bytes(other_key)
    return {
        "ca_pem": ca_pem,
        "good": (str(d / "good.crt"), str(d / "good.key")),
        "untrusted": (str(d / "other.crt"), str(d / "other.key")),
    }


class Api:
    def __init__(self, sim: ScmSimulator, verify: str) -> None:
        self.sim = sim
        self.verify = verify
        self.session = requests.Session()

    def call(
        self, method: str, path: str, *, headers: dict[str, str] | None = None, auth: bool = True, **kw: Any
    ) -> requests.Response:
        hdrs = dict(HEADERS) if auth else {}
        hdrs.update(headers or {})
        return self.session.request(
            method, self.sim.url + path, headers=hdrs, verify=self.verify, timeout=10, **kw
        )

    def get(self, path: str, **kw: Any) -> requests.Response:
        return self.call("GET", path, **kw)

    def post(self, path: str, **kw: Any) -> requests.Response:
        return self.call("POST", path, **kw)

    def enroll(
        self,
        key: PrivateKey,
        cn: str = "www.example.com",
        *,
        sans: str | None = None,
        cert_type: int = 567,
        term: int = 365,
        **extra: Any,
    ) -> int:
        body: dict[str, Any] = {
            "orgId": 1234,
            "certType": cert_type,
            "term": term,
            "csr": csr_to_pem(build_csr(key, cn, [cn])),
            **extra,
        }
        if sans is not None:
            body["subjAltNames"] = sans
        r = self.post("/api/ssl/v1/enroll", json=body)
        assert r.status_code == 200, r.text
        return int(r.json()["sslId"])

    def collect(self, ssl_id: int, fmt: str = "x509CO") -> requests.Response:
        return self.get(f"/api/ssl/v1/collect/{ssl_id}/{fmt}")

    def collect_issued(self, ssl_id: int, fmt: str = "x509CO", limit: int = 10) -> requests.Response:
        for _ in range(limit):
            r = self.collect(ssl_id, fmt)
            if r.status_code == 200:
                return r
            assert r.status_code == 400 and r.json()["code"] == 0, r.text
        raise AssertionError("never issued")

    def details(self, ssl_id: int) -> dict[str, Any]:
        r = self.get(f"/api/ssl/v1/{ssl_id}")
        assert r.status_code == 200, r.text
        return dict(r.json())


@pytest.fixture(scope="module")
def scm_server(ca: LocalCA, client_pki: dict[str, Any]) -> Iterator[ScmSimulator]:
    cert, key = ca.issue_tls_server_cert()
    sim = ScmSimulator(ca, cert, key, client_ca_pem=client_pki["ca_pem"])
    sim.start()
    try:
        yield sim
    finally:
        sim.stop()


@pytest.fixture
def scm(scm_server: ScmSimulator) -> ScmSimulator:
    """The module's server, reset to its initial state for every test."""
    scm_server.reset()
    return scm_server


@pytest.fixture
def api(scm: ScmSimulator, bundle: str) -> Api:
    return Api(scm, bundle)


def assert_error(r: requests.Response, status: int, code: int) -> dict[str, Any]:
    assert r.status_code == status, (r.status_code, r.text)
    body = r.json()
    assert body["code"] == code, body
    assert isinstance(body["description"], str) and body["description"]
    return dict(body)


# ------------------------------------------------------------------------------------ auth & routing


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"login": "api-admin", "customerUri": "sandbox"},
        {"login": "api-admin", "password": "wrong", "customerUri": "sandbox"},
        {"login": "nobody", "password": "sandbox-password", "customerUri": "sandbox"},
        {"login": "api-admin", "password": "sandbox-password", "customerUri": "other"},
    ],
)
def test_header_auth_failures_are_401_unknown_user(api: Api, headers: dict[str, str]) -> None:
    r = api.get("/api/ssl/v1/types", auth=False, headers=headers)
    assert_error(r, 401, -16)
    assert "WWW-Authenticate" not in r.headers  # no OAuth accounts configured


def test_auth_error_code_knob(api: Api, scm: ScmSimulator) -> None:
    scm.set_defaults(auth_error_code=-970)
    r = api.get("/api/ssl/v1/types", auth=False, headers={"login": "x", "password": "y", "customerUri": "z"})
    assert_error(r, 401, -970)


def test_v2_routes_and_unknown_routes(api: Api) -> None:
    assert api.get("/api/ssl/v2/types").status_code == 200
    r = api.get("/api/ssl/v1/nosuchthing/deeper")
    assert r.status_code == 404 and r.json()["status"] == 404
    assert api.get("/elsewhere").status_code == 404
    r = api.call("DELETE", "/api/ssl/v1/enroll")
    assert r.status_code == 405


def test_request_log_masks_password(api: Api, scm: ScmSimulator) -> None:
    api.get("/api/ssl/v1/types")
    logged = scm.requests[-1]
    assert logged.headers["password"] == "***"
    assert "sandbox-password" not in json.dumps([r.to_dict() for r in scm.requests])


# ------------------------------------------------------------------------------------ reference data


def test_types_custom_fields_and_orgs(api: Api) -> None:
    types = api.get("/api/ssl/v1/types").json()
    by_id = {t["id"]: t for t in types}
    assert by_id[567]["name"] == "Sandbox OV SSL" and by_id[567]["terms"] == [365, 730]
    assert by_id[568]["name"] == "Sandbox EV SSL" and by_id[568]["terms"] == [365]
    for t in types:
        assert set(t) >= {"id", "name", "terms", "keyTypes", "useSecondaryOrgName", "description"}
    assert by_id[567]["keyTypes"] == {"RSA": ["2048", "3072", "4096"], "EC": ["P-256", "P-384"]}
    assert api.get("/api/ssl/v1/types?organizationId=1235").json() == types
    assert api.get("/api/ssl/v1/types?organizationId=999").json() == []

    fields = api.get("/api/ssl/v1/customFields").json()
    assert all(set(f) == {"id", "name", "mandatory"} and f["mandatory"] is False for f in fields)

    orgs = api.get("/api/organization/v1").json()
    assert orgs[0]["id"] == 1234 and orgs[0]["departments"][0]["id"] == 1235
    org = api.get("/api/organization/v1/1234").json()
    assert org["certTypes"] == ["SSL"] and org["sslCertsApiEnabled"] is True
    assert org["departments"][0]["parentName"] == "Sandbox Org"
    dept = api.get("/api/organization/v1/1235").json()
    assert dept["name"] == "Sandbox Department" and dept["parentId"] == 1234
    assert_error(api.get("/api/organization/v1/4242"), 404, -1023)


# ------------------------------------------------------------------------------------ enroll


def _enroll_body(key: PrivateKey, **over: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "orgId": 1234,
        "certType": 567,
        "term": 365,
        "csr": csr_to_pem(build_csr(key, "www.example.com", ["www.example.com"])),
    }
    body.update(over)
    return {k: v for k, v in body.items() if v is not None}


@pytest.mark.parametrize(
    ("over", "code"),
    [
        ({"subjAltNames": ["a.example.com", "b.example.com"]}, -1002),
        ({"subjAltNames": 5}, -1002),
        ({"orgId": None}, -7),
        ({"orgId": 9999}, -639),
        ({"orgId": "not-a-number"}, -1002),
        ({"certType": None}, -7),
        ({"certType": 4711}, -39),
        ({"term": None}, -7),
        ({"term": 730, "certType": 568}, -36),
        ({"term": 90}, -36),
        ({"csr": None}, -7),
        ({"csr": ""}, -7),
        ({"csr": "-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n"}, -10),
        ({"csr": "garbage"}, -10),
        ({"certType": 569}, -11),  # EC key on an RSA-2048-only profile
        ({"customFields": [{"name": "No Such Field", "value": "x"}]}, -135),
        ({"customFields": {"Cost Center": "x"}}, -1002),
    ],
)
def test_enroll_validations(api: Api, ec_key: PrivateKey, over: dict[str, Any], code: int) -> None:
    body = _enroll_body(ec_key)
    for k, v in over.items():
        if v is None:
            body.pop(k, None)
        else:
            body[k] = v
    assert_error(api.post("/api/ssl/v1/enroll", json=body), 400, code)
    assert api.sim.order_count() == 0


@pytest.mark.parametrize("raw", [b"", b'""', b"[1, 2]", b"{not json", b"null"])
def test_enroll_non_object_body(api: Api, raw: bytes) -> None:
    r = api.post("/api/ssl/v1/enroll", data=raw, headers={"Content-Type": "application/json"})
    assert_error(r, 400, -1002)


def test_enroll_key_size_not_in_profile(api: Api, scm: ScmSimulator) -> None:
    scm.profiles[570] = {
        "id": 570,
        "name": "P-384 only",
        "description": "",
        "terms": [365],
        "keyTypes": {"EC": ["P-384"]},
        "useSecondaryOrgName": False,
    }
    p256 = generate_private_key(KeySpec("ECDSA", curve="P-256"))
    assert_error(api.post("/api/ssl/v1/enroll", json=_enroll_body(p256, certType=570)), 400, -13)
    p384 = generate_private_key(KeySpec("ECDSA", curve="P-384"))
    assert api.post("/api/ssl/v1/enroll", json=_enroll_body(p384, certType=570)).status_code == 200


def test_enroll_rsa_and_details_shape(api: Api, rsa_key: PrivateKey) -> None:
    ssl_id = api.enroll(
        rsa_key, "rsa.example.com", sans="alt1.example.com, alt2.example.com", cert_type=569, comments="hello"
    )
    d = api.details(ssl_id)
    assert d["sslId"] == d["id"] == ssl_id
    assert d["status"] == "Requested"
    assert d["serialNumber"] == ""
    assert d["keyType"] == "RSA - 2048"
    assert d["commonName"] == "rsa.example.com"
    assert d["subjectAlternativeNames"] == ["rsa.example.com", "alt1.example.com", "alt2.example.com"]
    assert d["certType"]["id"] == 569 and d["term"] == 365 and d["orgId"] == 1234
    assert d["renewed"] is False and d["comments"] == "hello"
    assert US_DATE.match(d["requested"])
    assert "issued" not in d and "expires" not in d


def test_enroll_ids_are_sequential_and_renew_ids_opaque(api: Api, ec_key: PrivateKey) -> None:
    first = api.post("/api/ssl/v1/enroll", json=_enroll_body(ec_key)).json()
    second = api.post("/api/ssl/v1/enroll", json=_enroll_body(ec_key, orgId="1235")).json()
    assert (first["sslId"], second["sslId"]) == (1001, 1002)
    assert re.fullmatch(r"[A-Za-z0-9]{20}", first["renewId"]) and first["renewId"] != second["renewId"]


def test_seeded_ids_are_deterministic(ca: LocalCA, bundle: str, ec_key: PrivateKey) -> None:
    renew_ids = []
    for _ in range(2):
        cert, key = ca.issue_tls_server_cert()
        with ScmSimulator(ca, cert, key, first_id=5000, seed=7) as sim:
            assert isinstance(sim, ScmSimulator)
            r = Api(sim, bundle).post("/api/ssl/v1/enroll", json=_enroll_body(ec_key)).json()
            assert r["sslId"] == 5000
            renew_ids.append(r["renewId"])
    assert renew_ids[0] == renew_ids[1]


def test_external_requester_knob(api: Api, scm: ScmSimulator, ec_key: PrivateKey) -> None:
    scm.set_defaults(require_external_requester=True)
    assert_error(api.post("/api/ssl/v1/enroll", json=_enroll_body(ec_key)), 400, -139)
    r = api.post("/api/ssl/v1/enroll", json=_enroll_body(ec_key, externalRequester="ops@example.com"))
    assert r.status_code == 200
    assert api.details(r.json()["sslId"])["externalRequester"] == "ops@example.com"


def test_mandatory_custom_field_knob(api: Api, scm: ScmSimulator, ec_key: PrivateKey) -> None:
    assert api.post("/api/ssl/v1/enroll", json=_enroll_body(ec_key)).status_code == 200
    scm.set_defaults(mandatory_custom_fields=["Cost Center"])
    fields = {f["name"]: f for f in api.get("/api/ssl/v1/customFields").json()}
    assert fields["Cost Center"]["mandatory"] is True
    assert_error(api.post("/api/ssl/v1/enroll", json=_enroll_body(ec_key)), 400, -62)
    empty = [{"name": "Cost Center", "value": ""}]
    assert_error(api.post("/api/ssl/v1/enroll", json=_enroll_body(ec_key, customFields=empty)), 400, -62)
    good = [{"name": "Cost Center", "value": "CC-42"}]
    r = api.post("/api/ssl/v1/enroll", json=_enroll_body(ec_key, customFields=good))
    assert r.status_code == 200
    assert api.details(r.json()["sslId"])["customFields"] == good


# ------------------------------------------------------------------------------------ collect


def test_pending_then_issued_status_walk(api: Api, ec_key: PrivateKey) -> None:
    ssl_id = api.enroll(ec_key)
    assert api.details(ssl_id)["status"] == "Requested"
    r = api.collect(ssl_id)
    assert assert_error(r, 400, 0)["description"] == "Being processed by Sectigo"
    assert api.details(ssl_id)["status"] == "Applied"
    assert_error(api.collect(ssl_id), 400, 0)
    r = api.collect(ssl_id)
    assert r.status_code == 200
    d = api.details(ssl_id)
    assert d["status"] == "Issued"
    assert re.fullmatch(r"([0-9A-F]{2}:)+[0-9A-F]{2}", d["serialNumber"])
    assert US_DATE.match(d["issued"]) and US_DATE.match(d["expires"])
    leaf = x509.load_pem_x509_certificate(r.content)
    assert d["serialNumber"].replace(":", "") == f"{leaf.serial_number:X}".zfill(
        len(d["serialNumber"]) // 3 + 1
    )


@pytest.mark.parametrize("code", [-183, -1400])
def test_pending_code_knob(api: Api, scm: ScmSimulator, ec_key: PrivateKey, code: int) -> None:
    scm.set_defaults(pending_code=code)
    ssl_id = api.enroll(ec_key)
    assert_error(api.collect(ssl_id), 400, code)


def test_issue_after_polls_zero(api: Api, scm: ScmSimulator, ec_key: PrivateKey) -> None:
    scm.set_defaults(issue_after_polls=0)
    assert api.collect(api.enroll(ec_key)).status_code == 200


def test_issue_after_seconds_uses_injected_clock(api: Api, scm: ScmSimulator, ec_key: PrivateKey) -> None:
    now = [datetime(2030, 1, 15, 12, 0, tzinfo=timezone.utc)]
    scm.clock = lambda: now[0]
    scm.set_defaults(issue_after_polls=None, issue_after_seconds=60)
    ssl_id = api.enroll(ec_key)
    for _ in range(5):
        assert_error(api.collect(ssl_id), 400, 0)
    now[0] += timedelta(seconds=61)
    d = api.details(ssl_id)
    assert d["status"] == "Issued" and d["issued"] == "01/15/2030"
    leaf = x509.load_pem_x509_certificate(api.collect(ssl_id).content)
    assert leaf.not_valid_before_utc == now[0]


def _blocks(data: bytes) -> list[x509.Certificate]:
    return x509.load_pem_x509_certificates(data)


@pytest.mark.parametrize(
    ("fmt", "expected"),
    [
        ("x509CO", "L"),
        ("pemco", "L"),
        ("x509", "RIL"),
        ("pem", "RIL"),
        ("x509R", "LIR"),
        ("pemia", "LI"),
        ("x509IO", "RI"),
        ("x509IOR", "IR"),
    ],
)
@pytest.mark.parametrize("style", ["path", "query"])
def test_collect_pem_formats_and_order(
    api: Api, scm: ScmSimulator, ca: LocalCA, ec_key: PrivateKey, fmt: str, expected: str, style: str
) -> None:
    scm.set_defaults(issue_after_polls=0)
    ssl_id = api.enroll(ec_key, "fmt.example.com", sans="www.fmt.example.com")
    path = (
        f"/api/ssl/v1/collect/{ssl_id}/{fmt}"
        if style == "path"
        else f"/api/ssl/v1/collect/{ssl_id}?format={fmt}"
    )
    r = api.get(path)
    assert r.status_code == 200, r.text
    assert r.headers["Content-Type"].startswith("application/octet-stream")
    assert r.headers["Content-Disposition"].startswith("attachment")
    certs = _blocks(r.content)
    leaf = scm.orders[ssl_id].cert
    assert leaf is not None
    inter, root = ca.chain_for(leaf)
    table = {"L": leaf, "I": inter, "R": root}
    assert certs == [table[c] for c in expected]


def test_issued_leaf_content(api: Api, scm: ScmSimulator, ca: LocalCA, ec_key: PrivateKey) -> None:
    scm.set_defaults(issue_after_polls=0)
    ssl_id = api.enroll(ec_key, "leaf.example.com", sans="a.example.com,b.example.com", term=730)
    leaf = _blocks(api.collect(ssl_id, "x509R").content)[0]
    assert cert_matches_key(leaf, ec_key)
    assert leaf.issuer == ca.intermediate.subject
    names = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert set(names.get_values_for_type(x509.DNSName)) == {
        "leaf.example.com",
        "a.example.com",
        "b.example.com",
    }
    assert (leaf.not_valid_after_utc - leaf.not_valid_before_utc).days == 730


@pytest.mark.parametrize("path_suffix", ["", "?format=base64", "/base64", "/bin"])
def test_collect_pkcs7(
    api: Api, scm: ScmSimulator, ca: LocalCA, ec_key: PrivateKey, path_suffix: str
) -> None:
    scm.set_defaults(issue_after_polls=0)
    ssl_id = api.enroll(ec_key)
    r = api.get(f"/api/ssl/v1/collect/{ssl_id}{path_suffix}")
    assert r.status_code == 200
    if path_suffix.endswith("bin"):
        assert not r.content.startswith(b"-----")
        certs = pkcs7.load_der_pkcs7_certificates(r.content)
    else:
        assert r.content.startswith(b"-----BEGIN PKCS7-----")
        certs = pkcs7.load_pem_pkcs7_certificates(r.content)
    leaf = scm.orders[ssl_id].cert
    assert leaf is not None
    assert set(certs) == {leaf, *ca.chain_for(leaf)}


def test_collect_unknown_format_and_unknown_id(api: Api, scm: ScmSimulator, ec_key: PrivateKey) -> None:
    ssl_id = api.enroll(ec_key)
    assert_error(api.collect(ssl_id, "x509XX"), 400, -126)
    assert_error(api.get(f"/api/ssl/v1/collect/{ssl_id}?format=pkcs12"), 400, -126)
    assert_error(api.collect(4242), 404, -5101)
    assert_error(api.get("/api/ssl/v1/4242"), 404, -5101)
    scm.set_defaults(not_found_code=-124)
    assert_error(api.get("/api/ssl/v1/4242"), 404, -124)


def test_crlf_knob(api: Api, scm: ScmSimulator, ec_key: PrivateKey) -> None:
    scm.set_defaults(issue_after_polls=0, crlf=True)
    r = api.collect(api.enroll(ec_key), "x509")
    assert b"\r\n" in r.content and len(_blocks(r.content)) == 3


def test_rotated_intermediate_issues_later_certs(bundle: str, ec_key: PrivateKey) -> None:
    ca = LocalCA.create("SCM Sim Test")  # own CA: this test rotates it
    own_bundle = Path(bundle).with_name("rotating.pem")
    own_bundle.write_bytes(ca.bundle_pem())
    cert, key = ca.issue_tls_server_cert()
    with ScmSimulator(ca, cert, key) as sim:
        assert isinstance(sim, ScmSimulator)
        sim.set_defaults(issue_after_polls=0)
        api = Api(sim, str(own_bundle))
        first = api.enroll(ec_key)
        api.collect(first)
        old_inter = ca.intermediate
        new_inter = ca.rotate_intermediate()
        second = api.enroll(ec_key)
        chain2 = _blocks(api.collect(second, "x509R").content)
        assert chain2[0].issuer == new_inter.subject and chain2[1] == new_inter
        chain1 = _blocks(api.collect(first, "x509R").content)
        assert chain1[1] == old_inter


def test_date_format_parameter(api: Api, scm: ScmSimulator, ec_key: PrivateKey) -> None:
    scm.clock = lambda: datetime(2031, 3, 4, 5, 6, 7, tzinfo=timezone.utc)
    ssl_id = api.enroll(ec_key)
    assert api.details(ssl_id)["requested"] == "03/04/2031"
    assert api.get(f"/api/ssl/v1/{ssl_id}?dateFormat=ISO").json()["requested"] == "2031-03-04"
    assert api.get(f"/api/ssl/v1/{ssl_id}?dateFormat=EU").json()["requested"] == "04/03/2031"


# ------------------------------------------------------------------------------------ modes


def test_needs_approval_mode(api: Api, scm: ScmSimulator, ec_key: PrivateKey) -> None:
    scm.set_defaults(mode="needs_approval", issue_after_polls=1)
    ssl_id = api.enroll(ec_key)
    for _ in range(5):
        assert_error(api.collect(ssl_id), 400, 0)
    assert api.details(ssl_id)["status"] == "Requested"
    r = api.post(f"/api/ssl/v1/approve/{ssl_id}", json={"message": "ok"})
    assert r.status_code == 204 and r.content == b""
    d = api.details(ssl_id)
    assert d["status"] == "Approved" and US_DATE.match(d["approved"])
    assert_error(api.post(f"/api/ssl/v1/approve/{ssl_id}", json={"message": "again"}), 400, -1112)
    assert_error(api.collect(ssl_id), 400, 0)
    assert api.collect(ssl_id).status_code == 200


def test_approve_hooks(api: Api, scm: ScmSimulator, ec_key: PrivateKey) -> None:
    scm.set_defaults(mode="needs_approval", issue_after_polls=0)
    a, b = api.enroll(ec_key), api.enroll(ec_key)
    scm.approve(a)
    assert api.collect(a).status_code == 200
    with pytest.raises(ValueError):
        scm.approve(a)
    r = requests.post(f"{scm.url}/_sim/approve/{b}", verify=api.verify, timeout=10)
    assert r.status_code == 204
    assert api.collect(b).status_code == 200
    assert requests.post(f"{scm.url}/_sim/approve/{b}", verify=api.verify, timeout=10).status_code == 400
    assert requests.post(f"{scm.url}/_sim/approve/999", verify=api.verify, timeout=10).status_code == 404


def test_declined_mode_and_hook(api: Api, scm: ScmSimulator, ec_key: PrivateKey) -> None:
    pending = api.enroll(ec_key)
    scm.set_defaults(mode="declined")
    declined = api.enroll(ec_key)
    d = api.details(declined)
    assert d["status"] == "Declined" and US_DATE.match(d["declined"])
    assert_error(api.collect(declined), 400, -1112)
    scm.decline(pending)
    assert api.details(pending)["status"] == "Declined"
    assert_error(api.collect(pending), 400, -1112)


def test_revoke_after_issue_mode(api: Api, scm: ScmSimulator, ec_key: PrivateKey) -> None:
    ssl_id = api.enroll(ec_key)
    scm.configure_order(ssl_id, mode="revoke_after_issue", issue_after_polls=0)
    assert_error(api.collect(ssl_id), 400, -110)
    assert api.details(ssl_id)["status"] == "Revoked"
    assert_error(api.collect(ssl_id), 400, -110)


def test_per_order_knobs(api: Api, scm: ScmSimulator, ec_key: PrivateKey) -> None:
    a, b = api.enroll(ec_key), api.enroll(ec_key)
    scm.configure_order(a, issue_after_polls=0)
    scm.configure_order(b, pending_code=-183)
    assert api.collect(a).status_code == 200
    assert_error(api.collect(b), 400, -183)
    with pytest.raises(ValueError):
        scm.configure_order(b, mode="sideways")
    with pytest.raises(KeyError):
        scm.configure_order(999, mode="auto")


def test_control_config_route(api: Api, scm: ScmSimulator, ec_key: PrivateKey) -> None:
    url = scm.url + "/_sim/config"
    r = requests.post(
        url, json={"pending_code": -1400, "issue_after_polls": 3}, verify=api.verify, timeout=10
    )
    assert r.status_code == 204
    cfg = requests.get(url, verify=api.verify, timeout=10).json()
    assert cfg["pending_code"] == -1400 and cfg["issue_after_polls"] == 3
    assert_error(api.collect(api.enroll(ec_key)), 400, -1400)
    assert requests.post(url, json={"no_such_knob": 1}, verify=api.verify, timeout=10).status_code == 400
    assert requests.post(url, json={"mode": "bogus"}, verify=api.verify, timeout=10).status_code == 400
    assert requests.post(url, json={"pending_code": -5}, verify=api.verify, timeout=10).status_code == 400
    orders = requests.get(scm.url + "/_sim/orders", verify=api.verify, timeout=10).json()
    assert orders[0]["sslId"] == 1001 and orders[0]["status"] in ("Requested", "Applied")


# ------------------------------------------------------------------------------------ renew


def _issued(api: Api, key: PrivateKey, **kw: Any) -> int:
    ssl_id = api.enroll(key, **kw)
    api.collect_issued(ssl_id)
    return ssl_id


def test_renew_by_id(api: Api, scm: ScmSimulator, ec_key: PrivateKey) -> None:
    ssl_id = _issued(api, ec_key, sans="x.example.com")
    assert_error(api.post(f"/api/ssl/v1/renewById/{ssl_id}", data=b""), 400, -1002)
    assert_error(api.post(f"/api/ssl/v1/renewById/{ssl_id}", json=""), 400, -1002)
    assert_error(api.post("/api/ssl/v1/renewById/4242", json={}), 404, -5101)
    r = api.post(f"/api/ssl/v1/renewById/{ssl_id}", json={})
    assert r.status_code == 200
    new_id = r.json()["sslId"]
    assert new_id != ssl_id
    old = api.details(ssl_id)
    assert old["renewed"] is True and old["status"] == "Issued" and US_DATE.match(old["renewedDate"])
    new = api.details(new_id)
    assert new["status"] == "Requested" and new["serialNumber"] == ""
    assert new["subjectAlternativeNames"] == old["subjectAlternativeNames"]
    leaf = x509.load_pem_x509_certificate(api.collect_issued(new_id).content)
    assert cert_matches_key(leaf, ec_key)  # original CSR reused
    assert api.details(new_id)["serialNumber"] != old["serialNumber"]


def test_renew_by_id_with_new_csr_and_rules(api: Api, scm: ScmSimulator, ec_key: PrivateKey) -> None:
    pending = api.enroll(ec_key)
    assert_error(api.post(f"/api/ssl/v1/renewById/{pending}", json={}), 400, -130)
    ssl_id = _issued(api, ec_key)
    new_key = generate_private_key(KeySpec("ECDSA", curve="P-384"))
    assert_error(api.post(f"/api/ssl/v1/renewById/{ssl_id}", json={"csr": "junk"}), 400, -10)
    csr = csr_to_pem(build_csr(new_key, "www.example.com", ["www.example.com"]))
    new_id = api.post(f"/api/ssl/v1/renewById/{ssl_id}", json={"csr": csr}).json()["sslId"]
    leaf = x509.load_pem_x509_certificate(api.collect_issued(new_id).content)
    assert cert_matches_key(leaf, new_key)
    assert api.details(new_id)["keyType"] == "EC - P-384"


def test_renew_by_renew_id(api: Api, scm: ScmSimulator, ec_key: PrivateKey) -> None:
    body = _enroll_body(ec_key)
    enrolled = api.post("/api/ssl/v1/enroll", json=body).json()
    assert_error(api.post(f"/api/ssl/v1/renew/{enrolled['renewId']}", json={}), 400, -130)
    api.collect_issued(enrolled["sslId"])
    r = api.post(f"/api/ssl/v1/renew/{enrolled['renewId']}", json={})
    assert r.status_code == 204 and r.content == b""
    assert scm.order_count() == 2
    assert scm.orders[enrolled["sslId"] + 1].renewal_of == enrolled["sslId"]
    assert api.post("/api/ssl/v1/renew/nope", json={}).status_code == 404


# ------------------------------------------------------------------------------------ replace


def test_replace_rules(api: Api, ec_key: PrivateKey) -> None:
    pending = api.enroll(ec_key)
    new_key = generate_private_key(KeySpec("ECDSA", curve="P-256"))
    csr = csr_to_pem(build_csr(new_key, "www.example.com", ["www.example.com"]))
    assert_error(api.post(f"/api/ssl/v1/replace/{pending}", json={"csr": csr, "reason": "rekey"}), 400, -130)
    ssl_id = _issued(api, ec_key)
    url = f"/api/ssl/v1/replace/{ssl_id}"
    assert_error(api.post(url, json={"csr": csr}), 400, -7)
    assert_error(api.post(url, json={"csr": csr, "reason": ""}), 400, -7)
    assert_error(api.post(url, json={"reason": "rekey"}), 400, -7)
    assert_error(
        api.post(url, json={"csr": csr, "reason": "rekey", "subjectAlternativeNames": "a,b"}), 400, -1002
    )
    assert_error(api.post(url, json=""), 400, -1002)
    assert_error(api.post(url, json={"csr": "bad", "reason": "rekey"}), 400, -10)
    assert api.details(ssl_id)["status"] == "Issued"


def test_replace_reissues_same_id(api: Api, scm: ScmSimulator, ec_key: PrivateKey) -> None:
    ssl_id = _issued(api, ec_key)
    old_serial = api.details(ssl_id)["serialNumber"]
    new_key = generate_private_key(KeySpec("ECDSA", curve="P-256"))
    csr = csr_to_pem(build_csr(new_key, "www.example.com", ["www.example.com"]))
    r = api.post(
        f"/api/ssl/v1/replace/{ssl_id}",
        json={"csr": csr, "reason": "key rollover", "subjectAlternativeNames": ["new.example.com"]},
    )
    assert r.status_code == 204 and r.content == b""
    d = api.details(ssl_id)
    assert d["status"] == "Requested" and d["serialNumber"] == "" and US_DATE.match(d["replaced"])
    assert d["subjectAlternativeNames"] == ["www.example.com", "new.example.com"]
    assert_error(api.collect(ssl_id), 400, 0)
    leaf = x509.load_pem_x509_certificate(api.collect_issued(ssl_id).content)
    assert cert_matches_key(leaf, new_key) and not cert_matches_key(leaf, ec_key)
    assert api.details(ssl_id)["serialNumber"] not in ("", old_serial)
    assert scm.order_count() == 1


# ------------------------------------------------------------------------------------ revoke


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"reasonCode": 4}, -7),
        ({"reason": "", "reasonCode": 4}, -7),
        ({"reason": "x" * 513, "reasonCode": 4}, -1601),
        ({"reason": "superseded", "reasonCode": 2}, -1601),
        ({"reason": "superseded", "reasonCode": "two"}, -1601),
        ({"reason": "superseded", "reasonCode": 6}, -1601),
        ({"reason": "superseded"}, -7),
        ("", -1002),
    ],
)
def test_revoke_validation(api: Api, ec_key: PrivateKey, body: Any, code: int) -> None:
    ssl_id = _issued(api, ec_key)
    assert_error(api.post(f"/api/ssl/v1/revoke/{ssl_id}", json=body), 400, code)
    assert api.details(ssl_id)["status"] == "Issued"


def test_revoke_lifecycle(api: Api, scm: ScmSimulator, ec_key: PrivateKey) -> None:
    pending = api.enroll(ec_key)
    body = {"reason": "superseded", "reasonCode": 4}
    assert_error(api.post(f"/api/ssl/v1/revoke/{pending}", json=body), 400, -102)
    ssl_id = _issued(api, ec_key)
    r = api.post(f"/api/ssl/v1/revoke/{ssl_id}", json={"reason": "superseded", "reasonCode": "4"})
    assert r.status_code == 204 and r.content == b""
    d = api.details(ssl_id)
    assert d["status"] == "Revoked" and d["reasonCode"] == 4 and US_DATE.match(d["revoked"])
    assert_error(api.collect(ssl_id), 400, -110)
    assert_error(api.post(f"/api/ssl/v1/revoke/{ssl_id}", json=body), 400, -159)
    scm.set_defaults(already_revoked_code=-102)
    assert_error(api.post(f"/api/ssl/v1/revoke/{ssl_id}", json=body), 400, -102)
    assert_error(api.post("/api/ssl/v1/revoke/4242", json=body), 404, -5101)


def test_revoke_by_serial(api: Api, ec_key: PrivateKey) -> None:
    ssl_id = _issued(api, ec_key)
    serial = api.details(ssl_id)["serialNumber"]
    body = {"reason": "key compromise", "reasonCode": 1}
    assert api.post("/api/ssl/v1/revoke/serial/AB:CD", json=body).status_code == 404
    assert api.post(f"/api/ssl/v1/revoke/serial/{serial}", json=body).status_code == 204
    assert api.details(ssl_id)["status"] == "Revoked"
    assert_error(api.post(f"/api/ssl/v1/revoke/serial/{serial.replace(':', '')}", json=body), 400, -159)


# ------------------------------------------------------------------------------------ list


def test_list_paging_filters_and_count(api: Api, scm: ScmSimulator, ec_key: PrivateKey) -> None:
    a = _issued(api, ec_key)
    b = api.enroll(ec_key, "other.example.com")
    c = api.enroll(ec_key)
    r = api.get("/api/ssl/v1?size=2&position=0")
    assert r.headers["X-Total-Count"] == "3"
    assert [i["sslId"] for i in r.json()] == [a, b]
    assert [i["sslId"] for i in api.get("/api/ssl/v1?size=2&position=2").json()] == [c]
    assert [i["sslId"] for i in api.get("/api/ssl/v1?commonName=other.example.com").json()] == [b]
    issued = api.get("/api/ssl/v1?status=Issued").json()
    assert [i["sslId"] for i in issued] == [a] and issued[0]["serialNumber"]
    assert "serialNumber" not in api.get("/api/ssl/v1?commonName=other.example.com").json()[0]
    serial = issued[0]["serialNumber"]
    assert [i["sslId"] for i in api.get(f"/api/ssl/v1?serialNumber={serial}").json()] == [a]
    r = api.get("/api/ssl/v1?size=1000&orgId=1234")
    assert r.status_code == 200 and len(r.json()) == 3
    head = api.call("HEAD", "/api/ssl/v1?status=Issued")
    assert head.status_code == 200 and head.headers["X-Total-Count"] == "1" and head.content == b""
    assert_error(api.get("/api/ssl/v1?size=abc"), 400, -1601)


def test_list_size_is_capped_at_200(api: Api, scm: ScmSimulator, ec_key: PrivateKey) -> None:
    assert api.post("/api/ssl/v1/enroll", json=_enroll_body(ec_key)).status_code == 200
    template = scm.orders[1001]
    with scm.lock:  # 204 more records straight into the store (205 HTTP enrolls would be slow)
        for n in range(1002, 1206):
            scm._orders[n] = replace(template, ssl_id=n)
    r = api.get("/api/ssl/v1?size=500")
    assert len(r.json()) == 200 and r.headers["X-Total-Count"] == "205"


# ------------------------------------------------------------------------------------ OAuth


def _token(api: Api, **form: str) -> requests.Response:
    return requests.post(api.sim.token_url, data=form, verify=api.verify, timeout=10)


def test_oauth_token_endpoint_errors(api: Api, scm: ScmSimulator) -> None:
    scm.add_oauth_client("cid", "s3cret")
    r = _token(api, grant_type="client_credentials", client_id="cid", client_secret="wrong")
    assert r.status_code == 401 and r.json()["error"] == "unauthorized_client"
    r = _token(api, grant_type="client_credentials", client_id="nobody", client_secret="s3cret")
    assert r.status_code == 401 and r.json()["error"] == "invalid_client"
    r = _token(api, grant_type="password", client_id="cid", client_secret="s3cret")
    assert r.status_code == 400 and r.json()["error"] == "unsupported_grant_type"
    r = _token(api, client_id="cid", client_secret="s3cret")
    assert r.status_code == 400 and r.json()["error"] == "invalid_request"
    assert "s3cret" not in json.dumps([x.to_dict() for x in scm.requests])
    assert "wrong" not in json.dumps([x.to_dict() for x in scm.requests])


def test_oauth_bearer_and_expiry(api: Api, scm: ScmSimulator) -> None:
    now = [datetime(2030, 6, 1, tzinfo=timezone.utc)]
    scm.clock = lambda: now[0]
    scm.add_oauth_client("cid", "s3cret")
    scm.set_defaults(token_lifetime=2)
    r = _token(api, grant_type="client_credentials", client_id="cid", client_secret="s3cret")
    assert r.status_code == 200
    tok = r.json()
    assert tok["expires_in"] == 2 and tok["token_type"] == "Bearer"
    parts = tok["access_token"].split(".")
    assert len(parts) == 3
    claims = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
    assert claims["exp"] - claims["iat"] == 2 and claims["azp"] == "cid"
    bearer = {"Authorization": f"Bearer {tok['access_token']}"}
    assert api.get("/api/ssl/v2/types", auth=False, headers=bearer).status_code == 200
    assert api.get("/api/ssl/v1/types", auth=False, headers=bearer).status_code == 200
    now[0] += timedelta(seconds=2)
    r = api.get("/api/ssl/v2/types", auth=False, headers=bearer)
    assert r.status_code == 401
    www = r.headers["WWW-Authenticate"]
    assert www.startswith("Bearer ") and f'authorization_uri="{scm.token_url}"' in www
    r = api.get("/api/ssl/v2/types", auth=False, headers={"Authorization": "Bearer not.a.token"})
    assert r.status_code == 401 and "authorization_uri" in r.headers["WWW-Authenticate"]
    # header auth still works, and its 401s now advertise the token server too
    assert api.get("/api/ssl/v1/types").status_code == 200
    assert "authorization_uri" in api.get("/api/ssl/v1/types", auth=False).headers["WWW-Authenticate"]


def test_oauth_basic_client_auth(api: Api, scm: ScmSimulator) -> None:
    scm.add_oauth_client("cid", "s3cret")
    r = requests.post(
        scm.token_url,
        data={"grant_type": "client_credentials"},
        auth=("cid", "s3cret"),
        verify=api.verify,
        timeout=10,
    )
    assert r.status_code == 200 and r.json()["access_token"]


def test_oauth_enroll_records_requester(api: Api, scm: ScmSimulator, ec_key: PrivateKey) -> None:
    scm.add_oauth_client("cid", "s3cret")
    tok = _token(api, grant_type="client_credentials", client_id="cid", client_secret="s3cret").json()
    r = api.post(
        "/api/ssl/v2/enroll",
        auth=False,
        headers={"Authorization": f"Bearer {tok['access_token']}"},
        json=_enroll_body(ec_key),
    )
    assert r.status_code == 200
    assert api.details(r.json()["sslId"])["requester"] == "cid"


# ------------------------------------------------------------------------------------ /private/api


def test_private_api_client_certificate(api: Api, client_pki: dict[str, Any]) -> None:
    nopw = {"login": "api-admin", "customerUri": "sandbox"}
    url = api.sim.url + "/private/api/ssl/v1/types"
    r = requests.get(url, headers=nopw, cert=client_pki["good"], verify=api.verify, timeout=10)
    assert r.status_code == 200 and r.json()[0]["id"] == 567
    # wrong login for the certificate's CN
    r = requests.get(
        url, headers={**nopw, "login": "someone"}, cert=client_pki["good"], verify=api.verify, timeout=10
    )
    assert_error(r, 401, -16)
    # no certificate (even with the right password)
    r = requests.get(url, headers=HEADERS, verify=api.verify, timeout=10)
    assert_error(r, 401, -16)
    # wrong customer URI
    r = requests.get(
        url, headers={**nopw, "customerUri": "x"}, cert=client_pki["good"], verify=api.verify, timeout=10
    )
    assert_error(r, 401, -16)
    # a certificate from a CA the server does not trust fails the TLS handshake
    with pytest.raises(requests.exceptions.SSLError):
        requests.get(url, headers=nopw, cert=client_pki["untrusted"], verify=api.verify, timeout=10)
    # /api (not /private) still wants the password
    r = requests.get(
        api.sim.url + "/api/ssl/v1/types",
        headers=nopw,
        cert=client_pki["good"],
        verify=api.verify,
        timeout=10,
    )
    assert_error(r, 401, -16)


def test_private_api_without_client_ca(ca: LocalCA, bundle: str, client_pki: dict[str, Any]) -> None:
    cert, key = ca.issue_tls_server_cert()
    with ScmSimulator(ca, cert, key) as sim:
        r = requests.get(
            sim.url + "/private/api/ssl/v1/types",
            headers={"login": "api-admin", "customerUri": "sandbox"},
            verify=bundle,
            timeout=10,
        )
        assert_error(r, 401, -16)


# ------------------------------------------------------------------------------------ faults


def test_inject_transient(api: Api, scm: ScmSimulator, ec_key: PrivateKey) -> None:
    scm.inject_transient(r"/ssl/v1/enroll$")
    r = api.post("/api/ssl/v1/enroll", json=_enroll_body(ec_key))
    assert_error(r, 503, -195)
    assert api.post("/api/ssl/v1/enroll", json=_enroll_body(ec_key)).status_code == 200
    scm.inject_transient(r"/ssl/v1/collect/", code=-140, times=2)
    ssl_id = api.enroll(ec_key)
    assert_error(api.collect(ssl_id), 500, -140)
    assert_error(api.collect(ssl_id), 500, -140)
    assert_error(api.collect(ssl_id), 400, 0)


def test_generic_faults(api: Api, scm: ScmSimulator) -> None:
    scm.add_fault(
        r"/ssl/v1/types",
        status=429,
        json_body={"code": 429, "description": "Rate limited"},
        headers={"Retry-After": "3"},
        after=1,
    )
    assert api.get("/api/ssl/v1/types").status_code == 200
    r = api.get("/api/ssl/v1/types")
    assert r.status_code == 429 and r.headers["Retry-After"] == "3"
    scm.add_fault(r"/ssl/v1/customFields", reset=True)
    with pytest.raises(requests.exceptions.ConnectionError):
        api.get("/api/ssl/v1/customFields")
    assert api.get("/api/ssl/v1/customFields").status_code == 200


def test_enrollment_csr_base64_der_also_accepted(api: Api, ec_key: PrivateKey) -> None:
    # SCM's CSR pattern allows bare base64; the simulator accepts it like PEM
    body = _enroll_body(ec_key, csr=csr_to_der_b64(build_csr(ec_key, "b64.example.com", [])))
    r = api.post("/api/ssl/v1/enroll", json=body)
    assert r.status_code == 200
    assert api.details(r.json()["sslId"])["commonName"] == "b64.example.com"


def test_reset_restores_initial_state(api: Api, scm: ScmSimulator, ec_key: PrivateKey) -> None:
    api.enroll(ec_key)
    scm.set_defaults(pending_code=-183, mandatory_custom_fields=["Cost Center"])
    scm.add_oauth_client("cid", "s3cret")
    r = requests.post(scm.url + "/_sim/reset", verify=api.verify, timeout=10)
    assert r.status_code == 204
    assert scm.order_count() == 0 and scm.settings.pending_code == 0 and not scm.oauth.clients
    assert all(not f["mandatory"] for f in scm.custom_fields)
    assert api.enroll(ec_key) == 1001
