"""SCM client for the REST Enrollment API (``/api/v1/certificates``), OAuth client credentials.

This is the API Sectigo's own Citrix connector uses: a REST account (client id + secret) fixes the
organization, profile and term, so enroll sends only the CSR (single-line base64 DER), SANs (a JSON
array), custom fields (a name -> value map), comments and external requester.

Token handling: a configured ``token_url`` is used as is. Without one, the first call goes out
without a token and the ``authorization_uri`` of the 401's ``WWW-Authenticate`` header names the
token server (the vendor says it may differ per customer); without that header, Sectigo's
well-known Keycloak URL is used. Tokens are cached, refreshed shortly before ``expires_in`` runs
out, and fetched anew once when SCM answers 401.

The API has no list, search or profile calls: :meth:`EnrollmentScmClient.find_orders` and
:meth:`EnrollmentScmClient.resolve_profile` raise :class:`~citrix_connector.errors.ScmUnsupportedError`.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit

import requests

from ..config import ScmConfig
from ..crypto import csr_to_der_b64, load_csr, unique_names
from ..errors import CryptoError, ScmAuthError, ScmError, ScmUnsupportedError
from ..http import HttpClient, RetryPolicy
from ._transport import (
    WELL_KNOWN_TOKEN_URL,
    OAuthTokens,
    ScmTransport,
    auth_failure,
    check_reason_code,
)
from .base import CollectResult, EnrollRequest, OrderStatus

__all__ = [
    "NOT_READY_CODES",
    "EnrollmentScmClient",
    "enrollment_base_url",
    "parse_www_authenticate",
    "token_url_from_authorization_uri",
]

log = logging.getLogger("citrixagent.scm")

#: Download answers HTTP 404 with one of these codes while the certificate is being issued.
NOT_READY_CODES = frozenset({-103, -109})

_PEM_ACCEPT = "application/x-pem-file, application/pem-certificate-chain;q=0.9, */*;q=0.5"
_DEFAULT_REVOKE_MESSAGE = "unspecified"


def enrollment_base_url(url: str) -> str:
    """The host part of the API URL: ``url`` with a trailing ``/`` and ``/api/v1`` removed."""
    base = url.rstrip("/")
    if base.lower().endswith("/api/v1"):
        base = base[: -len("/api/v1")]
    return base.rstrip("/")


_AUTH_PARAM = re.compile(r'([A-Za-z0-9_\-]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]*))')


def parse_www_authenticate(value: str) -> dict[str, str]:
    """``key="value"`` and ``key=value`` parameters of a ``WWW-Authenticate`` header (keys lower-cased)."""
    params: dict[str, str] = {}
    for match in _AUTH_PARAM.finditer(value):
        key = match.group(1).lower()
        quoted, bare = match.group(2), match.group(3)
        val = re.sub(r"\\(.)", r"\1", quoted) if quoted is not None else (bare or "")
        params.setdefault(key, val.strip())
    return params


def token_url_from_authorization_uri(uri: str) -> str | None:
    """The token endpoint for an ``authorization_uri``: as given when it is a token endpoint, the
    realm's token endpoint when it names a Keycloak realm or its authorization endpoint; None when
    it is not an ``https`` URL (the client secret is never sent in clear)."""
    parts = urlsplit(uri.strip())
    if parts.scheme.lower() != "https" or not parts.netloc:
        return None
    url = uri.strip().rstrip("/")
    if url.endswith("/protocol/openid-connect/auth"):
        return url[: -len("auth")] + "token"
    if re.search(r"/realms/[^/]+$", parts.path.rstrip("/")):
        return url + "/protocol/openid-connect/token"
    return url


class EnrollmentScmClient(ScmTransport):
    """:class:`~citrix_connector.scm.base.ScmClient` over SCM's REST Enrollment API."""

    api_name = "enrollment"

    def __init__(
        self,
        config: ScmConfig,
        *,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        retry: RetryPolicy | None = None,
    ) -> None:
        if config.api != "enrollment":
            raise ValueError(f"EnrollmentScmClient needs api: enrollment, not {config.api!r}")
        if not config.client_id or config.client_secret is None:
            raise ScmError("api: enrollment needs client_id and client_secret in scm.yaml")
        self.config = config
        http = HttpClient(
            enrollment_base_url(config.url),
            verify=config.verify_tls,
            timeout=config.timeout,
            retry=retry,
            name="scm",
            sleep=sleep,
        )
        tokens = OAuthTokens(
            http,
            client_id=config.client_id,
            client_secret=config.client_secret,
            token_url=config.token_url,
            clock=clock,
        )
        super().__init__(http, tokens=tokens, secrets=[config.client_secret.reveal()])
        self.tokens: OAuthTokens = tokens
        # Without a configured token URL, the first call is sent without a token to learn it.
        self._discovering = config.token_url is None

    # -- authentication --------------------------------------------------------------------------
    def auth_headers(self) -> dict[str, str]:
        if self._discovering:
            return {}
        return {"Authorization": f"Bearer {self.tokens.get()}"}

    def on_unauthorized(self, response: requests.Response) -> bool:
        header = response.headers.get("WWW-Authenticate", "")
        if self.config.token_url is None:
            uri = parse_www_authenticate(header).get("authorization_uri", "") if header else ""
            discovered = token_url_from_authorization_uri(uri) if uri else None
            if uri and discovered is None:
                log.warning("ignoring the token server %r named by SCM: not an https URL", uri)
            if discovered:
                if discovered != self.tokens.token_url:
                    log.info("SCM names its token server: %s", discovered)
                self.tokens.token_url = discovered
            elif self.tokens.token_url is None:
                log.info("SCM named no token server; using %s", WELL_KNOWN_TOKEN_URL)
        was_discovering = self._discovering
        self._discovering = False
        self.tokens.invalidate()
        return True if was_discovering else super().on_unauthorized(response)

    def call(self, op: str, method: str, path: str, **kwargs: Any) -> requests.Response:
        if not self._discovering:
            return super().call(op, method, path, **kwargs)
        # A request without a token gets a 401 naming the token server; the retry carries a token.
        # If no token was needed after all, nothing was lost.
        try:
            return super().call(op, method, path, **kwargs)
        finally:
            self._discovering = False

    def auth_error(
        self, op: str, code: int | None, description: str, status: int, endpoint: str
    ) -> ScmAuthError:
        who = f"the access token of client id {self.config.client_id!r}"
        return auth_failure(who, code, description, status, endpoint)

    # -- what this API lacks ---------------------------------------------------------------------
    def resolve_profile(self, cert_type: int | str) -> int:
        if isinstance(cert_type, int) or (isinstance(cert_type, str) and cert_type.strip().isdigit()):
            return int(cert_type)
        raise ScmUnsupportedError(
            f"the SCM REST Enrollment API cannot look up a certificate profile by name ({cert_type!r}); "
            "give the numeric profile_id"
        )

    def find_orders(self, *, common_name: str, limit: int = 200) -> list[str]:
        raise ScmUnsupportedError(
            "the SCM REST Enrollment API cannot list or search certificates; "
            "order ids are only known from this agent's state"
        )

    # -- orders ----------------------------------------------------------------------------------
    def enroll(self, request: EnrollRequest) -> str:
        body: dict[str, Any] = {"csr": _csr_b64(request.csr_pem)}
        sans = unique_names(request.sans)
        if sans:
            body["subjAltNames"] = sans  # a JSON array here, unlike the admin API
        if request.custom_fields:
            body["customFields"] = dict(request.custom_fields)
        if request.comments:
            body["comments"] = request.comments
        if request.external_requester:
            body["externalRequester"] = request.external_requester
        response = self.call("enroll", "POST", "/api/v1/certificates", json_body=body)
        return self._new_id("enroll", response)

    def collect(self, order_id: str) -> CollectResult:
        response = self.call(
            "collect", "GET", f"/api/v1/certificates/{_id(order_id)}", accept=_PEM_ACCEPT, ok=lambda r: True
        )
        return self.collect_result(
            order_id, response, not_ready_status=404, not_ready_codes=NOT_READY_CODES
        )

    def status(self, order_id: str) -> OrderStatus:
        response = self.call("status", "GET", f"/api/v1/certificates/{_id(order_id)}/status")
        _, raw_status, state = self.order_state(order_id, "status", response)
        return OrderStatus(order_id=str(order_id), state=state, status=raw_status)

    def renew(
        self,
        order_id: str,
        *,
        csr_pem: str | None,
        sans: Sequence[str] = (),
        profile_id: int | None = None,
        term: int | None = None,
        custom_fields: Mapping[str, str] | None = None,
    ) -> str:
        pid = profile_id if profile_id is not None else self.config.profile_id
        if pid is None:
            raise ScmError(
                "renew needs profile_id in scm.yaml or the profile "
                "(the SCM REST Enrollment API requires the certificate profile id to renew)"
            )
        # customFields is required and must hold the profile's mandatory fields ({} when none)
        body: dict[str, Any] = {"profileId": pid, "customFields": dict(custom_fields or {})}
        if csr_pem is not None:
            body["csr"] = _csr_b64(csr_pem)
        names = unique_names(sans)
        if names:
            body["subjAltNames"] = names
        if term is not None:
            body["term"] = term
        response = self.call("renew", "POST", f"/api/v1/certificates/{_id(order_id)}/renew", json_body=body)
        return self._new_id("renew", response)

    def replace(
        self, order_id: str, *, csr_pem: str, common_name: str, sans: Sequence[str], reason: str
    ) -> str:
        # the API takes no common name (it comes from the CSR) and no reason; the reason goes to comments
        body: dict[str, Any] = {"csr": _csr_b64(csr_pem)}
        names = unique_names(sans)
        if names:
            body["subjAltNames"] = names
        if reason and reason.strip():
            body["comments"] = reason.strip()[:1024]
        response = self.call(
            "replace", "POST", f"/api/v1/certificates/{_id(order_id)}/replace", json_body=body
        )
        return self._new_id("replace", response)

    def revoke(self, order_id: str, *, reason_code: int, reason: str) -> None:
        check_reason_code(reason_code)
        body = {"message": (reason or "").strip()[:512] or _DEFAULT_REVOKE_MESSAGE, "reasonCode": reason_code}
        # DELETE with a JSON body: requests sends it (some libraries drop DELETE bodies)
        self.call("revoke", "DELETE", f"/api/v1/certificates/{_id(order_id)}", json_body=body)

    # -- helpers ---------------------------------------------------------------------------------
    def _new_id(self, op: str, response: requests.Response) -> str:
        return self.new_order_id(op, response, ("certId", "id"), "a certId")


def _csr_b64(csr_pem: str) -> str:
    """Single-line base64 of the DER CSR, no armour (what the Enrollment API wants)."""
    try:
        return csr_to_der_b64(load_csr(csr_pem))
    except CryptoError as exc:
        raise ScmError(f"cannot send the CSR to SCM: {exc}") from None


def _id(order_id: str) -> str:
    text = str(order_id).strip()
    if not text or not re.fullmatch(r"[A-Za-z0-9._~\-]+", text):
        raise ScmError(f"{order_id!r} is not a valid SCM certificate id")
    return text
