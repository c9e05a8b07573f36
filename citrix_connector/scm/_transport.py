"""Shared plumbing of the two SCM clients: error decoding, OAuth tokens, and one call helper.

Both :mod:`~citrix_connector.scm.admin` and :mod:`~citrix_connector.scm.enrollment` build on
:class:`ScmTransport`: it sends a request through :class:`~citrix_connector.http.HttpClient`
(retries, ``Retry-After``, redacted tracing), adds the client's authentication, re-fetches an OAuth
token once on a 401, and turns any non-2xx answer into an :class:`~citrix_connector.errors.ScmError`
carrying SCM's own ``code``/``description`` -- the body is always read before the status is judged.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any
from urllib.parse import urlsplit

import requests

from ..config import Secret
from ..crypto import parse_certificates
from ..errors import CryptoError, ScmAuthError, ScmDeclinedError, ScmError
from ..http import HttpClient, TransportError
from .base import REVOCATION_REASONS, CollectResult, OrderState

__all__ = [
    "WELL_KNOWN_TOKEN_URL",
    "OAuthTokens",
    "ScmTransport",
    "auth_failure",
    "check_reason_code",
    "decode_error",
    "is_transient_scm",
    "normalize_state",
    "parse_date",
]

log = logging.getLogger("citrixagent.scm")

#: The Keycloak token endpoint Sectigo documents for the Admin API and the REST Enrollment API.
WELL_KNOWN_TOKEN_URL = "https://auth.sso.sectigo.com/auth/realms/apiclients/protocol/openid-connect/token"

#: SCM codes that mean "temporarily unavailable, try again" (CSR decoding / CA unavailable / CA
#: connection error / internal errors), per the vendor's error table.
TRANSIENT_CODES = frozenset({-195, -140, -129, -2, -65})
#: SCM codes that mean the certificate was revoked and will never be collectable.
REVOKED_CODES = frozenset({-110, -192})
#: SCM codes on collect that mean the order was declined ("cannot be approved in state Declined").
DECLINED_CODES = frozenset({-1112})

_TOKEN_MARGIN = 30.0  # seconds before ``expires_in`` runs out that a token is refreshed
_DEFAULT_TOKEN_LIFETIME = 300.0  # Keycloak's default, when the token answer has no usable expires_in


# ------------------------------------------------------------------------------------ error bodies


def _json_or_none(response: requests.Response) -> Any:
    if not response.content:
        return None
    try:
        return json.loads(response.content.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return None


def _one_line(text: str, limit: int = 200) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def decode_error(response: requests.Response) -> tuple[int | None, str]:
    """SCM's ``(code, description)`` from an error answer; tolerant of empty, HTML or odd bodies.

    Also understands OAuth error bodies (``error``/``error_description``) for the token server.
    """
    body = _json_or_none(response)
    if isinstance(body, Mapping):
        code: int | None = None
        raw_code = body.get("code")
        if isinstance(raw_code, int) and not isinstance(raw_code, bool):
            code = raw_code
        elif isinstance(raw_code, str) and re.fullmatch(r"-?\d+", raw_code.strip()):
            code = int(raw_code.strip())
        parts = [str(body[k]) for k in ("description", "details", "message") if body.get(k)]
        if not parts and body.get("error"):
            parts = [str(body["error"])]
            if body.get("error_description"):
                parts.append(str(body["error_description"]))
            return code, _one_line(": ".join(parts))
        return code, _one_line("; ".join(dict.fromkeys(parts)))
    text = response.text.strip() if response.content else ""
    if text and not text.startswith("<") and body is None:
        return None, _one_line(text)
    return None, response.reason or ""


def is_transient_scm(response: requests.Response) -> bool:
    """The ``is_transient`` hook: SCM says "temporarily unavailable" in a 400/500 body."""
    if response.status_code not in (400, 500):
        return False
    code, _ = decode_error(response)
    return code in TRANSIENT_CODES


def endpoint_of(method: str, url: str) -> str:
    """``"POST /api/ssl/v1/enroll"`` -- method and path, no host or query."""
    return f"{method.upper()} {urlsplit(url).path or '/'}"


def scrub(text: str, secrets: Iterable[str]) -> str:
    """``text`` with every secret value replaced by ``***``."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text


# --------------------------------------------------------------------------------- status & dates

_STATES: dict[str, OrderState] = {
    "issued": "issued",
    "downloaded": "issued",
    "requested": "pending",
    "approved": "pending",
    "saapproved": "pending",
    "applied": "pending",
    "init": "pending",
    "awaitingapproval": "pending",
    "enrolledpendingdownload": "pending",
    "pending": "pending",
    "declined": "declined",
    "rejected": "declined",
    "invalid": "declined",
    "revoked": "revoked",
    "expired": "expired",
    "replaced": "replaced",
}


def normalize_state(status: str) -> OrderState:
    """SCM's status string (any case, spaces/dashes/underscores ignored) -> normalised state."""
    key = re.sub(r"[\s_\-]", "", status).lower()
    return _STATES.get(key, "unknown")


def parse_date(value: object) -> date | None:
    """SCM's default US ``MM/dd/yyyy`` dates, plus ISO forms (``dateFormat=ISO``); None if absent/odd."""
    if not isinstance(value, str) or not value.strip():
        return None
    text = value.strip()
    for fmt in ("%m/%d/%Y", "%Y-%m-%d"):
        try:
            return datetime.strptime(text, fmt).date()
        except ValueError:
            pass
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).date()
    except ValueError:
        return None


# ------------------------------------------------------------------------------------------ tokens


@dataclass
class _Token:
    value: str
    refresh_at: float


class OAuthTokens:
    """OAuth 2.0 client-credentials tokens for one client id: fetched on demand, cached, refreshed
    shortly before ``expires_in`` runs out, and dropped on request (after a 401)."""

    def __init__(
        self,
        http: HttpClient,
        *,
        client_id: str,
        client_secret: Secret,
        token_url: str | None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.http = http
        self.client_id = client_id
        self._secret = client_secret
        self.token_url = token_url
        self.clock = clock
        self._token: _Token | None = None
        self.fetches = 0

    @property
    def cached(self) -> bool:
        return self._token is not None and self.clock() < self._token.refresh_at

    def invalidate(self) -> None:
        self._token = None

    def get(self) -> str:
        """A valid access token, fetching a new one when none is cached or it is about to expire."""
        if self._token is not None and self.clock() < self._token.refresh_at:
            return self._token.value
        self._token = self._fetch()
        return self._token.value

    def _fetch(self) -> _Token:
        url = self.token_url or WELL_KNOWN_TOKEN_URL
        endpoint = f"POST {url}"
        secret = self._secret.reveal()
        self.fetches += 1
        started = self.clock()
        try:
            response = self.http.request(
                "POST",
                url,
                data={
                    "grant_type": "client_credentials",
                    "client_id": self.client_id,
                    "client_secret": secret,
                },
                headers={"Accept": "application/json"},
                idempotent=True,  # asking for a token changes nothing
            )
        except TransportError as exc:
            raise ScmError(f"cannot get an SCM access token: {exc}", endpoint=endpoint) from None
        body = _json_or_none(response)
        if response.status_code == 200 and isinstance(body, Mapping):
            token = body.get("access_token")
            if isinstance(token, str) and token:
                lifetime = _DEFAULT_TOKEN_LIFETIME
                raw = body.get("expires_in")
                try:
                    if raw is not None and not isinstance(raw, bool) and float(raw) > 0:
                        lifetime = float(raw)
                except (TypeError, ValueError):
                    pass
                margin = min(_TOKEN_MARGIN, lifetime / 2)
                log.debug("SCM access token for client id %r valid for %.0fs", self.client_id, lifetime)
                return _Token(token, started + lifetime - margin)
        code, description = decode_error(response)
        if response.status_code == 200:
            description = "the answer holds no access_token"
        description = scrub(description, [secret])
        raise ScmAuthError(
            f"SCM token server refused client id {self.client_id!r} "
            f"(HTTP {response.status_code}{': ' + description if description else ''}) [{endpoint}]",
            code=code,
            description=description,
            status=response.status_code,
            endpoint=endpoint,
        )


# ---------------------------------------------------------------------------------- shared checks


def check_reason_code(reason_code: int) -> None:
    """Raise :class:`ScmError` unless SCM accepts ``reason_code`` as a revocation reason."""
    if reason_code not in REVOCATION_REASONS.values():
        allowed = ", ".join(f"{v} ({k})" for k, v in REVOCATION_REASONS.items())
        raise ScmError(f"revocation reason code {reason_code} is not accepted by SCM (use {allowed})")


def auth_failure(who: str, code: int | None, description: str, status: int, endpoint: str) -> ScmAuthError:
    """The :class:`ScmAuthError` for a 401: ``SCM rejected <who> (<code or HTTP status>) [endpoint]``."""
    if code is not None:
        why = f"code {code}: {description or 'no description'}"
    else:
        why = f"HTTP {status}" + (f": {description}" if description else ", no error code")
    return ScmAuthError(
        f"SCM rejected {who} ({why}) [{endpoint}]",
        code=code,
        description=description,
        status=status,
        endpoint=endpoint,
    )


# -------------------------------------------------------------------------------------- transport


class ScmTransport:
    """One SCM remote: base URL, authentication and error decoding around :class:`HttpClient`.

    Subclasses provide :meth:`auth_headers`, :meth:`auth_error` and may override
    :meth:`on_unauthorized` (e.g. to discover the token URL).
    """

    def __init__(self, http: HttpClient, *, tokens: OAuthTokens | None = None, secrets: Iterable[str] = ()):
        self.http = http
        self.tokens = tokens
        self._secrets = [s for s in secrets if s]

    # -- for subclasses --------------------------------------------------------------------------
    def auth_headers(self) -> dict[str, str]:
        if self.tokens is None:
            return {}
        return {"Authorization": f"Bearer {self.tokens.get()}"}

    def auth_error(
        self, op: str, code: int | None, description: str, status: int, endpoint: str
    ) -> ScmAuthError:
        raise NotImplementedError

    def on_unauthorized(self, response: requests.Response) -> bool:
        """Called on a 401; return True to send the request once more with fresh credentials."""
        if self.tokens is None:
            return False
        self.tokens.invalidate()
        return True

    # -- calls -----------------------------------------------------------------------------------
    def call(
        self,
        op: str,
        method: str,
        path: str,
        *,
        json_body: Any = None,
        params: Mapping[str, str] | None = None,
        accept: str | None = None,
        idempotent: bool | None = None,
        ok: Callable[[requests.Response], bool] | None = None,
    ) -> requests.Response:
        """Send one request; return the answer when it is 2xx (or ``ok(response)`` says so),
        else raise the matching :class:`ScmError`."""
        url = self.http.url(path)
        endpoint = endpoint_of(method, url)
        retried_auth = False
        while True:
            headers = self.auth_headers()
            if accept:
                headers["Accept"] = accept
            if json_body is not None:
                headers["Content-Type"] = "application/json"
            try:
                response = self.http.request(
                    method,
                    path,
                    headers=headers,
                    json=json_body,
                    params=params,
                    idempotent=idempotent,
                    is_transient=is_transient_scm,
                )
            except TransportError as exc:
                raise ScmError(f"SCM {op} failed: {exc} [{endpoint}]", endpoint=endpoint) from None
            if response.status_code == 401 and not retried_auth and self.on_unauthorized(response):
                retried_auth = True
                log.info("SCM answered 401 to %s; retrying once with fresh credentials", endpoint)
                continue
            if ok is not None and ok(response):
                return response
            if 200 <= response.status_code < 300:
                return response
            raise self.error(op, response, endpoint)

    def error(self, op: str, response: requests.Response, endpoint: str) -> ScmError:
        """The :class:`ScmError` for a non-2xx answer (body read first)."""
        code, description = decode_error(response)
        description = scrub(description, self._secrets)
        status = response.status_code
        if status == 401:
            return self.auth_error(op, code, description, status, endpoint)
        cls = ScmDeclinedError if code in REVOKED_CODES else ScmError
        code_part = f", code {code}" if code is not None else ""
        return cls(
            f"SCM refused {op} (HTTP {status}{code_part}): {description or 'no description'} [{endpoint}]",
            code=code,
            description=description,
            status=status,
            endpoint=endpoint,
        )

    def json_of(self, op: str, response: requests.Response, endpoint: str) -> Mapping[str, Any]:
        """The JSON object of a 2xx answer, or an :class:`ScmError` saying it is not one."""
        body = _json_or_none(response)
        if not isinstance(body, Mapping):
            raise ScmError(
                f"SCM answered {op} with HTTP {response.status_code} but no JSON object [{endpoint}]",
                status=response.status_code,
                endpoint=endpoint,
            )
        return body

    def new_order_id(self, op: str, response: requests.Response, keys: Iterable[str], what: str) -> str:
        """The order id (the first of ``keys``) in the JSON answer to ``op``; ``what`` names the
        field in the error (e.g. ``"an sslId"``) when there is none."""
        endpoint = endpoint_of(response.request.method or "POST", response.url)
        body = self.json_of(op, response, endpoint)
        order_id = order_id_from(body, keys)
        if order_id is None:
            raise ScmError(
                f"SCM answered {op} without {what} [{endpoint}]",
                status=response.status_code,
                endpoint=endpoint,
            )
        return order_id

    def collect_result(
        self,
        order_id: str,
        response: requests.Response,
        *,
        not_ready_status: int,
        not_ready_codes: frozenset[int],
    ) -> CollectResult:
        """One collect answer (any status) read as a :class:`CollectResult`.

        2xx: the certificates (an empty body counts as not ready: guarded against by other
        clients, never confirmed that SCM does it). ``not_ready_status`` with one of
        ``not_ready_codes``: not ready yet. Revoked/declined codes: :class:`ScmDeclinedError`.
        Anything else: the usual :class:`ScmError`.
        """
        endpoint = endpoint_of("GET", response.url)
        status = response.status_code
        if 200 <= status < 300:
            if not response.content.strip():
                return CollectResult(ready=False, description="SCM returned an empty certificate body")
            try:
                certs = parse_certificates(response.content)
            except CryptoError as exc:
                raise ScmError(
                    f"SCM returned an unreadable certificate for order {order_id}: {exc} [{endpoint}]",
                    status=status,
                    endpoint=endpoint,
                ) from None
            return CollectResult(ready=True, certificates=tuple(certs))
        code, description = decode_error(response)
        if status == not_ready_status and code in not_ready_codes:
            return CollectResult(ready=False, code=code, description=description)
        if code in REVOKED_CODES or code in DECLINED_CODES:
            what = "revoked" if code in REVOKED_CODES else "declined"
            raise ScmDeclinedError(
                f"certificate {order_id} is {what} at SCM and cannot be collected "
                f"(HTTP {status}, code {code}: {description}) [{endpoint}]",
                code=code,
                description=description,
                status=status,
                endpoint=endpoint,
            )
        raise self.error("collect", response, endpoint)

    def order_state(
        self, order_id: str, op: str, response: requests.Response
    ) -> tuple[Mapping[str, Any], str, OrderState]:
        """The JSON body of a status answer, SCM's status string and its normalised state
        (an unrecognised status is logged)."""
        body = self.json_of(op, response, endpoint_of("GET", response.url))
        raw_status = str(body.get("status") or "")
        state = normalize_state(raw_status)
        if state == "unknown":
            log.info("SCM order %s has an unrecognised status %r", order_id, raw_status)
        return body, raw_status, state

    def close(self) -> None:
        self.http.close()


def order_id_from(body: Mapping[str, Any], keys: Iterable[str]) -> str | None:
    """The first of ``keys`` holding a non-empty str or int id, as a string."""
    for key in keys:
        value = body.get(key)
        if isinstance(value, bool):
            continue
        if isinstance(value, int) or (isinstance(value, str) and value.strip()):
            return str(value).strip()
    return None
