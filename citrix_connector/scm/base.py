"""The one SCM interface the lifecycle uses, whichever SCM API is configured.

Two implementations exist: :mod:`citrix_connector.scm.admin` (the admin REST API under
``/api/ssl/v1``: login + password, client certificate, or OAuth) and
:mod:`citrix_connector.scm.enrollment` (the REST Enrollment API under ``/api/v1/certificates``:
OAuth client credentials of a REST account). Both pass ``tests/test_scm_contract.py``.

Order ids are strings everywhere (the admin API's ``sslId`` is an int, the Enrollment API's
``certId`` a string).

What differs between the APIs is told by :class:`ScmCapabilities`, never by the API's name, and
what SCM answered by the error's class (:mod:`citrix_connector.errors`): ``ScmNotDoneError`` (refused
or never sent: nothing was ordered), ``ScmOutcomeUnknownError`` (sent, no usable answer: an order
may exist), ``ScmAlreadyRevokedError``, ``ScmNotReadyError``, ``ScmAlreadyReplacedError``.
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
class ScmCapabilities:
    """What an SCM API can and cannot do, for callers that must plan around it."""

    #: The API lists orders by common name (``find_orders``), so an interrupted order can be found.
    can_list_orders: bool
    #: Renew needs the certificate profile id (the REST Enrollment API's ``profileId``).
    renew_needs_profile_id: bool
    #: Replace re-issues under the same order id (admin API); else it answers a new id.
    replace_keeps_id: bool
    #: Organization, certificate profile and term of a new order come from the profile (admin API),
    #: not from the REST account's settings.
    enroll_from_profile: bool
    #: Renew stamps the new order with the caller's tag (see :func:`tagged`); the admin API's
    #: ``renewById`` takes no comments.
    renew_takes_tag: bool
    #: Where the tag shows in SCM's UI.
    tag_field: str = "comments"


#: How far a tag may go into SCM's comments field (1024 characters).
COMMENTS_LIMIT = 1024


def _stamp(tag: str) -> str:
    return f"[{tag}]"


def tagged(text: str | None, tag: str | None, limit: int = COMMENTS_LIMIT) -> str | None:
    """``text`` with ``[tag]`` appended (``text`` shortened so the tag always fits in ``limit``)."""
    text = (text or "").strip()
    if not tag:
        return text or None
    stamp = _stamp(tag)[:limit]
    room = limit - len(stamp) - 1
    if not text or room <= 0:
        return stamp
    return f"{text[:room]} {stamp}"


def carries_tag(text: str, tag: str) -> bool:
    """Whether ``text`` (an order's comments as SCM shows them) holds the stamp :func:`tagged` adds."""
    return _stamp(tag) in text


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
    #: Stamped into the order's comments, so a person can find the order in SCM's UI (e.g.
    #: ``citrixagent:web-prod:1f3a9c2e``) when its answer was lost.
    tag: str | None = None


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
    comments: str = ""  # where the agent's tag shows (admin API details; "" where not read)


@dataclass(frozen=True)
class Organization:
    """An SCM organization (or department) as ``GET /organization/v1/{id}`` describes it: the
    validated details SCM fills an OV certificate's subject from."""

    org_id: int
    name: str
    state: str | None = None  # stateOrProvince
    country: str | None = None  # ISO 3166 two-letter code
    city: str | None = None


class ScmClient(Protocol):
    """Operations on SCM orders. Every method raises :class:`~citrix_connector.errors.ScmError`
    (or a subclass) carrying SCM's ``code``/``description``, HTTP status and endpoint on failure."""

    api_name: str  # "admin" or "enrollment": recorded in the journal and shown in messages only
    capabilities: ScmCapabilities

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
        tag: str | None = None,
    ) -> str:
        """Renew an issued order; return the NEW order id. ``csr_pem=None`` reuses the key.
        ``custom_fields`` go to APIs whose renew takes them (the Enrollment API requires the
        profile's mandatory ones); the admin API's renewById carries the original's over.
        ``tag`` is stamped where ``capabilities.renew_takes_tag``. An order that is not issued
        raises :class:`~citrix_connector.errors.ScmNotIssuedError` (or a subclass)."""
        ...

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
        """Re-issue with a new CSR; return the order id to collect (``capabilities.replace_keeps_id``:
        the same id, else a new one). An order replaced already raises
        :class:`~citrix_connector.errors.ScmAlreadyReplacedError`."""
        ...

    def revoke(self, order_id: str, *, reason_code: int, reason: str) -> None:
        """Revoke an issued order; one SCM already revoked raises
        :class:`~citrix_connector.errors.ScmAlreadyRevokedError`."""
        ...

    def find_orders(self, *, common_name: str, limit: int = 200) -> list[str]:
        """Order ids SCM lists for a common name; ``ScmUnsupportedError`` where the API has no list."""
        ...

    def organization(self, org_id: int) -> Organization:
        """The organization (or department) ``org_id``; ``ScmUnsupportedError`` where the API cannot
        read organizations (the REST Enrollment API: its REST account fixes the organization)."""
        ...

    def close(self) -> None: ...
