"""What the two simulated SCM APIs share: :mod:`~citrix_connector.sandbox.scm` (admin API) and
:mod:`~citrix_connector.sandbox.scm_enrollment` (REST Enrollment API).

* SCM's error bodies and Spring's 404/405 answers, the OAuth client-credentials token server
  (:class:`OAuthIssuer`) and the request-log redaction of secrets;
* certificate helpers (key types, chain order, PEM);
* request-body checks both APIs make the same way (JSON object, CSR text and key type, reason code);
* the simulator base class lives in :mod:`~citrix_connector.sandbox.scm_base`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import secrets
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, unquote_plus

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from .httpserver import BadJson, Request, Response

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
