"""A real HTTP forward proxy on loopback (``CONNECT`` tunnels), as a corporate proxy in front of SCM.

It answers ``CONNECT host:port`` with ``200 Connection established`` and then relays bytes both ways,
so TLS runs end to end between the client and the server (the proxy sees only ciphertext). With
``auth=(user, password)`` it demands ``Proxy-Authorization: Basic`` and answers ``407`` with a
``Proxy-Authenticate`` challenge otherwise. Only loopback destinations are allowed (``403`` for any
other). Each CONNECT is recorded in :attr:`ForwardProxy.log` (target, status, proxy user), so tests can
assert which traffic went through it.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import ipaddress
import selectors
import socket
import socketserver
import threading
from dataclasses import dataclass

from .serving import ServingThread

__all__ = ["ForwardProxy", "ProxyRecord"]

_MAX_HEAD = 16 * 1024


@dataclass(frozen=True)
class ProxyRecord:
    """One request the proxy received: ``CONNECT`` target, the status it answered, who asked."""

    method: str
    target: str
    status: int
    user: str | None


def _loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _split_target(target: str) -> tuple[str, int] | None:
    host, sep, port = target.rpartition(":")
    if not sep or not port.isdigit() or not host:
        return None
    return host.strip("[]"), int(port)


class _Handler(socketserver.BaseRequestHandler):
    server: _Server

    def handle(self) -> None:
        conn: socket.socket = self.request
        conn.settimeout(10)
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = conn.recv(4096)
            if not chunk or len(head) > _MAX_HEAD:
                return
            head += chunk
        text, _, early = head.partition(b"\r\n\r\n")
        lines = text.decode("latin-1").split("\r\n")
        method, _, rest = lines[0].partition(" ")
        target = rest.rsplit(" ", 1)[0]
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        proxy = self.server.proxy
        user = proxy.user_of(headers.get("proxy-authorization", ""))
        if method.upper() != "CONNECT":
            self._answer(conn, method, target, user, 405, "Method Not Allowed")
            return
        if proxy.auth is not None and user is None:
            self._answer(
                conn, method, target, None, 407, "Proxy Authentication Required",
                'Proxy-Authenticate: Basic realm="citrixagent sandbox proxy"\r\n',
            )  # fmt: skip
            return
        where = _split_target(target)
        if where is None or not _loopback(where[0]):
            self._answer(conn, method, target, user, 403, "Forbidden")
            return
        try:
            upstream = socket.create_connection(where, timeout=10)
        except OSError:
            self._answer(conn, method, target, user, 502, "Bad Gateway")
            return
        with upstream:
            self._answer(conn, method, target, user, 200, "Connection established")
            if early:
                upstream.sendall(early)
            _relay(conn, upstream)

    def _answer(
        self, conn: socket.socket, method: str, target: str, user: str | None, status: int, reason: str,
        extra: str = "",
    ) -> None:  # fmt: skip
        self.server.proxy.record(ProxyRecord(method.upper(), target, status, user))
        body = b"" if status == 200 else reason.encode("ascii")
        length = "" if status == 200 else f"Content-Length: {len(body)}\r\nConnection: close\r\n"
        with contextlib.suppress(OSError):
            conn.sendall(f"HTTP/1.1 {status} {reason}\r\n{extra}{length}\r\n".encode("latin-1") + body)


def _relay(a: socket.socket, b: socket.socket) -> None:
    """Copy bytes both ways until one side closes (or 30 s pass in silence)."""
    a.settimeout(30)
    b.settimeout(30)
    with selectors.DefaultSelector() as selector:
        selector.register(a, selectors.EVENT_READ, b)
        selector.register(b, selectors.EVENT_READ, a)
        while True:
            events = selector.select(timeout=30)
            if not events:
                return
            for key, _ in events:
                source: socket.socket = key.fileobj  # type: ignore[assignment]
                sink: socket.socket = key.data
                try:
                    data = source.recv(65536)
                    if not data:
                        return
                    sink.sendall(data)
                except OSError:
                    return


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, proxy: ForwardProxy, address: tuple[str, int]) -> None:
        self.proxy = proxy
        super().__init__(address, _Handler)

    def handle_error(self, request: object, client_address: object) -> None:
        return None  # clients dropping tunnels are normal


class ForwardProxy:
    """A CONNECT proxy on ``127.0.0.1``; ``auth`` (user, password) turns on Basic proxy auth."""

    def __init__(
        self, *, auth: tuple[str, str] | None = None, host: str = "127.0.0.1", port: int = 0
    ) -> None:
        self.auth = auth
        self.host = host
        self.port = port
        self._lock = threading.Lock()
        self._log: list[ProxyRecord] = []
        self._serving: ServingThread | None = None

    def user_of(self, header: str) -> str | None:
        """The user a ``Proxy-Authorization`` header authenticates, or None (no auth: the user sent)."""
        scheme, _, value = header.partition(" ")
        if scheme.lower() != "basic":
            return None
        try:
            user, _, password = base64.b64decode(value.strip(), validate=True).decode("utf-8").partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return None
        if self.auth is None or (user, password) == self.auth:
            return user
        return None

    def record(self, entry: ProxyRecord) -> None:
        with self._lock:
            self._log.append(entry)

    @property
    def log(self) -> list[ProxyRecord]:
        with self._lock:
            return list(self._log)

    def clear_log(self) -> None:
        with self._lock:
            self._log.clear()

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT`` (no credentials)."""
        return f"http://{self.host}:{self.port}"

    def url_with(self, user: str, password: str) -> str:
        return f"http://{user}:{password}@{self.host}:{self.port}"

    def start(self) -> ForwardProxy:
        if self._serving is None:
            server = _Server(self, (self.host, self.port))
            self.port = server.server_address[1]
            self._serving = ServingThread(server, f"proxy-{self.port}")
        return self

    def stop(self) -> None:
        if self._serving is not None:
            self._serving.stop()
            self._serving = None

    def __enter__(self) -> ForwardProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
