"""The SCM transport both clients are composed of: one call helper that authenticates, decodes
SCM's errors and says what a failure means for the order.

:class:`ScmTransport` sends a request through :class:`~citrix_connector.http.HttpClient` (retries,
``Retry-After``, redacted tracing), adds the headers of its :class:`ScmAuth`, asks it once what to do
on a 401, and turns any non-2xx answer into an :class:`~citrix_connector.errors.ScmError` carrying
SCM's own ``code``/``description`` -- the body is always read before the status is judged:

* 4xx (and "busy" 429 / 503 with ``Retry-After``): :class:`~citrix_connector.errors.ScmRefusedError`
  -- nothing was done;
* never sent (refused, DNS, TLS, no token): :class:`~citrix_connector.errors.ScmNotSentError`;
* a non-idempotent call (an order) sent without a usable answer (reset, read timeout, 5xx, a 2xx
  without the order id): :class:`~citrix_connector.errors.ScmOutcomeUnknownError`, never re-sent.

This module also re-exports the names the clients shared before it was split (``OAuthTokens``,
``decode_error``, ...), so older imports keep working.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Protocol

import requests

from ..crypto import parse_certificates
from ..errors import (
    CryptoError,
    ScmAlreadyReplacedError,
    ScmAlreadyRevokedError,
    ScmAuthError,
    ScmDeclinedError,
    ScmError,
    ScmNotIssuedError,
    ScmNotReadyError,
    ScmNotSentError,
    ScmOutcomeUnknownError,
    ScmRefusedError,
)
from ..http import HttpClient, TransportError, said_not_processed
from . import codes
from ._answers import (
    decode_error,
    endpoint_of,
    json_or_none,
    normalize_state,
    order_id_from,
    parse_date,
    scrub,
)
from ._oauth import WELL_KNOWN_TOKEN_URL, OAuthTokens
from .base import REVOCATION_REASONS, CollectResult, OrderState

__all__ = [
    "WELL_KNOWN_TOKEN_URL",
    "OAuthTokens",
    "ScmAuth",
    "ScmTransport",
    "auth_failure",
    "check_reason_code",
    "decode_error",
    "endpoint_of",
    "is_transient_scm",
    "normalize_state",
    "order_id_from",
    "parse_date",
    "scrub",
]

log = logging.getLogger("citrixagent.scm")

#: Kept for older imports: the codes live in :mod:`citrix_connector.scm.codes`.
TRANSIENT_CODES = codes.TRANSIENT
REVOKED_CODES = codes.REVOKED
DECLINED_CODES = codes.DECLINED

#: What SCM may have done when an order call went out and no usable answer came back.
_UNKNOWN_EFFECT = {
    "enroll": "an order may exist in SCM; the next run looks for it",
    "renew": "a renewal order may exist in SCM; the next run looks for it",
    "replace": "SCM may have taken the replace; the next run looks for it",
    "revoke": "SCM may have revoked the certificate; run revoke again to confirm",
}


def is_transient_scm(response: requests.Response) -> bool:
    """The ``is_transient`` hook of idempotent calls: SCM says "temporarily unavailable" in a
    400/500 body."""
    if response.status_code not in (400, 500):
        return False
    code, _ = decode_error(response)
    return code in codes.TRANSIENT


def _refused_as_transient(response: requests.Response) -> bool:
    """The hook of non-idempotent calls: only a *refusal* (4xx) saying "temporarily unavailable"
    proves nothing was done; a 5xx may come after SCM acted on the request."""
    if not 400 <= response.status_code < 500:
        return False
    code, _ = decode_error(response)
    return code in codes.TRANSIENT


def check_reason_code(reason_code: int) -> None:
    """Raise :class:`ScmNotSentError` unless SCM accepts ``reason_code`` as a revocation reason."""
    if reason_code not in REVOCATION_REASONS.values():
        allowed = ", ".join(f"{v} ({k})" for k, v in REVOCATION_REASONS.items())
        raise ScmNotSentError(f"revocation reason code {reason_code} is not accepted by SCM (use {allowed})")


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


class ScmAuth(Protocol):
    """How one SCM client authenticates (password headers, client certificate, OAuth tokens)."""

    def headers(self) -> dict[str, str]:
        """The authentication headers of the next request."""
        ...

    def on_unauthorized(self, response: requests.Response) -> bool:
        """Called on a 401; True to send the request once more with fresh credentials."""
        ...

    def failure(self, code: int | None, description: str, status: int, endpoint: str) -> ScmAuthError:
        """The error for a 401 that stays a 401."""
        ...


class ScmTransport:
    """One SCM remote: base URL, authentication and error decoding around :class:`HttpClient`."""

    def __init__(self, http: HttpClient, auth: ScmAuth, *, secrets: Iterable[str] = ()) -> None:
        self.http = http
        self.auth = auth
        self._secrets = [s for s in secrets if s]

    def call(
        self,
        op: str,
        method: str,
        path: str,
        *,
        idempotent: bool,
        json_body: Any = None,
        params: Mapping[str, str] | None = None,
        accept: str | None = None,
        ok: Callable[[requests.Response], bool] | None = None,
    ) -> requests.Response:
        """Send one request; return the answer when it is 2xx (or ``ok(response)`` says so), else
        raise the matching :class:`ScmError`. ``idempotent=False`` for every call that orders or
        changes something: it is never re-sent after SCM may have acted on it."""
        url = self.http.url(path)
        endpoint = endpoint_of(method, url)
        retried_auth = False
        while True:
            headers = self.auth.headers()
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
                    is_transient=is_transient_scm if idempotent else _refused_as_transient,
                )
            except TransportError as exc:
                raise self._transport_error(op, exc, endpoint, idempotent=idempotent) from None
            if response.status_code == 401 and not retried_auth and self.auth.on_unauthorized(response):
                retried_auth = True
                log.info("SCM answered 401 to %s; retrying once with fresh credentials", endpoint)
                continue
            if ok is not None and ok(response):
                return response
            if 200 <= response.status_code < 300:
                return response
            raise self.error(op, response, endpoint, idempotent=idempotent)

    @staticmethod
    def _transport_error(op: str, exc: TransportError, endpoint: str, *, idempotent: bool) -> ScmError:
        if not exc.sent:
            return ScmNotSentError(f"SCM {op} failed: {exc} [{endpoint}]", endpoint=endpoint)
        if idempotent:
            return ScmError(f"SCM {op} failed: {exc} [{endpoint}]", endpoint=endpoint)
        effect = _UNKNOWN_EFFECT.get(op, "SCM may have acted on it")
        return ScmOutcomeUnknownError(f"SCM {op}: {exc}: {effect} [{endpoint}]", endpoint=endpoint)

    def error(
        self, op: str, response: requests.Response, endpoint: str, *, idempotent: bool = True
    ) -> ScmError:
        """The :class:`ScmError` for a non-2xx answer (body read first)."""
        code, description = decode_error(response)
        description = scrub(description, self._secrets)
        status = response.status_code
        if status == 401:
            return self.auth.failure(code, description, status, endpoint)
        code_part = f", code {code}" if code is not None else ""
        what = description or "no description"
        if 400 <= status < 500 or said_not_processed(response):
            cls: type[ScmError] = ScmDeclinedError if code in codes.REVOKED else ScmRefusedError
            message = f"SCM refused {op} (HTTP {status}{code_part}): {what} [{endpoint}]"
        elif idempotent:
            cls, message = ScmError, f"SCM failed {op} (HTTP {status}{code_part}): {what} [{endpoint}]"
        else:
            effect = _UNKNOWN_EFFECT.get(op, "SCM may have acted on it")
            cls = ScmOutcomeUnknownError
            message = (
                f"SCM {op}: request sent, answer HTTP {status}{code_part} ({what}): {effect} [{endpoint}]"
            )
        return cls(message, code=code, description=description, status=status, endpoint=endpoint)

    def json_of(self, op: str, response: requests.Response, endpoint: str) -> Mapping[str, Any]:
        """The JSON object of a 2xx answer, or an :class:`ScmError` saying it is not one."""
        body = json_or_none(response)
        if not isinstance(body, Mapping):
            raise ScmError(
                f"SCM answered {op} with HTTP {response.status_code} but no JSON object [{endpoint}]",
                status=response.status_code,
                endpoint=endpoint,
            )
        return body

    def new_order_id(self, op: str, response: requests.Response, keys: Iterable[str], what: str) -> str:
        """The order id (the first of ``keys``) in the 2xx answer to ``op``; ``what`` names the
        field (e.g. ``"an sslId"``). Without one, SCM took the order but its id is unknown:
        :class:`ScmOutcomeUnknownError`."""
        endpoint = endpoint_of(response.request.method or "POST", response.url)
        body = json_or_none(response)
        order_id = order_id_from(body, keys) if isinstance(body, Mapping) else None
        if order_id is None:
            effect = _UNKNOWN_EFFECT.get(op, "SCM may have acted on it")
            raise ScmOutcomeUnknownError(
                f"SCM answered {op} without {what} (HTTP {response.status_code}): {effect} [{endpoint}]",
                status=response.status_code,
                endpoint=endpoint,
            )
        return order_id

    def not_issued(
        self,
        op: str,
        order_id: str,
        exc: ScmRefusedError,
        state_of: Callable[[str], tuple[OrderState, str]],
        *,
        replace_keeps_id: bool,
    ) -> ScmError:
        """``exc`` made specific when SCM refused ``op`` because the order is not issued
        (``-130``, ``-102``, ``-159``): the order's status (``state_of``) says whether it is already
        revoked, already replaced or still pending. Any other refusal comes back unchanged."""
        if exc.code == codes.ALREADY_REVOKED:
            state, raw = "revoked", "Revoked"
        elif exc.code in (codes.NOT_ISSUED, codes.ONLY_ISSUED_REVOCABLE):
            try:
                state, raw = state_of(order_id)
            except ScmError as status_exc:
                log.info("cannot read the status of SCM order %s: %s", order_id, status_exc)
                state, raw = "unknown", ""
        else:
            return exc
        shown = raw or state
        cls: type[ScmNotIssuedError] = ScmNotIssuedError
        replacement: str | None = None
        if state == "revoked":
            cls, note = ScmAlreadyRevokedError, f"order {order_id} is already revoked at SCM"
        elif state == "pending":
            cls = ScmNotReadyError
            note = f"order {order_id} is not issued yet (status {shown}): collect it first"
        elif state == "replaced":
            cls = ScmAlreadyReplacedError
            replacement = order_id if replace_keeps_id else None
            note = f"order {order_id} was already replaced (status {shown})" + (
                "" if replacement else "; this API cannot name the replacement order"
            )
        else:
            note = f"order {order_id} is not issued (status {shown})"
        error = cls(
            f"{exc}; {note}",
            order_id=order_id,
            state=state,
            code=exc.code,
            description=exc.description,
            status=exc.status,
            endpoint=exc.endpoint,
        )
        if isinstance(error, ScmAlreadyReplacedError):
            error.replacement_id = replacement
        return error

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
        if code in codes.REVOKED or code in codes.DECLINED:
            what = "revoked" if code in codes.REVOKED else "declined"
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
