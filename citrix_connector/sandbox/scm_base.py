"""The part both simulated SCM APIs share as a server: :class:`ScmSimBase` keeps order records and
their issuance (polls/seconds), approval, revocation, the ``revoke_after_issue`` mode, collect's
declined/revoked answers, transient faults and lost answers, and the ``/_sim`` control routes both
simulators have (approve/decline/revoke, config, orders, reset)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import replace
from datetime import datetime
from typing import Any, ClassVar, Generic, Protocol, TypeVar

from cryptography import x509

from .ca import LocalCA
from .httpserver import BadJson, ControlRoute, Fault, Request, Response, SimServer, utc_now
from .scm_common import (
    PENDING_STATES,
    TOKEN_PATH,
    TRANSIENT_TEXT,
    OAuthIssuer,
    fail,
    original_request,
    redact_request,
)

__all__ = ["ScmSimBase", "SimOrder"]


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
    CONTROL_ROUTES: tuple[ControlRoute, ...] = (
        ("POST", "/approve/{id}", "approve an order held for approval"),
        ("POST", "/decline/{id}", "decline a pending order"),
        ("POST", "/revoke/{id}", "revoke an order (as an admin would in the portal)"),
        ("GET", "/config", "the simulator's knobs"),
        ("POST", "/config", "set knobs (a JSON object of knob: value)"),
        ("GET", "/orders", "every order, summarised"),
        ("POST", "/orders/{id}", "configure one order (mode, issue_after_polls, issue_after_seconds)"),
        ("POST", "/reset", "back to the freshly started state"),
    )

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
