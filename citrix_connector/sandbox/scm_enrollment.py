"""Simulated Sectigo **REST Enrollment API** plus its OAuth 2.0 token server.

Speaks ``reference/sectigo-connector-and-enrollment-api.md`` §2 and §6 over real HTTPS on loopback,
with certificates signed by a :class:`~citrix_connector.sandbox.ca.LocalCA`::

    POST   /auth/realms/apiclients/protocol/openid-connect/token   client credentials -> JWT
    POST   /api/v1/certificates                 enroll            -> 200 {"certId": "..."}
    GET    /api/v1/certificates/{id}            download          -> 200 PEM | 404 -103/-109 pending
    GET    /api/v1/certificates/{id}/status     status            -> {"status", "dcvInfo"}
    POST   /api/v1/certificates/{id}/dcv-recheck                  -> 202
    POST   /api/v1/certificates/{id}/renew      renew             -> 200 {"certId": NEW}
    POST   /api/v1/certificates/{id}/replace    replace           -> 200 {"certId": NEW}
    DELETE /api/v1/certificates/{id}            revoke (JSON body)-> 200

Every ``/api/v1`` route needs ``Authorization: Bearer``; a missing, unknown or expired token gets
401 with ``WWW-Authenticate: Bearer realm="apiclients", authorization_uri="<token url>"`` (knob
``www_authenticate``: ``"quoted"`` | ``"unquoted"`` | ``None`` = no header).

Knobs are plain attributes (``sim.token_lifetime = 2``) or set, validated, with
:meth:`EnrollmentSimulator.set_defaults` / ``POST /_sim/config``: ``token_lifetime`` (300),
``www_authenticate``, ``pending_codes`` ([-103, -109], used in turn per download poll),
``issue_after_polls`` (2: the first two downloads answer pending, the third returns the certificate),
``issue_after_seconds`` (None), ``strict_csr`` (True: only single-line base64 DER, PEM armour or
whitespace -> ``-10``), ``require_product_id`` (False), ``download_order`` ("leaf-first" |
"root-first" | "leaf-only"), ``crlf`` (False), ``pkcs7`` (False: PEM chain; True: PEM PKCS#7),
``mode`` ("auto" | "needs_approval" | "declined" | "revoke_after_issue" | "dcv_pending"),
``not_found_code`` (-124), ``cert_id_style`` ("string" | "number" | "id_key"),
``mandatory_custom_fields`` ([]), ``renew_requires_custom_fields`` (False), ``legacy_list`` (False).

Codes chosen where the reference left a choice: bad CSR encoding ``-10``, CSR signature ``-138``;
unsupported algorithm ``-11``, key size/curve ``-13``; unknown id (or another account's id) 404
``-124``; declined download 400 ``-1112``; revoked download 400 ``-110``; invalid ``reasonCode`` or
``term`` and over-long fields 400 ``-1601``; renew without ``profileId`` on a multi-profile account,
or with a foreign one, 400 ``-39``; revoke of a non-issued certificate ``-102``, again ``-159``.
A replaced (old) certificate can still be downloaded and revoked.
"""

from __future__ import annotations

import base64
import binascii
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import pkcs7

from citrix_connector.crypto import csr_names, load_csr
from citrix_connector.errors import CryptoError

from .ca import LocalCA
from .httpserver import BadJson, Fault, Request, Response, SimServer, utc_now
from .scm import (
    TOKEN_PATH,
    TRANSIENT_TEXT,
    OAuthIssuer,
    cert_order,
    error,
    key_type_of,
    original_request,
    pem_of,
    redact_request,
    spring_error,
)

__all__ = ["EnrollmentAccount", "EnrollmentOrder", "EnrollmentSimulator"]

MODES = ("auto", "needs_approval", "declined", "revoke_after_issue", "dcv_pending")
DOWNLOAD_ORDERS = {"leaf-first": "LIR", "root-first": "RIL", "leaf-only": "L"}
PENDING_TEXT: dict[int, str] = {
    -103: "Certificate has not been collected yet.",
    -109: "Certificate is not available now, please try again later.",
    -1400: "The request is being processed by Sectigo.",
    -183: "Certificate is not collectable.",
}
NOT_FOUND_TEXT: dict[int, str] = {
    -124: "Wrong SSL certificate id {0}.",
    -5101: "Certificate not found. {0}",
    -1117: "The SSL is null.",
}
ALLOWED_KEYS: dict[str, tuple[str, ...]] = {"RSA": ("2048", "3072", "4096"), "EC": ("P-256", "P-384")}
REASON_CODES = (0, 1, 3, 4, 5)
PENDING_STATES = ("Requested", "Approved", "Applied")
_UNSET: Any = object()
_B64_STRICT = re.compile(r"[A-Za-z0-9+/]+={0,2}")


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


class _ApiError(Exception):
    def __init__(self, response: Response) -> None:
        super().__init__(response.status)
        self.response = response


def _fail(status: int, code: int, description: str) -> _ApiError:
    return _ApiError(error(status, code, description))


def _parse_error() -> _ApiError:
    return _fail(400, -1002, "Cannot parse message body")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


class EnrollmentSimulator(SimServer):
    """The simulated REST Enrollment API and token server (see the module docstring)."""

    name = "scm-enrollment"

    def __init__(
        self,
        ca: LocalCA,
        tls_cert_pem: bytes,
        tls_key_pem: bytes,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        first_id: int = 5001,
    ) -> None:
        super().__init__(tls_cert_pem, tls_key_pem, host=host, port=port)
        self.ca = ca
        self._first_id = first_id
        self._next_id = first_id
        self.accounts: dict[str, EnrollmentAccount] = {}
        self._orders: dict[str, EnrollmentOrder] = {}
        self.oauth = OAuthIssuer(lambda: self.url + "/auth/realms/apiclients")
        self._set_knob_defaults()

    def _set_knob_defaults(self) -> None:
        self.token_lifetime: int = 300
        self.www_authenticate: str | None = "quoted"
        self.pending_codes: list[int] = [-103, -109]
        self.issue_after_polls: int | None = 2
        self.issue_after_seconds: float | None = None
        self.strict_csr: bool = True
        self.require_product_id: bool = False
        self.download_order: str = "leaf-first"
        self.crlf: bool = False
        self.pkcs7: bool = False
        self.mode: str = "auto"
        self.not_found_code: int = -124
        self.cert_id_style: str = "string"
        self.mandatory_custom_fields: list[str] = []
        self.renew_requires_custom_fields: bool = False
        self.legacy_list: bool = False

    _KNOBS = (
        "token_lifetime",
        "www_authenticate",
        "pending_codes",
        "issue_after_polls",
        "issue_after_seconds",
        "strict_csr",
        "require_product_id",
        "download_order",
        "crlf",
        "pkcs7",
        "mode",
        "not_found_code",
        "cert_id_style",
        "mandatory_custom_fields",
        "renew_requires_custom_fields",
        "legacy_list",
    )

    # ------------------------------------------------------------------ logging: secrets masked
    def dispatch(self, request: Request) -> Response | None:
        return super().dispatch(redact_request(request))

    @property
    def token_url(self) -> str:
        return self.url + TOKEN_PATH

    # ------------------------------------------------------------------ Python-side hooks
    def add_account(
        self,
        client_id: str,
        client_secret: str,
        *,
        profile_ids: tuple[int, ...] | list[int] = (2001,),
        term: int = 365,
        auto_approve: bool = True,
    ) -> None:
        """Create (or redefine) a REST account."""
        if not profile_ids:
            raise ValueError("a REST account needs at least one profile id")
        with self.lock:
            self.accounts[client_id] = EnrollmentAccount(
                client_id, client_secret, tuple(int(p) for p in profile_ids), int(term), bool(auto_approve)
            )
            self.oauth.clients[client_id] = client_secret

    def rotate_secret(self, client_id: str, new_secret: str) -> None:
        """Regenerate an account's secret: the old one stops working at the token endpoint."""
        with self.lock:
            account = self.accounts[client_id]
            account.client_secret = new_secret
            self.oauth.clients[client_id] = new_secret

    def set_defaults(
        self,
        *,
        token_lifetime: int = _UNSET,
        www_authenticate: str | None = _UNSET,
        pending_codes: list[int] = _UNSET,
        issue_after_polls: int | None = _UNSET,
        issue_after_seconds: float | None = _UNSET,
        strict_csr: bool = _UNSET,
        require_product_id: bool = _UNSET,
        download_order: str = _UNSET,
        crlf: bool = _UNSET,
        pkcs7: bool = _UNSET,
        mode: str = _UNSET,
        not_found_code: int = _UNSET,
        cert_id_style: str = _UNSET,
        mandatory_custom_fields: list[str] = _UNSET,
        renew_requires_custom_fields: bool = _UNSET,
        legacy_list: bool = _UNSET,
    ) -> None:
        """Set knobs (validated). Order-level knobs (mode, polls, seconds) apply to new orders."""
        values = {k: v for k, v in locals().items() if k != "self" and v is not _UNSET}
        with self.lock:
            self._apply_config(values)

    def configure_order(
        self,
        cert_id: str | int,
        *,
        mode: str = _UNSET,
        issue_after_polls: int | None = _UNSET,
        issue_after_seconds: float | None = _UNSET,
    ) -> None:
        """Change one order's mode or issuance timing."""
        values = {k: v for k, v in locals().items() if k not in ("self", "cert_id") and v is not _UNSET}
        with self.lock:
            order = self._order(cert_id)
            checked = {k: _check_knob(k, v) for k, v in values.items()}
            for key in ("issue_after_polls", "issue_after_seconds"):
                if key in checked:
                    setattr(order, key, checked[key])
            if "mode" in checked:
                self._set_mode(order, checked["mode"])

    def approve(self, cert_id: str | int) -> None:
        with self.lock:
            self._approve(self._order(cert_id))

    def decline(self, cert_id: str | int) -> None:
        with self.lock:
            order = self._order(cert_id)
            if order.status not in PENDING_STATES:
                raise ValueError(f"certificate {cert_id} is {order.status}, cannot decline")
            order.status = "Declined"
            order.awaiting_approval = False

    def revoke(
        self, cert_id: str | int, *, reason_code: int = 0, message: str = "revoked by sandbox"
    ) -> None:
        """Revoke an issued certificate as an SCM admin would."""
        with self.lock:
            order = self._order(cert_id)
            if order.status not in ("Issued", "Replaced"):
                raise ValueError(f"certificate {cert_id} is {order.status}, cannot revoke")
            self._do_revoke(order, reason_code, message)

    @property
    def orders(self) -> dict[str, EnrollmentOrder]:
        """Snapshot (shallow copies) of every order by certId."""
        with self.lock:
            return {k: replace(v) for k, v in self._orders.items()}

    def order_count(self) -> int:
        with self.lock:
            return len(self._orders)

    @property
    def tokens_issued(self) -> int:
        """How many access tokens the token endpoint has handed out."""
        with self.lock:
            return self.oauth.tokens_issued

    def reset(self) -> None:
        """Back to the constructed state: no accounts, orders, faults or log; default knobs; real clock."""
        with self.lock:
            self.accounts.clear()
            self._orders.clear()
            self._next_id = self._first_id
            self.oauth = OAuthIssuer(lambda: self.url + "/auth/realms/apiclients")
            self._set_knob_defaults()
            self.clock = utc_now
            self.latency = 0.0
            self._faults.clear()
            self._requests.clear()

    def inject_transient(
        self,
        route_regex: str,
        code: int = -195,
        times: int | None = 1,
        *,
        status: int | None = None,
        method: str | None = None,
        after: int = 0,
    ) -> Fault:
        """A transient SCM failure (default ``-195`` CA unavailable as HTTP 503; others 500)."""
        text = TRANSIENT_TEXT.get(code, "Internal error. Please contact Support for details.")
        return self.add_fault(
            route_regex,
            method=method,
            status=status if status is not None else (503 if code == -195 else 500),
            json_body={"code": code, "description": text.replace("{0}", "")},
            times=times,
            after=after,
        )

    # ------------------------------------------------------------------ knobs
    def _apply_config(self, values: Mapping[str, Any]) -> None:
        checked = {}
        for key, value in values.items():
            if key not in self._KNOBS:
                raise ValueError(f"unknown knob {key!r}")
            checked[key] = _check_knob(key, value)
        for key, value in checked.items():
            setattr(self, key, value)

    # ------------------------------------------------------------------ control API
    def handle_control(self, route: str, request: Request) -> Response:
        request = original_request(request)
        try:
            m = re.fullmatch(r"/(approve|decline|revoke)/([^/]+)", route)
            if m and request.method == "POST":
                action, cert_id = m.groups()
                if action == "approve":
                    self._approve(self._order(cert_id))
                elif action == "decline":
                    self.decline(cert_id)
                else:
                    self.revoke(cert_id)
                return Response.empty(204)
            if route == "/config" and request.method == "GET":
                return Response.json(200, {k: getattr(self, k) for k in self._KNOBS})
            if route == "/config" and request.method == "POST":
                spec = request.json()
                if not isinstance(spec, dict):
                    raise ValueError("config must be a JSON object")
                self._apply_config(spec)
                return Response.empty(204)
            m = re.fullmatch(r"/orders/([^/]+)", route)
            if m and request.method == "POST":
                spec = request.json()
                if not isinstance(spec, dict) or set(spec) - {
                    "mode",
                    "issue_after_polls",
                    "issue_after_seconds",
                }:
                    raise ValueError("order config takes mode, issue_after_polls, issue_after_seconds")
                self.configure_order(m.group(1), **spec)
                return Response.empty(204)
            if route == "/orders" and request.method == "GET":
                return Response.json(200, [self._summary(o) for o in self._orders.values()])
            if route == "/accounts" and request.method == "POST":
                spec = request.json()
                self.add_account(
                    str(spec["client_id"]),
                    str(spec["client_secret"]),
                    profile_ids=tuple(spec.get("profile_ids", (2001,))),
                    term=int(spec.get("term", 365)),
                    auto_approve=bool(spec.get("auto_approve", True)),
                )
                return Response.empty(204)
            if route == "/rotate-secret" and request.method == "POST":
                spec = request.json()
                self.rotate_secret(str(spec["client_id"]), str(spec["client_secret"]))
                return Response.empty(204)
            if route == "/reset" and request.method == "POST":
                self.reset()
                return Response.empty(204)
        except KeyError as exc:
            return Response.json(404, {"error": f"unknown {exc}"})
        except (ValueError, TypeError, BadJson) as exc:
            return Response.json(400, {"error": str(exc)})
        return super().handle_control(route, request)

    def _summary(self, o: EnrollmentOrder) -> dict[str, Any]:
        return {
            "certId": o.cert_id,
            "clientId": o.client_id,
            "status": o.status,
            "mode": o.mode,
            "polls": o.polls,
            "profileId": o.profile_id,
            "commonName": csr_names(o.csr)[0],
        }

    # ------------------------------------------------------------------ request handling
    def handle(self, request: Request) -> Response:
        req = original_request(request)
        path = req.path
        if path == TOKEN_PATH:
            self.oauth.lifetime = self.token_lifetime
            return self.oauth.token(req, self.clock())
        m = re.fullmatch(r"/api/v1/certificates(?:/([^/]+)(?:/(status|dcv-recheck|renew|replace))?)?/?", path)
        if m is None:
            return spring_error(404, path, "No message available", self.clock())
        account = self._authenticate(req)
        if account is None:
            return self._unauthorized()
        cert_id, action = m.group(1), m.group(2)
        routes: dict[tuple[str | None, str], Any] = {
            (None, "POST"): lambda: self._enroll(req, account),
            (None, "GET"): lambda: self._list(req, account),
            ("", "GET"): lambda: self._download(account, str(cert_id)),
            ("", "DELETE"): lambda: self._revoke(req, account, str(cert_id)),
            ("status", "GET"): lambda: self._status(account, str(cert_id)),
            ("dcv-recheck", "POST"): lambda: self._dcv_recheck(account, str(cert_id)),
            ("renew", "POST"): lambda: self._renew(req, account, str(cert_id)),
            ("replace", "POST"): lambda: self._replace(req, account, str(cert_id)),
        }
        key_path: str | None = None if cert_id is None else (action or "")
        handler = routes.get((key_path, req.method))
        if handler is None:
            if any(k[0] == key_path for k in routes):
                return spring_error(
                    405, path, f"Request method '{req.method}' is not supported", self.clock()
                )
            return spring_error(404, path, "No message available", self.clock())
        try:
            response: Response = handler()
            return response
        except _ApiError as exc:
            return exc.response

    # ------------------------------------------------------------------ auth
    def _authenticate(self, req: Request) -> EnrollmentAccount | None:
        client_id = self.oauth.check(req, self.clock())
        if client_id is None:
            return None
        return self.accounts.get(client_id)

    def _unauthorized(self) -> Response:
        headers: dict[str, str] = {}
        if self.www_authenticate == "quoted":
            headers["WWW-Authenticate"] = f'Bearer realm="apiclients", authorization_uri="{self.token_url}"'
        elif self.www_authenticate == "unquoted":
            headers["WWW-Authenticate"] = f"Bearer realm=apiclients, authorization_uri={self.token_url}"
        return Response.empty(401, headers)

    # ------------------------------------------------------------------ helpers
    def _order(self, cert_id: str | int) -> EnrollmentOrder:
        try:
            return self._orders[str(cert_id)]
        except KeyError:
            raise KeyError(f"certificate {cert_id}") from None

    def _find(self, account: EnrollmentAccount, cert_id: str) -> EnrollmentOrder:
        order = self._orders.get(cert_id)
        if order is None or order.client_id != account.client_id:
            code = self.not_found_code
            raise _fail(404, code, NOT_FOUND_TEXT[code].format(cert_id))
        return order

    @staticmethod
    def _body(req: Request, *, allow_empty: bool = False) -> dict[str, Any]:
        if allow_empty and not req.body.strip():
            return {}
        try:
            body = req.json()
        except BadJson:
            raise _parse_error() from None
        if not isinstance(body, dict):
            raise _parse_error()
        return body

    def _parse_csr(self, value: Any) -> x509.CertificateSigningRequest:
        if value is None or value == "":
            raise _fail(400, -7, "csr is required but missing.")
        if not isinstance(value, str):
            raise _parse_error()
        if len(value) > 32767:
            raise _fail(400, -10, "Error while decoding CSR.")
        if self.strict_csr:
            if not _B64_STRICT.fullmatch(value):
                raise _fail(400, -10, "Error while decoding CSR.")
            try:
                der = base64.b64decode(value, validate=True)
                csr = x509.load_der_x509_csr(der)
            except (binascii.Error, ValueError):
                raise _fail(400, -10, "Error while decoding CSR.") from None
            try:
                valid = csr.is_signature_valid
            except Exception:  # unsupported signature algorithms raise various errors
                valid = False
            if not valid:
                raise _fail(400, -138, "Invalid CSR.")
        else:
            try:
                csr = load_csr(value)
            except CryptoError:
                raise _fail(400, -10, "Error while decoding CSR.") from None
        alg, param = key_type_of(csr.public_key())
        if alg not in ALLOWED_KEYS:
            raise _fail(400, -11, "The CSR uses an unsupported algorithm!")
        if param not in ALLOWED_KEYS[alg]:
            raise _fail(400, -13, "The CSR uses an unsupported key size!")
        return csr

    @staticmethod
    def _sans(body: Mapping[str, Any]) -> list[str] | None:
        value = body.get("subjAltNames")
        if value is None:
            return None
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise _parse_error()
        return [v.strip() for v in value if v.strip()]

    def _custom_fields(self, body: Mapping[str, Any], *, required: bool = False) -> dict[str, str]:
        value = body.get("customFields")
        if value is None:
            if required:
                raise _fail(400, -7, "customFields is required but missing.")
            value = {}
        if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
            raise _parse_error()
        for name in self.mandatory_custom_fields:
            if not str(value.get(name, "")).strip():
                raise _fail(400, -62, "Missing mandatory custom field!")
        return {str(k): str(v) for k, v in value.items()}

    @staticmethod
    def _text(body: Mapping[str, Any], key: str, limit: int) -> str:
        value = body.get(key)
        if value is None:
            return ""
        if not isinstance(value, str):
            raise _parse_error()
        if len(value) > limit:
            raise _fail(400, -1601, f"Field '{key}' has invalid value.")
        return value

    def _id_response(self, cert_id: str) -> Response:
        if self.cert_id_style == "number":
            return Response.json(200, {"certId": int(cert_id)})
        if self.cert_id_style == "id_key":
            return Response.json(200, {"id": cert_id})
        return Response.json(200, {"certId": cert_id})

    # ------------------------------------------------------------------ state machine
    def _new_order(
        self,
        account: EnrollmentAccount,
        *,
        profile_id: int,
        term: int,
        csr: x509.CertificateSigningRequest,
        extra_sans: list[str],
        comments: str = "",
        external_requester: str = "",
        custom_fields: dict[str, str] | None = None,
    ) -> EnrollmentOrder:
        now = self.clock()
        order = EnrollmentOrder(
            cert_id=str(self._next_id),
            client_id=account.client_id,
            profile_id=profile_id,
            term=term,
            csr=csr,
            extra_sans=list(extra_sans),
            requested_at=now,
            pending_since=now,
            issue_after_polls=self.issue_after_polls,
            issue_after_seconds=self.issue_after_seconds,
            comments=comments,
            external_requester=external_requester,
            custom_fields=dict(custom_fields or {}),
        )
        self._next_id += 1
        self._orders[order.cert_id] = order
        mode = self.mode
        if mode == "auto" and not account.auto_approve:
            mode = "needs_approval"
        self._set_mode(order, mode)
        return order

    def _set_mode(self, order: EnrollmentOrder, mode: str) -> None:
        order.mode = mode
        if order.status not in PENDING_STATES:
            return
        order.awaiting_approval = mode == "needs_approval"
        order.awaiting_dcv = mode == "dcv_pending"
        if mode == "declined":
            order.status = "Declined"
        elif order.awaiting_approval:
            order.status = "Requested"
        elif order.status == "Requested":
            order.status = "Applied"

    def _approve(self, order: EnrollmentOrder) -> None:
        if order.status != "Requested" or not order.awaiting_approval:
            raise ValueError(f"Certificate can't be approved cause it has state = {order.status}")
        order.awaiting_approval = False
        order.status = "Applied"
        order.pending_since = self.clock()
        order.polls = 0

    def _advance(self, order: EnrollmentOrder, *, poll: bool) -> None:
        if order.status not in PENDING_STATES or order.awaiting_approval or order.awaiting_dcv:
            return
        if poll:
            order.polls += 1
        elapsed = (self.clock() - order.pending_since).total_seconds()
        ready = (order.issue_after_polls is not None and order.polls > order.issue_after_polls) or (
            order.issue_after_seconds is not None and elapsed >= order.issue_after_seconds
        )
        if ready:
            self._issue(order)

    def _issue(self, order: EnrollmentOrder) -> None:
        now = self.clock()
        if order.not_after is not None:
            remaining = (order.not_after - now).total_seconds()
            days = max(1, math.ceil(remaining / 86400))
            not_before = order.not_after - timedelta(days=days)
        else:
            days, not_before = order.term, now
        cert = self.ca.issue_from_csr(order.csr, sans=order.extra_sans, days=days, not_before=not_before)
        order.cert = cert
        order.chain = self.ca.chain_for(cert)
        order.status = "Issued"
        order.issued_at = now
        if order.mode == "revoke_after_issue":
            self._do_revoke(order, 0, "revoked after issuance (sandbox mode revoke_after_issue)")

    def _do_revoke(self, order: EnrollmentOrder, reason_code: int, message: str) -> None:
        order.status = "Revoked"
        order.revoked_at = self.clock()
        order.reason_code = reason_code
        order.revoke_message = message

    # ------------------------------------------------------------------ routes
    def _enroll(self, req: Request, account: EnrollmentAccount) -> Response:
        body = self._body(req)
        sans = self._sans(body)
        comments = self._text(body, "comments", 1024)
        external = self._text(body, "externalRequester", 512)
        product = body.get("productId")
        profile_id = account.profile_ids[0]
        if product is None:
            if self.require_product_id:
                raise _fail(400, -7, "productId is required but missing.")
        else:
            if _is_int(product) or isinstance(product, str) and product.strip().isdigit():
                profile_id = int(product)
            else:
                raise _parse_error()
            if profile_id not in account.profile_ids:
                raise _fail(400, -39, "The certificate profile id is invalid!")
        csr = self._parse_csr(body.get("csr"))
        fields = self._custom_fields(body)
        order = self._new_order(
            account,
            profile_id=profile_id,
            term=account.term,
            csr=csr,
            extra_sans=sans or [],
            comments=comments,
            external_requester=external,
            custom_fields=fields,
        )
        return self._id_response(order.cert_id)

    def _list(self, req: Request, account: EnrollmentAccount) -> Response:
        if not self.legacy_list:
            return spring_error(405, req.path, "Request method 'GET' is not supported", self.clock())
        try:
            size = min(int(req.query.get("size", "200")), 200)
            position = int(req.query.get("position", "0"))
        except ValueError:
            raise _fail(400, -1601, "Field 'size/position' has invalid value.") from None
        mine = [o for o in self._orders.values() if o.client_id == account.client_id]
        page = mine[max(position, 0) : max(position, 0) + max(size, 0)]
        body = [{"certId": o.cert_id, "status": o.status} for o in page]
        return Response.json(200, body, {"X-Total-Count": str(len(mine))})

    def _download(self, account: EnrollmentAccount, cert_id: str) -> Response:
        order = self._find(account, cert_id)
        if order.status == "Declined":
            raise _fail(400, -1112, "Certificate can't be approved cause it has state = Declined")
        if order.status == "Revoked":
            raise _fail(400, -110, "Certificate has been revoked and cannot be downloaded.")
        self._advance(order, poll=True)
        if order.status == "Revoked":
            raise _fail(400, -110, "Certificate has been revoked and cannot be downloaded.")
        if order.cert is None:
            codes = self.pending_codes
            code = codes[(max(order.polls, 1) - 1) % len(codes)]
            raise _fail(404, code, PENDING_TEXT.get(code, "Certificate is not available now."))
        order.downloads += 1
        certs = cert_order(order.cert, order.chain, DOWNLOAD_ORDERS[self.download_order])
        if self.pkcs7:
            data = pkcs7.serialize_certificates(certs, serialization.Encoding.PEM)
            if self.crlf:
                data = data.replace(b"\n", b"\r\n")
        else:
            data = pem_of(certs, crlf=self.crlf)
        return Response(
            200,
            data,
            {
                "Content-Type": "application/x-pem-file",
                "Content-Disposition": f'attachment; filename="{order.cert_id}.pem"',
            },
        )

    def _status(self, account: EnrollmentAccount, cert_id: str) -> Response:
        order = self._find(account, cert_id)
        self._advance(order, poll=False)
        if order.awaiting_dcv:
            dcv: dict[str, Any] = {"status": "NOT_VALIDATED", "method": "CNAME"}
        elif order.status == "Declined":
            dcv = {}
        else:
            dcv = {"status": "VALIDATED"}
        return Response.json(200, {"status": order.status, "dcvInfo": dcv})

    def _dcv_recheck(self, account: EnrollmentAccount, cert_id: str) -> Response:
        order = self._find(account, cert_id)
        if order.awaiting_dcv:
            order.awaiting_dcv = False
            order.pending_since = self.clock()
            order.polls = 0
        return Response.empty(202)

    def _renew(self, req: Request, account: EnrollmentAccount, cert_id: str) -> Response:
        original = self._find(account, cert_id)
        body = self._body(req, allow_empty=True)
        profile_raw = body.get("profileId")
        if profile_raw is None:
            if len(account.profile_ids) > 1:
                raise _fail(400, -39, "The certificate profile id is invalid!")
            profile_id = original.profile_id
        else:
            if not (_is_int(profile_raw) or (isinstance(profile_raw, str) and profile_raw.strip().isdigit())):
                raise _parse_error()
            profile_id = int(profile_raw)
            if profile_id not in account.profile_ids:
                raise _fail(400, -39, "The certificate profile id is invalid!")
        fields = self._custom_fields(body, required=self.renew_requires_custom_fields)
        sans = self._sans(body)
        term_raw = body.get("term")
        term = account.term
        if term_raw is not None:
            if not _is_int(term_raw) or term_raw < 1:
                raise _fail(400, -1601, "Field 'term' has invalid value.")
            term = int(term_raw)
        comments = self._text(body, "comments", 1024)
        external = self._text(body, "externalRequester", 512)
        for key in ("email", "dcvMode", "dcvEmail"):
            self._text(body, key, 512)
        csr = self._parse_csr(body["csr"]) if body.get("csr") is not None else original.csr
        self._advance(original, poll=False)
        if original.status != "Issued":
            raise _fail(400, -130, f"SSL state is not 'ISSUED': {original.status}")
        new = self._new_order(
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
        return self._id_response(new.cert_id)

    def _replace(self, req: Request, account: EnrollmentAccount, cert_id: str) -> Response:
        original = self._find(account, cert_id)
        body = self._body(req)
        sans = self._sans(body)
        comments = self._text(body, "comments", 1024)
        csr = self._parse_csr(body.get("csr"))
        self._advance(original, poll=False)
        if original.status != "Issued" or original.cert is None:
            raise _fail(400, -130, f"SSL state is not 'ISSUED': {original.status}")
        new = self._new_order(
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
        return self._id_response(new.cert_id)

    def _revoke(self, req: Request, account: EnrollmentAccount, cert_id: str) -> Response:
        order = self._find(account, cert_id)
        body = self._body(req, allow_empty=True)
        message = body.get("message")
        if message is None or message == "":
            raise _fail(400, -7, "message is required but missing.")
        if not isinstance(message, str):
            raise _parse_error()
        if len(message) > 512:
            raise _fail(400, -1601, "Field 'message' has invalid value.")
        raw = body.get("reasonCode", 0)
        code: int | None = None
        if _is_int(raw) or isinstance(raw, str) and re.fullmatch(r"\d{1,2}", raw.strip()):
            code = int(raw)
        if code not in REASON_CODES:
            raise _fail(400, -1601, "Field 'reasonCode' has invalid value.")
        assert code is not None
        self._advance(order, poll=False)
        if order.status == "Revoked":
            raise _fail(400, -159, "Your certificate already revoked")
        if order.status not in ("Issued", "Replaced"):
            raise _fail(400, -102, "Only issued certificates could be revoked.")
        self._do_revoke(order, code, message)
        return Response.empty(200)


def _check_knob(key: str, value: Any) -> Any:
    """Validate one knob value; ValueError with a readable message."""
    if key == "token_lifetime":
        if not _is_int(value) or value < 1:
            raise ValueError("token_lifetime must be an int >= 1")
        return value
    if key == "www_authenticate":
        if value not in ("quoted", "unquoted", None):
            raise ValueError("www_authenticate must be 'quoted', 'unquoted' or None")
        return value
    if key == "pending_codes":
        if not isinstance(value, (list, tuple)) or not value or not all(_is_int(v) for v in value):
            raise ValueError("pending_codes must be a non-empty list of ints")
        return list(value)
    if key == "issue_after_polls":
        if value is not None and (not _is_int(value) or value < 0):
            raise ValueError("issue_after_polls must be None or an int >= 0")
        return value
    if key == "issue_after_seconds":
        if value is not None and (
            isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0
        ):
            raise ValueError("issue_after_seconds must be None or a number >= 0")
        return None if value is None else float(value)
    if key in (
        "strict_csr",
        "require_product_id",
        "crlf",
        "pkcs7",
        "renew_requires_custom_fields",
        "legacy_list",
    ):
        if not isinstance(value, bool):
            raise ValueError(f"{key} must be a boolean")
        return value
    if key == "download_order":
        if value not in DOWNLOAD_ORDERS:
            raise ValueError(f"download_order must be one of {sorted(DOWNLOAD_ORDERS)}")
        return value
    if key == "mode":
        if value not in MODES:
            raise ValueError(f"mode must be one of {MODES}")
        return value
    if key == "not_found_code":
        if value not in NOT_FOUND_TEXT:
            raise ValueError(f"not_found_code must be one of {sorted(NOT_FOUND_TEXT)}")
        return value
    if key == "cert_id_style":
        if value not in ("string", "number", "id_key"):
            raise ValueError("cert_id_style must be 'string', 'number' or 'id_key'")
        return value
    if key == "mandatory_custom_fields":
        if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) and v for v in value):
            raise ValueError("mandatory_custom_fields must be a list of names")
        return list(value)
    raise ValueError(f"unknown knob {key!r}")
