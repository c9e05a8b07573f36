"""EnrollmentScmClient against the simulated REST Enrollment API + token server over HTTPS."""

from __future__ import annotations

import base64
import logging
import re
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
import requests
from cryptography import x509
from scm_fixtures import *  # noqa: F403
from scm_fixtures import (
    ENROLL_CLIENT_ID,
    ENROLL_CLIENT_SECRET,
    ENROLL_PROFILE_ID,
    Sleeps,
    csr_pem,
    enrollment_config,
)

from citrix_connector.config import Secret
from citrix_connector.crypto import load_csr, split_leaf_and_chain
from citrix_connector.errors import ScmAuthError, ScmDeclinedError, ScmError, ScmUnsupportedError
from citrix_connector.scm import EnrollRequest, make_scm_client
from citrix_connector.scm._transport import WELL_KNOWN_TOKEN_URL
from citrix_connector.scm.enrollment import (
    EnrollmentScmClient,
    enrollment_base_url,
    parse_www_authenticate,
    token_url_from_authorization_uri,
)

TOKEN_PATH = "/auth/realms/apiclients/protocol/openid-connect/token"


class _Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _client(sim, sim_tls, clock=None, sleeps: Sleeps | None = None, **overrides) -> EnrollmentScmClient:
    config = enrollment_config(sim, sim_tls.ca_file, **overrides)
    kwargs: dict[str, Any] = {"sleep": sleeps or Sleeps()}
    if clock is not None:
        kwargs["clock"] = clock
    return EnrollmentScmClient(config, **kwargs)


def _request(key, cn="www.example.com", sans=("www.example.com", "example.com"), **kw) -> EnrollRequest:
    return EnrollRequest(csr_pem=csr_pem(key, cn), common_name=cn, sans=tuple(sans), **kw)


def _issue(client, order_id: str):
    for _ in range(10):
        result = client.collect(order_id)
        if result.ready:
            return result.certificates
    raise AssertionError("never issued")


def _token_calls(sim):
    return [r for r in sim.requests if r.path == TOKEN_PATH]


def _api(sim, method: str | None = None):
    return [r for r in sim.requests if r.path.startswith("/api/v1/") and method in (None, r.method)]


# ------------------------------------------------------------------------------------- helpers


@pytest.mark.parametrize(
    "url",
    [
        "https://acme.enroll.enterprise.sectigo.com",
        "https://acme.enroll.enterprise.sectigo.com/",
        "https://acme.enroll.enterprise.sectigo.com/api/v1",
        "https://acme.enroll.enterprise.sectigo.com/api/v1/",
        "https://acme.enroll.enterprise.sectigo.com/API/V1",
    ],
)
def test_base_url_with_or_without_api_v1(url: str) -> None:
    assert enrollment_base_url(url) == "https://acme.enroll.enterprise.sectigo.com"


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ('Bearer realm="apiclients", authorization_uri="https://a.example/t"', "https://a.example/t"),
        ("Bearer realm=apiclients, authorization_uri=https://a.example/t", "https://a.example/t"),
        ('Bearer authorization_uri = "https://a.example/t" ,error="invalid_token"', "https://a.example/t"),
        ('Bearer Authorization_URI="https://a.example/t"', "https://a.example/t"),
        ('Bearer realm="x"', None),
        ("Bearer", None),
    ],
)
def test_parse_www_authenticate(header: str, expected: str | None) -> None:
    assert parse_www_authenticate(header).get("authorization_uri") == expected


def test_token_url_from_authorization_uri() -> None:
    realm = "https://auth.sso.sectigo.com/auth/realms/apiclients"
    token = realm + "/protocol/openid-connect/token"
    assert token_url_from_authorization_uri(token) == token
    assert token_url_from_authorization_uri(realm) == token
    assert token_url_from_authorization_uri(realm + "/") == token
    assert token_url_from_authorization_uri(realm + "/protocol/openid-connect/auth") == token
    assert (
        token_url_from_authorization_uri("http://evil.example/token") is None
    )  # never send the secret in clear
    assert token_url_from_authorization_uri("not a url") is None


# ------------------------------------------------------------------------------------- enroll


def test_enroll_body_csr_single_line_base64_and_san_array(enrollment_sim, sim_tls, keys) -> None:
    client = _client(enrollment_sim, sim_tls)
    req = _request(
        keys["RSA 2048"],
        comments="from tests",
        external_requester="ops@example.com",
        custom_fields={"Cost Center": "42"},
        org_id=99,
        cert_type="ignored by this API",
        term=730,
    )
    order_id = client.enroll(req)
    assert order_id == "5001"
    body = _api(enrollment_sim, "POST")[0].json()
    assert re.fullmatch(r"[A-Za-z0-9+/]+={0,2}", body["csr"])  # one line, no armour, no whitespace
    assert load_csr(base64.b64decode(body["csr"])).public_key() == keys["RSA 2048"].public_key()
    assert body["subjAltNames"] == ["www.example.com", "example.com"]
    assert body["customFields"] == {"Cost Center": "42"}
    assert body["comments"] == "from tests" and body["externalRequester"] == "ops@example.com"
    assert set(body) == {"csr", "subjAltNames", "customFields", "comments", "externalRequester"}


@pytest.mark.parametrize("style", ["number", "id_key", "string"])
def test_cert_id_variants_become_strings(enrollment_sim, sim_tls, keys, style: str) -> None:
    enrollment_sim.set_defaults(cert_id_style=style)
    client = _client(enrollment_sim, sim_tls)
    assert client.enroll(_request(keys["RSA 2048"])) == "5001"


def test_bad_csr_is_refused_before_sending(enrollment_sim, sim_tls) -> None:
    client = _client(enrollment_sim, sim_tls)
    with pytest.raises(ScmError, match="cannot send the CSR"):
        client.enroll(EnrollRequest(csr_pem="garbage", common_name="x", sans=()))
    assert _api(enrollment_sim) == []


# ----------------------------------------------------------------------------- tokens and auth


def test_one_token_for_many_calls(enrollment_sim, sim_tls, keys) -> None:
    client = _client(enrollment_sim, sim_tls)
    order_id = client.enroll(_request(keys["RSA 2048"]))
    _issue(client, order_id)
    client.status(order_id)
    client.status(order_id)
    assert enrollment_sim.tokens_issued == 1
    token_call = _token_calls(enrollment_sim)[0]
    assert token_call.headers["content-type"] == "application/x-www-form-urlencoded"
    assert all(
        r.headers.get("authorization", "").lower().startswith("bearer")
        or r.headers.get("authorization") == "***"
        for r in _api(enrollment_sim)
    )


def test_token_refreshed_before_expiry(enrollment_sim, sim_tls, keys) -> None:
    enrollment_sim.set_defaults(token_lifetime=100)
    clock = _Clock()
    client = _client(enrollment_sim, sim_tls, clock=clock)
    order_id = client.enroll(_request(keys["RSA 2048"]))
    clock.now = 69.0  # refreshed 30 s before the 100 s run out
    client.status(order_id)
    assert enrollment_sim.tokens_issued == 1
    clock.now = 71.0
    client.status(order_id)
    assert enrollment_sim.tokens_issued == 2
    assert all(r.status == 200 for r in _api(enrollment_sim))  # never a 401 on the way


def test_short_token_lifetime_margin_is_halved(enrollment_sim, sim_tls, keys) -> None:
    enrollment_sim.set_defaults(token_lifetime=10)
    clock = _Clock()
    client = _client(enrollment_sim, sim_tls, clock=clock)
    order_id = client.enroll(_request(keys["RSA 2048"]))
    clock.now = 4.0
    client.status(order_id)
    assert enrollment_sim.tokens_issued == 1  # not one token per call for short lifetimes


def test_token_refetched_once_on_401(enrollment_sim, sim_tls, keys) -> None:
    client = _client(enrollment_sim, sim_tls)
    order_id = client.enroll(_request(keys["RSA 2048"]))
    # the token expires by the server's clock while ours still thinks it is good
    enrollment_sim.clock = lambda: datetime.now(timezone.utc) + timedelta(seconds=301)
    assert client.status(order_id).state == "pending"
    assert enrollment_sim.tokens_issued == 2
    assert [r.status for r in _api(enrollment_sim, "GET")] == [401, 200]


def test_persistent_401_is_an_auth_error(enrollment_sim, sim_tls, keys) -> None:
    client = _client(enrollment_sim, sim_tls)
    enrollment_sim.add_fault(r"^/api/v1/certificates$", status=401, times=None)
    with pytest.raises(ScmAuthError) as info:
        client.enroll(_request(keys["RSA 2048"]))
    assert str(info.value) == (
        "SCM rejected the access token of client id 'rest-account-1' (HTTP 401: Unauthorized) "
        "[POST /api/v1/certificates]"
    )
    assert enrollment_sim.tokens_issued == 2
    assert len(_api(enrollment_sim, "POST")) == 2


def test_rotated_secret_gives_token_server_error(enrollment_sim, sim_tls, keys, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    client = _client(enrollment_sim, sim_tls)
    enrollment_sim.rotate_secret(ENROLL_CLIENT_ID, "brand-new-secret")
    with pytest.raises(ScmAuthError) as info:
        client.enroll(_request(keys["RSA 2048"]))
    message = str(info.value)
    assert "refused client id 'rest-account-1'" in message
    assert "unauthorized_client: Invalid client or Invalid client credentials" in message
    assert info.value.status == 401
    assert ENROLL_CLIENT_SECRET not in message and ENROLL_CLIENT_SECRET not in caplog.text
    assert _api(enrollment_sim) == []


def test_unknown_client_id(enrollment_sim, sim_tls, keys) -> None:
    client = _client(enrollment_sim, sim_tls, client_id="nobody")
    with pytest.raises(ScmAuthError, match=r"client id 'nobody' \(HTTP 401: invalid_client"):
        client.status("5001")


@pytest.mark.parametrize("style", ["quoted", "unquoted"])
def test_token_url_discovered_from_www_authenticate(enrollment_sim, sim_tls, keys, style: str) -> None:
    enrollment_sim.set_defaults(www_authenticate=style)
    client = _client(enrollment_sim, sim_tls, token_url=None)
    order_id = client.enroll(_request(keys["RSA 2048"]))
    assert client.tokens.token_url == enrollment_sim.token_url
    calls = [(r.method, r.path, r.status) for r in enrollment_sim.requests]
    assert calls == [
        ("POST", "/api/v1/certificates", 401),  # no token yet: the 401 names the token server
        ("POST", TOKEN_PATH, 200),
        ("POST", "/api/v1/certificates", 200),
    ]
    assert "authorization" not in enrollment_sim.requests[0].headers
    assert enrollment_sim.order_count() == 1
    client.status(order_id)
    assert enrollment_sim.tokens_issued == 1


def test_no_www_authenticate_falls_back_to_the_well_known_url(enrollment_sim, sim_tls) -> None:
    client = _client(enrollment_sim, sim_tls, token_url=None)
    response = requests.Response()
    response.status_code = 401
    assert client.auth.on_unauthorized(response) is True
    assert client.tokens.token_url is None  # -> WELL_KNOWN_TOKEN_URL when fetching
    assert WELL_KNOWN_TOKEN_URL.startswith("https://auth.sso.sectigo.com/")


def test_plain_http_authorization_uri_is_ignored(enrollment_sim, sim_tls) -> None:
    client = _client(enrollment_sim, sim_tls, token_url=None)
    response = requests.Response()
    response.status_code = 401
    response.headers["WWW-Authenticate"] = 'Bearer authorization_uri="http://127.0.0.1:1/token"'
    client.auth.on_unauthorized(response)
    assert client.tokens.token_url is None


def test_configured_token_url_is_not_overridden(enrollment_sim, sim_tls, keys) -> None:
    client = _client(enrollment_sim, sim_tls)
    response = requests.Response()
    response.status_code = 401
    response.headers["WWW-Authenticate"] = 'Bearer authorization_uri="https://elsewhere.example/token"'
    client.auth.on_unauthorized(response)
    assert client.tokens.token_url == enrollment_sim.token_url


# ------------------------------------------------------------------------------------- collect


@pytest.mark.parametrize(
    "knobs",
    [
        {"download_order": "leaf-first"},
        {"download_order": "root-first"},
        {"download_order": "root-first", "crlf": True},
        {"pkcs7": True},
        {"pkcs7": True, "crlf": True},
    ],
)
def test_download_formats(enrollment_sim, sim_tls, keys, knobs) -> None:
    enrollment_sim.set_defaults(issue_after_polls=0, **knobs)
    client = _client(enrollment_sim, sim_tls)
    order_id = client.enroll(_request(keys["ECDSA P-384"]))
    certs = client.collect(order_id).certificates
    assert len(certs) == 3
    leaf, chain = split_leaf_and_chain(certs, keys["ECDSA P-384"])
    assert leaf.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)[0].value == "www.example.com"
    assert len(chain) == 1


def test_leaf_only_download(enrollment_sim, sim_tls, keys) -> None:
    enrollment_sim.set_defaults(issue_after_polls=0, download_order="leaf-only")
    client = _client(enrollment_sim, sim_tls)
    certs = client.collect(client.enroll(_request(keys["RSA 2048"]))).certificates
    assert len(certs) == 1


def test_pending_codes_alternate_and_other_404_is_terminal(enrollment_sim, sim_tls, keys) -> None:
    client = _client(enrollment_sim, sim_tls)
    order_id = client.enroll(_request(keys["RSA 2048"]))
    assert [client.collect(order_id).code for _ in range(2)] == [-103, -109]
    assert client.collect(order_id).ready
    with pytest.raises(ScmError) as info:
        client.collect("424242")
    assert info.value.code == -124 and info.value.status == 404
    enrollment_sim.add_fault(
        r"^/api/v1/certificates/", status=400, json_body={"code": -109, "description": "not now"}
    )
    with pytest.raises(ScmError, match=r"HTTP 400, code -109"):
        client.collect(order_id)  # -103/-109 mean pending only with HTTP 404


def test_declined_and_revoked_downloads(enrollment_sim, sim_tls, keys) -> None:
    client = _client(enrollment_sim, sim_tls)
    declined = client.enroll(_request(keys["RSA 2048"]))
    enrollment_sim.decline(declined)
    with pytest.raises(ScmDeclinedError, match="declined"):
        client.collect(declined)
    revoked = client.enroll(_request(keys["RSA 2048"]))
    enrollment_sim.configure_order(revoked, mode="revoke_after_issue")
    with pytest.raises(ScmDeclinedError, match=r"revoked at SCM .*code -110"):
        _issue(client, revoked)


def test_status_has_no_serial_or_expiry(enrollment_sim, sim_tls, keys) -> None:
    client = _client(enrollment_sim, sim_tls)
    order_id = client.enroll(_request(keys["RSA 2048"]))
    _issue(client, order_id)
    status = client.status(order_id)
    assert (status.state, status.status, status.serial, status.expires) == ("issued", "Issued", None, None)


# --------------------------------------------------------------------------- renew/replace/revoke


def test_renew_body(enrollment_sim, sim_tls, keys) -> None:
    client = _client(enrollment_sim, sim_tls)
    order_id = client.enroll(_request(keys["RSA 2048"]))
    _issue(client, order_id)
    new_id = client.renew(order_id, csr_pem=csr_pem(keys["ECDSA P-384"]), sans=["www.example.com"], term=365)
    assert new_id not in ("", order_id)
    body = _api(enrollment_sim, "POST")[-1].json()
    assert body["profileId"] == ENROLL_PROFILE_ID and body["customFields"] == {}
    client.renew(order_id, csr_pem=None, custom_fields={"Cost Center": "42"})
    assert _api(enrollment_sim, "POST")[-1].json()["customFields"] == {"Cost Center": "42"}
    assert re.fullmatch(r"[A-Za-z0-9+/]+={0,2}", body["csr"])
    assert body["subjAltNames"] == ["www.example.com"] and body["term"] == 365
    # the argument wins over scm.yaml
    client.renew(order_id, csr_pem=None, profile_id=ENROLL_PROFILE_ID)
    assert set(_api(enrollment_sim, "POST")[-1].json()) == {"profileId", "customFields"}


def test_renew_needs_a_profile_id(enrollment_sim, sim_tls) -> None:
    client = _client(enrollment_sim, sim_tls, profile_id=None)
    with pytest.raises(ScmError, match="renew needs profile_id in scm.yaml or the profile"):
        client.renew("5001", csr_pem=None)
    assert enrollment_sim.requests == []


def test_replace_returns_the_new_id(enrollment_sim, sim_tls, keys) -> None:
    client = _client(enrollment_sim, sim_tls)
    order_id = client.enroll(_request(keys["RSA 2048"]))
    old_leaf = _issue(client, order_id)[0]
    new_id = client.replace(
        order_id,
        csr_pem=csr_pem(keys["ECDSA P-256"]),
        common_name="www.example.com",
        sans=["www.example.com", "api.example.com"],
        reason="add a name",
    )
    assert new_id != order_id
    body = _api(enrollment_sim, "POST")[-1].json()
    assert body["subjAltNames"] == ["www.example.com", "api.example.com"]
    assert body["comments"] == "add a name"
    assert re.fullmatch(r"[A-Za-z0-9+/]+={0,2}", body["csr"])
    assert client.status(order_id).state == "replaced"
    new_leaf = _issue(client, new_id)[0]
    assert new_leaf.not_valid_after_utc == old_leaf.not_valid_after_utc
    split_leaf_and_chain((new_leaf,), keys["ECDSA P-256"])


def test_revoke_sends_delete_with_json_body(enrollment_sim, sim_tls, keys) -> None:
    client = _client(enrollment_sim, sim_tls)
    order_id = client.enroll(_request(keys["RSA 2048"]))
    _issue(client, order_id)
    client.revoke(order_id, reason_code=1, reason="key compromise")
    call = _api(enrollment_sim, "DELETE")[0]
    assert call.path == f"/api/v1/certificates/{order_id}" and call.status == 200
    assert call.json() == {"message": "key compromise", "reasonCode": 1}
    with pytest.raises(ScmError) as info:
        client.revoke(order_id, reason_code=1, reason="again")
    assert info.value.code == -159


def test_missing_operations_are_unsupported(enrollment_sim, sim_tls) -> None:
    client = _client(enrollment_sim, sim_tls)
    with pytest.raises(ScmUnsupportedError, match="cannot list or search"):
        client.find_orders(common_name="www.example.com")
    with pytest.raises(ScmUnsupportedError, match="cannot look up a certificate profile by name"):
        client.resolve_profile("Sandbox OV SSL")
    assert client.resolve_profile("2001") == 2001
    assert enrollment_sim.requests == []


def test_make_scm_client_picks_enrollment(enrollment_sim, sim_tls) -> None:
    client = make_scm_client(
        enrollment_config(enrollment_sim, sim_tls.ca_file, url=enrollment_sim.url + "/api/v1/")
    )
    assert isinstance(client, EnrollmentScmClient) and client.api_name == "enrollment"
    client.close()


def test_secret_never_logged_on_success(enrollment_sim, sim_tls, keys, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    client = _client(enrollment_sim, sim_tls, client_secret=Secret(ENROLL_CLIENT_SECRET))
    order_id = client.enroll(_request(keys["RSA 2048"]))
    _issue(client, order_id)
    assert ENROLL_CLIENT_SECRET not in caplog.text
    assert "Bearer ey" not in caplog.text  # the access token is redacted too
