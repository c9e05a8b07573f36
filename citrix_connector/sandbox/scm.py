"""Simulated Sectigo Certificate Manager **admin API** (``/api/ssl/v1/...``, header login or OAuth).

A real HTTPS server (see :class:`~citrix_connector.sandbox.httpserver.SimServer`) that keeps orders,
signs real certificates with a :class:`~citrix_connector.sandbox.ca.LocalCA` and answers with the
status codes and ``{"code", "description"}`` bodies SCM uses (``reference/scm-rest-api.md`` §6).

Routes (all also under ``/api/ssl/v2/...``; everything under ``/private/api/...`` authenticates with
a TLS client certificate instead of the ``password`` header)::

    GET  /api/ssl/v1/types                 GET  /api/ssl/v1/customFields
    GET  /api/organization/v1              GET  /api/organization/v1/{id}
    POST /api/ssl/v1/enroll                GET|HEAD /api/ssl/v1        (list, X-Total-Count)
    GET  /api/ssl/v1/{id}                  GET  /api/ssl/v1/collect/{id}[/{format}][?format=]
    POST /api/ssl/v1/renewById/{id}        POST /api/ssl/v1/renew/{renewId}
    POST /api/ssl/v1/replace/{id}          POST /api/ssl/v1/revoke/{id}
    POST /api/ssl/v1/revoke/serial/{sn}    POST /api/ssl/v1/approve/{id}
    POST /api/ssl/v1/{id}/dcv/recheck
    POST /auth/realms/apiclients/protocol/openid-connect/token   (OAuth client credentials)

Issuance: the first ``issue_after_polls`` collect calls of an order answer "pending" (HTTP 400 with
the ``pending_code`` body); the next collect issues the certificate and returns it. With
``issue_after_seconds`` the order is issued once that much :attr:`clock` time has passed since it
was (re)submitted or approved, on any read. ``None`` disables either condition; either one suffices.
Status walks ``Requested`` -> ``Applied`` (after the first poll) -> ``Issued``.

Modes (per order via :meth:`ScmSimulator.configure_order`, default via ``set_defaults(mode=...)``):
``auto``; ``needs_approval`` (stays ``Requested`` until :meth:`approve`); ``declined`` (``Declined``
at once; collect -> 400 ``declined_code``, default ``-1112``); ``revoke_after_issue`` (revoked the
moment it is issued; collect -> 400 ``-110``).

Error codes chosen where the reference left a choice: unknown ``orgId`` -> ``-639`` "Supplied orgid
invalid.."; unknown organization on ``GET /organization/v1/{id}`` -> 404 ``-1023``; bad CSR ->
``-10``; unsupported key algorithm -> ``-11``, key size/curve -> ``-13``; unknown certificate -> 404
``-5101`` (knob ``not_found_code``: ``-124``/``-1117``); unknown format -> ``-126``; declined ->
``-1112``; invalid field values (``reasonCode``, ``size``...) -> ``-1601``; unknown custom field ->
``-135``; replace of a certificate that is not issued -> ``-130``.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import random
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.serialization import pkcs7
from cryptography.x509.oid import NameOID

from citrix_connector.crypto import csr_names, load_csr, normalize_serial, unique_names
from citrix_connector.errors import CryptoError

from .ca import LocalCA
from .httpserver import Request, Response
from .scm_common import (
    NOT_FOUND_TEXT,
    PENDING_STATES,
    TOKEN_PATH,
    ApiError,
    OAuthIssuer,
    ScmSimBase,
    cert_order,
    check_common_knob,
    check_key_type,
    csr_text,
    error,
    fail,
    is_int,
    json_object,
    key_type_of,
    original_request,
    parse_error,
    pem_of,
    reason_code_of,
    required_text,
    spring_error,
)
from .scm_common import UNSET as _UNSET

__all__ = ["TOKEN_PATH", "ScmOrder", "ScmSimulator"]

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


# ================================================================================ admin API


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


_ID = r"(\d{1,18})"


class ScmSimulator(ScmSimBase[int, ScmOrder]):
    """The simulated SCM admin API. See the module docstring for routes, knobs and codes."""

    name = "scm"
    revoke_text_attr = "revoke_reason"
    approved_status = "Approved"
    control_id = _ID

    def __init__(
        self,
        ca: LocalCA,
        tls_cert_pem: bytes,
        tls_key_pem: bytes,
        *,
        login: str = "api-admin",
        password: str = "sandbox-password",
        customer_uri: str = "sandbox",
        host: str = "127.0.0.1",
        port: int = 0,
        client_ca_pem: bytes | None = None,
        first_id: int = 1001,
        seed: int | None = 0,
    ) -> None:
        super().__init__(
            ca,
            tls_cert_pem,
            tls_key_pem,
            host=host,
            port=port,
            first_id=first_id,
            client_ca_pem=client_ca_pem,
        )
        self.login = login
        self.password = password
        self.customer_uri = customer_uri
        self.settings = ScmSettings()
        self._client_cas: list[x509.Certificate] = (
            x509.load_pem_x509_certificates(client_ca_pem) if client_ca_pem else []
        )
        self._rng = random.Random(seed) if seed is not None else random.SystemRandom()
        self._seed = seed
        self.profiles: dict[int, dict[str, Any]] = {}
        self.custom_fields: list[dict[str, Any]] = []
        self.organizations: list[dict[str, Any]] = []
        self._seed_data()

    def _seed_data(self) -> None:
        self.profiles = {
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
        self.custom_fields = [
            {"id": 54, "name": "Cost Center", "mandatory": False},
            {"id": 55, "name": "Application Owner", "mandatory": False},
        ]
        self.organizations = [
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

    def reset(self) -> None:
        """Back to the freshly constructed state: no orders, default knobs and seed data, ids from
        ``first_id`` again, no OAuth clients, real clock, no faults, empty request log."""
        with self.lock:
            self._reset_common()
            self._rng = random.Random(self._seed) if self._seed is not None else random.SystemRandom()
            self.settings = ScmSettings()
            self._seed_data()

    # ------------------------------------------------------------------ Python-side hooks
    def add_oauth_client(self, client_id: str, secret: str) -> None:
        """Allow ``client_id``/``secret`` on the token endpoint (a new secret replaces the old one)."""
        with self.lock:
            self.oauth.clients[client_id] = secret

    def set_defaults(
        self,
        *,
        issue_after_polls: int | None = _UNSET,
        issue_after_seconds: float | None = _UNSET,
        pending_code: int = _UNSET,
        pending_description: str | None = _UNSET,
        mode: str = _UNSET,
        auth_error_code: int = _UNSET,
        not_found_code: int = _UNSET,
        already_revoked_code: int = _UNSET,
        declined_code: int = _UNSET,
        require_external_requester: bool = _UNSET,
        mandatory_custom_fields: list[str] = _UNSET,
        token_lifetime: int = _UNSET,
        crlf: bool = _UNSET,
    ) -> None:
        """Change knobs; order-level knobs (polls, seconds, pending, mode) apply to new orders."""
        values = {k: v for k, v in locals().items() if k != "self" and v is not _UNSET}
        with self.lock:
            self._apply_config(values)

    def configure_order(
        self,
        ssl_id: int,
        *,
        mode: str = _UNSET,
        issue_after_polls: int | None = _UNSET,
        issue_after_seconds: float | None = _UNSET,
        pending_code: int = _UNSET,
        pending_description: str | None = _UNSET,
    ) -> None:
        """Change one existing order's issuance knobs or mode."""
        values = {k: v for k, v in locals().items() if k not in ("self", "ssl_id") and v is not _UNSET}
        with self.lock:
            self._configure_order(self._order(ssl_id), values)

    def approve(self, ssl_id: int) -> None:
        """Approve an order that waits for approval (ValueError in any other state)."""
        with self.lock:
            self._approve(self._order(ssl_id))

    def decline(self, ssl_id: int) -> None:
        """Decline a pending order."""
        with self.lock:
            order = self._order(ssl_id)
            self._decline(order, f"order {ssl_id}")
            order.declined_at = self.clock()

    def add_issued_order(
        self,
        csr: x509.CertificateSigningRequest,
        *,
        org_id: int,
        cert_type: int,
        term: int,
        not_before: datetime,
        sans: list[str] | None = None,
        requester: str = "admin@web-console",
    ) -> ScmOrder:
        """An order placed "by hand" in SCM's web console, already issued (valid from ``not_before``
        for ``term`` days): what a brownfield fleet's SCM account holds. Listed, renewable, revocable
        like any other."""
        with self.lock:
            order = self._new_order(
                org_id=org_id,
                cert_type=cert_type,
                term=term,
                csr=csr,
                csr_pem=csr.public_bytes(serialization.Encoding.PEM).decode("ascii"),
                extra_sans=list(sans or []),
                requester=requester,
            )
            order.requested_at = order.pending_since = not_before
            order.cert = self.ca.issue_from_csr(csr, sans=order.extra_sans, days=term, not_before=not_before)
            order.chain = self.ca.chain_for(order.cert)
            order.status = "Issued"
            order.awaiting_approval = False
            order.issued_at = order.approved_at = not_before
            return replace(order)

    def revoke(self, ssl_id: int, *, reason_code: int = 0, reason: str = "revoked by sandbox") -> None:
        """Revoke an issued certificate as an SCM admin would in the UI."""
        with self.lock:
            order = self._order(ssl_id)
            if order.status != "Issued":
                raise ValueError(f"order {ssl_id} is {order.status}, cannot revoke")
            self._do_revoke(order, reason_code, reason)

    # ------------------------------------------------------------------ knob handling
    def _apply_config(self, values: Mapping[str, Any]) -> None:
        new = replace(self.settings)
        for key, value in values.items():
            if key == "mandatory_custom_fields":
                if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
                    raise ValueError("mandatory_custom_fields must be a list of names")
                continue
            if key not in ScmSettings.__dataclass_fields__:
                raise ValueError(f"unknown knob {key!r}")
            setattr(new, key, _check_knob(key, value))
        if new.pending_code not in PENDING_TEXT and new.pending_description is None:
            raise ValueError(f"pending_code {new.pending_code} needs a pending_description")
        if "mandatory_custom_fields" in values:
            wanted = list(values["mandatory_custom_fields"])
            known = {f["name"] for f in self.custom_fields}
            for f in self.custom_fields:
                f["mandatory"] = f["name"] in wanted
            for name in wanted:
                if name not in known:
                    next_id = max((int(f["id"]) for f in self.custom_fields), default=53) + 1
                    self.custom_fields.append({"id": next_id, "name": name, "mandatory": True})
                    known.add(name)
        self.settings = new
        self.oauth.lifetime = new.token_lifetime

    def _configure_order(self, order: ScmOrder, values: Mapping[str, Any]) -> None:
        checked: dict[str, Any] = {}
        for key, value in values.items():
            if key not in _ORDER_KNOBS:
                raise ValueError(f"unknown order knob {key!r} (one of {_ORDER_KNOBS})")
            checked[key] = _check_knob(key, value)
        code = checked.get("pending_code", order.pending_code)
        if code not in PENDING_TEXT and checked.get("pending_description", order.pending_description) is None:
            raise ValueError(f"pending_code {code} needs a pending_description")
        for key, value in checked.items():
            if key != "mode":
                setattr(order, key, value)
        if "mode" in checked and checked["mode"] != order.mode:
            self._set_mode(order, checked["mode"])

    def _set_mode(self, order: ScmOrder, mode: str) -> None:
        order.mode = mode
        if order.status not in PENDING_STATES:
            return
        if mode == "declined":
            order.status = "Declined"
            order.awaiting_approval = False
            order.declined_at = self.clock()
        elif mode == "needs_approval":
            order.awaiting_approval = order.approved_at is None
            if order.awaiting_approval:
                order.status = "Requested"
        else:
            order.awaiting_approval = False

    # ------------------------------------------------------------------ control API
    def _control_key(self, raw: str) -> int:
        return int(raw)

    def _config_snapshot(self) -> dict[str, Any]:
        out = self.settings.to_dict()
        out["mandatory_custom_fields"] = [f["name"] for f in self.custom_fields if f["mandatory"]]
        return out

    def _configure_order_spec(self, ssl_id: int, spec: Any) -> None:
        if not isinstance(spec, dict):
            raise ValueError("order config must be a JSON object")
        self._configure_order(self._order(ssl_id), spec)

    def _extra_control(self, route: str, request: Request) -> Response | None:
        if route == "/oauth-clients" and request.method == "POST":
            spec = request.json()
            self.oauth.clients[str(spec["client_id"])] = str(spec["client_secret"])
            return Response.empty(204)
        if route == "/rotate-intermediate" and request.method == "POST":
            cert = self.ca.rotate_intermediate()
            return Response.json(200, {"subject": cert.subject.rfc4514_string()})
        return None

    def _summary(self, o: ScmOrder) -> dict[str, Any]:
        return {
            "sslId": o.ssl_id,
            "renewId": o.renew_id,
            "status": o.status,
            "commonName": o.common_name,
            "mode": o.mode,
            "polls": o.polls,
            "serialNumber": colon_serial(o.cert.serial_number) if o.cert else "",
            "comments": o.comments,
            "externalRequester": o.external_requester,
        }

    # ------------------------------------------------------------------ request handling
    def handle(self, request: Request) -> Response:
        req = original_request(request)
        path = req.path
        if path == TOKEN_PATH:
            return self.oauth.token(req, self.clock())
        m = re.fullmatch(r"(/private)?/api(/.*)", path)
        if m is None:
            return spring_error(404, path, "No message available", self.clock())
        private, sub = bool(m.group(1)), m.group(2)
        sub = re.sub(r"^/ssl/v2(?=/|$)", "/ssl/v1", sub)
        denied = self._authenticate(req, private)
        if denied is not None:
            return denied
        try:
            return self._route(req, sub, path)
        except ApiError as exc:
            return exc.response

    # ------------------------------------------------------------------ authentication
    def _authenticate(self, req: Request, private: bool) -> Response | None:
        if not private and OAuthIssuer.has_bearer(req):
            if self.oauth.check(req, self.clock()) is not None:
                return None
            return error(
                401,
                -16,
                "Unknown user",
                {"WWW-Authenticate": f'Bearer realm="apiclients", authorization_uri="{self.token_url}"'},
            )
        login = req.header("login")
        customer = req.header("customeruri")
        ok = hmac.compare_digest((login or "").encode(), self.login.encode()) and hmac.compare_digest(
            (customer or "").encode(), self.customer_uri.encode()
        )
        if private:
            ok = ok and self._client_cert_ok(req)
        else:
            ok = ok and hmac.compare_digest((req.header("password") or "").encode(), self.password.encode())
        if ok:
            return None
        code = -16 if private else self.settings.auth_error_code
        headers = {}
        if self.oauth.clients and not private:
            headers["WWW-Authenticate"] = f'Bearer realm="apiclients", authorization_uri="{self.token_url}"'
        return error(401, code, AUTH_TEXT[code], headers)

    def _client_cert_ok(self, req: Request) -> bool:
        """A client certificate was presented (the TLS handshake already verified it against
        ``client_ca_pem``) and its subject CN is the ``login`` header."""
        if not req.client_cert_der or not self._client_cas:
            return False
        try:
            cert = x509.load_der_x509_certificate(req.client_cert_der)
        except ValueError:
            return False
        cns = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
        return bool(cns) and cns[0].value == req.header("login")

    # ------------------------------------------------------------------ routing
    def _route(self, req: Request, sub: str, full_path: str) -> Response:
        method = req.method
        routes: list[tuple[str, str, Callable[..., Response]]] = [
            ("GET", r"/ssl/v1/types", self._types),
            ("GET", r"/ssl/v1/customFields", self._custom_fields),
            ("GET", r"/organization/v1/?", self._org_list),
            ("GET", r"/organization/v1/" + _ID, self._org_details),
            ("POST", r"/ssl/v1/enroll", self._enroll),
            ("GET", r"/ssl/v1/?", self._list),
            ("HEAD", r"/ssl/v1/?", self._list),
            ("GET", r"/ssl/v1/" + _ID, self._details),
            ("GET", r"/ssl/v1/collect/" + _ID + r"(?:/([^/]+))?", self._collect),
            ("POST", r"/ssl/v1/renewById/" + _ID, self._renew_by_id),
            ("POST", r"/ssl/v1/renew/([^/]+)", self._renew_by_renew_id),
            ("POST", r"/ssl/v1/replace/" + _ID, self._replace),
            ("POST", r"/ssl/v1/revoke/serial/([^/]+)", self._revoke_serial),
            ("POST", r"/ssl/v1/revoke/" + _ID, self._revoke),
            ("POST", r"/ssl/v1/approve/" + _ID, self._approve_route),
            ("POST", r"/ssl/v1/" + _ID + r"/dcv/recheck", self._dcv_recheck),
        ]
        path_matched = False
        for route_method, pattern, handler in routes:
            m = re.fullmatch(pattern, sub)
            if m is None:
                continue
            path_matched = True
            if route_method == method:
                return handler(req, *m.groups())
        if path_matched:
            return spring_error(405, full_path, f"Request method '{method}' is not supported", self.clock())
        return spring_error(404, full_path, "No message available", self.clock())

    # ------------------------------------------------------------------ helpers
    def _order(self, ssl_id: int) -> ScmOrder:
        try:
            return self._orders[int(ssl_id)]
        except KeyError:
            raise KeyError(f"order {ssl_id}") from None

    def _find(self, ssl_id: str | int) -> ScmOrder:
        order = self._orders.get(int(ssl_id))
        if order is None:
            code = self.settings.not_found_code
            raise fail(404, code, NOT_FOUND_TEXT[code].format(ssl_id))
        return order

    def _parse_csr(
        self, value: Any, profile: Mapping[str, Any]
    ) -> tuple[x509.CertificateSigningRequest, str]:
        value = csr_text(value, blank_is_missing=True)
        try:
            csr = load_csr(value)
        except CryptoError:
            raise fail(400, -10, "Error while decoding CSR.") from None
        check_key_type(csr, profile.get("keyTypes", {}))
        return csr, value

    def _fmt_date(self, when: datetime | None, req: Request) -> str | None:
        if when is None:
            return None
        style = (req.query.get("dateFormat") or "US").upper()
        if style == "ISO":
            return when.strftime("%Y-%m-%d")
        if style == "ISO_HMS":
            return when.strftime("%Y-%m-%dT%H:%M:%S")
        if style == "EU":
            return when.strftime("%d/%m/%Y")
        return when.strftime("%m/%d/%Y")

    def _new_renew_id(self) -> str:
        alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
        return "".join(self._rng.choice(alphabet) for _ in range(20))

    # ------------------------------------------------------------------ state machine
    def _still_pending(self, order: ScmOrder, elapsed: float) -> None:
        # Status walks Requested -> Applied after the first poll (or once time has passed).
        if order.polls >= 1 or (order.issue_after_seconds is not None and elapsed > 0):
            order.status = "Applied"

    def _approve(self, order: ScmOrder) -> None:
        super()._approve(order)
        order.approved_at = order.pending_since

    def _new_order(
        self,
        *,
        org_id: int,
        cert_type: int,
        term: int,
        csr: x509.CertificateSigningRequest,
        csr_pem: str,
        extra_sans: list[str],
        comments: str = "",
        external_requester: str = "",
        custom_fields: list[dict[str, str]] | None = None,
        requester: str,
    ) -> ScmOrder:
        now = self.clock()
        cn, _ = csr_names(csr)
        s = self.settings
        order = ScmOrder(
            ssl_id=self._next_id,
            renew_id=self._new_renew_id(),
            org_id=org_id,
            cert_type=cert_type,
            term=term,
            csr_pem=csr_pem,
            csr=csr,
            common_name=cn or (extra_sans[0] if extra_sans else ""),
            sans=unique_names([cn, *extra_sans]),
            extra_sans=list(extra_sans),
            requester=requester,
            requested_at=now,
            pending_since=now,
            issue_after_polls=s.issue_after_polls,
            issue_after_seconds=s.issue_after_seconds,
            pending_code=s.pending_code,
            pending_description=s.pending_description,
            comments=comments,
            external_requester=external_requester,
            custom_fields=list(custom_fields or []),
        )
        self._next_id += 1
        self._orders[order.ssl_id] = order
        self._set_mode(order, s.mode)
        return order

    def _requester(self, req: Request) -> str:
        client = self.oauth.check(req, self.clock())
        return client if client is not None else (req.header("login") or self.login)

    # ------------------------------------------------------------------ reads
    def _types(self, req: Request) -> Response:
        org = req.query.get("organizationId")
        if org is not None and (not org.isdigit() or not self._org_exists(int(org))):
            return Response.json(200, [])
        return Response.json(200, [dict(p) for p in self.profiles.values()])

    def _custom_fields(self, req: Request) -> Response:
        return Response.json(200, [dict(f) for f in self.custom_fields])

    def _org_exists(self, org_id: int) -> bool:
        return any(
            o["id"] == org_id or any(d["id"] == org_id for d in o["departments"]) for o in self.organizations
        )

    def _org_list(self, req: Request) -> Response:
        return Response.json(
            200, json.loads(json.dumps(self.organizations)), {"Content-Type": "application/json"}
        )

    def _org_details(self, req: Request, org_id: str) -> Response:
        wanted = int(org_id)
        for org in self.organizations:
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

    def _details(self, req: Request, ssl_id: str) -> Response:
        order = self._find(ssl_id)
        self._advance(order, poll=False)
        return Response.json(200, self._details_json(order, req))

    def _details_json(self, o: ScmOrder, req: Request) -> dict[str, Any]:
        profile = self.profiles.get(o.cert_type, {"id": o.cert_type, "name": "", "terms": []})
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
            text = self._fmt_date(when, req)
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

    def _list(self, req: Request) -> Response:
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
        for o in sorted(self._orders.values(), key=lambda x: x.ssl_id):
            self._advance(o, poll=False)
            if not self._list_match(o, q):
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

    def _list_match(self, o: ScmOrder, q: Mapping[str, str]) -> bool:
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
    def _enroll(self, req: Request) -> Response:
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
        org_id = _int_field(body, "orgId")
        if org_id is None:
            raise fail(400, -7, "orgId is required but missing.")
        if org_id < 1 or not self._org_exists(org_id):
            raise fail(400, -639, "Supplied orgid invalid..")
        cert_type = _int_field(body, "certType")
        if cert_type is None:
            raise fail(400, -7, "certType is required but missing.")
        profile = self.profiles.get(cert_type)
        if profile is None:
            raise fail(400, -39, "The certificate profile id is invalid!")
        term = _int_field(body, "term")
        if term is None:
            raise fail(400, -7, "term is required but missing.")
        if term not in profile["terms"]:
            raise fail(400, -36, "The validity period (term) is invalid for this certificate profile.")
        csr, csr_pem = self._parse_csr(body.get("csr"), profile)
        comments = body.get("comments") or ""
        if len(comments) > 1024:
            raise fail(400, -1601, "Field 'comments' has invalid value.")
        external = body.get("externalRequester") or ""
        if len(external) > 512:
            raise fail(400, -1601, "Field 'externalRequester' has invalid value.")
        if self.settings.require_external_requester and not external.strip():
            raise fail(400, -139, "External Requester is required.")
        fields = self._check_custom_fields(custom or [])
        extra = [s.strip() for s in (sans_raw or "").split(",") if s.strip()]
        order = self._new_order(
            org_id=org_id,
            cert_type=cert_type,
            term=term,
            csr=csr,
            csr_pem=csr_pem,
            extra_sans=extra,
            comments=comments,
            external_requester=external,
            custom_fields=fields,
            requester=self._requester(req),
        )
        return Response.json(200, {"sslId": order.ssl_id, "renewId": order.renew_id})

    def _check_custom_fields(self, given: list[dict[str, Any]]) -> list[dict[str, str]]:
        known = {f["name"]: f for f in self.custom_fields}
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
        for f in self.custom_fields:
            if f["mandatory"] and not values.get(f["name"], "").strip():
                raise fail(400, -62, "Missing mandatory custom field!")
        return [{"name": k, "value": v} for k, v in values.items()]

    # ------------------------------------------------------------------ collect
    def _collect(self, req: Request, ssl_id: str, fmt_path: str | None) -> Response:
        order = self._find(ssl_id)
        fmt = fmt_path if fmt_path is not None else req.query.get("format", "base64")
        if fmt == "":
            fmt = "base64"
        if fmt not in ALL_FORMATS:
            raise fail(400, -126, f"Unknown SSL certificate file format requested: {fmt}")
        self._collectable(order, declined_code=self.settings.declined_code)
        if order.status != "Issued" or order.cert is None:
            code = order.pending_code
            text = order.pending_description or PENDING_TEXT.get(code, "Being processed by Sectigo")
            raise fail(400, code, text)
        order.collected += 1
        leaf, chain = order.cert, order.chain
        if fmt in PEM_FORMATS:
            data = pem_of(cert_order(leaf, chain, PEM_FORMATS[fmt]), crlf=self.settings.crlf)
            ext = "crt" if fmt in ("x509CO", "pemco") else "pem"
        else:
            encoding = serialization.Encoding.PEM if fmt == "base64" else serialization.Encoding.DER
            data = pkcs7.serialize_certificates([leaf, *chain], encoding)
            if fmt == "base64" and self.settings.crlf:
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
    def _renew_from(self, original: ScmOrder, body: Mapping[str, Any], req: Request) -> ScmOrder:
        self._advance(original, poll=False)
        csr_value = body.get("csr")
        for key in ("dcvMode", "dcvEmail"):
            if body.get(key) is not None and not isinstance(body[key], str):
                raise parse_error()
        if csr_value is not None and not isinstance(csr_value, str):
            raise parse_error()
        if original.status != "Issued":
            raise fail(400, -130, f"SSL state is not 'ISSUED': {original.status}")
        profile = self.profiles[original.cert_type]
        if csr_value:
            csr, csr_pem = self._parse_csr(csr_value, profile)
        else:
            csr, csr_pem = original.csr, original.csr_pem
        new = self._new_order(
            org_id=original.org_id,
            cert_type=original.cert_type,
            term=original.term,
            csr=csr,
            csr_pem=csr_pem,
            extra_sans=list(original.extra_sans),
            comments=original.comments,
            external_requester=original.external_requester,
            custom_fields=original.custom_fields,
            requester=self._requester(req),
        )
        new.renewal_of = original.ssl_id
        original.renewed = True
        original.renewed_at = self.clock()
        original.renewed_by = new.ssl_id
        return new

    def _renew_by_id(self, req: Request, ssl_id: str) -> Response:
        order = self._find(ssl_id)
        body = json_object(req)
        new = self._renew_from(order, body, req)
        return Response.json(200, {"sslId": new.ssl_id})

    def _renew_by_renew_id(self, req: Request, renew_id: str) -> Response:
        order = next((o for o in self._orders.values() if o.renew_id == renew_id), None)
        if order is None:
            code = self.settings.not_found_code
            raise fail(404, code, NOT_FOUND_TEXT[code].format(renew_id))
        body = json_object(req, allow_empty=True)
        self._renew_from(order, body, req)
        return Response.empty(204)

    def _replace(self, req: Request, ssl_id: str) -> Response:
        order = self._find(ssl_id)
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
        csr, csr_pem = self._parse_csr(csr_value, self.profiles[order.cert_type])
        self._advance(order, poll=False)
        if order.status != "Issued":
            raise fail(400, -130, f"SSL state is not 'ISSUED': {order.status}")
        now = self.clock()
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
    def _revoke_body(self, req: Request) -> tuple[int, str]:
        body = json_object(req)
        reason = required_text(body, "reason", 512)
        raw = body.get("reasonCode")
        if raw is None:
            raise fail(400, -7, "reasonCode is required but missing.")
        return reason_code_of(raw), reason

    def _revoke_order(self, order: ScmOrder, req: Request) -> Response:
        reason_code, reason = self._revoke_body(req)
        self._advance(order, poll=False)
        if order.status == "Revoked":
            code = self.settings.already_revoked_code
            text = (
                "Your certificate already revoked"
                if code == -159
                else "Only issued certificates could be revoked."
            )
            raise fail(400, code, text)
        if order.status != "Issued":
            raise fail(400, -102, "Only issued certificates could be revoked.")
        self._do_revoke(order, reason_code, reason)
        return Response.empty(204)

    def _revoke(self, req: Request, ssl_id: str) -> Response:
        return self._revoke_order(self._find(ssl_id), req)

    def _revoke_serial(self, req: Request, serial: str) -> Response:
        try:
            wanted = normalize_serial(serial)
        except CryptoError:
            raise fail(400, -1601, "Field 'serialNumber' has invalid value.") from None
        for order in self._orders.values():
            if order.cert is not None and normalize_serial(order.cert.serial_number) == wanted:
                return self._revoke_order(order, req)
        code = self.settings.not_found_code
        raise fail(404, code, NOT_FOUND_TEXT[code].format(serial))

    def _approve_route(self, req: Request, ssl_id: str) -> Response:
        order = self._find(ssl_id)
        json_object(req, allow_empty=True)
        try:
            self._approve(order)
        except ValueError as exc:
            raise fail(400, -1112, str(exc)) from None
        return Response.empty(204)

    def _dcv_recheck(self, req: Request, ssl_id: str) -> Response:
        self._find(ssl_id)
        return Response.empty(202)


# ================================================================================ small helpers


_ORDER_KNOBS = ("mode", "issue_after_polls", "issue_after_seconds", "pending_code", "pending_description")


def _check_knob(key: str, value: Any) -> Any:
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


def _int_field(body: Mapping[str, Any], key: str) -> int | None:
    """An int field; numeric strings are coerced (as Jackson does); other types -> -1002."""
    value = body.get(key)
    if value is None:
        return None
    if is_int(value):
        return int(value)
    if isinstance(value, str) and re.fullmatch(r"-?\d{1,18}", value.strip()):
        return int(value)
    raise parse_error()
