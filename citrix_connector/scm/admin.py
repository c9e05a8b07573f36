"""SCM client for the admin REST API (``/api/ssl/v1``): header login, client certificate or OAuth.

Authentication (``scm.yaml`` ``auth``):

* ``password``: ``login``, ``password`` and ``customerUri`` headers on every call, base ``<url>/api``;
* ``client_cert``: mutual TLS with the admin's registered certificate, ``login`` + ``customerUri``
  headers (no password), base ``<url>/private/api``;
* ``oauth``: ``Authorization: Bearer`` with a client-credentials token from ``token_url`` (default:
  Sectigo's Keycloak URL), cached, refreshed shortly before it expires and fetched anew once on a 401.

Pitfalls handled (see ``reference/scm-rest-api.md`` §5): SANs are a comma-separated *string* on
enroll but an *array* on replace; ``renewById`` needs an object body; replace/revoke answer 204 with
an empty body; collect uses a full-chain format (``x509R``, leaf first) and only SCM's documented
"not yet" codes (0, -183, -1400, -109 with HTTP 400) mean pending.

Order calls (enroll, renew, replace, revoke) are sent once: a lost answer raises
:class:`~citrix_connector.errors.ScmOutcomeUnknownError`, and the order list (``find_orders``) finds
what SCM took.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import requests

from ..config import ScmConfig
from ..crypto import normalize_serial, unique_names
from ..errors import CryptoError, ScmAuthError, ScmError, ScmNotSentError, ScmRefusedError
from ..http import HttpClient, RetryPolicy
from ..proxy import proxy_argument
from . import codes
from ._answers import endpoint_of, order_id_from, parse_date
from ._oauth import OAuthTokens
from ._transport import ScmTransport, auth_failure, check_reason_code
from .base import (
    COMMENTS_LIMIT,
    CollectResult,
    EnrollRequest,
    OrderState,
    OrderStatus,
    Organization,
    ScmCapabilities,
    tagged,
)

__all__ = ["COLLECT_FORMAT", "NOT_READY_CODES", "AdminScmClient", "admin_base_url"]

log = logging.getLogger("citrixagent.scm")

#: Full chain, leaf first (the order is re-derived from issuer/subject later anyway).
COLLECT_FORMAT = "x509R"
#: SCM's documented "not issued yet" codes on collect (HTTP 400).
NOT_READY_CODES = codes.ADMIN_NOT_READY

_REASON_LIMIT = 512  # a replace's or revoke's reason
_DEFAULT_REPLACE_REASON = "re-issue with a new key"
_DEFAULT_REVOKE_REASON = "unspecified"


def admin_base_url(url: str, *, client_cert: bool) -> str:
    """``<url>/api`` (``<url>/private/api`` for client-certificate auth); a ``url`` that already
    ends in ``/api`` or ``/private/api`` is not doubled."""
    base = url.rstrip("/")
    for suffix in ("/private/api", "/api"):
        if base.lower().endswith(suffix):
            base = base[: -len(suffix)]
            break
    return base + ("/private/api" if client_cert else "/api")


class _AdminAuth:
    """The admin API's authentication: ``login``/``password``/``customerUri`` headers, a client
    certificate (``login`` + ``customerUri``), or an OAuth bearer token."""

    def __init__(self, config: ScmConfig, tokens: OAuthTokens | None) -> None:
        self.config = config
        self.tokens = tokens

    def headers(self) -> dict[str, str]:
        headers: dict[str, str] = {}
        if self.config.customer_uri:
            headers["customerUri"] = self.config.customer_uri
        if self.tokens is not None:
            headers["Authorization"] = f"Bearer {self.tokens.get()}"
            return headers
        if self.config.username:
            headers["login"] = self.config.username
        if self.config.auth == "password" and self.config.password is not None:
            headers["password"] = self.config.password.reveal()
        return headers

    def on_unauthorized(self, response: requests.Response) -> bool:
        if self.tokens is None:
            return False  # header credentials do not get better by sending them again
        self.tokens.invalidate()
        return True

    def failure(self, code: int | None, description: str, status: int, endpoint: str) -> ScmAuthError:
        if self.config.auth == "oauth":
            who = f"the OAuth token of client id {self.config.client_id!r}"
        elif self.config.auth == "client_cert":
            who = f"the client certificate for login {self.config.username!r}"
        else:
            who = f"the credentials for login {self.config.username!r}"
        return auth_failure(who, code, description, status, endpoint)


class AdminScmClient:
    """:class:`~citrix_connector.scm.base.ScmClient` over SCM's admin REST API."""

    api_name = "admin"
    capabilities = ScmCapabilities(
        can_list_orders=True,
        renew_needs_profile_id=False,
        replace_keeps_id=True,
        enroll_from_profile=True,
        renew_takes_tag=False,  # renewById takes only csr and DCV settings
    )

    def __init__(
        self,
        config: ScmConfig,
        *,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        retry: RetryPolicy | None = None,
    ) -> None:
        if config.api != "admin":
            raise ValueError(f"AdminScmClient needs api: admin, not {config.api!r}")
        self.config = config
        self.auth = config.auth
        cert: tuple[str, str] | None = None
        if config.auth == "client_cert":
            if config.client_cert is None:
                raise ScmError("auth: client_cert needs client_cert (and client_key) in scm.yaml")
            key = config.client_key or config.client_cert  # a combined PEM holds both
            cert = (str(config.client_cert), str(key))
        self.http = HttpClient(
            admin_base_url(config.url, client_cert=config.auth == "client_cert"),
            verify=config.verify_tls,
            timeout=config.timeout,
            retry=retry,
            name="scm",
            cert=cert,
            sleep=sleep,
            # the configured proxy: (an older config without the key: the environment decides)
            proxy=proxy_argument(getattr(config, "proxy", None)),
        )
        self.tokens: OAuthTokens | None = None
        secrets: list[str] = []
        if config.password is not None:
            secrets.append(config.password.reveal())
        if config.auth == "oauth":
            if not config.client_id or config.client_secret is None:
                raise ScmError("auth: oauth needs client_id and client_secret in scm.yaml")
            secrets.append(config.client_secret.reveal())
            self.tokens = OAuthTokens(
                self.http,
                client_id=config.client_id,
                client_secret=config.client_secret,
                token_url=config.token_url,
                clock=clock,
            )
        self._transport = ScmTransport(self.http, _AdminAuth(config, self.tokens), secrets=secrets)
        self._types: list[Mapping[str, Any]] | None = None
        self._organizations: dict[int, Organization] = {}

    def close(self) -> None:
        self._transport.close()

    # -- profiles --------------------------------------------------------------------------------
    def certificate_types(self) -> list[Mapping[str, Any]]:
        """``GET /ssl/v1/types`` (cached for the life of the client)."""
        if self._types is None:
            response = self.get("profile lookup", "/ssl/v1/types")
            body = _json_any(response)
            if not isinstance(body, list):
                raise ScmError(
                    "SCM answered the profile lookup without a JSON list [GET /ssl/v1/types]",
                    status=response.status_code,
                    endpoint=endpoint_of("GET", response.url),
                )
            self._types = [t for t in body if isinstance(t, Mapping)]
        return self._types

    def resolve_profile(self, cert_type: int | str) -> int:
        """The numeric certificate profile id for an id or a profile name (exact, then any case)."""
        if isinstance(cert_type, int):
            return cert_type
        text = cert_type.strip()
        if text.isdigit():
            return int(text)
        types = self.certificate_types()
        named = [(str(t["name"]), t) for t in types if isinstance(t.get("name"), str)]
        for fold in (False, True):
            want = text.casefold() if fold else text
            found = [t for name, t in named if (name.casefold() if fold else name) == want]
            if len(found) == 1 and isinstance(found[0].get("id"), int):
                return int(found[0]["id"])
            if len(found) > 1:
                raise ScmNotSentError(
                    f"SCM has {len(found)} certificate profiles named {text!r}; use the numeric id"
                )
        names = ", ".join(sorted(repr(t.get("name")) for t in types)) or "none"
        raise ScmNotSentError(f"SCM has no certificate profile named {text!r} (available: {names})")

    def _default_term(self, type_id: int) -> int | None:
        for t in self.certificate_types():
            if t.get("id") == type_id:
                terms = [x for x in t.get("terms") or [] if isinstance(x, int)]
                return terms[0] if terms else None
        return None

    def organization(self, org_id: int) -> Organization:
        """``GET /organization/v1/{id}`` (organization or department; cached for the client's life)."""
        org_id = int(org_id)
        cached = self._organizations.get(org_id)
        if cached is not None:
            return cached
        response = self.get("organization lookup", f"/organization/v1/{org_id}")
        body = _json_any(response)
        if not isinstance(body, Mapping) or not isinstance(body.get("name"), str):
            raise ScmError(
                f"SCM answered the lookup of organization {org_id} without its name "
                f"[GET /organization/v1/{org_id}]",
                status=response.status_code,
                endpoint=endpoint_of("GET", response.url),
            )

        def text(key: str) -> str | None:
            value = body.get(key)
            return value.strip() or None if isinstance(value, str) else None

        found = Organization(
            org_id, str(body["name"]).strip(), text("stateOrProvince"), text("country"), text("city")
        )
        self._organizations[org_id] = found
        return found

    # -- orders ----------------------------------------------------------------------------------
    def enroll(self, request: EnrollRequest) -> str:
        if request.org_id is None:
            raise ScmNotSentError("enroll on the admin API needs org_id (the organization or department id)")
        if request.cert_type is None:
            raise ScmNotSentError(
                "enroll on the admin API needs cert_type (the certificate profile id or name)"
            )
        type_id = self.resolve_profile(request.cert_type)
        term = request.term if request.term is not None else self._default_term(type_id)
        body: dict[str, Any] = {"orgId": request.org_id, "csr": request.csr_pem, "certType": type_id}
        if term is not None:
            body["term"] = term
        sans = unique_names(request.sans)
        if sans:
            body["subjAltNames"] = ",".join(sans)  # a string here; an array is refused with -1002
        comments = tagged(request.comments, request.tag, COMMENTS_LIMIT)
        if comments:
            body["comments"] = comments
        if request.external_requester:
            body["externalRequester"] = request.external_requester
        if request.custom_fields:
            body["customFields"] = [{"name": k, "value": v} for k, v in request.custom_fields.items()]
        response = self._post("enroll", "/ssl/v1/enroll", body)
        return self._new_id("enroll", response)

    def collect(self, order_id: str) -> CollectResult:
        path = f"/ssl/v1/collect/{_id(order_id)}"
        response = self.get(
            "collect", path, params={"format": COLLECT_FORMAT}, accept="*/*", ok=lambda r: True
        )
        return self._transport.collect_result(
            order_id, response, not_ready_status=400, not_ready_codes=NOT_READY_CODES
        )

    def status(self, order_id: str) -> OrderStatus:
        response = self.get("status", f"/ssl/v1/{_id(order_id)}")
        body, raw_status, state = self._transport.order_state(order_id, "status", response)
        serial: str | None = None
        raw_serial = body.get("serialNumber")
        if (
            isinstance(raw_serial, (str, int))
            and not isinstance(raw_serial, bool)
            and str(raw_serial).strip()
        ):
            try:
                serial = normalize_serial(raw_serial)
            except CryptoError:
                log.warning("SCM order %s has an unreadable serialNumber %r", order_id, raw_serial)
        return OrderStatus(
            order_id=str(order_id),
            state=state,
            status=raw_status,
            serial=serial,
            expires=parse_date(body.get("expires")),
            comments=comments if isinstance(comments := body.get("comments"), str) else "",
        )

    def renew(
        self,
        order_id: str,
        *,
        csr_pem: str | None,
        sans: Sequence[str] = (),
        profile_id: int | None = None,
        term: int | None = None,
        custom_fields: Mapping[str, str] | None = None,
        tag: str | None = None,
    ) -> str:
        # renewById takes only csr (and DCV settings); SANs, profile, term, custom fields and
        # comments come from the original (the new order is found by listing what is new, not by
        # its tag)
        body: dict[str, Any] = {} if csr_pem is None else {"csr": csr_pem}
        response = self._order_call("renew", order_id, f"/ssl/v1/renewById/{_id(order_id)}", body)
        return self._new_id("renew", response)

    def replace(
        self,
        order_id: str,
        *,
        csr_pem: str,
        common_name: str,
        sans: Sequence[str],
        reason: str,
        tag: str | None = None,
    ) -> str:
        body: dict[str, Any] = {
            "csr": csr_pem,
            "reason": tagged(reason, tag, _REASON_LIMIT) or _DEFAULT_REPLACE_REASON,
            "commonName": common_name,
            "subjectAlternativeNames": unique_names(sans),  # an array here, unlike enroll
        }
        self._order_call("replace", order_id, f"/ssl/v1/replace/{_id(order_id)}", body)
        return str(order_id)  # SCM keeps the same sslId and re-issues under it

    def revoke(self, order_id: str, *, reason_code: int, reason: str) -> None:
        check_reason_code(reason_code)
        body = {
            "reasonCode": reason_code,
            "reason": (reason or "").strip()[:_REASON_LIMIT] or _DEFAULT_REVOKE_REASON,
        }
        self._order_call("revoke", order_id, f"/ssl/v1/revoke/{_id(order_id)}", body)

    def find_orders(self, *, common_name: str, limit: int = 200) -> list[str]:
        """Order ids whose common name is ``common_name`` (``GET /ssl/v1?commonName=``), in SCM's order."""
        ids: list[str] = []
        position = 0
        while len(ids) < limit:
            size = min(200, limit - len(ids))
            params = {"commonName": common_name, "size": str(size), "position": str(position)}
            response = self.get("list", "/ssl/v1", params=params)
            body = _json_any(response)
            if not isinstance(body, list):
                raise ScmError("SCM answered the certificate list without a JSON list [GET /ssl/v1]")
            for item in body:
                if isinstance(item, Mapping):
                    found = order_id_from(item, ("sslId", "id"))
                    if found:
                        ids.append(found)
            if len(body) < size:
                break
            position += len(body)
        return ids

    # -- helpers ---------------------------------------------------------------------------------
    def get(self, op: str, path: str, **kwargs: Any) -> requests.Response:
        """A read (``GET``, retried on transient failures) through the transport, for callers that
        read more than :class:`~citrix_connector.scm.base.ScmClient` offers (e.g. discovery)."""
        return self._transport.call(op, "GET", path, idempotent=True, **kwargs)

    def _order_call(self, op: str, order_id: str, path: str, body: Any) -> requests.Response:
        """An order call: sent once (never re-sent after SCM may have acted on it); a "not issued"
        refusal made specific (already revoked, already replaced, still pending)."""
        try:
            return self._transport.call(op, "POST", path, idempotent=False, json_body=body)
        except ScmRefusedError as exc:
            raise self._transport.not_issued(
                op, str(order_id), exc, self._state_of, replace_keeps_id=self.capabilities.replace_keeps_id
            ) from None

    def _post(self, op: str, path: str, body: Any) -> requests.Response:
        return self._transport.call(op, "POST", path, idempotent=False, json_body=body)

    def _state_of(self, order_id: str) -> tuple[OrderState, str]:
        found = self.status(order_id)
        return found.state, found.status

    def _new_id(self, op: str, response: requests.Response) -> str:
        return self._transport.new_order_id(op, response, ("sslId", "id"), "an sslId")


def _json_any(response: requests.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


def _id(order_id: str) -> str:
    """The order id as a URL path segment; admin ids are integers."""
    text = str(order_id).strip()
    if not text.isdigit():
        raise ScmNotSentError(f"{order_id!r} is not an admin-API order id (sslId must be a number)")
    return text
