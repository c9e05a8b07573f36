"""What the two simulated SCM APIs share: :mod:`~citrix_connector.sandbox.scm` (admin API) and
:mod:`~citrix_connector.sandbox.scm_enrollment` (REST Enrollment API).

* SCM's error bodies and Spring's 404/405 answers, the OAuth client-credentials token server
  (:class:`OAuthIssuer`) and the request-log redaction of secrets;
* certificate helpers (key types, chain order, PEM);
* request-body checks both APIs make the same way (JSON object, CSR text and key type, reason code);
* :class:`ScmSimBase`: order records and their issuance (polls/seconds), approval, revocation, the
  ``revoke_after_issue`` mode, collect's declined/revoked answers, transient faults, and the
  ``/_sim`` control routes both simulators have (approve/decline/revoke, config, orders, reset).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import secrets
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any, ClassVar, Generic, Protocol, TypeVar
from urllib.parse import parse_qs, unquote_plus

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from .ca import LocalCA
from .httpserver import BadJson, Fault, Request, Response, SimServer, utc_now

__all__ = [
    "NOT_FOUND_TEXT",
    "PENDING_STATES",
    "REASON_CODES",
    "TOKEN_PATH",
    "TRANSIENT_TEXT",
    "UNSET",
    "ApiError",
    "LoggedRequest",
    "OAuthIssuer",
    "ScmSimBase",
    "cert_order",
    "check_common_knob",
    "check_key_type",
    "csr_text",
    "error",
    "fail",
    "is_int",
    "is_number",
    "json_object",
    "key_type_of",
    "original_request",
    "parse_error",
    "pem_of",
    "reason_code_of",
    "redact_request",
    "required_text",
    "redact_request",
    "spring_error",
]

TOKEN_PATH = "/auth/realms/apiclients/protocol/openid-connect/token"

NOT_FOUND_TEXT: dict[int, str] = {
    -5101: "Certificate not found. {0}",
    -124: "Wrong SSL certificate id {0}.",
    -1117: "The SSL is null.",
}

TRANSIENT_TEXT: dict[int, str] = {
    -195: "CA is not available now. Please try again later.",
    -140: "CSR decoding temporarily unavailable. Please try again later.",
    -129: "Connection error while applying certificate.",
    -2: "Internal error. Please contact Support for details.",
    -65: "Internal error {0}. Please contact Support for details.",
}

#: RFC 5280 reason codes SCM accepts on revoke (2 is refused).
REASON_CODES = (0, 1, 3, 4, 5)
#: Order statuses in which an order is still on its way to issuance.
PENDING_STATES = ("Requested", "Approved", "Applied")

#: "Not given" default of the knob-setting hooks' keyword arguments.
UNSET: Any = object()


# ================================================================================ answers & OAuth


def error(status: int, code: int, description: str, headers: Mapping[str, str] | None = None) -> Response:
    """An SCM error response ``{"code", "description"}``."""
    return Response.json(status, {"code": code, "description": description}, headers)


def spring_error(status: int, path: str, message: str, now: datetime) -> Response:
    """What SCM's Spring front answers for an unknown route or a wrong method."""
    reason = {404: "Not Found", 405: "Method Not Allowed"}.get(status, "Error")
    return Response.json(
        status,
        {
            "timestamp": now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}+00:00",
            "status": status,
            "error": reason,
            "message": message,
            "path": path,
        },
    )


@dataclass
class LoggedRequest(Request):
    """The copy of a request that goes into the request log: secrets replaced by ``***``.

    ``original`` is the request as received; handlers must read that one.
    """

    original: Request | None = None


def redact_request(request: Request, *, token_path: str = TOKEN_PATH) -> LoggedRequest:
    """Copy ``request`` with passwords, client secrets and Basic credentials masked."""
    headers = dict(request.headers)
    if "password" in headers:
        headers["password"] = "***"
    auth = headers.get("authorization", "")
    if auth[:6].lower() == "basic ":
        headers["authorization"] = "Basic ***"
    body = request.body
    if request.path == token_path and body:
        try:
            form = parse_qs(body.decode("utf-8"), keep_blank_values=True)
        except UnicodeDecodeError:
            body = b"***"
        else:
            if "client_secret" in form:
                parts = [
                    f"{k}={'***' if k == 'client_secret' else v}" for k, vals in form.items() for v in vals
                ]
                body = "&".join(parts).encode("utf-8")
    return LoggedRequest(
        method=request.method,
        raw_path=request.raw_path,
        raw_query=request.raw_query,
        headers=headers,
        body=body,
        client_cert_der=request.client_cert_der,
        original=request,
    )


def original_request(request: Request) -> Request:
    if isinstance(request, LoggedRequest) and request.original is not None:
        return request.original
    return request


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


class OAuthIssuer:
    """Keycloak-like client-credentials token endpoint and bearer-token checks (no locking: callers
    hold the simulator lock)."""

    def __init__(self, issuer_url: Callable[[], str]) -> None:
        self.clients: dict[str, str] = {}
        self.tokens: dict[str, tuple[str, datetime]] = {}
        self.lifetime = 300
        self.tokens_issued = 0
        self._issuer_url = issuer_url
        self._key = secrets.token_bytes(32)

    def token(self, request: Request, now: datetime) -> Response:
        if request.method != "POST":
            return Response.json(405, {"error": "RESTEASY003650: No resource method found for GET"})
        try:
            form = {
                k: v[0] for k, v in parse_qs(request.body.decode("utf-8"), keep_blank_values=True).items()
            }
        except UnicodeDecodeError:
            form = {}
        client_id = form.get("client_id")
        client_secret = form.get("client_secret")
        auth = request.header("authorization") or ""
        if auth[:6].lower() == "basic ":
            try:
                user, _, pwd = base64.b64decode(auth[6:].strip()).decode("utf-8").partition(":")
            except (ValueError, UnicodeDecodeError):
                return _oauth_error(400, "invalid_request", "Invalid authorization header")
            client_id, client_secret = unquote_plus(user), unquote_plus(pwd)
        grant = form.get("grant_type")
        if not grant:
            return _oauth_error(400, "invalid_request", "Missing form parameter: grant_type")
        if grant != "client_credentials":
            return _oauth_error(400, "unsupported_grant_type", "Unsupported grant_type")
        if not client_id:
            return _oauth_error(400, "invalid_client", "Missing parameter: client_id")
        expected = self.clients.get(client_id)
        if expected is None:
            return _oauth_error(401, "invalid_client", "Invalid client or Invalid client credentials")
        if client_secret is None or not hmac.compare_digest(expected.encode(), client_secret.encode()):
            return _oauth_error(401, "unauthorized_client", "Invalid client or Invalid client credentials")
        iat = int(now.timestamp())
        header = {"alg": "HS256", "typ": "JWT", "kid": "sandbox"}
        payload = {
            "exp": iat + self.lifetime,
            "iat": iat,
            "jti": secrets.token_hex(16),
            "iss": self._issuer_url(),
            "azp": client_id,
            "sub": f"service-account-{client_id}",
            "typ": "Bearer",
            "scope": "profile email",
        }
        signing_input = (
            _b64url(json.dumps(header, separators=(",", ":")).encode())
            + "."
            + _b64url(json.dumps(payload, separators=(",", ":")).encode())
        )
        signature = hmac.new(self._key, signing_input.encode("ascii"), hashlib.sha256).digest()
        access_token = signing_input + "." + _b64url(signature)
        self.tokens[access_token] = (client_id, now + timedelta(seconds=self.lifetime))
        self.tokens_issued += 1
        return Response.json(
            200,
            {
                "access_token": access_token,
                "expires_in": self.lifetime,
                "refresh_expires_in": 0,
                "token_type": "Bearer",
                "not-before-policy": 0,
                "scope": "profile email",
            },
            {"Cache-Control": "no-store", "Pragma": "no-cache"},
        )

    def check(self, request: Request, now: datetime) -> str | None:
        """The client id of a valid (known, unexpired) bearer token, else None."""
        auth = request.header("authorization") or ""
        if auth[:7].lower() != "bearer ":
            return None
        entry = self.tokens.get(auth[7:].strip())
        if entry is None:
            return None
        client_id, expires = entry
        if now >= expires:
            return None
        return client_id

    @staticmethod
    def has_bearer(request: Request) -> bool:
        return (request.header("authorization") or "")[:7].lower() == "bearer "


def _oauth_error(status: int, err: str, description: str) -> Response:
    return Response.json(status, {"error": err, "error_description": description})


def key_type_of(public_key: object) -> tuple[str, str]:
    """("RSA", "2048") or ("EC", "P-256"); ("", "") for anything else."""
    if isinstance(public_key, rsa.RSAPublicKey):
        return "RSA", str(public_key.key_size)
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        return "EC", {"secp256r1": "P-256", "secp384r1": "P-384", "secp521r1": "P-521"}.get(
            public_key.curve.name, public_key.curve.name
        )
    return "", ""


def cert_order(leaf: x509.Certificate, chain: list[x509.Certificate], spec: str) -> list[x509.Certificate]:
    """Certificates for a spec of ``L`` (leaf), ``I`` (intermediates), ``R`` (root).

    ``chain`` is ``[issuing intermediate, ..., root]``. Intermediates are listed issuing-first in a
    leaf-first/issuer-first spec and top-down when the spec starts with the root.
    """
    intermediates, root = list(chain[:-1]), chain[-1]
    if spec.startswith("R"):
        intermediates.reverse()
    out: list[x509.Certificate] = []
    for part in spec:
        if part == "L":
            out.append(leaf)
        elif part == "I":
            out.extend(intermediates)
        elif part == "R":
            out.append(root)
    return out


def pem_of(certs: Iterable[x509.Certificate], *, crlf: bool = False) -> bytes:
    data = b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certs)
    return data.replace(b"\n", b"\r\n") if crlf else data


# ================================================================================ request checks


class ApiError(Exception):
    """Raised by route handlers; :meth:`ScmSimBase.handle` answers with :attr:`response`."""

    def __init__(self, response: Response) -> None:
        super().__init__(response.status)
        self.response = response


def fail(status: int, code: int, description: str) -> ApiError:
    return ApiError(error(status, code, description))


def parse_error() -> ApiError:
    return fail(400, -1002, "Cannot parse message body")


def is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def json_object(req: Request, *, allow_empty: bool = False) -> dict[str, Any]:
    """The request's JSON object body (``{}`` for an empty body when ``allow_empty``); -1002 otherwise."""
    if allow_empty and not req.body.strip():
        return {}
    try:
        body = req.json()
    except BadJson:
        raise parse_error() from None
    if not isinstance(body, dict):
        raise parse_error()
    return body


def required_text(body: Mapping[str, Any], key: str, limit: int) -> str:
    """A required text field: missing or empty -> -7, not a string -> -1002, too long -> -1601."""
    value = body.get(key)
    if value is None or value == "":
        raise fail(400, -7, f"{key} is required but missing.")
    if not isinstance(value, str):
        raise parse_error()
    if len(value) > limit:
        raise fail(400, -1601, f"Field '{key}' has invalid value.")
    return value


def csr_text(value: Any, *, blank_is_missing: bool) -> str:
    """The ``csr`` field as text: missing (``None``, ``""``, or blank when ``blank_is_missing``)
    -> -7, not a string -> -1002, longer than SCM takes -> -10."""
    if value is None or value == "" or (blank_is_missing and isinstance(value, str) and not value.strip()):
        raise fail(400, -7, "csr is required but missing.")
    if not isinstance(value, str):
        raise parse_error()
    if len(value) > 32767:
        raise fail(400, -10, "Error while decoding CSR.")
    return value


def check_key_type(csr: x509.CertificateSigningRequest, allowed: Mapping[str, Sequence[str]]) -> None:
    """-11 for a key algorithm, -13 for a key size/curve that ``allowed`` does not list."""
    alg, param = key_type_of(csr.public_key())
    if alg not in allowed:
        raise fail(400, -11, "The CSR uses an unsupported algorithm!")
    if param not in allowed[alg]:
        raise fail(400, -13, "The CSR uses an unsupported key size!")


def reason_code_of(raw: Any) -> int:
    """A revocation ``reasonCode`` (int, or a string of one or two digits) SCM accepts; -1601 otherwise."""
    code: int | None = None
    if is_int(raw) or isinstance(raw, str) and re.fullmatch(r"\d{1,2}", raw.strip()):
        code = int(raw)
    if code not in REASON_CODES:
        raise fail(400, -1601, "Field 'reasonCode' has invalid value.")
    assert code is not None
    return code


def check_common_knob(key: str, value: Any, *, modes: Sequence[str], booleans: Iterable[str]) -> Any:
    """Validate a knob both simulators have (``booleans`` names the boolean ones); ValueError with a
    readable message, also for an unknown knob."""
    if key == "issue_after_polls":
        if value is not None and (not is_int(value) or value < 0):
            raise ValueError("issue_after_polls must be None or an int >= 0")
        return value
    if key == "issue_after_seconds":
        if value is not None and (not is_number(value) or value < 0):
            raise ValueError("issue_after_seconds must be None or a number >= 0")
        return None if value is None else float(value)
    if key == "mode":
        if value not in modes:
            raise ValueError(f"mode must be one of {tuple(modes)}")
        return value
    if key == "not_found_code":
        if value not in NOT_FOUND_TEXT:
            raise ValueError(f"not_found_code must be one of {sorted(NOT_FOUND_TEXT)}")
        return value
    if key == "token_lifetime":
        if not is_int(value) or value < 1:
            raise ValueError("token_lifetime must be an int >= 1")
        return value
    if key in booleans:
        if not isinstance(value, bool):
            raise ValueError(f"{key} must be a boolean")
        return value
    raise ValueError(f"unknown knob {key!r}")


# ================================================================================ simulator base


class SimOrder(Protocol):
    """What :class:`ScmSimBase` reads and writes on an order record (both order dataclasses)."""

    __dataclass_fields__: ClassVar[dict[str, Any]]
    csr: x509.CertificateSigningRequest
    extra_sans: list[str]
    term: int
    status: str
    mode: str
    awaiting_approval: bool
    pending_since: datetime
    issue_after_polls: int | None
    issue_after_seconds: float | None
    polls: int
    cert: x509.Certificate | None
    chain: list[x509.Certificate]
    issued_at: datetime | None
    revoked_at: datetime | None
    reason_code: int | None


IdT = TypeVar("IdT", int, str)
OrderT = TypeVar("OrderT", bound=SimOrder)


class ScmSimBase(SimServer, Generic[IdT, OrderT]):
    """Order keeping, issuance and control routes of a simulated SCM API.

    A subclass provides the API itself (:meth:`handle`) and the hooks below: :meth:`_order`,
    :meth:`decline`, :meth:`revoke`, :meth:`_summary`, :meth:`_config_snapshot`,
    :meth:`_apply_config`, :meth:`_configure_order_spec`, :meth:`reset`; optionally
    :meth:`_extra_control`, :meth:`_on_hold`, :meth:`_still_pending`, :meth:`_validity`.
    """

    #: The order's attribute that keeps the revocation text.
    revoke_text_attr: ClassVar[str]
    #: The status an approved order moves to.
    approved_status: ClassVar[str]
    #: Regex (one group) of an order id in ``/_sim`` routes.
    control_id: ClassVar[str]
    #: Exceptions of ``/_sim`` routes answered 400.
    control_errors: ClassVar[tuple[type[Exception], ...]] = (ValueError, BadJson)

    def __init__(
        self,
        ca: LocalCA,
        tls_cert_pem: bytes,
        tls_key_pem: bytes,
        *,
        host: str,
        port: int,
        first_id: int,
        client_ca_pem: bytes | None = None,
    ) -> None:
        super().__init__(tls_cert_pem, tls_key_pem, host=host, port=port, client_ca_pem=client_ca_pem)
        self.ca = ca
        self._first_id = first_id
        self._next_id = first_id
        self._orders: dict[IdT, OrderT] = {}
        self.oauth = OAuthIssuer(lambda: self.url + "/auth/realms/apiclients")

    # ------------------------------------------------------------------ hooks
    def _order(self, key: IdT, /) -> OrderT:
        """The order ``key`` (KeyError naming it when there is none)."""
        raise NotImplementedError

    def decline(self, key: IdT, /) -> None:
        raise NotImplementedError

    def revoke(self, key: IdT, /) -> None:
        raise NotImplementedError

    def reset(self) -> None:
        raise NotImplementedError

    def _summary(self, order: OrderT) -> dict[str, Any]:
        raise NotImplementedError

    def _config_snapshot(self) -> dict[str, Any]:
        raise NotImplementedError

    def _apply_config(self, values: Mapping[str, Any]) -> None:
        raise NotImplementedError

    def _configure_order_spec(self, key: IdT, spec: Any) -> None:
        """``POST /_sim/orders/{id}`` with the JSON ``spec``."""
        raise NotImplementedError

    def _control_key(self, raw: str) -> IdT:
        """An order id from a ``/_sim`` route."""
        raise NotImplementedError

    def _extra_control(self, route: str, request: Request) -> Response | None:
        """The simulator's own ``/_sim`` routes; None when ``route`` is none of them."""
        return None

    def _on_hold(self, order: OrderT) -> bool:
        """True while a pending order waits for something other than time or polls."""
        return order.awaiting_approval

    def _still_pending(self, order: OrderT, elapsed: float) -> None:
        """Called when :meth:`_advance` finds a pending order not yet due."""

    def _validity(self, order: OrderT, now: datetime) -> tuple[int, datetime]:
        """``(days, not_before)`` of the certificate issued for ``order`` now."""
        return order.term, now

    # ------------------------------------------------------------------ shared Python-side hooks
    def dispatch(self, request: Request) -> Response | None:
        return super().dispatch(redact_request(request))  # the request log has secrets masked

    @property
    def token_url(self) -> str:
        return self.url + TOKEN_PATH

    @property
    def orders(self) -> dict[IdT, OrderT]:
        """Snapshot (shallow copies) of every order by its id."""
        with self.lock:
            return {k: replace(v) for k, v in self._orders.items()}

    def order_count(self) -> int:
        with self.lock:
            return len(self._orders)

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
        """A transient SCM failure (default ``-195`` CA unavailable, HTTP 503; ``-140`` etc. -> 500)."""
        text = TRANSIENT_TEXT.get(code, "Internal error. Please contact Support for details.")
        return self.add_fault(
            route_regex,
            method=method,
            status=status if status is not None else (503 if code == -195 else 500),
            json_body={"code": code, "description": text.replace("{0}", "")},
            times=times,
            after=after,
        )

    def lose_answer(
        self,
        route_regex: str,
        *,
        status: int = 500,
        reset: bool = False,
        method: str | None = "POST",
        times: int | None = 1,
        after: int = 0,
    ) -> Fault:
        """Carry the next matching request out (the order takes effect), then answer it with HTTP
        ``status`` and an HTML error page -- as a failing front end does -- or, with ``reset``, drop
        the connection without an answer."""
        return self.add_fault(
            route_regex,
            method=method,
            status=0 if reset else status,
            body="" if reset else f"<html><body><h1>{status} Error</h1></body></html>",
            headers=None if reset else {"Content-Type": "text/html"},
            times=times,
            after=after,
            reset=reset,
            after_effect=True,
        )

    def _reset_common(self) -> None:
        """No orders, ids from ``first_id`` again, no OAuth clients, real clock, no faults, empty log."""
        self._orders.clear()
        self._next_id = self._first_id
        self.oauth = OAuthIssuer(lambda: self.url + "/auth/realms/apiclients")
        self.clock = utc_now
        self.latency = 0.0
        self._faults.clear()
        self._requests.clear()

    # ------------------------------------------------------------------ control API
    def handle_control(self, route: str, request: Request) -> Response:
        request = original_request(request)
        try:
            response = self._common_control(route, request)
        except KeyError as exc:
            return Response.json(404, {"error": f"unknown {exc}"})
        except self.control_errors as exc:
            return Response.json(400, {"error": str(exc)})
        if response is not None:
            return response
        return super().handle_control(route, request)

    def _common_control(self, route: str, request: Request) -> Response | None:
        m = re.fullmatch(r"/(approve|decline|revoke)/" + self.control_id, route)
        if m and request.method == "POST":
            action, key = m.group(1), self._control_key(m.group(2))
            if action == "approve":
                self._approve(self._order(key))
            elif action == "decline":
                self.decline(key)
            else:
                self.revoke(key)
            return Response.empty(204)
        if route == "/config" and request.method == "GET":
            return Response.json(200, self._config_snapshot())
        if route == "/config" and request.method == "POST":
            spec = request.json()
            if not isinstance(spec, dict):
                raise ValueError("config must be a JSON object")
            self._apply_config(spec)
            return Response.empty(204)
        m = re.fullmatch(r"/orders/" + self.control_id, route)
        if m and request.method == "POST":
            self._configure_order_spec(self._control_key(m.group(1)), request.json())
            return Response.empty(204)
        if route == "/orders" and request.method == "GET":
            return Response.json(200, [self._summary(o) for o in self._orders.values()])
        if route == "/reset" and request.method == "POST":
            self.reset()
            return Response.empty(204)
        return self._extra_control(route, request)

    # ------------------------------------------------------------------ state machine
    def _approve(self, order: OrderT) -> None:
        if order.status != "Requested" or not order.awaiting_approval:
            raise ValueError(f"Certificate can't be approved cause it has state = {order.status}")
        order.awaiting_approval = False
        order.status = self.approved_status
        order.pending_since = self.clock()
        order.polls = 0

    def _decline(self, order: OrderT, what: str) -> None:
        """Decline a pending order; ``what`` names it in the error (``"order 1001"``)."""
        if order.status not in PENDING_STATES:
            raise ValueError(f"{what} is {order.status}, cannot decline")
        order.status = "Declined"
        order.awaiting_approval = False

    def _advance(self, order: OrderT, *, poll: bool) -> None:
        """Move a pending order on (counting a collect/download call when ``poll``)."""
        if order.status not in PENDING_STATES or self._on_hold(order):
            return
        if poll:
            order.polls += 1
        elapsed = (self.clock() - order.pending_since).total_seconds()
        ready = (order.issue_after_polls is not None and order.polls > order.issue_after_polls) or (
            order.issue_after_seconds is not None and elapsed >= order.issue_after_seconds
        )
        if ready:
            self._issue(order)
        else:
            self._still_pending(order, elapsed)

    def _issue(self, order: OrderT) -> None:
        now = self.clock()
        days, not_before = self._validity(order, now)
        cert = self.ca.issue_from_csr(order.csr, sans=order.extra_sans, days=days, not_before=not_before)
        order.cert = cert
        order.chain = self.ca.chain_for(cert)
        order.status = "Issued"
        order.issued_at = now
        if order.mode == "revoke_after_issue":
            self._do_revoke(order, 0, "revoked after issuance (sandbox mode revoke_after_issue)")

    def _do_revoke(self, order: OrderT, reason_code: int, text: str) -> None:
        order.status = "Revoked"
        order.revoked_at = self.clock()
        order.reason_code = reason_code
        setattr(order, self.revoke_text_attr, text)

    def _collectable(self, order: OrderT, *, declined_code: int) -> None:
        """Collect/download of a declined (``declined_code``) or revoked (-110) order fails; any
        other counts as a poll (which may issue it)."""
        if order.status == "Declined":
            raise fail(400, declined_code, "Certificate can't be approved cause it has state = Declined")
        if order.status == "Revoked":
            raise fail(400, -110, "Certificate has been revoked and cannot be downloaded.")
        self._advance(order, poll=True)
        if order.status == "Revoked":
            raise fail(400, -110, "Certificate has been revoked and cannot be downloaded.")
