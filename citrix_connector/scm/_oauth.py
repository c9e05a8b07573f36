"""OAuth 2.0 client-credentials tokens for SCM (the admin API's ``auth: oauth`` and the REST
Enrollment API): fetched on demand, cached, refreshed shortly before ``expires_in`` runs out, and
dropped on request (after a 401)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from ..config import Secret
from ..errors import ScmAuthError, ScmNotSentError
from ..http import HttpClient, TransportError
from ._answers import decode_error, json_or_none, scrub

__all__ = ["WELL_KNOWN_TOKEN_URL", "OAuthTokens"]

log = logging.getLogger("citrixagent.scm")

#: The Keycloak token endpoint Sectigo documents for the Admin API and the REST Enrollment API.
WELL_KNOWN_TOKEN_URL = "https://auth.sso.sectigo.com/auth/realms/apiclients/protocol/openid-connect/token"

_TOKEN_MARGIN = 30.0  # seconds before ``expires_in`` runs out that a token is refreshed
_DEFAULT_TOKEN_LIFETIME = 300.0  # Keycloak's default, when the token answer has no usable expires_in


@dataclass
class _Token:
    value: str
    refresh_at: float


class OAuthTokens:
    """Client-credentials tokens for one client id (see the module docstring)."""

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
            # whatever happened to the token request, the call that needed it was not sent
            raise ScmNotSentError(f"cannot get an SCM access token: {exc}", endpoint=endpoint) from None
        body = json_or_none(response)
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
