"""AdminScmClient against the simulated SCM admin API over HTTPS (requests is never mocked)."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from scm_fixtures import *  # noqa: F403
from scm_fixtures import (
    ADMIN_CLIENT_SECRET,
    LOGIN,
    PASSWORD,
    Sleeps,
    admin_config,
    csr_pem,
)

from citrix_connector.config import Secret
from citrix_connector.crypto import normalize_serial, split_leaf_and_chain
from citrix_connector.errors import ScmAuthError, ScmDeclinedError, ScmError, ScmOutcomeUnknownError
from citrix_connector.scm import EnrollRequest, make_scm_client
from citrix_connector.scm.admin import AdminScmClient, admin_base_url


def _client(sim, sim_tls, sleeps: Sleeps | None = None, clock=None, **overrides) -> AdminScmClient:
    config = admin_config(sim, sim_tls.ca_file, **overrides)
    kwargs: dict[str, Any] = {"sleep": sleeps or Sleeps()}
    if clock is not None:
        kwargs["clock"] = clock
    return AdminScmClient(config, **kwargs)


def _request(key, cn="www.example.com", sans=("www.example.com", "example.com"), **kw) -> EnrollRequest:
    values: dict[str, Any] = {"org_id": 1234, "cert_type": 567, "term": 365}
    values.update(kw)
    return EnrollRequest(csr_pem=csr_pem(key, cn), common_name=cn, sans=tuple(sans), **values)


def _issue(client, order_id: str):
    for _ in range(10):
        result = client.collect(order_id)
        if result.ready:
            return result.certificates
    raise AssertionError("never issued")


def _api(sim, method: str, fragment: str):
    return [r for r in sim.requests if r.method == method and fragment in r.path]


# ------------------------------------------------------------------------------------------ URLs


@pytest.mark.parametrize(
    ("url", "cert", "expected"),
    [
        ("https://cert-manager.com", False, "https://cert-manager.com/api"),
        ("https://cert-manager.com/", False, "https://cert-manager.com/api"),
        ("https://cert-manager.com/api", False, "https://cert-manager.com/api"),
        ("https://cert-manager.com/api/", False, "https://cert-manager.com/api"),
        ("https://cert-manager.com", True, "https://cert-manager.com/private/api"),
        ("https://cert-manager.com/api", True, "https://cert-manager.com/private/api"),
        ("https://cert-manager.com/private/api", True, "https://cert-manager.com/private/api"),
    ],
)
def test_base_url_never_doubles_api(url: str, cert: bool, expected: str) -> None:
    assert admin_base_url(url, client_cert=cert) == expected


def test_url_ending_in_api_works(admin_sim, sim_tls, keys) -> None:
    client = _client(admin_sim, sim_tls, url=admin_sim.url + "/api/")
    order_id = client.enroll(_request(keys["RSA 2048"]))
    assert [r.path for r in admin_sim.requests][-1] == "/api/ssl/v1/enroll"
    assert order_id.isdigit()


# ---------------------------------------------------------------------------------------- enroll


def test_enroll_sends_sans_as_comma_string_and_resolves_profile_name(admin_sim, sim_tls, keys) -> None:
    client = _client(admin_sim, sim_tls)
    req = _request(
        keys["RSA 2048"],
        cert_type="Sandbox OV SSL",
        term=None,
        comments="made by tests",
        external_requester="ops@example.com",
        custom_fields={"Cost Center": "42"},
    )
    first = client.enroll(req)
    second = client.enroll(req)
    assert int(second) == int(first) + 1
    assert len(_api(admin_sim, "GET", "/ssl/v1/types")) == 1  # cached
    body = _api(admin_sim, "POST", "/ssl/v1/enroll")[0].json()
    assert body["subjAltNames"] == "www.example.com,example.com"
    assert body["certType"] == 567
    assert body["term"] == 365  # the profile's first term when none is given
    assert body["orgId"] == 1234
    assert body["customFields"] == [{"name": "Cost Center", "value": "42"}]
    assert body["externalRequester"] == "ops@example.com"
    assert "numberServers" not in body and "serverType" not in body


def test_profile_name_any_case_and_unknown_name(admin_sim, sim_tls, keys) -> None:
    client = _client(admin_sim, sim_tls)
    assert client.resolve_profile("sandbox ev ssl") == 568
    assert client.resolve_profile("569") == 569
    with pytest.raises(ScmError, match=r"no certificate profile named 'Nope'.*'Sandbox OV SSL'"):
        client.enroll(_request(keys["RSA 2048"], cert_type="Nope"))


def test_enroll_error_carries_scm_code_and_endpoint(admin_sim, sim_tls, keys) -> None:
    client = _client(admin_sim, sim_tls)
    with pytest.raises(ScmError) as info:
        client.enroll(_request(keys["RSA 2048"], term=999))
    err = info.value
    assert err.code == -36 and err.status == 400
    assert err.endpoint == "POST /api/ssl/v1/enroll"
    assert str(err) == (
        "SCM refused enroll (HTTP 400, code -36): The validity period (term) is invalid for this "
        "certificate profile. [POST /api/ssl/v1/enroll]"
    )
    assert len(_api(admin_sim, "POST", "/enroll")) == 1  # a 400 is never retried


def test_enroll_needs_org_and_type(admin_sim, sim_tls, keys) -> None:
    client = _client(admin_sim, sim_tls)
    with pytest.raises(ScmError, match="org_id"):
        client.enroll(_request(keys["RSA 2048"], org_id=None))
    with pytest.raises(ScmError, match="cert_type"):
        client.enroll(_request(keys["RSA 2048"], cert_type=None))
    assert admin_sim.requests == []


# --------------------------------------------------------------------------- collect and status


@pytest.mark.parametrize("code", [0, -183, -1400, -109])
def test_documented_pending_codes(admin_sim, sim_tls, keys, code: int) -> None:
    admin_sim.set_defaults(pending_code=code, issue_after_polls=1)
    client = _client(admin_sim, sim_tls)
    order_id = client.enroll(_request(keys["RSA 2048"]))
    pending = client.collect(order_id)
    assert not pending.ready and pending.code == code and pending.description
    certs = client.collect(order_id).certificates
    leaf, chain = split_leaf_and_chain(certs, keys["RSA 2048"])
    assert leaf == certs[0]  # x509R: leaf first
    collects = _api(admin_sim, "GET", "/ssl/v1/collect/")
    assert all(r.query == "format=x509R" for r in collects)


def test_other_collect_errors_are_not_pending(admin_sim, sim_tls, keys) -> None:
    client = _client(admin_sim, sim_tls)
    order_id = client.enroll(_request(keys["RSA 2048"]))
    admin_sim.add_fault(r"/collect/", status=400, json_body={"code": -126, "description": "Unknown format"})
    with pytest.raises(ScmError) as info:
        client.collect(order_id)
    assert info.value.code == -126 and not isinstance(info.value, ScmDeclinedError)
    admin_sim.add_fault(r"/collect/", status=404, json_body={"code": 0, "description": "odd"})
    with pytest.raises(ScmError, match=r"HTTP 404, code 0"):
        client.collect(order_id)  # code 0 means pending only with HTTP 400
    with pytest.raises(ScmError, match=r"code -5101"):
        client.collect("999999")


def test_declined_and_revoked_collect(admin_sim, sim_tls, keys) -> None:
    client = _client(admin_sim, sim_tls)
    declined = client.enroll(_request(keys["RSA 2048"]))
    admin_sim.decline(int(declined))
    with pytest.raises(ScmDeclinedError, match=r"declined at SCM.*code -1112"):
        client.collect(declined)
    assert client.status(declined).state == "declined"
    revoked = client.enroll(_request(keys["RSA 2048"]))
    admin_sim.configure_order(int(revoked), mode="revoke_after_issue")
    with pytest.raises(ScmDeclinedError, match=r"revoked at SCM.*code -110"):
        _issue(client, revoked)


def test_status_normalises_fields(admin_sim, sim_tls, keys) -> None:
    client = _client(admin_sim, sim_tls)
    order_id = client.enroll(_request(keys["RSA 2048"]))
    before = client.status(order_id)
    assert before.state == "pending" and before.status == "Requested"
    assert before.serial is None and before.expires is None
    leaf = _issue(client, order_id)[0]
    status = client.status(order_id)
    assert status.order_id == order_id
    assert status.state == "issued" and status.status == "Issued"
    assert status.serial == normalize_serial(leaf.serial_number)
    assert status.expires == leaf.not_valid_after_utc.date()


# ------------------------------------------------------------------------- renew/replace/revoke


def test_renew_by_id_posts_an_object(admin_sim, sim_tls, keys) -> None:
    client = _client(admin_sim, sim_tls)
    order_id = client.enroll(_request(keys["RSA 2048"]))
    _issue(client, order_id)
    reused = client.renew(order_id, csr_pem=None)
    assert reused != order_id
    new_csr = csr_pem(keys["ECDSA P-256"])
    new_key = client.renew(order_id, csr_pem=new_csr, sans=("x",), profile_id=5, term=9)
    posts = _api(admin_sim, "POST", "/ssl/v1/renewById/")
    assert posts[0].body == b"{}"
    assert posts[1].json() == {"csr": new_csr}
    assert posts[0].path == f"/api/ssl/v1/renewById/{order_id}"
    leaf = _issue(client, new_key)[0]
    split_leaf_and_chain((leaf,), keys["ECDSA P-256"])


def test_renew_of_pending_order_fails_with_code(admin_sim, sim_tls, keys) -> None:
    client = _client(admin_sim, sim_tls)
    order_id = client.enroll(_request(keys["RSA 2048"]))
    with pytest.raises(ScmError) as info:
        client.renew(order_id, csr_pem=None)
    assert info.value.code == -130


def test_replace_sends_san_array_and_keeps_the_id(admin_sim, sim_tls, keys) -> None:
    client = _client(admin_sim, sim_tls)
    order_id = client.enroll(_request(keys["RSA 2048"]))
    old_leaf = _issue(client, order_id)[0]
    same = client.replace(
        order_id,
        csr_pem=csr_pem(keys["ECDSA P-256"]),
        common_name="www.example.com",
        sans=["www.example.com", "api.example.com"],
        reason="",
    )
    assert same == order_id
    call = _api(admin_sim, "POST", "/ssl/v1/replace/")[0]
    assert call.status == 204
    body = call.json()
    assert body["subjectAlternativeNames"] == ["www.example.com", "api.example.com"]
    assert body["reason"]  # never empty, SCM refuses that
    assert body["commonName"] == "www.example.com"
    new_leaf = _issue(client, order_id)[0]
    assert new_leaf.serial_number != old_leaf.serial_number
    split_leaf_and_chain((new_leaf,), keys["ECDSA P-256"])


def test_revoke_sends_reason_code_and_reason(admin_sim, sim_tls, keys) -> None:
    client = _client(admin_sim, sim_tls)
    order_id = client.enroll(_request(keys["RSA 2048"]))
    _issue(client, order_id)
    client.revoke(order_id, reason_code=4, reason="superseded")
    call = _api(admin_sim, "POST", "/ssl/v1/revoke/")[0]
    assert call.status == 204 and call.json() == {"reasonCode": 4, "reason": "superseded"}
    assert client.status(order_id).state == "revoked"
    with pytest.raises(ScmError) as info:
        client.revoke(order_id, reason_code=4, reason="again")
    assert info.value.code == -159
    with pytest.raises(ScmError, match="reason code 2"):
        client.revoke(order_id, reason_code=2, reason="ca compromise")


def test_find_orders_by_common_name(admin_sim, sim_tls, keys) -> None:
    client = _client(admin_sim, sim_tls)
    a = client.enroll(_request(keys["RSA 2048"], cn="a.example.com", sans=()))
    client.enroll(_request(keys["RSA 2048"], cn="b.example.com", sans=()))
    assert client.find_orders(common_name="a.example.com") == [a]


# ----------------------------------------------------------------------------- authentication


@pytest.mark.parametrize(("code", "text"), [(-16, "Unknown user"), (-970, "Incorrect login credentials.")])
def test_bad_password_names_scm_code_not_the_password(admin_sim, sim_tls, keys, caplog, code, text) -> None:
    admin_sim.set_defaults(auth_error_code=code)
    caplog.set_level(logging.DEBUG)
    client = _client(admin_sim, sim_tls, password=Secret("wrong-" + PASSWORD))
    with pytest.raises(ScmAuthError) as info:
        client.enroll(_request(keys["RSA 2048"]))
    assert str(info.value) == (
        f"SCM rejected the credentials for login '{LOGIN}' (code {code}: {text}) [POST /api/ssl/v1/enroll]"
    )
    assert info.value.exit_code == 1 and info.value.status == 401
    assert len(admin_sim.requests) == 1  # no retry of a 401 with header auth
    assert PASSWORD not in caplog.text and PASSWORD not in str(info.value)


def test_password_headers_sent(admin_sim, sim_tls) -> None:
    client = _client(admin_sim, sim_tls)
    client.certificate_types()
    headers = admin_sim.requests[0].headers
    assert headers["login"] == LOGIN and headers["customeruri"] == "sandbox"
    assert headers["password"] == "***"  # the simulator's log masks it; it was sent


def test_client_certificate_mode(admin_sim, sim_tls, keys, client_cert) -> None:
    client = _client(
        admin_sim,
        sim_tls,
        auth="client_cert",
        client_cert=client_cert.cert_file,
        client_key=client_cert.key_file,
    )
    order_id = client.enroll(_request(keys["RSA 2048"]))
    assert client.status(order_id).state == "pending"
    for r in admin_sim.requests:
        assert r.path.startswith("/private/api/ssl/v1/")
        assert "password" not in r.headers
        assert r.headers["login"] == LOGIN


def test_client_certificate_mode_without_certificate_is_rejected(admin_sim, sim_tls, client_cert) -> None:
    config = admin_config(
        admin_sim,
        sim_tls.ca_file,
        auth="client_cert",
        client_cert=client_cert.cert_file,
        client_key=client_cert.key_file,
    )
    client = AdminScmClient(config, sleep=Sleeps())
    client.http.cert = None  # as if the TLS layer sent no certificate
    with pytest.raises(
        ScmAuthError, match=r"client certificate for login 'api-admin' \(code -16: Unknown user\)"
    ):
        client.certificate_types()


class _Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_oauth_token_cached_and_refreshed_before_expiry(admin_sim, sim_tls, keys) -> None:
    admin_sim.set_defaults(token_lifetime=120)
    clock = _Clock()
    client = _client(admin_sim, sim_tls, clock=clock, auth="oauth")
    for _ in range(3):
        client._types = None
        client.certificate_types()
    assert admin_sim.oauth.tokens_issued == 1
    api_calls = [r for r in admin_sim.requests if r.path.startswith("/api/")]
    assert all(
        r.headers["authorization"].startswith("Bearer ") or r.headers["authorization"] == "***"
        for r in api_calls
    )
    clock.now = 89.0  # 120 s lifetime, refreshed 30 s early
    client._types = None
    client.certificate_types()
    assert admin_sim.oauth.tokens_issued == 1
    clock.now = 91.0
    client._types = None
    client.certificate_types()
    assert admin_sim.oauth.tokens_issued == 2


def test_oauth_refetch_once_on_401(admin_sim, sim_tls, keys) -> None:
    client = _client(admin_sim, sim_tls, auth="oauth")
    order_id = client.enroll(_request(keys["RSA 2048"]))
    # the server forgets its tokens (expiry by its own clock, restart, key rotation ...)
    admin_sim.clock = lambda: datetime.now(timezone.utc) + timedelta(hours=1)
    assert client.status(order_id).state == "pending"
    assert admin_sim.oauth.tokens_issued == 2
    statuses = [r.status for r in admin_sim.requests if "/ssl/v1/" in r.path]
    assert statuses[-2:] == [401, 200]


def test_oauth_persistent_401_raises_auth_error(admin_sim, sim_tls) -> None:
    client = _client(admin_sim, sim_tls, auth="oauth")
    admin_sim.add_fault(
        r"/ssl/v1/types", status=401, json_body={"code": -16, "description": "Unknown user"}, times=None
    )
    with pytest.raises(
        ScmAuthError, match=r"OAuth token of client id 'admin-client-1' \(code -16: Unknown user\)"
    ):
        client.certificate_types()
    assert admin_sim.oauth.tokens_issued == 2  # first token, then one re-fetch after the 401
    assert len(_api(admin_sim, "GET", "/ssl/v1/types")) == 2


def test_oauth_bad_secret_gives_token_server_text(admin_sim, sim_tls, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    client = _client(admin_sim, sim_tls, auth="oauth", client_secret=Secret("nope-" + ADMIN_CLIENT_SECRET))
    with pytest.raises(ScmAuthError) as info:
        client.certificate_types()
    message = str(info.value)
    assert "unauthorized_client" in message and "Invalid client or Invalid client credentials" in message
    assert "admin-client-1" in message
    assert ADMIN_CLIENT_SECRET not in message and ADMIN_CLIENT_SECRET not in caplog.text
    assert not _api(admin_sim, "GET", "/ssl/v1/types")  # nothing sent without a token


def test_make_scm_client_picks_admin(admin_sim, sim_tls) -> None:
    client = make_scm_client(admin_config(admin_sim, sim_tls.ca_file))
    assert isinstance(client, AdminScmClient) and client.api_name == "admin"
    client.close()


# ---------------------------------------------------------------------------------- transients


@pytest.mark.parametrize(("code", "status"), [(-195, 400), (-140, 400), (-2, 400)])
def test_transient_scm_codes_refusing_an_enroll_are_retried(admin_sim, sim_tls, keys, code, status) -> None:
    sleeps = Sleeps()
    client = _client(admin_sim, sim_tls, sleeps)
    admin_sim.inject_transient(r"/ssl/v1/enroll", code=code, status=status, times=2)
    order_id = client.enroll(_request(keys["RSA 2048"]))
    assert admin_sim.order_count() == 1 and order_id
    assert [r.status for r in _api(admin_sim, "POST", "/enroll")] == [status, status, 200]
    assert len(sleeps.calls) == 2


@pytest.mark.parametrize(("code", "status"), [(-195, 503), (-140, 500), (-2, 500)])
def test_transient_scm_codes_on_a_5xx_enroll_are_not_resent(admin_sim, sim_tls, keys, code, status) -> None:
    # a 5xx may come after SCM took the order: "temporarily unavailable" in it proves nothing
    sleeps = Sleeps()
    client = _client(admin_sim, sim_tls, sleeps)
    admin_sim.inject_transient(r"/ssl/v1/enroll", code=code, status=status, times=2)
    expected = rf"answer HTTP {status}, code {code} .*an order may exist"
    with pytest.raises(ScmOutcomeUnknownError, match=expected):
        client.enroll(_request(keys["RSA 2048"]))
    assert [r.status for r in _api(admin_sim, "POST", "/enroll")] == [status]
    assert sleeps.calls == []


@pytest.mark.parametrize("code", [-195, -140])
def test_transient_scm_codes_on_a_5xx_collect_are_retried(admin_sim, sim_tls, keys, code) -> None:
    sleeps = Sleeps()
    client = _client(admin_sim, sim_tls, sleeps)
    order_id = client.enroll(_request(keys["RSA 2048"]))
    admin_sim.inject_transient(r"/ssl/v1/collect/", code=code, times=2)
    assert not client.collect(order_id).ready
    assert len(sleeps.calls) == 2


def test_plain_500_on_enroll_is_not_retried(admin_sim, sim_tls, keys) -> None:
    client = _client(admin_sim, sim_tls)
    admin_sim.add_fault(
        r"/ssl/v1/enroll",
        status=500,
        body="<html><body>Internal error</body></html>",
        headers={"Content-Type": "text/html"},
    )
    with pytest.raises(
        ScmOutcomeUnknownError,
        match=r"^SCM enroll: request sent, answer HTTP 500 \(Internal Server Error\): an order may exist",
    ):
        client.enroll(_request(keys["RSA 2048"]))
    assert len(_api(admin_sim, "POST", "/enroll")) == 1  # may have reached SCM: never blindly re-posted
