"""The simulated REST Enrollment API's data: REST accounts, certificate records, knobs and their
checks (used by :mod:`~citrix_connector.sandbox.scm_enrollment` and
:mod:`~citrix_connector.sandbox.scm_enrollment_routes`)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from cryptography import x509

from .scm_common import check_common_knob, is_int

__all__ = [
    "ALLOWED_KEYS",
    "DOWNLOAD_ORDERS",
    "MODES",
    "PENDING_TEXT",
    "B64_STRICT",
    "BOOLEAN_KNOBS",
    "EnrollmentAccount",
    "EnrollmentOrder",
    "check_knob",
]

MODES = ("auto", "needs_approval", "declined", "revoke_after_issue", "dcv_pending")
DOWNLOAD_ORDERS = {"leaf-first": "LIR", "root-first": "RIL", "leaf-only": "L"}
PENDING_TEXT: dict[int, str] = {
    -103: "Certificate has not been collected yet.",
    -109: "Certificate is not available now, please try again later.",
    -1400: "The request is being processed by Sectigo.",
    -183: "Certificate is not collectable.",
}
ALLOWED_KEYS: dict[str, tuple[str, ...]] = {"RSA": ("2048", "3072", "4096"), "EC": ("P-256", "P-384")}
BOOLEAN_KNOBS = (
    "strict_csr",
    "require_product_id",
    "crlf",
    "pkcs7",
    "renew_requires_custom_fields",
    "legacy_list",
)
B64_STRICT = re.compile(r"[A-Za-z0-9+/]+={0,2}")


@dataclass
class EnrollmentAccount:
    """A REST account: credentials plus the organization-side settings fixed on it."""

    client_id: str
    client_secret: str
    profile_ids: tuple[int, ...] = (2001,)
    term: int = 365
    auto_approve: bool = True


@dataclass
class EnrollmentOrder:
    """One certificate record behind the Enrollment API."""

    cert_id: str
    client_id: str
    profile_id: int
    term: int
    csr: x509.CertificateSigningRequest
    extra_sans: list[str]
    requested_at: datetime
    pending_since: datetime
    status: str = "Applied"
    mode: str = "auto"
    awaiting_approval: bool = False
    awaiting_dcv: bool = False
    issue_after_polls: int | None = 2
    issue_after_seconds: float | None = None
    polls: int = 0
    comments: str = ""
    external_requester: str = ""
    custom_fields: dict[str, str] = field(default_factory=dict)
    not_after: datetime | None = None  # forced notAfter (replace keeps the original's)
    renewal_of: str | None = None
    replaces: str | None = None
    replaced_by: str | None = None
    renewed_by: list[str] = field(default_factory=list)
    cert: x509.Certificate | None = None
    chain: list[x509.Certificate] = field(default_factory=list)
    issued_at: datetime | None = None
    revoked_at: datetime | None = None
    reason_code: int | None = None
    revoke_message: str = ""
    downloads: int = 0


def check_knob(key: str, value: Any) -> Any:
    """Validate one knob value; ValueError with a readable message."""
    if key == "www_authenticate":
        if value not in ("quoted", "unquoted", None):
            raise ValueError("www_authenticate must be 'quoted', 'unquoted' or None")
        return value
    if key == "pending_codes":
        if not isinstance(value, (list, tuple)) or not value or not all(is_int(v) for v in value):
            raise ValueError("pending_codes must be a non-empty list of ints")
        return list(value)
    if key == "download_order":
        if value not in DOWNLOAD_ORDERS:
            raise ValueError(f"download_order must be one of {sorted(DOWNLOAD_ORDERS)}")
        return value
    if key == "cert_id_style":
        if value not in ("string", "number", "id_key"):
            raise ValueError("cert_id_style must be 'string', 'number' or 'id_key'")
        return value
    if key == "mandatory_custom_fields":
        if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) and v for v in value):
            raise ValueError("mandatory_custom_fields must be a list of names")
        return list(value)
    return check_common_knob(key, value, modes=MODES, booleans=BOOLEAN_KNOBS)
