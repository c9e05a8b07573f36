"""One contract every ScmClient implementation passes, run against its simulator over HTTPS.

Each implementation plugs in through a :class:`Backend`: how to configure a client for the simulator,
how to make the simulator decline or delay an order, which codes mean "pending", and which secrets
must never leak.
"""

from __future__ import annotations

import dataclasses
import logging
import re
import socket
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from scm_fixtures import *  # noqa: F403
from scm_fixtures import (
    ADMIN_CLIENT_SECRET,
    ENROLL_CLIENT_SECRET,
    PASSWORD,
    Sleeps,
    admin_config,
    csr_pem,
    enrollment_config,
)

from citrix_connector.config import PollSettings, ScmConfig, Secret
from citrix_connector.crypto import split_leaf_and_chain
from citrix_connector.errors import (
    CitrixAgentError,
    PendingError,
    ScmAlreadyReplacedError,
    ScmAlreadyRevokedError,
    ScmAuthError,
    ScmDeclinedError,
    ScmError,
    ScmNotDoneError,
    ScmNotReadyError,
    ScmNotSentError,
    ScmOutcomeUnknownError,
    ScmRefusedError,
    ScmUnsupportedError,
)
from citrix_connector.scm import (
    EnrollRequest,
    ScmCapabilities,
    ScmClient,
    capabilities_of,
    make_scm_client,
    wait_for_certificate,
)


@dataclass
class Backend:
    name: str
    sim: Any
    config: Callable[..., ScmConfig]  # overrides -> config
    bad_credentials: dict[str, Any]  # config overrides SCM refuses
    auth_message: str  # expected in the auth error (SCM's code and text)
    secrets: tuple[str, ...]
    enroll_path: str  # regex of the enroll route
    collect_path: str  # regex of the download route
    pending_codes: tuple[int, ...]
    set_pending: Callable[[int], None]  # code for new orders
    decline: Callable[[str], None]
    order_count: Callable[[], int]
    request_kwargs: dict[str, Any]
    capabilities: ScmCapabilities  # what this API is documented to do
    order_routes: dict[str, tuple[str, str]]  # op -> (method, path regex) of the order calls
    summaries: Callable[[], list[dict[str, Any]]]  # the simulator's order list (/_sim/orders)

    def client(self, sleeps: Sleeps | None = None, **overrides: Any) -> ScmClient:
        return make_scm_client(self.config(**overrides), sleep=sleeps or Sleeps())

    def request(self, key, cn: str = "www.example.com", sans: tuple[str, ...] = ("www.example.com",)):
        return EnrollRequest(csr_pem=csr_pem(key, cn), common_name=cn, sans=sans, **self.request_kwargs)


def _admin_backend(sim, sim_tls) -> Backend:
    def set_pending(code: int) -> None:
        sim.set_defaults(pending_code=code)

    return Backend(
        name="admin",
        sim=sim,
        config=lambda **o: admin_config(sim, sim_tls.ca_file, **o),
        bad_credentials={"password": Secret("not-the-" + PASSWORD)},
        auth_message="(code -16: Unknown user)",
        secrets=(PASSWORD, ADMIN_CLIENT_SECRET),
        enroll_path=r"/ssl/v1/enroll$",
        collect_path=r"/ssl/v1/collect/",
        pending_codes=(0, -183, -1400, -109),
        set_pending=set_pending,
        decline=lambda order_id: sim.decline(int(order_id)),
        order_count=sim.order_count,
        request_kwargs={"org_id": 1234, "cert_type": 567, "term": 365},
        capabilities=ScmCapabilities(
            can_list_orders=True,
            renew_needs_profile_id=False,
            replace_keeps_id=True,
            enroll_from_profile=True,
            renew_takes_tag=False,
        ),
        order_routes={
            "enroll": ("POST", r"^/api/ssl/v1/enroll$"),
            "renew": ("POST", r"^/api/ssl/v1/renewById/\d+$"),
            "replace": ("POST", r"^/api/ssl/v1/replace/\d+$"),
            "revoke": ("POST", r"^/api/ssl/v1/revoke/\d+$"),
        },
        summaries=lambda: [sim._summary(o) for o in sim.orders.values()],
    )


def _enrollment_backend(sim, sim_tls) -> Backend:
    def set_pending(code: int) -> None:
        sim.set_defaults(pending_codes=[code])

    return Backend(
        name="enrollment",
        sim=sim,
        config=lambda **o: enrollment_config(sim, sim_tls.ca_file, **o),
        bad_credentials={"client_secret": Secret("not-the-" + ENROLL_CLIENT_SECRET)},
        auth_message="unauthorized_client: Invalid client or Invalid client credentials",
        secrets=(ENROLL_CLIENT_SECRET,),
        enroll_path=r"^/api/v1/certificates$",
        collect_path=r"^/api/v1/certificates/[^/]+$",
        pending_codes=(-103, -109),
        set_pending=set_pending,
        decline=sim.decline,
        order_count=sim.order_count,
        request_kwargs={},
        capabilities=ScmCapabilities(
            can_list_orders=False,
            renew_needs_profile_id=True,
            replace_keeps_id=False,
            enroll_from_profile=False,
            renew_takes_tag=True,
        ),
        order_routes={
            "enroll": ("POST", r"^/api/v1/certificates$"),
            "renew": ("POST", r"^/api/v1/certificates/[^/]+/renew$"),
            "replace": ("POST", r"^/api/v1/certificates/[^/]+/replace$"),
            "revoke": ("DELETE", r"^/api/v1/certificates/[^/]+$"),
        },
        summaries=lambda: [sim._summary(o) for o in sim.orders.values()],
    )


BACKENDS = ["admin", "enrollment"]


@pytest.fixture(params=BACKENDS)
def backend(request, sim_tls) -> Iterator[Backend]:
    if request.param == "admin":
        sim = request.getfixturevalue("admin_sim")
        yield _admin_backend(sim, sim_tls)
    elif request.param == "enrollment":
        sim = request.getfixturevalue("enrollment_sim")
        yield _enrollment_backend(sim, sim_tls)
    else:  # pragma: no cover
        raise AssertionError(request.param)


def _collect_until_issued(client: ScmClient, order_id: str):
    for _ in range(10):
        result = client.collect(order_id)
        if result.ready:
            return result.certificates
    raise AssertionError(f"{order_id} never issued")


def _fast_poll() -> PollSettings:
    return PollSettings(first_wait=0, interval=1, timeout=60)


class _Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


# --------------------------------------------------------------------------------- the lifecycle


def test_full_lifecycle(backend: Backend, keys, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    client = backend.client()
    key = keys["RSA 2048"]
    order_id = client.enroll(backend.request(key))
    assert isinstance(order_id, str) and order_id

    first = client.collect(order_id)
    assert not first.ready and first.code in backend.pending_codes
    assert client.status(order_id).state == "pending"

    clock = _Clock()
    certs = wait_for_certificate(client, order_id, _fast_poll(), clock=clock, sleep=clock.sleep)
    leaf, chain = split_leaf_and_chain(certs, key)
    assert chain, "the chain comes with the leaf"
    status = client.status(order_id)
    assert status.state == "issued" and status.order_id == order_id

    renewed = client.renew(order_id, csr_pem=csr_pem(keys["ECDSA P-384"]), sans=("www.example.com",))
    assert renewed != order_id
    renewed_certs = wait_for_certificate(client, renewed, _fast_poll(), clock=clock, sleep=clock.sleep)
    split_leaf_and_chain(renewed_certs, keys["ECDSA P-384"])

    replaced = client.replace(
        renewed,
        csr_pem=csr_pem(keys["ECDSA P-256"]),
        common_name="www.example.com",
        sans=["www.example.com"],
        reason="key rotation",
    )
    replaced_certs = wait_for_certificate(client, replaced, _fast_poll(), clock=clock, sleep=clock.sleep)
    split_leaf_and_chain(replaced_certs, keys["ECDSA P-256"])

    client.revoke(replaced, reason_code=4, reason="superseded")
    assert client.status(replaced).state == "revoked"
    with pytest.raises(ScmDeclinedError):
        client.collect(replaced)
    client.close()
    for secret in backend.secrets:
        assert secret not in caplog.text


def test_every_documented_pending_code(backend: Backend, keys) -> None:
    for code in backend.pending_codes:
        backend.set_pending(code)
        client = backend.client()
        order_id = client.enroll(backend.request(keys["RSA 2048"]))
        result = client.collect(order_id)
        assert (result.ready, result.code) == (False, code)
        assert result.description


def test_pending_until_deadline_is_resumable(backend: Backend, keys) -> None:
    client = backend.client()
    order_id = client.enroll(backend.request(keys["RSA 2048"]))
    clock = _Clock()
    with pytest.raises(PendingError) as info:
        wait_for_certificate(
            client,
            order_id,
            PollSettings(first_wait=0, interval=5, timeout=5),
            clock=clock,
            sleep=clock.sleep,
        )
    assert info.value.order_id == order_id and info.value.exit_code == 4
    assert "run again to resume" in str(info.value)
    # the next run picks it up
    assert wait_for_certificate(client, order_id, _fast_poll(), clock=clock, sleep=clock.sleep)


def test_declined_order(backend: Backend, keys) -> None:
    client = backend.client()
    order_id = client.enroll(backend.request(keys["RSA 2048"]))
    backend.decline(order_id)
    assert client.status(order_id).state == "declined"
    with pytest.raises(ScmDeclinedError):
        client.collect(order_id)


def test_declined_is_noticed_by_polling_status(backend: Backend, keys, monkeypatch) -> None:
    client = backend.client()
    order_id = client.enroll(backend.request(keys["RSA 2048"]))
    backend.decline(order_id)
    clock = _Clock()
    with pytest.raises(ScmDeclinedError):
        wait_for_certificate(client, order_id, _fast_poll(), clock=clock, sleep=clock.sleep, status_every=1)


def test_unknown_order_is_an_error_not_pending(backend: Backend) -> None:
    client = backend.client()
    with pytest.raises(ScmError) as info:
        client.collect("987654")
    assert info.value.code is not None and info.value.status == 404
    assert not isinstance(info.value, ScmDeclinedError)


# ----------------------------------------------------------------------------- errors & retries


def test_auth_failure_names_scm_code(backend: Backend, keys, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    client = backend.client(**backend.bad_credentials)
    with pytest.raises(ScmAuthError) as info:
        client.enroll(backend.request(keys["RSA 2048"]))
    message = str(info.value)
    assert backend.auth_message in message
    assert "\n" not in message
    assert backend.order_count() == 0
    for secret in (
        *backend.secrets,
        *(v.reveal() for v in backend.bad_credentials.values() if isinstance(v, Secret)),
    ):
        assert secret not in message and secret not in caplog.text


def test_transient_503_with_retry_after_is_retried(backend: Backend, keys) -> None:
    sleeps = Sleeps()
    client = backend.client(sleeps)
    order_id = client.enroll(backend.request(keys["RSA 2048"]))
    backend.sim.add_fault(
        backend.collect_path, method="GET", status=503, body="", headers={"Retry-After": "7"}, times=2
    )
    result = client.collect(order_id)
    assert not result.ready  # the real answer after two 503s
    assert sleeps.calls == [7.0, 7.0]
    assert [r.status for r in backend.sim.requests if r.method == "GET"][-3:] == [
        503,
        503,
        400 if backend.name == "admin" else 404,
    ]


def test_503_on_enroll_is_retried_once_the_server_says_so(backend: Backend, keys) -> None:
    sleeps = Sleeps()
    client = backend.client(sleeps)
    backend.sim.add_fault(backend.enroll_path, method="POST", status=503, headers={"Retry-After": "3"})
    assert client.enroll(backend.request(keys["RSA 2048"]))
    assert backend.order_count() == 1
    assert sleeps.calls == [3.0]


def test_400_is_not_retried(backend: Backend, keys) -> None:
    sleeps = Sleeps()
    client = backend.client(sleeps)
    backend.sim.add_fault(
        backend.enroll_path,
        method="POST",
        status=400,
        json_body={"code": -10, "description": "Error while decoding CSR."},
    )
    with pytest.raises(ScmError) as info:
        client.enroll(backend.request(keys["RSA 2048"]))
    assert info.value.code == -10 and info.value.status == 400
    assert "code -10" in str(info.value) and "Error while decoding CSR." in str(info.value)
    assert sleeps.calls == []
    assert len([r for r in backend.sim.requests if r.method == "POST" and "token" not in r.path]) == 1


def test_post_is_not_duplicated_after_a_reset(backend: Backend, keys) -> None:
    sleeps = Sleeps()
    client = backend.client(sleeps)
    backend.sim.add_fault(backend.enroll_path, method="POST", reset=True)
    with pytest.raises(ScmError) as info:
        client.enroll(backend.request(keys["RSA 2048"]))
    assert "\n" not in str(info.value)
    posts = [r for r in backend.sim.requests if r.method == "POST" and "token" not in r.path]
    assert len(posts) == 1
    assert sleeps.calls == []


def test_get_is_retried_after_a_reset(backend: Backend, keys) -> None:
    sleeps = Sleeps()
    client = backend.client(sleeps)
    order_id = client.enroll(backend.request(keys["RSA 2048"]))
    backend.sim.add_fault(backend.collect_path, method="GET", reset=True)
    assert not client.collect(order_id).ready
    assert len(sleeps.calls) == 1


def test_tls_verification_failure_is_one_line(backend: Backend, keys, untrusted_ca_file) -> None:
    client = backend.client(verify_tls=untrusted_ca_file)
    with pytest.raises(ScmError) as info:
        client.enroll(backend.request(keys["RSA 2048"]))
    message = str(info.value)
    assert "TLS verification failed" in message and "\n" not in message
    assert isinstance(info.value, CitrixAgentError)
    assert backend.order_count() == 0


def test_revoke_reason_code_checked_locally(backend: Backend) -> None:
    client = backend.client()
    with pytest.raises(ScmError, match="reason code 2"):
        client.revoke("1001", reason_code=2, reason="CA compromise")


# ------------------------------------------------------------------ capabilities & specific errors


def _issued(backend: Backend, client: ScmClient, keys, key: str = "RSA 2048") -> str:
    order_id = client.enroll(backend.request(keys[key]))
    _collect_until_issued(client, order_id)
    return order_id


def _sent(backend: Backend, op: str) -> list[Any]:
    method, route = backend.order_routes[op]
    return [r for r in backend.sim.requests if r.method == method and re.search(route, r.path)]


def test_capabilities_say_what_the_api_does(backend: Backend, keys) -> None:
    client = backend.client()
    assert client.capabilities == backend.capabilities
    assert capabilities_of(backend.config()) == backend.capabilities
    order_id = _issued(backend, client, keys)
    if client.capabilities.can_list_orders:
        assert order_id in client.find_orders(common_name="www.example.com")
    else:
        with pytest.raises(ScmUnsupportedError):
            client.find_orders(common_name="www.example.com")
    replaced = client.replace(
        order_id, csr_pem=csr_pem(keys["ECDSA P-256"]), common_name="www.example.com", sans=[], reason="r"
    )
    assert (replaced == order_id) is client.capabilities.replace_keeps_id


def test_renew_without_a_profile_id_where_the_api_needs_one(backend: Backend, keys) -> None:
    client = backend.client(profile_id=None)
    order_id = _issued(backend, client, keys)
    if not client.capabilities.renew_needs_profile_id:
        assert client.renew(order_id, csr_pem=csr_pem(keys["RSA 2048"])) != order_id
        return
    with pytest.raises(ScmNotSentError, match="profile_id"):
        client.renew(order_id, csr_pem=csr_pem(keys["RSA 2048"]))
    assert _sent(backend, "renew") == []


def test_refusal_proves_nothing_was_done(backend: Backend, keys) -> None:
    method, route = backend.order_routes["enroll"]
    backend.sim.add_fault(route, method=method, status=400, json_body={"code": -36, "description": "bad"})
    with pytest.raises(ScmRefusedError) as info:
        backend.client().enroll(backend.request(keys["RSA 2048"]))
    assert isinstance(info.value, ScmNotDoneError) and info.value.code == -36


def test_revoke_twice_is_already_revoked(backend: Backend, keys) -> None:
    client = backend.client()
    order_id = _issued(backend, client, keys)
    client.revoke(order_id, reason_code=4, reason="superseded")
    with pytest.raises(ScmAlreadyRevokedError) as info:
        client.revoke(order_id, reason_code=4, reason="superseded")
    assert info.value.order_id == order_id and info.value.state == "revoked"
    assert isinstance(info.value, ScmNotDoneError)


def test_renew_or_revoke_of_a_pending_order_is_not_ready(backend: Backend, keys) -> None:
    client = backend.client()
    order_id = client.enroll(backend.request(keys["RSA 2048"]))
    with pytest.raises(ScmNotReadyError, match=f"order {order_id} is not issued yet"):
        client.renew(order_id, csr_pem=csr_pem(keys["RSA 2048"]))
    with pytest.raises(ScmNotReadyError) as info:
        client.revoke(order_id, reason_code=0, reason="x")
    assert info.value.state == "pending"


def test_replace_of_a_replaced_order(backend: Backend, keys) -> None:
    """A replace whose answer was lost, sent again: the admin API re-issues under the same id (the
    order is pending again), the Enrollment API left the old id "Replaced" (-130)."""
    client = backend.client()
    order_id = _issued(backend, client, keys)
    first = client.replace(
        order_id, csr_pem=csr_pem(keys["ECDSA P-256"]), common_name="www.example.com", sans=[], reason="r"
    )

    def again() -> str:
        return client.replace(
            order_id, csr_pem=csr_pem(keys["ECDSA P-384"]), common_name="www.example.com", sans=[], reason="r"
        )

    if backend.capabilities.replace_keeps_id:
        with pytest.raises(ScmNotReadyError) as pending:
            again()
        assert pending.value.code == -130 and first == order_id
        return
    with pytest.raises(ScmAlreadyReplacedError) as info:
        again()
    err = info.value
    assert err.code == -130 and err.status == 400 and "Replaced" in str(err)
    assert (err.order_id, err.state, err.replacement_id) == (order_id, "replaced", None)
    assert "cannot name the replacement" in str(err)
    assert backend.order_count() == 2  # the original and the first replacement only
    assert client.status(first).state == "pending"  # the replacement is what a later run collects


def test_orders_carry_the_tag(backend: Backend, keys) -> None:
    client = backend.client()
    request = backend.request(keys["RSA 2048"])
    tagged_request = dataclasses.replace(request, comments="web farm", tag="citrixagent:p:1a2b")
    order_id = client.enroll(tagged_request)
    _collect_until_issued(client, order_id)
    renewed = client.renew(order_id, csr_pem=csr_pem(keys["RSA 2048"]), tag="citrixagent:p:3c4d")
    comments = {str(o.get("sslId", o.get("certId"))): o["comments"] for o in backend.summaries()}
    assert comments[order_id] == "web farm [citrixagent:p:1a2b]"
    if backend.capabilities.renew_takes_tag:
        assert "[citrixagent:p:3c4d]" in comments[renewed]


# --------------------------------------------------- no second order: answers lost after the effect

_LOST: dict[str, dict[str, Any]] = {
    "500": {"status": 500},
    "502": {"status": 502},
    "reset": {"reset": True},
}


def _do(op: str, backend: Backend, client: ScmClient, order_id: str, keys) -> Any:
    if op == "enroll":
        return client.enroll(backend.request(keys["RSA 2048"]))
    if op == "renew":
        return client.renew(order_id, csr_pem=csr_pem(keys["RSA 3072"]))
    if op == "replace":
        return client.replace(
            order_id, csr_pem=csr_pem(keys["ECDSA P-256"]), common_name="www.example.com", sans=[], reason="r"
        )
    return client.revoke(order_id, reason_code=4, reason="superseded")


@pytest.mark.parametrize("lost", list(_LOST))
@pytest.mark.parametrize("op", ["enroll", "renew", "replace", "revoke"])
def test_an_order_call_is_sent_once_when_its_answer_is_lost(
    backend: Backend, keys, op: str, lost: str
) -> None:
    sleeps = Sleeps()
    client = backend.client(sleeps)
    order_id = "" if op == "enroll" else _issued(backend, client, keys)
    before = backend.order_count()
    method, route = backend.order_routes[op]
    backend.sim.lose_answer(route, method=method, **_LOST[lost])
    with pytest.raises(ScmOutcomeUnknownError) as info:
        _do(op, backend, client, order_id, keys)
    message = str(info.value)
    assert "\n" not in message and not isinstance(info.value, ScmNotDoneError)
    if lost == "reset":
        assert "no answer (connection reset)" in message and "request sent" in message
    else:
        assert f"request sent, answer HTTP {lost}" in message and info.value.status == int(lost)
    assert ("may exist in SCM" if op in ("enroll", "renew") else "SCM may have") in message
    assert len(_sent(backend, op)) == 1, "sent exactly once: SCM had already acted on it"
    assert sleeps.calls == []
    # ...and SCM did act on it
    if op in ("enroll", "renew") or not backend.capabilities.replace_keeps_id and op == "replace":
        assert backend.order_count() == before + 1
    else:
        assert backend.order_count() == before
        state = client.status(order_id).state
        assert state == ("revoked" if op == "revoke" else "pending")


def test_connection_refused_is_not_sent_and_says_so(backend: Backend, keys) -> None:
    with socket.socket() as probe:  # a loopback port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    sleeps = Sleeps()
    client = backend.client(sleeps, url=f"https://127.0.0.1:{port}", token_url=None)
    with pytest.raises(ScmNotSentError) as info:
        client.enroll(backend.request(keys["RSA 2048"]))
    message = str(info.value)
    assert "nothing was sent" in message and "may exist" not in message
    assert len(sleeps.calls) == 3  # nothing was sent: a refused connection may be tried again


def test_organization_details_where_the_api_reads_them(backend: Backend) -> None:
    """The admin API reads an organization (or a department) as SCM's organization endpoint
    describes it; the REST Enrollment API cannot (its REST account fixes the organization) and says
    so without a request."""
    client = backend.client()
    seen = len(backend.sim.requests)
    if backend.name != "admin":
        with pytest.raises(ScmUnsupportedError, match="cannot read organizations"):
            client.organization(1234)
        assert len(backend.sim.requests) == seen
        return
    org = client.organization(1234)
    assert (org.org_id, org.name, org.state, org.country) == (1234, "Sandbox Org", "NJ", "US")
    assert client.organization(1234) is org  # asked once per client
    department = client.organization(1235)
    assert department.name == "Sandbox Department" and department.country == "US"
    with pytest.raises(ScmError) as refused:
        client.organization(999)
    assert refused.value.code == -1023
    lookups = [r.path for r in backend.sim.requests[seen:] if "/organization/" in r.path]
    assert lookups == ["/api/organization/v1/1234", "/api/organization/v1/1235", "/api/organization/v1/999"]
