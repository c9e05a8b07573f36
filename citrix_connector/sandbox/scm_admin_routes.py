"""Request handlers of the simulated SCM admin API: reads (profiles, custom fields, organizations,
certificate details and list) and the order routes (enroll, collect, renew, replace, revoke,
approve, DCV recheck). :class:`~citrix_connector.sandbox.scm.ScmSimulator` routes to them with
its lock held; each takes the simulator first."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.serialization import pkcs7

from citrix_connector.crypto import csr_names, normalize_serial, unique_names
from citrix_connector.errors import CryptoError

from .httpserver import Request, Response
from .scm_admin_model import (
    ALL_FORMATS,
    PEM_FORMATS,
    PENDING_TEXT,
    ScmOrder,
    colon_serial,
    int_field,
)
from .scm_common import (
    NOT_FOUND_TEXT,
    cert_order,
    error,
    fail,
    json_object,
    key_type_of,
    parse_error,
    pem_of,
    reason_code_of,
    required_text,
)

if TYPE_CHECKING:
    from .scm import ScmSimulator


# ------------------------------------------------------------------ reads
def profile_types(sim: ScmSimulator, req: Request) -> Response:
    org = req.query.get("organizationId")
    if org is not None and (not org.isdigit() or not org_exists(sim, int(org))):
        return Response.json(200, [])
    return Response.json(200, [dict(p) for p in sim.profiles.values()])


def custom_field_defs(sim: ScmSimulator, req: Request) -> Response:
    return Response.json(200, [dict(f) for f in sim.custom_fields])


def org_exists(sim: ScmSimulator, org_id: int) -> bool:
    return any(
        o["id"] == org_id or any(d["id"] == org_id for d in o["departments"]) for o in sim.organizations
    )


def org_list(sim: ScmSimulator, req: Request) -> Response:
    return Response.json(200, json.loads(json.dumps(sim.organizations)), {"Content-Type": "application/json"})


def org_details(sim: ScmSimulator, req: Request, org_id: str) -> Response:
    wanted = int(org_id)
    for org in sim.organizations:
        candidates = [(org, None), *((d, org) for d in org["departments"])]
        for item, parent in candidates:
            if item["id"] != wanted:
                continue
            out: dict[str, Any] = {
                "id": item["id"],
                "name": item["name"],
                "certTypes": list(item.get("certTypes", [])),
                "sslCertsApiEnabled": True,
                "address1": "1 Sandbox Street",
                "city": "Roseland",
                "stateOrProvince": "NJ",
                "postalCode": "07068",
                "country": "US",
                "departments": json.loads(json.dumps(org["departments"])) if parent is None else [],
            }
            if parent is not None:
                out["parentName"] = parent["name"]
                out["parentId"] = parent["id"]
            return Response.json(200, out, {"Content-Type": "application/json"})
    return error(404, -1023, f"Organization '{wanted}' not found.")


def details(sim: ScmSimulator, req: Request, ssl_id: str) -> Response:
    order = sim._find(ssl_id)
    sim._advance(order, poll=False)
    return Response.json(200, details_json(sim, order, req))


def details_json(sim: ScmSimulator, o: ScmOrder, req: Request) -> dict[str, Any]:
    profile = sim.profiles.get(o.cert_type, {"id": o.cert_type, "name": "", "terms": []})
    d: dict[str, Any] = {
        "commonName": o.common_name,
        "sslId": o.ssl_id,
        "id": o.ssl_id,
        "orgId": o.org_id,
        "status": o.status,
        "orderNumber": 9_000_000 + o.ssl_id,
        "backendCertId": str(9_000_000 + o.ssl_id),
        "vendor": "Sectigo Limited",
        "certType": dict(profile),
        "term": o.term,
        "requester": o.requester,
        "externalRequester": o.external_requester,
        "comments": o.comments,
        "renewed": o.renewed,
        "serialNumber": colon_serial(o.cert.serial_number) if o.cert is not None else "",
        "keyType": o.key_type,
        "keyAlgorithm": key_type_of(o.csr.public_key())[0],
        "subjectAlternativeNames": list(o.sans),
        "customFields": [dict(f) for f in o.custom_fields],
        "suspendNotifications": False,
        "autoInstallDetails": {"state": "NOT_STARTED"},
        "autoRenewDetails": {"state": "NOT_ENABLED"},
    }
    for key, when in (
        ("requested", o.requested_at),
        ("approved", o.approved_at),
        ("issued", o.issued_at),
        ("declined", o.declined_at),
        ("replaced", o.replaced_at),
        ("revoked", o.revoked_at),
        ("renewedDate", o.renewed_at),
        ("expires", o.cert.not_valid_after_utc if o.cert is not None else None),
    ):
        text = sim._fmt_date(when, req)
        if text is not None:
            d[key] = text
    if o.reason_code is not None:
        d["reasonCode"] = o.reason_code
    if o.cert is not None:
        der = o.cert.public_bytes(serialization.Encoding.DER)
        names = [
            f"dNSName={n}"
            for n in o.cert.extensions.get_extension_for_class(
                x509.SubjectAlternativeName
            ).value.get_values_for_type(x509.DNSName)
        ]
        d["certificateDetails"] = {
            "issuer": o.cert.issuer.rfc4514_string(),
            "subject": o.cert.subject.rfc4514_string(),
            "subjectAltNames": ", ".join(names),
            "md5Hash": hashlib.md5(der, usedforsecurity=False).hexdigest().upper(),
            "sha1Hash": hashlib.sha1(der, usedforsecurity=False).hexdigest().upper(),
            "sha256Hash": o.cert.fingerprint(hashes.SHA256()).hex().upper(),
        }
    return d


def list_certificates(sim: ScmSimulator, req: Request) -> Response:
    q = req.query
    try:
        size = int(q.get("size", "200"))
        position = int(q.get("position", "0"))
    except ValueError:
        return error(400, -1601, "Field 'size/position' has invalid value.")
    if size < 0 or position < 0:
        return error(400, -1601, "Field 'size/position' has invalid value.")
    size = min(size, 200)
    items: list[ScmOrder] = []
    for o in sorted(sim._orders.values(), key=lambda x: x.ssl_id):
        sim._advance(o, poll=False)
        if not list_match(sim, o, q):
            continue
        items.append(o)
    total = len(items)
    page = items[position : position + size]
    body = []
    for o in page:
        item: dict[str, Any] = {"sslId": o.ssl_id, "commonName": o.common_name}
        if o.sans:
            item["subjectAlternativeNames"] = list(o.sans)
        if o.cert is not None:
            item["serialNumber"] = colon_serial(o.cert.serial_number)
        body.append(item)
    return Response.json(200, body, {"X-Total-Count": str(total)})


def list_match(sim: ScmSimulator, o: ScmOrder, q: Mapping[str, str]) -> bool:
    if "commonName" in q and q["commonName"].lower() != o.common_name.lower():
        return False
    if "subjectAlternativeName" in q and q["subjectAlternativeName"].lower() not in (
        s.lower() for s in o.sans
    ):
        return False
    if "status" in q and q["status"].lower() != o.status.lower():
        return False
    if "orgId" in q and q["orgId"] != str(o.org_id):
        return False
    if "sslTypeId" in q and q["sslTypeId"] != str(o.cert_type):
        return False
    if "requester" in q and q["requester"] != o.requester:
        return False
    if "externalRequester" in q and q["externalRequester"] != o.external_requester:
        return False
    if "serialNumber" in q:
        if o.cert is None:
            return False
        try:
            if normalize_serial(q["serialNumber"]) != normalize_serial(o.cert.serial_number):
                return False
        except CryptoError:
            return False
    return True


# ------------------------------------------------------------------ enroll
def enroll(sim: ScmSimulator, req: Request) -> Response:
    body = json_object(req)
    sans_raw = body.get("subjAltNames")
    if sans_raw is not None and not isinstance(sans_raw, str):
        raise parse_error()
    for key in ("comments", "externalRequester", "csr", "dcvMode", "dcvEmail"):
        if body.get(key) is not None and not isinstance(body[key], str):
            raise parse_error()
    custom = body.get("customFields")
    if custom is not None and (
        not isinstance(custom, list)
        or not all(isinstance(c, dict) and isinstance(c.get("name"), str) for c in custom)
    ):
        raise parse_error()
    org_id = int_field(body, "orgId")
    if org_id is None:
        raise fail(400, -7, "orgId is required but missing.")
    if org_id < 1 or not org_exists(sim, org_id):
        raise fail(400, -639, "Supplied orgid invalid..")
    cert_type = int_field(body, "certType")
    if cert_type is None:
        raise fail(400, -7, "certType is required but missing.")
    profile = sim.profiles.get(cert_type)
    if profile is None:
        raise fail(400, -39, "The certificate profile id is invalid!")
    term = int_field(body, "term")
    if term is None:
        raise fail(400, -7, "term is required but missing.")
    if term not in profile["terms"]:
        raise fail(400, -36, "The validity period (term) is invalid for this certificate profile.")
    csr, csr_pem = sim._parse_csr(body.get("csr"), profile)
    comments = body.get("comments") or ""
    if len(comments) > 1024:
        raise fail(400, -1601, "Field 'comments' has invalid value.")
    external = body.get("externalRequester") or ""
    if len(external) > 512:
        raise fail(400, -1601, "Field 'externalRequester' has invalid value.")
    if sim.settings.require_external_requester and not external.strip():
        raise fail(400, -139, "External Requester is required.")
    fields = check_custom_fields(sim, custom or [])
    extra = [s.strip() for s in (sans_raw or "").split(",") if s.strip()]
    order = sim._new_order(
        org_id=org_id,
        cert_type=cert_type,
        term=term,
        csr=csr,
        csr_pem=csr_pem,
        extra_sans=extra,
        comments=comments,
        external_requester=external,
        custom_fields=fields,
        requester=sim._requester(req),
    )
    return Response.json(200, {"sslId": order.ssl_id, "renewId": order.renew_id})


def check_custom_fields(sim: ScmSimulator, given: list[dict[str, Any]]) -> list[dict[str, str]]:
    known = {f["name"]: f for f in sim.custom_fields}
    values: dict[str, str] = {}
    for item in given:
        name = str(item["name"])
        value = item.get("value")
        if name not in known:
            raise fail(400, -135, "Custom field cannot be found.")
        if value is not None and not isinstance(value, str):
            raise parse_error()
        if value is not None and len(value) > 256:
            raise fail(400, -1601, f"Field '{name}' has invalid value.")
        values[name] = value or ""
    for f in sim.custom_fields:
        if f["mandatory"] and not values.get(f["name"], "").strip():
            raise fail(400, -62, "Missing mandatory custom field!")
    return [{"name": k, "value": v} for k, v in values.items()]


# ------------------------------------------------------------------ collect
def collect(sim: ScmSimulator, req: Request, ssl_id: str, fmt_path: str | None) -> Response:
    order = sim._find(ssl_id)
    fmt = fmt_path if fmt_path is not None else req.query.get("format", "base64")
    if fmt == "":
        fmt = "base64"
    if fmt not in ALL_FORMATS:
        raise fail(400, -126, f"Unknown SSL certificate file format requested: {fmt}")
    sim._collectable(order, declined_code=sim.settings.declined_code)
    if order.status != "Issued" or order.cert is None:
        code = order.pending_code
        text = order.pending_description or PENDING_TEXT.get(code, "Being processed by Sectigo")
        raise fail(400, code, text)
    order.collected += 1
    leaf, chain = order.cert, order.chain
    if fmt in PEM_FORMATS:
        data = pem_of(cert_order(leaf, chain, PEM_FORMATS[fmt]), crlf=sim.settings.crlf)
        ext = "crt" if fmt in ("x509CO", "pemco") else "pem"
    else:
        encoding = serialization.Encoding.PEM if fmt == "base64" else serialization.Encoding.DER
        data = pkcs7.serialize_certificates([leaf, *chain], encoding)
        if fmt == "base64" and sim.settings.crlf:
            data = data.replace(b"\n", b"\r\n")
        ext = "p7b"
    filename = re.sub(r"[^A-Za-z0-9_-]", "_", order.common_name or str(order.ssl_id)) + f".{ext}"
    return Response(
        200,
        data,
        {
            "Content-Type": "application/octet-stream;charset=UTF-8",
            "Content-Disposition": f'attachment; filename="{filename}"',
        },
    )


# ------------------------------------------------------------------ renew / replace
def renew_from(sim: ScmSimulator, original: ScmOrder, body: Mapping[str, Any], req: Request) -> ScmOrder:
    sim._advance(original, poll=False)
    csr_value = body.get("csr")
    for key in ("dcvMode", "dcvEmail"):
        if body.get(key) is not None and not isinstance(body[key], str):
            raise parse_error()
    if csr_value is not None and not isinstance(csr_value, str):
        raise parse_error()
    if original.status != "Issued":
        raise fail(400, -130, f"SSL state is not 'ISSUED': {original.status}")
    profile = sim.profiles[original.cert_type]
    if csr_value:
        csr, csr_pem = sim._parse_csr(csr_value, profile)
    else:
        csr, csr_pem = original.csr, original.csr_pem
    new = sim._new_order(
        org_id=original.org_id,
        cert_type=original.cert_type,
        term=original.term,
        csr=csr,
        csr_pem=csr_pem,
        extra_sans=list(original.extra_sans),
        comments=original.comments,
        external_requester=original.external_requester,
        custom_fields=original.custom_fields,
        requester=sim._requester(req),
    )
    new.renewal_of = original.ssl_id
    original.renewed = True
    original.renewed_at = sim.clock()
    original.renewed_by = new.ssl_id
    return new


def renew_by_id(sim: ScmSimulator, req: Request, ssl_id: str) -> Response:
    order = sim._find(ssl_id)
    body = json_object(req)
    new = renew_from(sim, order, body, req)
    return Response.json(200, {"sslId": new.ssl_id})


def renew_by_renew_id(sim: ScmSimulator, req: Request, renew_id: str) -> Response:
    order = next((o for o in sim._orders.values() if o.renew_id == renew_id), None)
    if order is None:
        code = sim.settings.not_found_code
        raise fail(404, code, NOT_FOUND_TEXT[code].format(renew_id))
    body = json_object(req, allow_empty=True)
    renew_from(sim, order, body, req)
    return Response.empty(204)


def replace(sim: ScmSimulator, req: Request, ssl_id: str) -> Response:
    order = sim._find(ssl_id)
    body = json_object(req)
    sans = body.get("subjectAlternativeNames")
    if sans is not None and (not isinstance(sans, list) or not all(isinstance(s, str) for s in sans)):
        raise parse_error()
    for key in ("reason", "commonName", "csr", "dcvMode", "dcvEmail"):
        if body.get(key) is not None and not isinstance(body[key], str):
            raise parse_error()
    csr_value = body.get("csr")
    if not csr_value:
        raise fail(400, -7, "csr is required but missing.")
    reason = body.get("reason")
    if reason is None or not reason.strip():
        raise fail(400, -7, "reason is required but missing.")
    if len(reason) > 512:
        raise fail(400, -1601, "Field 'reason' has invalid value.")
    common_name = body.get("commonName")
    if common_name is not None and not 1 <= len(common_name) <= 64:
        raise fail(400, -1601, "Field 'commonName' has invalid value.")
    csr, csr_pem = sim._parse_csr(csr_value, sim.profiles[order.cert_type])
    sim._advance(order, poll=False)
    if order.status != "Issued":
        raise fail(400, -130, f"SSL state is not 'ISSUED': {order.status}")
    now = sim.clock()
    if order.cert is not None:
        order.previous_certs.append(order.cert)
    order.cert = None
    order.chain = []
    order.csr, order.csr_pem = csr, csr_pem
    cn, _ = csr_names(csr)
    order.common_name = common_name or cn or order.common_name
    if sans is not None:
        order.extra_sans = [s.strip() for s in sans if s.strip()]
    order.sans = unique_names([order.common_name, *order.extra_sans])
    order.replaced_at = now
    order.issued_at = None
    order.status = "Requested"
    order.pending_since = now
    order.polls = 0
    order.approved_at = None
    order.awaiting_approval = order.mode == "needs_approval"
    return Response.empty(204)


# ------------------------------------------------------------------ revoke / approve
def revoke_body(sim: ScmSimulator, req: Request) -> tuple[int, str]:
    body = json_object(req)
    reason = required_text(body, "reason", 512)
    raw = body.get("reasonCode")
    if raw is None:
        raise fail(400, -7, "reasonCode is required but missing.")
    return reason_code_of(raw), reason


def revoke_order(sim: ScmSimulator, order: ScmOrder, req: Request) -> Response:
    reason_code, reason = revoke_body(sim, req)
    sim._advance(order, poll=False)
    if order.status == "Revoked":
        code = sim.settings.already_revoked_code
        text = (
            "Your certificate already revoked"
            if code == -159
            else "Only issued certificates could be revoked."
        )
        raise fail(400, code, text)
    if order.status != "Issued":
        raise fail(400, -102, "Only issued certificates could be revoked.")
    sim._do_revoke(order, reason_code, reason)
    return Response.empty(204)


def revoke(sim: ScmSimulator, req: Request, ssl_id: str) -> Response:
    return revoke_order(sim, sim._find(ssl_id), req)


def revoke_serial(sim: ScmSimulator, req: Request, serial: str) -> Response:
    try:
        wanted = normalize_serial(serial)
    except CryptoError:
        raise fail(400, -1601, "Field 'serialNumber' has invalid value.") from None
    for order in sim._orders.values():
        if order.cert is not None and normalize_serial(order.cert.serial_number) == wanted:
            return revoke_order(sim, order, req)
    code = sim.settings.not_found_code
    raise fail(404, code, NOT_FOUND_TEXT[code].format(serial))


def approve_route(sim: ScmSimulator, req: Request, ssl_id: str) -> Response:
    order = sim._find(ssl_id)
    json_object(req, allow_empty=True)
    try:
        sim._approve(order)
    except ValueError as exc:
        raise fail(400, -1112, str(exc)) from None
    return Response.empty(204)


def dcv_recheck(sim: ScmSimulator, req: Request, ssl_id: str) -> Response:
    sim._find(ssl_id)
    return Response.empty(202)
