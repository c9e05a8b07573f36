"""A webhook receiver on loopback HTTPS (the sandbox server machinery): keeps every JSON payload posted
to ``/hooks/<name>``, checks a bearer token like a real incoming-webhook service would, and answers
like Teams/Slack do (200 with a short text). Faults (e.g. 500) come from :meth:`SimServer.add_fault`."""

from __future__ import annotations

import hmac
from typing import Any

from .httpserver import BadJson, ControlRoute, Request, Response, SimServer

__all__ = ["WebhookReceiver"]


class WebhookReceiver(SimServer):
    name = "webhook"
    CONTROL_ROUTES: tuple[ControlRoute, ...] = (("GET", "/payloads", "every payload accepted, oldest first"),)

    def __init__(self, tls_cert_pem: bytes, tls_key_pem: bytes, *, token: str | None = None) -> None:
        super().__init__(tls_cert_pem, tls_key_pem)
        self.token = token
        self._payloads: list[tuple[str, Any]] = []

    def hook_url(self, name: str = "citrixagent") -> str:
        return f"{self.url}/hooks/{name}"

    @property
    def payloads(self) -> list[Any]:
        """Every payload accepted, oldest first."""
        with self.lock:
            return [p for _, p in self._payloads]

    def handle(self, request: Request) -> Response:
        if not request.path.startswith("/hooks/") or request.method != "POST":
            return Response.json(404, {"error": "no such hook"})
        if self.token is not None:
            given = request.header("authorization") or ""
            if not hmac.compare_digest(given.encode(), f"Bearer {self.token}".encode()):
                return Response.json(401, {"error": "invalid or missing bearer token"})
        if not (request.header("content-type") or "").startswith("application/json"):
            return Response.json(415, {"error": "expected application/json"})
        try:
            payload = request.json()
        except BadJson as exc:
            return Response.json(400, {"error": f"invalid JSON: {exc}"})
        if not isinstance(payload, dict) or not isinstance(payload.get("text"), str):
            return Response.json(400, {"error": "expected an object with a text field"})
        self._payloads.append((request.path, payload))
        return Response(200, b"1", {"Content-Type": "text/plain"})

    def handle_control(self, route: str, request: Request) -> Response:
        if route == "/payloads" and request.method == "GET":
            return Response.json(200, [p for _, p in self._payloads])
        return super().handle_control(route, request)
