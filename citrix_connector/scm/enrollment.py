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
An order whose answer was lost can therefore not be looked up; each order carries the caller's tag
in its ``comments`` so a person finds it in SCM's UI. Replace answers a *new* certId and leaves the
old one ``Replaced``: a second replace of it is refused with ``-130``, which raises
:class:`~citrix_connector.errors.ScmAlreadyReplacedError`.
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
from ..errors import (
    CryptoError,
    ScmAuthError,
    ScmError,
    ScmNotSentError,
    ScmRefusedError,
    ScmUnsupportedError,
)
from ..http import HttpClient, RetryPolicy
from . import codes
from ._oauth import WELL_KNOWN_TOKEN_URL, OAuthTokens
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

__all__ = [
    "NOT_READY_CODES",
    "EnrollmentScmClient",
    "enrollment_base_url",
    "parse_www_authenticate",
    "token_url_from_authorization_uri",
]

log = logging.getLogger("citrixagent.scm")

#: Download answers HTTP 404 with one of these codes while the certificate is being issued.
NOT_READY_CODES = codes.ENROLLMENT_NOT_READY

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


class _EnrollmentAuth:
    """Bearer tokens of a REST account, with the token server discovered from the first 401's
    ``WWW-Authenticate`` when ``scm.yaml`` names none."""

    def __init__(self, config: ScmConfig, tokens: OAuthTokens) -> None:
        self.config = config
        self.tokens = tokens
        # Without a configured token URL, the first request goes out without a token to learn it.
        self._discovering = config.token_url is None

    def headers(self) -> dict[str, str]:
        if self._discovering:
            # only the first request: a 401 names the token server, the retry carries a token;
            # if no token was needed after all, nothing was lost
            self._discovering = False
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
        self.tokens.invalidate()
        return True

    def failure(self, code: int | None, description: str, status: int, endpoint: str) -> ScmAuthError:
        who = f"the access token of client id {self.config.client_id!r}"
        return auth_failure(who, code, description, status, endpoint)


class EnrollmentScmClient:
    """:class:`~citrix_connector.scm.base.ScmClient` over SCM's REST Enrollment API."""

    api_name = "enrollment"
    capabilities = ScmCapabilities(
        can_list_orders=False,
        renew_needs_profile_id=True,
        replace_keeps_id=False,
        enroll_from_profile=False,
        renew_takes_tag=True,
    )

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
        self.http = HttpClient(
            enrollment_base_url(config.url),
            verify=config.verify_tls,
            timeout=config.timeout,
            retry=retry,
            name="scm",
            sleep=sleep,
        )
        self.tokens = OAuthTokens(
            self.http,
            client_id=config.client_id,
            client_secret=config.client_secret,
            token_url=config.token_url,
            clock=clock,
        )
        self.auth = _EnrollmentAuth(config, self.tokens)
        self._transport = ScmTransport(self.http, self.auth, secrets=[config.client_secret.reveal()])

    def close(self) -> None:
        self._transport.close()

    # -- what this API lacks ---------------------------------------------------------------------
    def resolve_profile(self, cert_type: int | str) -> int:
        if isinstance(cert_type, int) or (isinstance(cert_type, str) and cert_type.strip().isdigit()):
            return int(cert_type)
        raise ScmUnsupportedError(
            f"the SCM REST Enrollment API cannot look up a certificate profile by name ({cert_type!r}); "
            "give the numeric profile_id"
        )

    def organization(self, org_id: int) -> Organization:
        raise ScmUnsupportedError(
            "the SCM REST Enrollment API cannot read organizations; the REST account fixes the "
            "organization of its certificates"
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
        comments = tagged(request.comments, request.tag, COMMENTS_LIMIT)
        if comments:
            body["comments"] = comments
        if request.external_requester:
            body["externalRequester"] = request.external_requester
        response = self._order_call("enroll", None, "POST", "/api/v1/certificates", body)
        return self._new_id("enroll", response)

    def collect(self, order_id: str) -> CollectResult:
        response = self._get(
            "collect", f"/api/v1/certificates/{_id(order_id)}", accept=_PEM_ACCEPT, ok=lambda r: True
        )
        return self._transport.collect_result(
            order_id, response, not_ready_status=404, not_ready_codes=NOT_READY_CODES
        )

    def status(self, order_id: str) -> OrderStatus:
        response = self._get("status", f"/api/v1/certificates/{_id(order_id)}/status")
        _, raw_status, state = self._transport.order_state(order_id, "status", response)
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
        tag: str | None = None,
    ) -> str:
        pid = profile_id if profile_id is not None else self.config.profile_id
        if pid is None:
            raise ScmNotSentError(
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
        comments = tagged(None, tag, COMMENTS_LIMIT)
        if comments:
            body["comments"] = comments
        path = f"/api/v1/certificates/{_id(order_id)}/renew"
        response = self._order_call("renew", order_id, "POST", path, body)
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
        # the API takes no common name (it comes from the CSR) and no reason; the reason goes to comments
        body: dict[str, Any] = {"csr": _csr_b64(csr_pem)}
        names = unique_names(sans)
        if names:
            body["subjAltNames"] = names
        comments = tagged(reason, tag, COMMENTS_LIMIT)
        if comments:
            body["comments"] = comments
        path = f"/api/v1/certificates/{_id(order_id)}/replace"
        response = self._order_call("replace", order_id, "POST", path, body)
        return self._new_id("replace", response)

    def revoke(self, order_id: str, *, reason_code: int, reason: str) -> None:
        check_reason_code(reason_code)
        body = {"message": (reason or "").strip()[:512] or _DEFAULT_REVOKE_MESSAGE, "reasonCode": reason_code}
        # DELETE with a JSON body: requests sends it (some libraries drop DELETE bodies). DELETE is
        # idempotent in HTTP, but a revoke is an order call here: sent once like the others.
        self._order_call("revoke", order_id, "DELETE", f"/api/v1/certificates/{_id(order_id)}", body)

    # -- helpers ---------------------------------------------------------------------------------
    def _get(self, op: str, path: str, **kwargs: Any) -> requests.Response:
        return self._transport.call(op, "GET", path, idempotent=True, **kwargs)

    def _order_call(
        self, op: str, order_id: str | None, method: str, path: str, body: Any
    ) -> requests.Response:
        """An order call: sent once (never re-sent after SCM may have acted on it); a "not issued"
        refusal of ``order_id`` made specific (already revoked, already replaced, still pending)."""
        try:
            return self._transport.call(op, method, path, idempotent=False, json_body=body)
        except ScmRefusedError as exc:
            if order_id is None:
                raise
            raise self._transport.not_issued(
                op, str(order_id), exc, self._state_of, replace_keeps_id=self.capabilities.replace_keeps_id
            ) from None

    def _state_of(self, order_id: str) -> tuple[OrderState, str]:
        found = self.status(order_id)
        return found.state, found.status

    def _new_id(self, op: str, response: requests.Response) -> str:
        return self._transport.new_order_id(op, response, ("certId", "id"), "a certId")


def _csr_b64(csr_pem: str) -> str:
    """Single-line base64 of the DER CSR, no armour (what the Enrollment API wants)."""
    try:
        return csr_to_der_b64(load_csr(csr_pem))
    except CryptoError as exc:
        raise ScmNotSentError(f"cannot send the CSR to SCM: {exc}") from None


def _id(order_id: str) -> str:
    text = str(order_id).strip()
    if not text or not re.fullmatch(r"[A-Za-z0-9._~\-]+", text):
        raise ScmNotSentError(f"{order_id!r} is not a valid SCM certificate id")
    return text
