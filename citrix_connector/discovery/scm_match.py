"""The SCM side of discovery: SCM's certificate list (admin API ``GET /ssl/v1``, paged, optionally
filtered by organization), appliance leaves matched to it by serial, and what SCM issued that no
appliance holds. Read-only: list and details calls only.

The REST Enrollment API cannot list certificates; there discovery says so and works on the
appliance side alone.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..crypto import normalize_serial
from ..errors import CryptoError, ScmError
from ..scm.admin import AdminScmClient
from .model import ScmMatch, ScmOnly

__all__ = [
    "ENROLLMENT_NOTE",
    "PAGE_SIZE",
    "ScmListing",
    "find_by_serial",
    "list_certificates",
    "match_serials",
]

PAGE_SIZE = 200  # SCM's maximum
ENROLLMENT_NOTE = (
    "SCM matching needs the admin API (scm.yaml api: admin): the REST Enrollment API cannot list "
    "certificates; the appliance side is complete without it"
)


@dataclass
class ScmListing:
    """SCM's certificates by serial, and the details of the ones matched."""

    by_serial: dict[str, tuple[str, str]] = field(default_factory=dict)  # serial -> (sslId, CN)
    issued: dict[str, tuple[str, str]] = field(default_factory=dict)  # issued only
    requests: int = 0


def _json_list(response: Any, what: str) -> list[Mapping[str, Any]]:
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, list):
        raise ScmError(f"SCM answered the certificate list without a JSON list [{what}]")
    return [item for item in body if isinstance(item, Mapping)]


def _serial(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, (str, int)) or not str(value).strip():
        return ""
    try:
        return normalize_serial(value)
    except CryptoError:
        return ""


def _pages(
    client: AdminScmClient, params: Mapping[str, str], listing: ScmListing
) -> dict[str, tuple[str, str]]:
    out: dict[str, tuple[str, str]] = {}
    position = 0
    while True:
        query = {**params, "size": str(PAGE_SIZE), "position": str(position)}
        response = client.get("certificate list", "/ssl/v1", params=query)
        listing.requests += 1
        items = _json_list(response, "GET /ssl/v1")
        for item in items:
            ssl_id = item.get("sslId", item.get("id"))
            serial = _serial(item.get("serialNumber"))
            if ssl_id is not None and serial:
                out[serial] = (str(ssl_id), str(item.get("commonName") or ""))
        if len(items) < PAGE_SIZE:
            return out
        position += len(items)


def list_certificates(client: AdminScmClient, *, org_id: int | None = None) -> ScmListing:
    """Every SCM certificate with a serial (all statuses), and the issued ones apart."""
    listing = ScmListing()
    base = {"orgId": str(org_id)} if org_id is not None else {}
    listing.by_serial = _pages(client, base, listing)
    listing.issued = _pages(client, {**base, "status": "Issued"}, listing)
    return listing


def _int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value.strip())
    return None


def details(client: AdminScmClient, ssl_id: str, listing: ScmListing) -> ScmMatch:
    """``GET /ssl/v1/{sslId}``: organization, certificate profile, term and status."""
    response = client.get("certificate details", f"/ssl/v1/{int(ssl_id)}")
    listing.requests += 1
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, Mapping):
        raise ScmError(f"SCM answered the details of {ssl_id} without a JSON object [GET /ssl/v1/{ssl_id}]")
    cert_type = body.get("certType")
    profile_id: int | None = None
    profile_name = ""
    if isinstance(cert_type, Mapping):
        profile_id = _int(cert_type.get("id"))
        profile_name = str(cert_type.get("name") or "")
    else:
        profile_id = _int(cert_type)
    return ScmMatch(
        ssl_id=str(ssl_id),
        org_id=_int(body.get("orgId")),
        cert_profile_id=profile_id,
        cert_profile=profile_name,
        term=_int(body.get("term")),
        status=str(body.get("status") or ""),
    )


def match_serials(
    client: AdminScmClient, serials: Sequence[str], *, org_id: int | None = None
) -> tuple[dict[str, ScmMatch], list[ScmOnly], int]:
    """(serial -> SCM match for the given appliance serials, issued SCM certificates whose serial is
    not among them, SCM requests made). One details call per matched certificate."""
    listing = list_certificates(client, org_id=org_id)
    wanted = set(serials)
    matches: dict[str, ScmMatch] = {}
    for serial in sorted(wanted):
        found = listing.by_serial.get(serial)
        if found is not None:
            matches[serial] = details(client, found[0], listing)
    only = [
        ScmOnly(ssl_id, cn, serial)
        for serial, (ssl_id, cn) in sorted(listing.issued.items(), key=lambda kv: int(kv[1][0]))
        if serial not in wanted
    ]
    return matches, only, listing.requests


def find_by_serial(client: AdminScmClient, serial: str) -> ScmMatch | None:
    """The SCM certificate with this serial (``GET /ssl/v1?serialNumber=``, then its details), or
    None. Used when a run adopts a certkey it never installed."""
    wanted = normalize_serial(serial)
    colon = wanted if len(wanted) % 2 == 0 else "0" + wanted
    colon = ":".join(colon[i : i + 2] for i in range(0, len(colon), 2))
    response = client.get("certificate list", "/ssl/v1", params={"serialNumber": colon, "size": "10"})
    for item in _json_list(response, "GET /ssl/v1"):
        ssl_id = item.get("sslId", item.get("id"))
        if ssl_id is not None and _serial(item.get("serialNumber")) == wanted:
            return details(client, str(ssl_id), ScmListing())
    return None
