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
from datetime import datetime, timedelta
from typing import Any

from cryptography import x509

from citrix_connector.crypto import csr_names, load_csr
from citrix_connector.errors import CryptoError

from . import scm_enrollment_routes as api
from .ca import LocalCA
from .httpserver import BadJson, ControlRoute, Request, Response
from .scm_base import ScmSimBase
from .scm_common import (
    NOT_FOUND_TEXT,
    PENDING_STATES,
    TOKEN_PATH,
    ApiError,
    check_key_type,
    csr_text,
    fail,
    original_request,
    parse_error,
    spring_error,
)
from .scm_common import UNSET as _UNSET
from .scm_enrollment_model import (
    ALLOWED_KEYS,
    B64_STRICT,
    EnrollmentAccount,
    EnrollmentOrder,
    check_knob,
)

__all__ = ["EnrollmentAccount", "EnrollmentOrder", "EnrollmentSimulator"]


class EnrollmentSimulator(ScmSimBase[str, EnrollmentOrder]):
    """The simulated REST Enrollment API and token server (see the module docstring)."""

    name = "scm-enrollment"
    revoke_text_attr = "revoke_message"
    approved_status = "Applied"
    control_id = r"([^/]+)"
    control_errors = (ValueError, TypeError, BadJson)
    CONTROL_ROUTES: tuple[ControlRoute, ...] = (
        ("POST", "/accounts", "add a REST account: {client_id, client_secret, profile_ids, term, ...}"),
        ("POST", "/rotate-secret", "give a REST account a new secret: {client_id, client_secret}"),
    )

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
        super().__init__(ca, tls_cert_pem, tls_key_pem, host=host, port=port, first_id=first_id)
        self.accounts: dict[str, EnrollmentAccount] = {}
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
            checked = {k: check_knob(k, v) for k, v in values.items()}
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
            self._decline(self._order(cert_id), f"certificate {cert_id}")

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
    def tokens_issued(self) -> int:
        """How many access tokens the token endpoint has handed out."""
        with self.lock:
            return self.oauth.tokens_issued

    def reset(self) -> None:
        """Back to the constructed state: no accounts, orders, faults or log; default knobs; real clock."""
        with self.lock:
            self._reset_common()
            self.accounts.clear()
            self._set_knob_defaults()

    # ------------------------------------------------------------------ knobs
    def _apply_config(self, values: Mapping[str, Any]) -> None:
        checked = {}
        for key, value in values.items():
            if key not in self._KNOBS:
                raise ValueError(f"unknown knob {key!r}")
            checked[key] = check_knob(key, value)
        for key, value in checked.items():
            setattr(self, key, value)

    # ------------------------------------------------------------------ control API
    def _control_key(self, raw: str) -> str:
        return raw

    def _config_snapshot(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self._KNOBS}

    def _configure_order_spec(self, cert_id: str, spec: Any) -> None:
        if not isinstance(spec, dict) or set(spec) - {"mode", "issue_after_polls", "issue_after_seconds"}:
            raise ValueError("order config takes mode, issue_after_polls, issue_after_seconds")
        self.configure_order(cert_id, **spec)

    def _extra_control(self, route: str, request: Request) -> Response | None:
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
        return None

    def _summary(self, o: EnrollmentOrder) -> dict[str, Any]:
        return {
            "certId": o.cert_id,
            "clientId": o.client_id,
            "status": o.status,
            "mode": o.mode,
            "polls": o.polls,
            "profileId": o.profile_id,
            "commonName": csr_names(o.csr)[0],
            # where an admin finds an order in SCM's UI (the agent stamps its tag into comments)
            "comments": o.comments,
            "externalRequester": o.external_requester,
            "replaces": o.replaces,
            "replacedBy": o.replaced_by,
            "renewalOf": o.renewal_of,
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
            (None, "POST"): lambda: api.enroll(self, req, account),
            (None, "GET"): lambda: api.list_certificates(self, req, account),
            ("", "GET"): lambda: api.download(self, account, str(cert_id)),
            ("", "DELETE"): lambda: api.revoke(self, req, account, str(cert_id)),
            ("status", "GET"): lambda: api.status(self, account, str(cert_id)),
            ("dcv-recheck", "POST"): lambda: api.dcv_recheck(self, account, str(cert_id)),
            ("renew", "POST"): lambda: api.renew(self, req, account, str(cert_id)),
            ("replace", "POST"): lambda: api.replace(self, req, account, str(cert_id)),
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
        except ApiError as exc:
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
            raise fail(404, code, NOT_FOUND_TEXT[code].format(cert_id))
        return order

    def _parse_csr(self, value: Any) -> x509.CertificateSigningRequest:
        value = csr_text(value, blank_is_missing=False)
        if self.strict_csr:
            if not B64_STRICT.fullmatch(value):
                raise fail(400, -10, "Error while decoding CSR.")
            try:
                der = base64.b64decode(value, validate=True)
                csr = x509.load_der_x509_csr(der)
            except (binascii.Error, ValueError):
                raise fail(400, -10, "Error while decoding CSR.") from None
            try:
                valid = csr.is_signature_valid
            except Exception:  # unsupported signature algorithms raise various errors
                valid = False
            if not valid:
                raise fail(400, -138, "Invalid CSR.")
        else:
            try:
                csr = load_csr(value)
            except CryptoError:
                raise fail(400, -10, "Error while decoding CSR.") from None
        check_key_type(csr, ALLOWED_KEYS)
        return csr

    @staticmethod
    def _sans(body: Mapping[str, Any]) -> list[str] | None:
        value = body.get("subjAltNames")
        if value is None:
            return None
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise parse_error()
        return [v.strip() for v in value if v.strip()]

    def _custom_fields(self, body: Mapping[str, Any], *, required: bool = False) -> dict[str, str]:
        value = body.get("customFields")
        if value is None:
            if required:
                raise fail(400, -7, "customFields is required but missing.")
            value = {}
        if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
            raise parse_error()
        for name in self.mandatory_custom_fields:
            if not str(value.get(name, "")).strip():
                raise fail(400, -62, "Missing mandatory custom field!")
        return {str(k): str(v) for k, v in value.items()}

    @staticmethod
    def _text(body: Mapping[str, Any], key: str, limit: int) -> str:
        value = body.get(key)
        if value is None:
            return ""
        if not isinstance(value, str):
            raise parse_error()
        if len(value) > limit:
            raise fail(400, -1601, f"Field '{key}' has invalid value.")
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

    def _on_hold(self, order: EnrollmentOrder) -> bool:
        return order.awaiting_approval or order.awaiting_dcv

    def _validity(self, order: EnrollmentOrder, now: datetime) -> tuple[int, datetime]:
        if order.not_after is None:
            return order.term, now
        # a replacement keeps the original's notAfter
        remaining = (order.not_after - now).total_seconds()
        days = max(1, math.ceil(remaining / 86400))
        return days, order.not_after - timedelta(days=days)
