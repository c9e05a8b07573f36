"""The one SCM interface the lifecycle uses, whichever SCM API is configured.

Two implementations exist: :mod:`citrix_connector.scm.admin` (the admin REST API under
``/api/ssl/v1``: login + password, client certificate, or OAuth) and
:mod:`citrix_connector.scm.enrollment` (the REST Enrollment API under ``/api/v1/certificates``:
OAuth client credentials of a REST account). Both pass ``tests/test_scm_contract.py``.

Order ids are strings everywhere (the admin API's ``sslId`` is an int, the Enrollment API's
``certId`` a string).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Literal, Protocol

from cryptography import x509

from ..revocation import REVOCATION_REASONS as REVOCATION_REASONS  # re-exported: where SCM clients look

OrderState = Literal["pending", "issued", "declined", "revoked", "expired", "replaced", "unknown"]

# RFC 5280 reason codes SCM accepts (2 is refused by SCM): REVOCATION_REASONS, in revocation.py.


@dataclass(frozen=True)
class EnrollRequest:
    """What to order. ``org_id``/``cert_type``/``term`` are used by the admin API only (the
    Enrollment API takes them from the REST account)."""

    csr_pem: str
    common_name: str
    sans: tuple[str, ...]
    org_id: int | None = None
    cert_type: int | str | None = None  # profile id, or its name (looked up by the admin client)
    term: int | None = None
    comments: str | None = None
    external_requester: str | None = None
    custom_fields: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class CollectResult:
    """One collect attempt: either the certificates (leaf and chain, in whatever order SCM sent
    them), or not ready yet with SCM's own "not yet" code and text."""

    ready: bool
    certificates: tuple[x509.Certificate, ...] = ()
    code: int | None = None
    description: str = ""


@dataclass(frozen=True)
class OrderStatus:
    order_id: str
    state: OrderState  # normalised
    status: str  # SCM's own status string
    serial: str | None = None  # normalised hex when SCM reports it
    expires: date | None = None


class ScmClient(Protocol):
    """Operations on SCM orders. Every method raises :class:`~citrix_connector.errors.ScmError`
    (or a subclass) carrying SCM's ``code``/``description``, HTTP status and endpoint on failure."""

    api_name: str  # "admin" or "enrollment"

    def enroll(self, request: EnrollRequest) -> str:
        """Place a new order; return its order id."""
        ...

    def collect(self, order_id: str) -> CollectResult:
        """Try once to download the certificate. Only SCM's documented "not yet" answers give
        ``ready=False``; every other error raises (declined/revoked → ``ScmDeclinedError``)."""
        ...

    def status(self, order_id: str) -> OrderStatus: ...

    def renew(
        self,
        order_id: str,
        *,
        csr_pem: str | None,
        sans: Sequence[str] = (),
        profile_id: int | None = None,
        term: int | None = None,
        custom_fields: Mapping[str, str] | None = None,
    ) -> str:
        """Renew an issued order; return the NEW order id. ``csr_pem=None`` reuses the key.
        ``custom_fields`` go to APIs whose renew takes them (the Enrollment API requires the
        profile's mandatory ones); the admin API's renewById carries the original's over."""
        ...

    def replace(
        self, order_id: str, *, csr_pem: str, common_name: str, sans: Sequence[str], reason: str
    ) -> str:
        """Re-issue with a new CSR; return the order id to collect (admin API: the same id;
        Enrollment API: a new one)."""
        ...

    def revoke(self, order_id: str, *, reason_code: int, reason: str) -> None: ...

    def find_orders(self, *, common_name: str, limit: int = 200) -> list[str]:
        """Order ids SCM lists for a common name; ``ScmUnsupportedError`` where the API has no list."""
        ...

    def close(self) -> None: ...
