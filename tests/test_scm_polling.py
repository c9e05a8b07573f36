"""wait_for_certificate: deadline, interval, status checks -- with a scripted client and a fake clock."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pytest
from cryptography import x509

from citrix_connector.config import PollSettings
from citrix_connector.errors import PendingError, ScmAuthError, ScmDeclinedError
from citrix_connector.scm.base import (
    CollectResult,
    EnrollRequest,
    OrderState,
    OrderStatus,
    Organization,
    ScmCapabilities,
)
from citrix_connector.scm.polling import wait_for_certificate


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        assert seconds >= 0
        self.sleeps.append(seconds)
        self.now += seconds


class ScriptedClient:
    """An ScmClient whose collect/status answers follow a script."""

    api_name = "fake"
    capabilities = ScmCapabilities(
        can_list_orders=False,
        renew_needs_profile_id=False,
        replace_keeps_id=True,
        enroll_from_profile=False,
        renew_takes_tag=False,
    )

    def __init__(
        self,
        collects: Sequence[CollectResult | Exception],
        status: OrderState = "pending",
        status_text: str = "Applied",
    ) -> None:
        self.collects = list(collects)
        self.state: OrderState = status
        self.status_text = status_text
        self.collect_calls = 0
        self.status_calls = 0

    def enroll(self, request: EnrollRequest) -> str:
        raise NotImplementedError

    def collect(self, order_id: str) -> CollectResult:
        self.collect_calls += 1
        item = self.collects.pop(0) if len(self.collects) > 1 else self.collects[0]
        if isinstance(item, Exception):
            raise item
        return item

    def status(self, order_id: str) -> OrderStatus:
        self.status_calls += 1
        return OrderStatus(order_id=order_id, state=self.state, status=self.status_text)

    def renew(
        self,
        order_id: str,
        *,
        csr_pem: str | None,
        sans: Sequence[str] = (),
        profile_id: int | None = None,
        term: int | None = None,
        custom_fields: Mapping[str, str] | None = None,
        tag: str | None = None,
    ) -> str:
        raise NotImplementedError

    def replace(
        self,
        order_id: str,
        *,
        csr_pem: str,
        common_name: str,
        sans: Sequence[str],
        reason: str,
        tag: str | None = None,
    ) -> str:
        raise NotImplementedError

    def revoke(self, order_id: str, *, reason_code: int, reason: str) -> None:
        raise NotImplementedError

    def find_orders(self, *, common_name: str, limit: int = 200) -> list[str]:
        raise NotImplementedError

    def organization(self, org_id: int) -> Organization:
        raise NotImplementedError

    def close(self) -> None:
        pass


PENDING = CollectResult(ready=False, code=0, description="Being processed by Sectigo")


@pytest.fixture(scope="module")
def certs(local_ca, keys) -> tuple[x509.Certificate, ...]:
    from citrix_connector.crypto import build_csr

    leaf = local_ca.issue_from_csr(build_csr(keys["RSA 2048"], "poll.example.com", ["poll.example.com"]))
    return (leaf, *local_ca.chain_for(leaf))


def test_returns_certificates_after_pending_answers(certs) -> None:
    clock = FakeClock()
    client = ScriptedClient([PENDING, PENDING, CollectResult(ready=True, certificates=certs)])
    seen: list[CollectResult] = []
    got = wait_for_certificate(
        client,
        "42",
        PollSettings(first_wait=5, interval=10, timeout=300),
        clock=clock,
        sleep=clock.sleep,
        on_wait=seen.append,
    )
    assert got == certs
    assert clock.sleeps == [5, 10, 10]
    assert client.collect_calls == 3
    assert seen == [PENDING, PENDING]
    assert client.status_calls == 0  # status only every 3 not-ready answers


def test_ready_at_first_collect_needs_no_interval(certs) -> None:
    clock = FakeClock()
    client = ScriptedClient([CollectResult(ready=True, certificates=certs)])
    assert wait_for_certificate(client, "1", PollSettings(0, 10, 60), clock=clock, sleep=clock.sleep) == certs
    assert clock.sleeps == []


@pytest.mark.parametrize(("since_order", "first"), [(0.0, 5.0), (2.0, 3.0), (5.0, None), (600.0, None)])
def test_the_first_wait_counts_from_the_order(certs, since_order: float, first: float | None) -> None:
    """A fleet collects its orders one after the other, seconds after placing them: the time since
    the order counts against the first wait, so each profile does not wait it again."""
    clock = FakeClock()
    client = ScriptedClient([PENDING, CollectResult(ready=True, certificates=certs)])
    got = wait_for_certificate(
        client,
        "7",
        PollSettings(first_wait=5, interval=10, timeout=300),
        clock=clock,
        sleep=clock.sleep,
        since_order=since_order,
    )
    assert got == certs
    assert clock.sleeps == ([first] if first is not None else []) + [10]


def test_deadline_raises_pending_with_code_and_order_id() -> None:
    clock = FakeClock()
    client = ScriptedClient(
        [CollectResult(ready=False, code=-183, description="Certificate is not collectable.")]
    )
    with pytest.raises(PendingError) as info:
        wait_for_certificate(
            client,
            "77",
            PollSettings(first_wait=5, interval=10, timeout=30),
            clock=clock,
            sleep=clock.sleep,
            status_every=0,
        )
    err = info.value
    assert err.order_id == "77"
    assert err.exit_code == 4
    assert str(err) == (
        "certificate 77 still pending at SCM after 30s (code -183: Certificate is not collectable.); "
        "run again to resume"
    )
    # first wait 5, then 10, 10, and the last sleep is cut to the deadline; never past it
    assert clock.sleeps == [5, 10, 10, 5]
    assert clock.now == 1030.0
    assert client.collect_calls == 4  # at 5, 15, 25 and 30 s


def test_first_wait_longer_than_timeout_is_cut() -> None:
    clock = FakeClock()
    client = ScriptedClient([PENDING])
    with pytest.raises(PendingError):
        wait_for_certificate(
            client,
            "5",
            PollSettings(first_wait=100, interval=10, timeout=20),
            clock=clock,
            sleep=clock.sleep,
            status_every=0,
        )
    assert clock.now == 1020.0
    assert max(clock.sleeps) == 20


def test_zero_timeout_collects_once() -> None:
    clock = FakeClock()
    client = ScriptedClient([PENDING])
    with pytest.raises(PendingError, match=r"after 0s \(code 0: Being processed by Sectigo\)"):
        wait_for_certificate(
            client, "5", PollSettings(first_wait=10, interval=10, timeout=0), clock=clock, sleep=clock.sleep
        )
    assert client.collect_calls == 1
    assert clock.sleeps == []


@pytest.mark.parametrize(
    ("state", "text"), [("declined", "Declined"), ("declined", "Rejected"), ("revoked", "Revoked")]
)
def test_status_every_n_polls_detects_declined(state: OrderState, text: str) -> None:
    clock = FakeClock()
    client = ScriptedClient([PENDING], status=state, status_text=text)
    with pytest.raises(ScmDeclinedError, match=f"certificate 9 was {text} at SCM"):
        wait_for_certificate(
            client, "9", PollSettings(1, 10, 3600), clock=clock, sleep=clock.sleep, status_every=3
        )
    assert client.collect_calls == 3
    assert client.status_calls == 1


def test_pending_status_keeps_polling_and_is_checked_every_n() -> None:
    clock = FakeClock()
    client = ScriptedClient([PENDING], status="pending", status_text="Requested")
    with pytest.raises(PendingError):
        wait_for_certificate(
            client, "9", PollSettings(0, 10, 95), clock=clock, sleep=clock.sleep, status_every=2
        )
    assert client.collect_calls == 11  # t = 0, 10, ..., 90, and the last one at the 95 s deadline
    assert client.status_calls == 5


def test_client_errors_propagate_and_are_never_pending() -> None:
    clock = FakeClock()
    client = ScriptedClient([PENDING, ScmAuthError("SCM rejected the credentials", status=401)])
    with pytest.raises(ScmAuthError):
        wait_for_certificate(client, "3", PollSettings(0, 10, 600), clock=clock, sleep=clock.sleep)
    assert client.collect_calls == 2


def test_no_description_message() -> None:
    clock = FakeClock()
    client = ScriptedClient([CollectResult(ready=False)])
    with pytest.raises(PendingError, match=r"after 10s \(not ready\); run again"):
        wait_for_certificate(client, "8", PollSettings(0, 10, 10), clock=clock, sleep=clock.sleep)
