"""The simulated SCM admin API's data: knobs, order records, collect formats and field checks
(used by :mod:`~citrix_connector.sandbox.scm` and :mod:`~citrix_connector.sandbox.scm_admin_routes`)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from cryptography import x509

from .scm_common import check_common_knob, is_int, key_type_of, parse_error

__all__ = [
    "ALL_FORMATS",
    "AUTH_TEXT",
    "MODES",
    "ORDER_ID",
    "ORDER_KNOBS",
    "PEM_FORMATS",
    "PENDING_TEXT",
    "PKCS7_FORMATS",
    "ScmOrder",
    "ScmSettings",
    "check_knob",
    "colon_serial",
    "int_field",
]

MODES = ("auto", "needs_approval", "declined", "revoke_after_issue")

PENDING_TEXT: dict[int, str] = {
    0: "Being processed by Sectigo",
    -183: "Certificate is not collectable.",
    -1400: "The request is being processed by Sectigo.",
    -109: "Certificate is not available now, please try again later.",
}

AUTH_TEXT: dict[int, str] = {-16: "Unknown user", -970: "Incorrect login credentials."}

# PEM collect formats: which certificates, in which order ("L" leaf, "I" intermediates, "R" root)
PEM_FORMATS: dict[str, str] = {
    "x509CO": "L",
    "pemco": "L",
    "x509": "RIL",
    "pem": "RIL",
    "x509R": "LIR",
    "pemia": "LI",
    "x509IO": "RI",
    "x509IOR": "IR",
}
PKCS7_FORMATS = ("base64", "bin")
ALL_FORMATS = (*PEM_FORMATS, *PKCS7_FORMATS)


def colon_serial(serial: int) -> str:
    text = f"{serial:X}"
    if len(text) % 2:
        text = "0" + text
    return ":".join(text[i : i + 2] for i in range(0, len(text), 2))


@dataclass
class ScmSettings:
    """Knobs of :class:`ScmSimulator` (``set_defaults`` / ``POST /_sim/config``)."""

    issue_after_polls: int | None = 2
    issue_after_seconds: float | None = None
    pending_code: int = 0
    pending_description: str | None = None
    mode: str = "auto"
    auth_error_code: int = -16
    not_found_code: int = -5101
    already_revoked_code: int = -159
    declined_code: int = -1112
    require_external_requester: bool = False
    token_lifetime: int = 300
    crlf: bool = False

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class ScmOrder:
    """One SSL certificate record of the simulated SCM."""

    ssl_id: int
    renew_id: str
    org_id: int
    cert_type: int
    term: int
    csr_pem: str
    csr: x509.CertificateSigningRequest
    common_name: str
    sans: list[str]  # CN first, then the subjAltNames list
    extra_sans: list[str]  # the subjAltNames list as requested
    requester: str
    requested_at: datetime
    pending_since: datetime
    mode: str = "auto"
    issue_after_polls: int | None = 2
    issue_after_seconds: float | None = None
    pending_code: int = 0
    pending_description: str | None = None
    status: str = "Requested"
    awaiting_approval: bool = False
    polls: int = 0
    comments: str = ""
    external_requester: str = ""
    custom_fields: list[dict[str, str]] = field(default_factory=list)
    approved_at: datetime | None = None
    issued_at: datetime | None = None
    declined_at: datetime | None = None
    revoked_at: datetime | None = None
    replaced_at: datetime | None = None
    renewed: bool = False
    renewed_at: datetime | None = None
    renewed_by: int | None = None
    renewal_of: int | None = None
    reason_code: int | None = None
    revoke_reason: str = ""
    cert: x509.Certificate | None = None
    chain: list[x509.Certificate] = field(default_factory=list)
    previous_certs: list[x509.Certificate] = field(default_factory=list)
    collected: int = 0

    @property
    def key_type(self) -> str:
        alg, param = key_type_of(self.csr.public_key())
        return f"{alg} - {param}"


ORDER_ID = r"(\d{1,18})"


ORDER_KNOBS = ("mode", "issue_after_polls", "issue_after_seconds", "pending_code", "pending_description")


def check_knob(key: str, value: Any) -> Any:
    """Validate one knob value; ValueError with a readable message."""
    if key in ("pending_code", "declined_code"):
        if not is_int(value):
            raise ValueError(f"{key} must be an int")
        return value
    if key == "pending_description":
        if value is not None and not isinstance(value, str):
            raise ValueError("pending_description must be a string or None")
        return value
    if key == "auth_error_code":
        if value not in AUTH_TEXT:
            raise ValueError(f"auth_error_code must be one of {sorted(AUTH_TEXT)}")
        return value
    if key == "already_revoked_code":
        if value not in (-159, -102):
            raise ValueError("already_revoked_code must be -159 or -102")
        return value
    return check_common_knob(key, value, modes=MODES, booleans=("require_external_requester", "crlf"))


def int_field(body: Mapping[str, Any], key: str) -> int | None:
    """An int field; numeric strings are coerced (as Jackson does); other types -> -1002."""
    value = body.get(key)
    if value is None:
        return None
    if is_int(value):
        return int(value)
    if isinstance(value, str) and re.fullmatch(r"-?\d{1,18}", value.strip()):
        return int(value)
    raise parse_error()


def seed_catalog() -> tuple[dict[int, dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]:
    """The sandbox customer's certificate profiles, custom fields and organizations (fresh copies)."""
    profiles: dict[int, dict[str, Any]] = {
        567: {
            "id": 567,
            "name": "Sandbox OV SSL",
            "description": "Sandbox organization-validated TLS server certificate",
            "terms": [365, 730],
            "keyTypes": {"RSA": ["2048", "3072", "4096"], "EC": ["P-256", "P-384"]},
            "useSecondaryOrgName": False,
        },
        568: {
            "id": 568,
            "name": "Sandbox EV SSL",
            "description": "Sandbox extended-validation TLS server certificate",
            "terms": [365],
            "keyTypes": {"RSA": ["2048", "3072", "4096"], "EC": ["P-256", "P-384"]},
            "useSecondaryOrgName": False,
        },
        569: {
            "id": 569,
            "name": "Sandbox RSA 2048 Only SSL",
            "description": "Sandbox profile that only accepts RSA 2048 keys",
            "terms": [365],
            "keyTypes": {"RSA": ["2048"]},
            "useSecondaryOrgName": False,
        },
    }
    custom_fields: list[dict[str, Any]] = [
        {"id": 54, "name": "Cost Center", "mandatory": False},
        {"id": 55, "name": "Application Owner", "mandatory": False},
    ]
    organizations: list[dict[str, Any]] = [
        {
            "id": 1234,
            "name": "Sandbox Org",
            "certTypes": ["SSL"],
            "departments": [
                {
                    "id": 1235,
                    "name": "Sandbox Department",
                    "parentName": "Sandbox Org",
                    "certTypes": ["SSL"],
                }
            ],
        }
    ]
    return profiles, custom_fields, organizations
