"""The simulated REST Enrollment API + OAuth token server, driven with plain ``requests``."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.serialization import pkcs7
from cryptography.x509.oid import NameOID

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
from citrix_connector.sandbox.scm_enrollment import EnrollmentSimulator

CID, SECRET = "rest-account-1", "rest-secret-1"


# ------------------------------------------------------------------------------------ fixtures


@pytest.fixture(scope="module")
def ca() -> LocalCA:
    return LocalCA.create("Enrollment Sim Test")


@pytest.fixture(scope="module")
def bundle(ca: LocalCA, tmp_path_factory: pytest.TempPathFactory) -> str:
    path = tmp_path_factory.mktemp("enroll-ca") / "bundle.pem"
    path.write_bytes(ca.bundle_pem())
    return str(path)


@pytest.fixture(scope="module")
def ec_key() -> PrivateKey:
    return generate_private_key(KeySpec("ECDSA", curve="P-256"))


@pytest.fixture(scope="module")
def server(ca: LocalCA) -> Iterator[EnrollmentSimulator]:
    cert, key = ca.issue_tls_server_cert()
    sim = EnrollmentSimulator(ca, cert, key)
    sim.start()
    try:
        yield sim
    finally:
        sim.stop()


@pytest.fixture
def sim(server: EnrollmentSimulator) -> EnrollmentSimulator:
    server.reset()
    server.add_account(CID, SECRET)
    return server


class Client:
    def __init__(self, sim: EnrollmentSimulator, verify: str, cid: str = CID, secret: str = SECRET) -> None:
        self.sim, self.verify, self.cid, self.secret = sim, verify, cid, secret
        self.session = requests.Session()
        self._token: str | None = None

    def token(self) -> str:
        r = self.session.post(
            self.sim.token_url,
            data={"grant_type": "client_credentials", "client_id": self.cid, "client_secret": self.secret},
            verify=self.verify,
            timeout=10,
        )
        assert r.status_code == 200, r.text
        self._token = str(r.json()["access_token"])
        return self._token

    def call(self, method: str, path: str, *, bearer: bool = True, **kw: Any) -> requests.Response:
        headers = dict(kw.pop("headers", {}))
        if bearer:
            headers["Authorization"] = f"Bearer {self._token or self.token()}"
        return self.session.request(
            method, self.sim.url + path, headers=headers, verify=self.verify, timeout=10, **kw
        )

    def enroll(self, key: PrivateKey, cn: str = "www.example.com", **body: Any) -> str:
        payload = {"csr": csr_to_der_b64(build_csr(key, cn, [cn])), **body}
        r = self.call("POST", "/api/v1/certificates", json=payload)
        assert r.status_code == 200, r.text
        cert_id = r.json()["certId"]
        assert isinstance(cert_id, str)
        return cert_id

    def download(self, cert_id: str) -> requests.Response:
        return self.call("GET", f"/api/v1/certificates/{cert_id}")

    def download_issued(self, cert_id: str, limit: int = 10) -> requests.Response:
        for _ in range(limit):
            r = self.download(cert_id)
            if r.status_code == 200:
                return r
            assert r.status_code == 404 and r.json()["code"] in (-103, -109), r.text
        raise AssertionError("never issued")

    def status(self, cert_id: str) -> dict[str, Any]:
        r = self.call("GET", f"/api/v1/certificates/{cert_id}/status")
        assert r.status_code == 200, r.text
        return dict(r.json())


@pytest.fixture
def client(sim: EnrollmentSimulator, bundle: str) -> Client:
    return Client(sim, bundle)


def assert_error(r: requests.Response, status: int, code: int) -> None:
    assert r.status_code == status, (r.status_code, r.text)
    body = r.json()
    assert body["code"] == code and body["description"], body


def _csr_b64(key: PrivateKey, cn: str = "www.example.com") -> str:
    return csr_to_der_b64(build_csr(key, cn, [cn]))


def _raw_csr_b64(key: Any, cn: str = "odd.example.com") -> str:
    """A CSR for key types build_csr refuses (RSA 1024, P-521, Ed25519)."""
    builder = x509.CertificateSigningRequestBuilder().subject_name(
        x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    )
    algorithm = None if isinstance(key, ed25519.Ed25519PrivateKey) else hashes.SHA256()
    csr = builder.sign(key, algorithm)
    return base64.b64encode(csr.public_bytes(serialization.Encoding.DER)).decode()


# ------------------------------------------------------------------------------------ token server


def test_token_success_is_jwt_shaped(client: Client, sim: EnrollmentSimulator) -> None:
    r = requests.post(
        sim.token_url,
        data={"grant_type": "client_credentials", "client_id": CID, "client_secret": SECRET},
        verify=client.verify,
        timeout=10,
    )
    assert r.status_code == 200
    tok = r.json()
    assert tok["expires_in"] == 300 and tok["token_type"] == "Bearer"
    header, payload, sig = tok["access_token"].split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    assert claims["azp"] == CID and claims["exp"] - claims["iat"] == 300 and sig
    assert sim.tokens_issued == 1


@pytest.mark.parametrize(
    ("form", "status", "err"),
    [
        (
            {"grant_type": "client_credentials", "client_id": CID, "client_secret": "nope"},
            401,
            "unauthorized_client",
        ),
        (
            {"grant_type": "client_credentials", "client_id": "ghost", "client_secret": SECRET},
            401,
            "invalid_client",
        ),
        (
            {"grant_type": "password", "client_id": CID, "client_secret": SECRET},
            400,
            "unsupported_grant_type",
        ),
        ({"client_id": CID, "client_secret": SECRET}, 400, "invalid_request"),
        ({"grant_type": "client_credentials", "client_secret": SECRET}, 400, "invalid_client"),
    ],
)
def test_token_errors(
    client: Client, sim: EnrollmentSimulator, form: dict[str, str], status: int, err: str
) -> None:
    r = requests.post(sim.token_url, data=form, verify=client.verify, timeout=10)
    assert r.status_code == status and r.json()["error"] == err and r.json()["error_description"]


def test_client_secret_never_logged(client: Client, sim: EnrollmentSimulator, ec_key: PrivateKey) -> None:
    client.enroll(ec_key)
    requests.post(
        sim.token_url,
        data={"grant_type": "client_credentials", "client_id": CID, "client_secret": "wrong-secret-xyz"},
        verify=client.verify,
        timeout=10,
    )
    requests.post(
        sim.token_url,
        data={"grant_type": "client_credentials"},
        auth=(CID, SECRET),
        verify=client.verify,
        timeout=10,
    )
    dumped = json.dumps([r.to_dict() for r in sim.requests])
    assert SECRET not in dumped and "wrong-secret-xyz" not in dumped
    over_http = requests.get(sim.url + "/_sim/requests", verify=client.verify, timeout=10).text
    assert SECRET not in over_http and "client_secret=***" in over_http


def test_rotate_secret(client: Client, sim: EnrollmentSimulator) -> None:
    old_token = client.token()
    sim.rotate_secret(CID, "rotated")
    r = requests.post(
        sim.token_url,
        data={"grant_type": "client_credentials", "client_id": CID, "client_secret": SECRET},
        verify=client.verify,
        timeout=10,
    )
    assert r.status_code == 401
    assert Client(sim, client.verify, secret="rotated").token()
    # an already issued token stays valid until it expires (Keycloak behaviour)
    r = requests.get(
        sim.url + "/api/v1/certificates/9999/status",
        headers={"Authorization": f"Bearer {old_token}"},
        verify=client.verify,
        timeout=10,
    )
    assert r.status_code == 404


# ------------------------------------------------------------------------------------ bearer


def test_bearer_required_everywhere(client: Client, sim: EnrollmentSimulator, ec_key: PrivateKey) -> None:
    cert_id = client.enroll(ec_key)
    for method, path in [
        ("POST", "/api/v1/certificates"),
        ("GET", f"/api/v1/certificates/{cert_id}"),
        ("GET", f"/api/v1/certificates/{cert_id}/status"),
        ("POST", f"/api/v1/certificates/{cert_id}/dcv-recheck"),
        ("POST", f"/api/v1/certificates/{cert_id}/renew"),
        ("POST", f"/api/v1/certificates/{cert_id}/replace"),
        ("DELETE", f"/api/v1/certificates/{cert_id}"),
    ]:
        r = client.call(method, path, bearer=False, json={})
        assert r.status_code == 401, (method, path)
        assert r.headers["WWW-Authenticate"] == (
            f'Bearer realm="apiclients", authorization_uri="{sim.token_url}"'
        )
    # header login (the admin API's scheme) is not accepted here
    r = client.call(
        "GET",
        f"/api/v1/certificates/{cert_id}",
        bearer=False,
        headers={"login": "api-admin", "password": "x", "customerUri": "sandbox"},
    )
    assert r.status_code == 401
    r = client.call(
        "GET",
        f"/api/v1/certificates/{cert_id}",
        bearer=False,
        headers={"Authorization": "Bearer forged.token.value"},
    )
    assert r.status_code == 401


def test_www_authenticate_knob(client: Client, sim: EnrollmentSimulator) -> None:
    sim.www_authenticate = "unquoted"
    r = client.call("GET", "/api/v1/certificates/1/status", bearer=False)
    assert r.headers["WWW-Authenticate"] == f"Bearer realm=apiclients, authorization_uri={sim.token_url}"
    sim.set_defaults(www_authenticate=None)
    r = client.call("GET", "/api/v1/certificates/1/status", bearer=False)
    assert r.status_code == 401 and "WWW-Authenticate" not in r.headers


def test_token_expiry_with_injected_clock(client: Client, sim: EnrollmentSimulator) -> None:
    now = [datetime(2030, 1, 1, tzinfo=timezone.utc)]
    sim.clock = lambda: now[0]
    sim.token_lifetime = 2
    token = client.token()
    assert client.call("GET", "/api/v1/certificates/1/status").status_code == 404
    now[0] += timedelta(seconds=1)
    assert client.call("GET", "/api/v1/certificates/1/status").status_code == 404
    now[0] += timedelta(seconds=1)
    r = client.call("GET", "/api/v1/certificates/1/status")
    assert r.status_code == 401 and "authorization_uri" in r.headers["WWW-Authenticate"]
    assert client.token() != token
    assert client.call("GET", "/api/v1/certificates/1/status").status_code == 404
    assert sim.tokens_issued == 2


def test_routing_errors(client: Client) -> None:
    assert client.call("GET", "/api/v2/certificates").status_code == 404
    assert client.call("PUT", "/api/v1/certificates/1").status_code == 405
    assert client.call("GET", "/api/v1/certificates").status_code == 405  # no list in this API


# ------------------------------------------------------------------------------------ enroll


def test_enroll_returns_string_cert_id(client: Client, ec_key: PrivateKey) -> None:
    assert client.enroll(ec_key) == "5001"
    assert client.enroll(ec_key) == "5002"


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"subjAltNames": "a.example.com,b.example.com"}, -1002),
        ({"subjAltNames": [1, 2]}, -1002),
        ({"csr": None}, -7),
        ({"csr": ""}, -7),
        ({"csr": 12}, -1002),
        ({"csr": "not base64!"}, -10),
        ({"csr": "QUJDRA=="}, -10),  # base64, but not a CSR
        ({"customFields": [{"name": "x", "value": "y"}]}, -1002),
        ({"comments": "x" * 1025}, -1601),
        ({"productId": 9999}, -39),
        ({"productId": "abc"}, -1002),
    ],
)
def test_enroll_validations(client: Client, ec_key: PrivateKey, body: dict[str, Any], code: int) -> None:
    payload = {"csr": _csr_b64(ec_key), **body}
    payload = {k: v for k, v in payload.items() if v is not None}
    assert_error(client.call("POST", "/api/v1/certificates", json=payload), 400, code)
    assert client.sim.order_count() == 0


@pytest.mark.parametrize("raw", [b"", b"[]", b'"csr"', b"{oops"])
def test_enroll_non_object_body(client: Client, raw: bytes) -> None:
    r = client.call("POST", "/api/v1/certificates", data=raw, headers={"Content-Type": "application/json"})
    assert_error(r, 400, -1002)


def test_strict_csr_rejects_pem_and_whitespace(
    client: Client, sim: EnrollmentSimulator, ec_key: PrivateKey
) -> None:
    csr = build_csr(ec_key, "www.example.com", ["www.example.com"])
    pem = csr_to_pem(csr)
    b64 = csr_to_der_b64(csr)
    wrapped = "\n".join(b64[i : i + 64] for i in range(0, len(b64), 64))
    for value in (pem, wrapped, b64 + "\n"):
        assert_error(client.call("POST", "/api/v1/certificates", json={"csr": value}), 400, -10)
    sim.set_defaults(strict_csr=False)
    for value in (pem, wrapped):
        assert client.call("POST", "/api/v1/certificates", json={"csr": value}).status_code == 200


def test_csr_with_bad_signature(client: Client, ec_key: PrivateKey) -> None:
    der = bytearray(base64.b64decode(_csr_b64(ec_key)))
    der[-5] ^= 0x01  # inside the signature
    r = client.call("POST", "/api/v1/certificates", json={"csr": base64.b64encode(bytes(der)).decode()})
    assert r.status_code == 400 and r.json()["code"] in (-138, -10)


@pytest.mark.parametrize(
    ("make_key", "code"),
    [
        (lambda: rsa.generate_private_key(public_exponent=65537, key_size=1024), -13),
        (lambda: ec.generate_private_key(ec.SECP521R1()), -13),
        (lambda: ed25519.Ed25519PrivateKey.generate(), -11),
    ],
)
def test_enroll_key_types(client: Client, make_key: Any, code: int) -> None:
    r = client.call("POST", "/api/v1/certificates", json={"csr": _raw_csr_b64(make_key())})
    assert_error(r, 400, code)


def test_enroll_accepts_supported_key_types(client: Client) -> None:
    for spec in (KeySpec("RSA", size=2048), KeySpec("ECDSA", curve="P-384")):
        assert client.enroll(generate_private_key(spec))


def test_product_id_knob(client: Client, sim: EnrollmentSimulator, ec_key: PrivateKey) -> None:
    assert client.enroll(ec_key, productId=2001)
    sim.set_defaults(require_product_id=True)
    assert_error(client.call("POST", "/api/v1/certificates", json={"csr": _csr_b64(ec_key)}), 400, -7)
    assert client.enroll(ec_key, productId="2001")


def test_mandatory_custom_fields(client: Client, sim: EnrollmentSimulator, ec_key: PrivateKey) -> None:
    sim.set_defaults(mandatory_custom_fields=["Cost Center"])
    assert_error(client.call("POST", "/api/v1/certificates", json={"csr": _csr_b64(ec_key)}), 400, -62)
    cert_id = client.enroll(ec_key, customFields={"Cost Center": "42"})
    assert sim.orders[cert_id].custom_fields == {"Cost Center": "42"}


@pytest.mark.parametrize(("style", "expected"), [("number", {"certId": 5001}), ("id_key", {"id": "5001"})])
def test_cert_id_style(
    client: Client, sim: EnrollmentSimulator, ec_key: PrivateKey, style: str, expected: dict[str, Any]
) -> None:
    sim.set_defaults(cert_id_style=style)
    r = client.call("POST", "/api/v1/certificates", json={"csr": _csr_b64(ec_key)})
    assert r.json() == expected


# ------------------------------------------------------------------------------------ download


def test_pending_codes_alternate_then_issue(
    client: Client, sim: EnrollmentSimulator, ca: LocalCA, ec_key: PrivateKey
) -> None:
    cert_id = client.enroll(ec_key, "dl.example.com", subjAltNames=["alt.example.com"])
    assert client.status(cert_id)["status"] == "Applied"
    assert_error(client.download(cert_id), 404, -103)
    assert_error(client.download(cert_id), 404, -109)
    r = client.download(cert_id)
    assert r.status_code == 200
    assert r.headers["Content-Type"] == "application/x-pem-file"
    certs = x509.load_pem_x509_certificates(r.content)
    leaf = certs[0]
    assert certs == [leaf, *ca.chain_for(leaf)]  # leaf-first, then issuing CA, then root
    assert cert_matches_key(leaf, ec_key)
    names = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert set(names.get_values_for_type(x509.DNSName)) == {"dl.example.com", "alt.example.com"}
    assert (leaf.not_valid_after_utc - leaf.not_valid_before_utc).days == 365
    assert client.status(cert_id) == {"status": "Issued", "dcvInfo": {"status": "VALIDATED"}}


def test_pending_codes_knob(client: Client, sim: EnrollmentSimulator, ec_key: PrivateKey) -> None:
    sim.set_defaults(pending_codes=[-109], issue_after_polls=3)
    cert_id = client.enroll(ec_key)
    for _ in range(3):
        assert_error(client.download(cert_id), 404, -109)
    assert client.download(cert_id).status_code == 200


@pytest.mark.parametrize(
    ("order", "crlf"), [("root-first", False), ("leaf-only", False), ("leaf-first", True)]
)
def test_download_order_and_crlf(
    client: Client, sim: EnrollmentSimulator, ca: LocalCA, ec_key: PrivateKey, order: str, crlf: bool
) -> None:
    sim.set_defaults(download_order=order, crlf=crlf, issue_after_polls=0)
    cert_id = client.enroll(ec_key)
    r = client.download(cert_id)
    certs = x509.load_pem_x509_certificates(r.content)
    leaf = sim.orders[cert_id].cert
    assert leaf is not None
    inter, root = ca.chain_for(leaf)
    expected = {"root-first": [root, inter, leaf], "leaf-only": [leaf], "leaf-first": [leaf, inter, root]}
    assert certs == expected[order]
    assert (b"\r\n" in r.content) is crlf


def test_download_pkcs7(client: Client, sim: EnrollmentSimulator, ec_key: PrivateKey) -> None:
    sim.pkcs7 = True
    sim.issue_after_polls = 0
    cert_id = client.enroll(ec_key)
    r = client.download(cert_id)
    assert r.content.startswith(b"-----BEGIN PKCS7-----")
    certs = pkcs7.load_pem_pkcs7_certificates(r.content)
    assert cert_matches_key(certs[0], ec_key) and len(certs) == 3


def test_account_term(client: Client, sim: EnrollmentSimulator, bundle: str, ec_key: PrivateKey) -> None:
    sim.add_account("long", "s", term=730)
    other = Client(sim, bundle, "long", "s")
    cert_id = other.enroll(ec_key)
    leaf = x509.load_pem_x509_certificate(other.download_issued(cert_id).content)
    assert (leaf.not_valid_after_utc - leaf.not_valid_before_utc).days == 730


def test_unknown_and_foreign_ids(
    client: Client, sim: EnrollmentSimulator, bundle: str, ec_key: PrivateKey
) -> None:
    assert_error(client.download("424242"), 404, -124)
    assert_error(client.call("GET", "/api/v1/certificates/424242/status"), 404, -124)
    assert_error(client.call("POST", "/api/v1/certificates/424242/renew", json={}), 404, -124)
    sim.add_account("other", "s2")
    theirs = Client(sim, bundle, "other", "s2").enroll(ec_key)
    assert_error(client.download(theirs), 404, -124)
    sim.set_defaults(not_found_code=-5101)
    assert_error(client.download("424242"), 404, -5101)


def test_issue_after_seconds(client: Client, sim: EnrollmentSimulator, ec_key: PrivateKey) -> None:
    now = [datetime(2030, 5, 1, tzinfo=timezone.utc)]
    sim.clock = lambda: now[0]
    sim.set_defaults(issue_after_polls=None, issue_after_seconds=120)
    cert_id = client.enroll(ec_key)
    for _ in range(4):
        assert client.download(cert_id).status_code == 404
    now[0] += timedelta(seconds=120)
    assert client.status(cert_id)["status"] == "Issued"
    leaf = x509.load_pem_x509_certificate(client.download(cert_id).content)
    assert leaf.not_valid_before_utc == now[0]


# ------------------------------------------------------------------------------------ modes


def test_needs_approval_account(
    client: Client, sim: EnrollmentSimulator, bundle: str, ec_key: PrivateKey
) -> None:
    sim.add_account("manual", "s", auto_approve=False)
    manual = Client(sim, bundle, "manual", "s")
    a, b = manual.enroll(ec_key), manual.enroll(ec_key)
    for _ in range(5):
        assert manual.download(a).status_code == 404
    assert manual.status(a)["status"] == "Requested"
    sim.approve(a)
    assert manual.status(a)["status"] == "Applied"
    assert manual.download_issued(a).status_code == 200
    with pytest.raises(ValueError):
        sim.approve(a)
    assert requests.post(f"{sim.url}/_sim/approve/{b}", verify=bundle, timeout=10).status_code == 204
    assert manual.download_issued(b).status_code == 200


def test_declined(client: Client, sim: EnrollmentSimulator, ec_key: PrivateKey) -> None:
    pending = client.enroll(ec_key)
    sim.set_defaults(mode="declined")
    declined = client.enroll(ec_key)
    assert client.status(declined)["status"] == "Declined"
    assert_error(client.download(declined), 400, -1112)
    sim.decline(pending)
    assert_error(client.download(pending), 400, -1112)


def test_revoke_after_issue_mode(client: Client, sim: EnrollmentSimulator, ec_key: PrivateKey) -> None:
    cert_id = client.enroll(ec_key)
    sim.configure_order(cert_id, mode="revoke_after_issue", issue_after_polls=0)
    assert_error(client.download(cert_id), 400, -110)
    assert client.status(cert_id)["status"] == "Revoked"


def test_dcv_pending_and_recheck(client: Client, sim: EnrollmentSimulator, ec_key: PrivateKey) -> None:
    sim.set_defaults(mode="dcv_pending", issue_after_polls=0)
    cert_id = client.enroll(ec_key)
    for _ in range(3):
        assert client.download(cert_id).status_code == 404
    st = client.status(cert_id)
    assert st["status"] == "Applied" and st["dcvInfo"]["status"] == "NOT_VALIDATED"
    r = client.call("POST", f"/api/v1/certificates/{cert_id}/dcv-recheck")
    assert r.status_code == 202 and r.content == b""
    assert client.download(cert_id).status_code == 200


# ------------------------------------------------------------------------------------ renew


def test_renew(client: Client, sim: EnrollmentSimulator, ec_key: PrivateKey) -> None:
    cert_id = client.enroll(ec_key, subjAltNames=["x.example.com"])
    assert_error(client.call("POST", f"/api/v1/certificates/{cert_id}/renew", json={}), 400, -130)
    old_leaf = x509.load_pem_x509_certificate(client.download_issued(cert_id).content)
    assert_error(client.call("POST", f"/api/v1/certificates/{cert_id}/renew", json=[]), 400, -1002)
    r = client.call("POST", f"/api/v1/certificates/{cert_id}/renew")  # no body at all
    assert r.status_code == 200
    new_id = r.json()["certId"]
    assert new_id != cert_id and client.status(cert_id)["status"] == "Issued"
    new_leaf = x509.load_pem_x509_certificate(client.download_issued(new_id).content)
    assert cert_matches_key(new_leaf, ec_key)  # no csr -> original key
    assert new_leaf.serial_number != old_leaf.serial_number
    assert sim.orders[new_id].renewal_of == cert_id


def test_renew_with_new_csr_and_term(client: Client, sim: EnrollmentSimulator, ec_key: PrivateKey) -> None:
    now = [datetime(2031, 1, 1, tzinfo=timezone.utc)]
    sim.clock = lambda: now[0]
    cert_id = client.enroll(ec_key)
    client.download_issued(cert_id)
    now[0] += timedelta(days=300)
    assert client.call("GET", f"/api/v1/certificates/{cert_id}/status").status_code == 401  # token expired
    client.token()
    new_key = generate_private_key(KeySpec("ECDSA", curve="P-256"))
    assert_error(
        client.call(
            "POST",
            f"/api/v1/certificates/{cert_id}/renew",
            json={"csr": csr_to_pem(build_csr(new_key, "www.example.com", []))},
        ),
        400,
        -10,
    )
    assert_error(client.call("POST", f"/api/v1/certificates/{cert_id}/renew", json={"term": "x"}), 400, -1601)
    r = client.call(
        "POST",
        f"/api/v1/certificates/{cert_id}/renew",
        json={"profileId": 2001, "customFields": {}, "csr": _csr_b64(new_key), "term": 200},
    )
    assert r.status_code == 200
    leaf = x509.load_pem_x509_certificate(client.download_issued(r.json()["certId"]).content)
    assert cert_matches_key(leaf, new_key)
    assert leaf.not_valid_before_utc == now[0]  # a fresh validity period
    assert (leaf.not_valid_after_utc - leaf.not_valid_before_utc).days == 200


def test_renew_profile_rules(
    client: Client, sim: EnrollmentSimulator, bundle: str, ec_key: PrivateKey
) -> None:
    sim.add_account("multi", "s", profile_ids=(2001, 2002))
    multi = Client(sim, bundle, "multi", "s")
    cert_id = multi.enroll(ec_key, productId=2002)
    multi.download_issued(cert_id)
    url = f"/api/v1/certificates/{cert_id}/renew"
    assert_error(multi.call("POST", url, json={"customFields": {}}), 400, -39)
    assert_error(multi.call("POST", url, json={"profileId": 3000, "customFields": {}}), 400, -39)
    sim.set_defaults(renew_requires_custom_fields=True)
    assert_error(multi.call("POST", url, json={"profileId": 2002}), 400, -7)
    r = multi.call("POST", url, json={"profileId": 2002, "customFields": {}})
    assert r.status_code == 200 and sim.orders[r.json()["certId"]].profile_id == 2002


# ------------------------------------------------------------------------------------ replace


def test_replace(client: Client, sim: EnrollmentSimulator, ec_key: PrivateKey) -> None:
    now = [datetime(2032, 2, 1, tzinfo=timezone.utc)]
    sim.clock = lambda: now[0]
    cert_id = client.enroll(ec_key)
    new_key = generate_private_key(KeySpec("ECDSA", curve="P-384"))
    url = f"/api/v1/certificates/{cert_id}/replace"
    assert_error(client.call("POST", url, json={"csr": _csr_b64(new_key)}), 400, -130)
    old_leaf = x509.load_pem_x509_certificate(client.download_issued(cert_id).content)
    assert_error(client.call("POST", url, json={}), 400, -7)
    assert_error(client.call("POST", url, json={"csr": _csr_b64(new_key), "subjAltNames": "a"}), 400, -1002)
    now[0] += timedelta(days=100, hours=5)
    client.token()  # the old one expired meanwhile
    r = client.call("POST", url, json={"csr": _csr_b64(new_key), "subjAltNames": ["new.example.com"]})
    assert r.status_code == 200
    new_id = r.json()["certId"]
    assert new_id != cert_id
    assert client.status(cert_id)["status"] == "Replaced"
    new_leaf = x509.load_pem_x509_certificate(client.download_issued(new_id).content)
    assert cert_matches_key(new_leaf, new_key)
    assert new_leaf.not_valid_after_utc == old_leaf.not_valid_after_utc
    names = new_leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "new.example.com" in names.get_values_for_type(x509.DNSName)
    # the old certificate still downloads and can be revoked
    assert client.download(cert_id).status_code == 200
    r = client.call(
        "DELETE", f"/api/v1/certificates/{cert_id}", json={"message": "replaced", "reasonCode": 4}
    )
    assert r.status_code == 200
    assert_error(client.call("POST", url, json={"csr": _csr_b64(new_key)}), 400, -130)


# ------------------------------------------------------------------------------------ revoke


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (None, -7),
        ({}, -7),
        ({"message": ""}, -7),
        ({"message": "x" * 513}, -1601),
        ({"message": "bye", "reasonCode": 2}, -1601),
        ({"message": "bye", "reasonCode": "nine"}, -1601),
        ({"message": 5}, -1002),
    ],
)
def test_revoke_validation(client: Client, ec_key: PrivateKey, body: Any, code: int) -> None:
    cert_id = client.enroll(ec_key)
    client.download_issued(cert_id)
    kw = {} if body is None else {"json": body}
    assert_error(client.call("DELETE", f"/api/v1/certificates/{cert_id}", **kw), 400, code)
    assert client.status(cert_id)["status"] == "Issued"


def test_revoke_lifecycle(client: Client, sim: EnrollmentSimulator, ec_key: PrivateKey) -> None:
    cert_id = client.enroll(ec_key)
    url = f"/api/v1/certificates/{cert_id}"
    assert_error(client.call("DELETE", url, json={"message": "bye"}), 400, -102)
    client.download_issued(cert_id)
    r = client.call("DELETE", url, json={"message": "key compromise", "reasonCode": "1"})
    assert r.status_code == 200 and r.content == b""
    assert client.status(cert_id)["status"] == "Revoked"
    assert sim.orders[cert_id].reason_code == 1
    assert_error(client.download(cert_id), 400, -110)
    assert_error(client.call("DELETE", url, json={"message": "again"}), 400, -159)
    assert sim.requests[-1].json() == {"message": "again"}  # the DELETE body arrived and was logged


# ------------------------------------------------------------------------------------ faults & control


def test_transient_faults(client: Client, sim: EnrollmentSimulator, ec_key: PrivateKey) -> None:
    sim.inject_transient(r"^/api/v1/certificates$", method="POST")
    assert_error(client.call("POST", "/api/v1/certificates", json={"csr": _csr_b64(ec_key)}), 503, -195)
    cert_id = client.enroll(ec_key)
    sim.add_fault(r"/openid-connect/token$", status=503, body="<html>down</html>", times=1)
    r = requests.post(
        sim.token_url,
        data={"grant_type": "client_credentials", "client_id": CID, "client_secret": SECRET},
        verify=client.verify,
        timeout=10,
    )
    assert r.status_code == 503
    assert Client(sim, client.verify).token()
    sim.add_fault(r"/api/v1/certificates/", status=429, headers={"Retry-After": "7"}, times=1)
    r = client.download(cert_id)
    assert r.status_code == 429 and r.headers["Retry-After"] == "7"


def test_control_routes(client: Client, sim: EnrollmentSimulator, ec_key: PrivateKey) -> None:
    base = sim.url + "/_sim"
    v = client.verify
    assert (
        requests.post(
            base + "/config", json={"pending_codes": [-1400], "issue_after_polls": 1}, verify=v, timeout=10
        ).status_code
        == 204
    )
    cfg = requests.get(base + "/config", verify=v, timeout=10).json()
    assert cfg["pending_codes"] == [-1400] and cfg["strict_csr"] is True
    assert requests.post(base + "/config", json={"nope": 1}, verify=v, timeout=10).status_code == 400
    assert (
        requests.post(base + "/config", json={"download_order": "sideways"}, verify=v, timeout=10).status_code
        == 400
    )
    cert_id = client.enroll(ec_key)
    assert_error(client.download(cert_id), 404, -1400)
    assert (
        requests.post(
            base + f"/orders/{cert_id}", json={"issue_after_polls": 0}, verify=v, timeout=10
        ).status_code
        == 204
    )
    assert client.download(cert_id).status_code == 200
    orders = requests.get(base + "/orders", verify=v, timeout=10).json()
    assert orders[0]["certId"] == cert_id and orders[0]["status"] == "Issued"
    assert (
        requests.post(
            base + "/accounts", json={"client_id": "c2", "client_secret": "s2"}, verify=v, timeout=10
        ).status_code
        == 204
    )
    assert Client(sim, v, "c2", "s2").token()
    assert requests.post(base + "/revoke/" + cert_id, verify=v, timeout=10).status_code == 204
    assert client.status(cert_id)["status"] == "Revoked"
    assert requests.post(base + "/reset", verify=v, timeout=10).status_code == 204
    assert sim.order_count() == 0 and not sim.accounts


def test_legacy_list_knob(client: Client, sim: EnrollmentSimulator, ec_key: PrivateKey) -> None:
    client.enroll(ec_key)
    client.enroll(ec_key)
    sim.set_defaults(legacy_list=True)
    r = client.call("GET", "/api/v1/certificates?size=1&position=1")
    assert r.status_code == 200 and r.headers["X-Total-Count"] == "2"
    assert r.json() == [{"certId": "5002", "status": "Applied"}]
