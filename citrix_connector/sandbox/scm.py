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

import hmac
import random
import re
from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import datetime
from functools import partial
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import NameOID

from citrix_connector.crypto import csr_names, load_csr, unique_names
from citrix_connector.errors import CryptoError

from . import scm_admin_routes as api
from .ca import LocalCA
from .httpserver import ControlRoute, Request, Response
from .scm_admin_model import (
    AUTH_TEXT,
    ORDER_ID,
    ORDER_KNOBS,
    PENDING_TEXT,
    ScmOrder,
    ScmSettings,
    check_knob,
    colon_serial,
    seed_catalog,
)
from .scm_base import ScmSimBase
from .scm_common import (
    NOT_FOUND_TEXT,
    PENDING_STATES,
    TOKEN_PATH,
    ApiError,
    OAuthIssuer,
    check_key_type,
    csr_text,
    error,
    fail,
    original_request,
    spring_error,
)
from .scm_common import UNSET as _UNSET

__all__ = ["TOKEN_PATH", "ScmOrder", "ScmSimulator"]


class ScmSimulator(ScmSimBase[int, ScmOrder]):
    """The simulated SCM admin API. See the module docstring for routes, knobs and codes."""

    name = "scm"
    revoke_text_attr = "revoke_reason"
    approved_status = "Approved"
    control_id = ORDER_ID
    CONTROL_ROUTES: tuple[ControlRoute, ...] = (
        ("POST", "/oauth-clients", "allow an OAuth client: {client_id, client_secret}"),
        ("POST", "/rotate-intermediate", "sign with a new intermediate CA from now on"),
    )

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
        self.profiles, self.custom_fields, self.organizations = seed_catalog()

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
            setattr(new, key, check_knob(key, value))
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
            if key not in ORDER_KNOBS:
                raise ValueError(f"unknown order knob {key!r} (one of {ORDER_KNOBS})")
            checked[key] = check_knob(key, value)
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
            ("GET", r"/ssl/v1/types", partial(api.profile_types, self)),
            ("GET", r"/ssl/v1/customFields", partial(api.custom_field_defs, self)),
            ("GET", r"/organization/v1/?", partial(api.org_list, self)),
            ("GET", r"/organization/v1/" + ORDER_ID, partial(api.org_details, self)),
            ("POST", r"/ssl/v1/enroll", partial(api.enroll, self)),
            ("GET", r"/ssl/v1/?", partial(api.list_certificates, self)),
            ("HEAD", r"/ssl/v1/?", partial(api.list_certificates, self)),
            ("GET", r"/ssl/v1/" + ORDER_ID, partial(api.details, self)),
            ("GET", r"/ssl/v1/collect/" + ORDER_ID + r"(?:/([^/]+))?", partial(api.collect, self)),
            ("POST", r"/ssl/v1/renewById/" + ORDER_ID, partial(api.renew_by_id, self)),
            ("POST", r"/ssl/v1/renew/([^/]+)", partial(api.renew_by_renew_id, self)),
            ("POST", r"/ssl/v1/replace/" + ORDER_ID, partial(api.replace, self)),
            ("POST", r"/ssl/v1/revoke/serial/([^/]+)", partial(api.revoke_serial, self)),
            ("POST", r"/ssl/v1/revoke/" + ORDER_ID, partial(api.revoke, self)),
            ("POST", r"/ssl/v1/approve/" + ORDER_ID, partial(api.approve_route, self)),
            ("POST", r"/ssl/v1/" + ORDER_ID + r"/dcv/recheck", partial(api.dcv_recheck, self)),
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
