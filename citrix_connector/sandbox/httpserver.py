"""A small HTTPS server framework for the simulated SCM and NetScaler.

Each simulator subclasses :class:`SimServer` and implements :meth:`SimServer.handle`. The base class
gives every simulator the same test facilities:

* real TLS on 127.0.0.1 (optionally asking for client certificates),
* a request log (:attr:`SimServer.requests`) for assertions,
* fault injection (:meth:`SimServer.add_fault`): a forced status/body, added latency, a reset
  connection, "the first K calls pass, then N fail"; with ``after_effect`` the request is carried
  out first and only its answer is replaced (a 500/502 or a reset after the order took effect),
* an injectable clock (:attr:`SimServer.clock`),
* a control API over HTTP under ``/_sim/`` so a separate process (``citrixagent sandbox serve``)
  can be driven the same way: ``GET /_sim/requests``, ``POST /_sim/faults``,
  ``DELETE /_sim/faults``, ``DELETE /_sim/requests``; subclasses add their own ``/_sim/`` routes
  in :meth:`SimServer.handle_control`.

Handlers run under one lock per server (:attr:`SimServer.lock`), so simulator state needs no
further locking; injected latency is spent outside the lock.
"""

from __future__ import annotations

import contextlib
import json
import re
import socket
import ssl
import tempfile
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import parse_qs, unquote, urlsplit

from .serving import ServingThread

_S = TypeVar("_S", bound="SimServer")

__all__ = ["Fault", "RecordedRequest", "Request", "Response", "SimServer", "utc_now"]


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


class BadJson(ValueError):
    """The request body is not valid JSON."""


@dataclass
class Request:
    """One HTTP request as a simulator sees it."""

    method: str
    raw_path: str  # as received, still percent-encoded, without the query
    raw_query: str  # as received, still percent-encoded
    headers: dict[str, str]  # lower-case names
    body: bytes
    client_cert_der: bytes | None = None

    @property
    def path(self) -> str:
        """The path percent-decoded once."""
        return unquote(self.raw_path)

    @property
    def query(self) -> dict[str, str]:
        """Query parameters decoded once (first value of each)."""
        return {k: v[0] for k, v in parse_qs(self.raw_query, keep_blank_values=True).items()}

    def header(self, name: str, default: str | None = None) -> str | None:
        return self.headers.get(name.lower(), default)

    def cookie(self, name: str) -> str | None:
        for part in self.headers.get("cookie", "").split(";"):
            key, _, value = part.strip().partition("=")
            if key == name:
                return value
        return None

    def json(self) -> Any:
        """The body as JSON; raises :class:`BadJson` when it is not."""
        try:
            return json.loads(self.body.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise BadJson(str(exc)) from exc


@dataclass
class Response:
    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def json(cls, status: int, obj: Any, headers: Mapping[str, str] | None = None) -> Response:
        hdrs = {"Content-Type": "application/json;charset=UTF-8"}
        hdrs.update(headers or {})
        return cls(status, json.dumps(obj).encode("utf-8"), hdrs)

    @classmethod
    def empty(cls, status: int = 204, headers: Mapping[str, str] | None = None) -> Response:
        return cls(status, b"", dict(headers or {}))


@dataclass
class RecordedRequest:
    """A request the server received, with the status it answered (0 for a reset connection)."""

    method: str
    path: str  # decoded once
    query: str  # raw
    headers: dict[str, str]
    body: bytes
    status: int
    at: float

    def json(self) -> Any:
        return json.loads(self.body.decode("utf-8")) if self.body else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "path": self.path,
            "query": self.query,
            "headers": self.headers,
            "body": self.body.decode("utf-8", "replace"),
            "status": self.status,
            "at": self.at,
        }


@dataclass
class Fault:
    """An injected failure for requests whose method and path match.

    The first ``after`` matching requests pass untouched; the next ``times`` (``None`` = all) get the
    fault: ``latency`` seconds of delay, then either a reset connection (``reset``) or the given
    ``status``/``body``/``headers``. With ``status == 0`` and not ``reset``, only the latency applies
    and the request is then handled normally. With ``after_effect`` the request is handled normally
    first (it takes effect) and then answered with the fault's status/body or a reset instead.
    """

    path: re.Pattern[str]
    method: str | None = None
    status: int = 500
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    times: int | None = 1
    after: int = 0
    latency: float = 0.0
    reset: bool = False
    hold_answer: float = 0.0  # handle the request normally, then hold the answer back this long
    after_effect: bool = False  # handle the request normally, then answer with the fault instead
    seen: int = 0
    hits: int = 0

    def matches(self, method: str, path: str) -> bool:
        if self.method is not None and self.method.upper() != method.upper():
            return False
        return self.path.search(path) is not None

    def take(self) -> bool:
        """Count one matching request; True when this one gets the fault."""
        self.seen += 1
        if self.seen <= self.after:
            return False
        if self.times is not None and self.hits >= self.times:
            return False
        self.hits += 1
        return True


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _HttpServer

    def setup(self) -> None:
        super().setup()
        conn = self.connection
        # Headers and body are separate writes: without TCP_NODELAY, Nagle + delayed ACK stall
        # every response by ~40 ms.
        with contextlib.suppress(OSError):
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if isinstance(conn, ssl.SSLSocket):
            conn.settimeout(30)
            conn.do_handshake()

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - base-class signature
        return None

    def _serve(self) -> None:
        sim = self.server.sim
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        split = urlsplit(self.path)
        cert_der: bytes | None = None
        if isinstance(self.connection, ssl.SSLSocket):
            cert_der = self.connection.getpeercert(binary_form=True)
        request = Request(
            method=self.command,
            raw_path=split.path,
            raw_query=split.query,
            headers={k.lower(): v for k, v in self.headers.items()},
            body=body,
            client_cert_der=cert_der,
        )
        response = sim.dispatch(request)
        if response is None:  # injected connection reset
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)
            return
        self.send_response(response.status)
        for key, value in response.headers.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(response.body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(response.body)

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = do_PATCH = _serve


class _HttpServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, sim: SimServer, address: tuple[str, int], context: ssl.SSLContext) -> None:
        self.sim = sim
        self.context = context
        super().__init__(address, _Handler)

    def get_request(self) -> tuple[socket.socket, Any]:
        sock, addr = super().get_request()
        # The TLS handshake happens in the handler thread (see _Handler.setup), not in accept().
        return self.context.wrap_socket(sock, server_side=True, do_handshake_on_connect=False), addr

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Clients that drop connections (timeouts, TLS verification failures) are normal in tests.
        return None


ControlRoute = tuple[str, str, str]  # (method, path under /_sim, what it does)


class SimServer:
    """Base class of the simulators: an HTTPS server on loopback with faults and a request log.

    Each class lists the ``/_sim`` routes it adds in :attr:`CONTROL_ROUTES`; ``GET /_sim/`` answers
    with all of them (this class's and every subclass's)."""

    name = "sim"
    CONTROL_ROUTES: tuple[ControlRoute, ...] = (
        ("GET", "/", "this list of control routes"),
        ("GET", "/requests", "every request the simulator answered, oldest first"),
        ("DELETE", "/requests", "empty the request log"),
        ("POST", "/faults", "inject a fault: {path, method, status, json|body, headers, times, after, "
         "latency, reset, hold_answer, after_effect}"),
        ("DELETE", "/faults", "remove every injected fault"),
    )

    @classmethod
    def control_routes(cls) -> list[dict[str, str]]:
        """Every ``/_sim`` route of this simulator (base class first), as ``GET /_sim/`` lists them."""
        seen: list[dict[str, str]] = []
        for klass in reversed(cls.__mro__):
            for method, path, what in vars(klass).get("CONTROL_ROUTES", ()):
                entry = {"method": method, "path": f"/_sim{path}", "description": what}
                if entry not in seen:
                    seen.append(entry)
        return seen

    def __init__(
        self,
        tls_cert_pem: bytes,
        tls_key_pem: bytes,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        client_ca_pem: bytes | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self.lock = threading.RLock()
        self.clock: Callable[[], datetime] = utc_now
        self.latency = 0.0
        self._requests: list[RecordedRequest] = []
        self._faults: list[Fault] = []
        self._context = self._make_context(tls_cert_pem, tls_key_pem, client_ca_pem)
        self._serving: ServingThread | None = None

    # -- lifecycle -------------------------------------------------------------------------------
    @staticmethod
    def _make_context(cert_pem: bytes, key_pem: bytes, client_ca_pem: bytes | None) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        # ssl can only load a key pair from files: write them to a private temp dir and remove it.
        with tempfile.TemporaryDirectory(prefix="citrixagent-sim-") as tmp:
            cert_file = Path(tmp) / "server.crt"
            key_file = Path(tmp) / "server.key"
            cert_file.write_bytes(cert_pem)
            key_file.write_bytes(key_pem)
            context.load_cert_chain(str(cert_file), str(key_file))
        if client_ca_pem:
            context.verify_mode = ssl.CERT_OPTIONAL
            context.load_verify_locations(cadata=client_ca_pem.decode("ascii"))
        return context

    def start(self: _S) -> _S:
        if self._serving is not None:
            return self
        server = _HttpServer(self, (self.host, self.port), self._context)
        self.port = server.server_address[1]
        self._serving = ServingThread(server, f"{self.name}-{self.port}")
        return self

    def stop(self) -> None:
        if self._serving is not None:
            self._serving.stop()
            self._serving = None

    def __enter__(self: _S) -> _S:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        return f"https://{self.host}:{self.port}"

    # -- observability ---------------------------------------------------------------------------
    @property
    def requests(self) -> list[RecordedRequest]:
        with self.lock:
            return list(self._requests)

    def clear_requests(self) -> None:
        with self.lock:
            self._requests.clear()

    # -- faults ----------------------------------------------------------------------------------
    def add_fault(
        self,
        path: str,
        *,
        method: str | None = None,
        status: int = 500,
        json_body: Any = None,
        body: bytes | str = b"",
        headers: Mapping[str, str] | None = None,
        times: int | None = 1,
        after: int = 0,
        latency: float = 0.0,
        reset: bool = False,
        hold_answer: float = 0.0,
        after_effect: bool = False,
    ) -> Fault:
        """Inject a fault for requests whose decoded path matches the regex ``path`` (see
        :class:`Fault`; ``after_effect``: carry the request out, then fail its answer)."""
        hdrs = dict(headers or {})
        if json_body is not None:
            data = json.dumps(json_body).encode("utf-8")
            hdrs.setdefault("Content-Type", "application/json;charset=UTF-8")
        else:
            data = body.encode("utf-8") if isinstance(body, str) else body
        fault = Fault(
            path=re.compile(path),
            method=method,
            status=status,
            body=data,
            headers=hdrs,
            times=times,
            after=after,
            latency=latency,
            reset=reset,
            hold_answer=hold_answer,
            after_effect=after_effect,
        )
        with self.lock:
            self._faults.append(fault)
        return fault

    def clear_faults(self) -> None:
        with self.lock:
            self._faults.clear()

    # -- dispatch --------------------------------------------------------------------------------
    def dispatch(self, request: Request) -> Response | None:
        """Apply faults and latency, then call the control API or :meth:`handle`; log the call."""
        path = request.path
        if path == "/_sim" or path.startswith("/_sim/"):
            with self.lock:
                try:
                    return self._control(request)
                except Exception as exc:  # a bad control call answers, it never drops the connection
                    return Response.json(500, {"simulator_error": repr(exc)})
        fault: Fault | None = None
        with self.lock:
            for candidate in self._faults:
                if candidate.matches(request.method, path) and candidate.take():
                    fault = candidate
                    break
        delay = self.latency + (fault.latency if fault else 0.0)
        if delay:
            time.sleep(delay)
        response: Response | None
        with self.lock:
            if fault is not None and fault.after_effect:
                self._handle_safely(request)  # it takes effect; the answer is lost
            if fault is not None and fault.reset:
                response = None
            elif fault is not None and fault.status:
                response = Response(fault.status, fault.body, dict(fault.headers))
            else:
                response = self._handle_safely(request)
            self._requests.append(
                RecordedRequest(
                    method=request.method,
                    path=path,
                    query=request.raw_query,
                    headers=dict(request.headers),
                    body=request.body,
                    status=response.status if response is not None else 0,
                    at=time.time(),
                )
            )
        if fault is not None and fault.hold_answer:
            time.sleep(fault.hold_answer)  # outside the lock: the request already took effect
        return response

    def _handle_safely(self, request: Request) -> Response:
        try:
            return self.handle(request)
        except Exception as exc:  # a simulator bug must show up as a 500, not a hang
            return Response.json(500, {"simulator_error": repr(exc)})

    def _control(self, request: Request) -> Response:
        route = request.path[len("/_sim") :] or "/"
        if route == "/" and request.method == "GET":
            return Response.json(200, {"simulator": self.name, "routes": self.control_routes()})
        if route == "/requests" and request.method == "GET":
            return Response.json(200, [r.to_dict() for r in self._requests])
        if route == "/requests" and request.method == "DELETE":
            self._requests.clear()
            return Response.empty(204)
        if route == "/faults" and request.method == "DELETE":
            self._faults.clear()
            return Response.empty(204)
        if route == "/faults" and request.method == "POST":
            try:
                return self._add_fault_from(request.json())
            except (BadJson, KeyError, TypeError, ValueError, AttributeError) as exc:
                return Response.json(400, {"error": f"bad fault spec: {exc!r}"})
        return self.handle_control(route, request)

    def _add_fault_from(self, spec: Any) -> Response:
        """``POST /_sim/faults``: the JSON spec of :meth:`add_fault`."""
        self.add_fault(
            str(spec["path"]),
            method=spec.get("method"),
            status=int(spec.get("status", 500)),
            json_body=spec.get("json"),
            body=str(spec.get("body", "")),
            headers=spec.get("headers"),
            times=spec.get("times", 1),
            after=int(spec.get("after", 0)),
            latency=float(spec.get("latency", 0.0)),
            reset=bool(spec.get("reset", False)),
            hold_answer=float(spec.get("hold_answer", 0.0)),
            after_effect=bool(spec.get("after_effect", False)),
        )
        return Response.empty(204)

    # -- for subclasses --------------------------------------------------------------------------
    def handle(self, request: Request) -> Response:
        """Answer one API request (called with :attr:`lock` held)."""
        raise NotImplementedError

    def handle_control(self, route: str, request: Request) -> Response:
        """Simulator-specific ``/_sim/<route>`` calls (called with :attr:`lock` held)."""
        return self.unknown_control_route(route, request.method)

    def unknown_control_route(self, route: str, method: str) -> Response:
        """404 naming the route, with the list of the routes there are (``GET /_sim/``)."""
        return Response.json(
            404,
            {
                "error": f"unknown control route {method} /_sim{route} (GET /_sim/ lists them)",
                "routes": self.control_routes(),
            },
        )
