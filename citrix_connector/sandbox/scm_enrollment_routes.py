"""Request handlers of the simulated REST Enrollment API: enroll, (legacy) list, download, status,
DCV recheck, renew, replace and revoke. :class:`~citrix_connector.sandbox.scm_enrollment.EnrollmentSimulator`
routes to them with its lock held; each takes the simulator and the caller's REST account."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import pkcs7

from .httpserver import Request, Response
from .scm_common import (
    cert_order,
    fail,
    is_int,
    json_object,
    parse_error,
    pem_of,
    reason_code_of,
    required_text,
    spring_error,
)
from .scm_enrollment_model import DOWNLOAD_ORDERS, PENDING_TEXT, EnrollmentAccount

if TYPE_CHECKING:
    from .scm_enrollment import EnrollmentSimulator


def enroll(sim: EnrollmentSimulator, req: Request, account: EnrollmentAccount) -> Response:
    body = json_object(req)
    sans = sim._sans(body)
    comments = sim._text(body, "comments", 1024)
    external = sim._text(body, "externalRequester", 512)
    product = body.get("productId")
    profile_id = account.profile_ids[0]
    if product is None:
        if sim.require_product_id:
            raise fail(400, -7, "productId is required but missing.")
    else:
        if is_int(product) or isinstance(product, str) and product.strip().isdigit():
            profile_id = int(product)
        else:
            raise parse_error()
        if profile_id not in account.profile_ids:
            raise fail(400, -39, "The certificate profile id is invalid!")
    csr = sim._parse_csr(body.get("csr"))
    fields = sim._custom_fields(body)
    order = sim._new_order(
        account,
        profile_id=profile_id,
        term=account.term,
        csr=csr,
        extra_sans=sans or [],
        comments=comments,
        external_requester=external,
        custom_fields=fields,
    )
    return sim._id_response(order.cert_id)


def list_certificates(sim: EnrollmentSimulator, req: Request, account: EnrollmentAccount) -> Response:
    if not sim.legacy_list:
        return spring_error(405, req.path, "Request method 'GET' is not supported", sim.clock())
    try:
        size = min(int(req.query.get("size", "200")), 200)
        position = int(req.query.get("position", "0"))
    except ValueError:
        raise fail(400, -1601, "Field 'size/position' has invalid value.") from None
    mine = [o for o in sim._orders.values() if o.client_id == account.client_id]
    page = mine[max(position, 0) : max(position, 0) + max(size, 0)]
    body = [{"certId": o.cert_id, "status": o.status} for o in page]
    return Response.json(200, body, {"X-Total-Count": str(len(mine))})


def download(sim: EnrollmentSimulator, account: EnrollmentAccount, cert_id: str) -> Response:
    order = sim._find(account, cert_id)
    sim._collectable(order, declined_code=-1112)
    if order.cert is None:
        codes = sim.pending_codes
        code = codes[(max(order.polls, 1) - 1) % len(codes)]
        raise fail(404, code, PENDING_TEXT.get(code, "Certificate is not available now."))
    order.downloads += 1
    certs = cert_order(order.cert, order.chain, DOWNLOAD_ORDERS[sim.download_order])
    if sim.pkcs7:
        data = pkcs7.serialize_certificates(certs, serialization.Encoding.PEM)
        if sim.crlf:
            data = data.replace(b"\n", b"\r\n")
    else:
        data = pem_of(certs, crlf=sim.crlf)
    return Response(
        200,
        data,
        {
            "Content-Type": "application/x-pem-file",
            "Content-Disposition": f'attachment; filename="{order.cert_id}.pem"',
        },
    )


def status(sim: EnrollmentSimulator, account: EnrollmentAccount, cert_id: str) -> Response:
    order = sim._find(account, cert_id)
    sim._advance(order, poll=False)
    if order.awaiting_dcv:
        dcv: dict[str, Any] = {"status": "NOT_VALIDATED", "method": "CNAME"}
    elif order.status == "Declined":
        dcv = {}
    else:
        dcv = {"status": "VALIDATED"}
    return Response.json(200, {"status": order.status, "dcvInfo": dcv})


def dcv_recheck(sim: EnrollmentSimulator, account: EnrollmentAccount, cert_id: str) -> Response:
    order = sim._find(account, cert_id)
    if order.awaiting_dcv:
        order.awaiting_dcv = False
        order.pending_since = sim.clock()
        order.polls = 0
    return Response.empty(202)


def renew(sim: EnrollmentSimulator, req: Request, account: EnrollmentAccount, cert_id: str) -> Response:
    original = sim._find(account, cert_id)
    body = json_object(req, allow_empty=True)
    profile_raw = body.get("profileId")
    if profile_raw is None:
        if len(account.profile_ids) > 1:
            raise fail(400, -39, "The certificate profile id is invalid!")
        profile_id = original.profile_id
    else:
        if not (is_int(profile_raw) or (isinstance(profile_raw, str) and profile_raw.strip().isdigit())):
            raise parse_error()
        profile_id = int(profile_raw)
        if profile_id not in account.profile_ids:
            raise fail(400, -39, "The certificate profile id is invalid!")
    fields = sim._custom_fields(body, required=sim.renew_requires_custom_fields)
    sans = sim._sans(body)
    term_raw = body.get("term")
    term = account.term
    if term_raw is not None:
        if not is_int(term_raw) or term_raw < 1:
            raise fail(400, -1601, "Field 'term' has invalid value.")
        term = int(term_raw)
    comments = sim._text(body, "comments", 1024)
    external = sim._text(body, "externalRequester", 512)
    for key in ("email", "dcvMode", "dcvEmail"):
        sim._text(body, key, 512)
    csr = sim._parse_csr(body["csr"]) if body.get("csr") is not None else original.csr
    sim._advance(original, poll=False)
    if original.status != "Issued":
        raise fail(400, -130, f"SSL state is not 'ISSUED': {original.status}")
    new = sim._new_order(
        account,
        profile_id=profile_id,
        term=term,
        csr=csr,
        extra_sans=sans if sans is not None else original.extra_sans,
        comments=comments or original.comments,
        external_requester=external or original.external_requester,
        custom_fields=fields or original.custom_fields,
    )
    new.renewal_of = original.cert_id
    original.renewed_by.append(new.cert_id)
    return sim._id_response(new.cert_id)


def replace(sim: EnrollmentSimulator, req: Request, account: EnrollmentAccount, cert_id: str) -> Response:
    original = sim._find(account, cert_id)
    body = json_object(req)
    sans = sim._sans(body)
    comments = sim._text(body, "comments", 1024)
    csr = sim._parse_csr(body.get("csr"))
    sim._advance(original, poll=False)
    if original.status != "Issued" or original.cert is None:
        raise fail(400, -130, f"SSL state is not 'ISSUED': {original.status}")
    new = sim._new_order(
        account,
        profile_id=original.profile_id,
        term=original.term,
        csr=csr,
        extra_sans=sans if sans is not None else original.extra_sans,
        comments=comments or original.comments,
        external_requester=original.external_requester,
        custom_fields=original.custom_fields,
    )
    new.not_after = original.cert.not_valid_after_utc
    new.replaces = original.cert_id
    original.replaced_by = new.cert_id
    original.status = "Replaced"
    return sim._id_response(new.cert_id)


def revoke(sim: EnrollmentSimulator, req: Request, account: EnrollmentAccount, cert_id: str) -> Response:
    order = sim._find(account, cert_id)
    body = json_object(req, allow_empty=True)
    message = required_text(body, "message", 512)
    code = reason_code_of(body.get("reasonCode", 0))
    sim._advance(order, poll=False)
    if order.status == "Revoked":
        raise fail(400, -159, "Your certificate already revoked")
    if order.status not in ("Issued", "Replaced"):
        raise fail(400, -102, "Only issued certificates could be revoked.")
    sim._do_revoke(order, code, message)
    return Response.empty(200)
