"""Real TLS on every TLS-terminating vserver's VIP (``ipv46:port``, loopback only).

What a TLS client gets is decided per connection from the appliance's state, as on a real box:

* the certificate: the SNI binding whose certificate's CN or a DNS SAN matches the client's server
  name (SNI enabled on the vserver), otherwise the default (non-SNI) server binding; no certificate
  for the handshake → the handshake fails; a vserver with no server certificate at all, or
  DISABLED, resets the connection;
* the chain: the leaf, then each CA certkey reached by following ``linkcertkeyname`` links (so a missing
  link is a missing intermediate on the wire);
* the protocol versions: ``sslvserver``'s ``tls1``/``tls11``/``tls12``/``tls13`` flags (the lowest to the
  highest enabled version; TLS 1.0/1.1 with OpenSSL security level 0 so they really can be negotiated).

One selector thread per simulator accepts on every VIP socket; each accepted connection gets a short-lived
thread for its handshake and a one-line HTTP answer. VIP sockets are bound (port reserved) when the
vserver is added, listen from :meth:`VipListeners.start` to :meth:`VipListeners.stop`; an HA Secondary
does not serve VIPs (they float to the Primary). SSL contexts are cached by their material.
"""

from __future__ import annotations

import contextlib
import hashlib
import ipaddress
import selectors
import socket
import ssl
import struct
import tempfile
import threading
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

from cryptography.hazmat.primitives import serialization

from .model import CertKey, Partition, Vserver, served_certkey

if TYPE_CHECKING:
    from .server import NetScalerSimulator

_VERSIONS = (
    ("tls1", "TLSv1"),
    ("tls11", "TLSv1_1"),
    ("tls12", "TLSv1_2"),
    ("tls13", "TLSv1_3"),
)
# the appliance's defaults for a new SSL vserver (13.x default profile): TLS 1.0-1.2
DEFAULT_PROTOCOLS = {
    "ssl3": "DISABLED",
    "tls1": "ENABLED",
    "tls11": "ENABLED",
    "tls12": "ENABLED",
    "tls13": "DISABLED",
}

_Key = tuple[str, str]  # (partition, vserver)


def check_loopback(address: str) -> None:
    """Refuse a VIP outside 127.0.0.0/8 and ::1: nothing in the sandbox may send traffic off the host."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        raise ValueError(f"ipv46 {address!r} is not an IP address") from None
    if not ip.is_loopback:
        raise ValueError(
            f"ipv46 {address} is not a loopback address (the sandbox serves VIPs on loopback only)"
        )


def protocol_range(vs: Vserver) -> tuple[str, ...]:
    """The enabled TLS versions of a vserver, lowest first (``ssl.TLSVersion`` member names)."""
    params = {**DEFAULT_PROTOCOLS, **vs.ssl_params}
    return tuple(name for flag, name in _VERSIONS if str(params.get(flag, "DISABLED")).upper() == "ENABLED")


def chain_of(part: Partition, ck: CertKey) -> list[CertKey]:
    """The CA certkeys a client receives after the leaf: the link chain, cycle-safe."""
    out: list[CertKey] = []
    seen = {ck.name}
    cursor = ck
    while cursor.link and cursor.link not in seen and cursor.link in part.certkeys:
        cursor = part.certkeys[cursor.link]
        seen.add(cursor.name)
        out.append(cursor)
    return out


class VipListeners:
    """The VIP sockets of one simulator and the thread that serves them."""

    def __init__(self, sim: NetScalerSimulator) -> None:
        self._sim = sim
        self._sockets: dict[_Key, socket.socket] = {}
        self._listening: set[_Key] = set()
        self._contexts: dict[tuple[object, ...], ssl.SSLContext] = {}
        self._selector: selectors.BaseSelector | None = None
        self._thread: threading.Thread | None = None
        self._wake_r: socket.socket | None = None
        self._wake_w: socket.socket | None = None
        self._running = False
        self.errors: dict[_Key, str] = {}  # VIPs that could not be bound, and why

    # -- sockets ----------------------------------------------------------------------------------
    def reserve(self, part: Partition, vs: Vserver) -> None:
        """Bind the VIP now (port 0 picks a free port and writes it back to the vserver)."""
        key = (part.name, vs.name)
        if key in self._sockets or not vs.terminates_tls or not vs.serves_vip:
            return
        family = socket.AF_INET6 if ":" in vs.ipv46 else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            if vs.port:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((vs.ipv46, vs.port))
        except OSError as exc:
            sock.close()
            self.errors[key] = f"cannot bind {vs.ipv46}:{vs.port}: {exc.strerror or exc}"
            return
        self.errors.pop(key, None)
        vs.port = sock.getsockname()[1]
        self._sockets[key] = sock
        if self._running:
            self._listen(key)

    def release(self, key: _Key) -> None:
        sock = self._sockets.pop(key, None)
        self._listening.discard(key)
        if sock is None:
            return
        if self._selector is not None:
            with contextlib.suppress(KeyError, ValueError):
                self._selector.unregister(sock)
        sock.close()

    def release_all(self) -> None:
        for key in list(self._sockets):
            self.release(key)

    def _listen(self, key: _Key) -> None:
        sock = self._sockets[key]
        if key in self._listening or self._selector is None:
            return
        sock.listen(16)
        sock.setblocking(False)
        self._selector.register(sock, selectors.EVENT_READ, key)
        self._listening.add(key)
        self._wake()

    # -- lifecycle --------------------------------------------------------------------------------
    def start(self) -> None:
        """Listen on every reserved VIP (binding those not reserved yet) and start the accept thread."""
        if self._running:
            return
        self._selector = selectors.DefaultSelector()
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._selector.register(self._wake_r, selectors.EVENT_READ, None)
        self._running = True
        self.refresh()
        self._thread = threading.Thread(
            target=self._loop, name=f"netscaler-vips-{self._sim.port}", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        self._running = False
        self._wake()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        self.release_all()
        for sock in (self._wake_r, self._wake_w):
            if sock is not None:
                sock.close()
        self._wake_r = self._wake_w = None
        if self._selector is not None:
            self._selector.close()
            self._selector = None

    def refresh(self) -> None:
        """Make the sockets match the state: an HA Secondary serves no VIP, everyone else serves all."""
        serves = self._sim.model.ha_state != "Secondary"
        wanted: set[_Key] = set()
        if serves:
            for part in self._sim.model.partitions.values():
                for vs in part.vservers.values():
                    if vs.terminates_tls:
                        wanted.add((part.name, vs.name))
                        self.reserve(part, vs)
        for key in list(self._sockets):
            if key not in wanted:
                self.release(key)
        if self._running:
            for key in list(self._sockets):
                self._listen(key)

    def _wake(self) -> None:
        if self._wake_w is not None:
            with contextlib.suppress(OSError):
                self._wake_w.send(b"x")

    def _loop(self) -> None:
        selector = self._selector
        assert selector is not None
        while self._running:
            try:
                events = selector.select(timeout=1.0)
            except (OSError, ValueError):
                return
            for selkey, _ in events:
                if selkey.data is None:
                    with contextlib.suppress(OSError):
                        self._wake_r.recv(4096)  # type: ignore[union-attr]
                    continue
                try:
                    conn, _addr = selkey.fileobj.accept()  # type: ignore[union-attr]
                except OSError:
                    continue
                threading.Thread(target=self._serve, args=(conn, selkey.data), daemon=True).start()

    # -- one connection ---------------------------------------------------------------------------
    def _serve(self, conn: socket.socket, key: _Key) -> None:
        conn.setblocking(True)
        conn.settimeout(10)
        with self._sim.lock:
            context = self._front_context(key)
        if context is None:
            _reset(conn)
            return
        try:
            tls = context.wrap_socket(conn, server_side=True)
        except (ssl.SSLError, OSError):
            conn.close()
            return
        with contextlib.suppress(OSError, ssl.SSLError):
            data = b""
            while b"\r\n\r\n" not in data and len(data) < 65536:
                chunk = tls.recv(4096)
                if not chunk:
                    break
                data += chunk
            if data:
                body = f"{key[1]}\n".encode()
                tls.sendall(
                    b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nConnection: close\r\n"
                    + f"Content-Length: {len(body)}\r\n\r\n".encode()
                    + body
                )
            tls.unwrap()
        with contextlib.suppress(OSError):
            tls.close()

    def _front_context(self, key: _Key) -> ssl.SSLContext | None:
        """The context a connection to this VIP starts with (default certificate, SNI callback), or None
        when the vserver must not answer (gone, disabled, no server certificate bound)."""
        part = self._sim.model.partitions.get(key[0])
        vs = part.vservers.get(key[1]) if part else None
        if part is None or vs is None or vs.state != "ENABLED":
            return None
        default = served_certkey(part, vs.name, None)
        has_sni = vs.snienable and any(b.vserver == vs.name and b.snicert and not b.ca for b in part.bindings)
        if default is None and not has_sni:
            return None
        versions = protocol_range(vs)
        if not versions:
            return None
        context = self._context(part, default, versions, front=key)
        if has_sni:
            sim = self._sim

            def choose(
                sslobj: ssl.SSLObject | ssl.SSLSocket, servername: str | None, _ctx: ssl.SSLContext
            ) -> None:
                if not servername:
                    return None
                with sim.lock:
                    part_now = sim.model.partitions.get(key[0])
                    vs_now = part_now.vservers.get(key[1]) if part_now else None
                    if part_now is None or vs_now is None:
                        return None
                    chosen = served_certkey(part_now, vs_now.name, servername)
                    if chosen is not None and chosen is not default:
                        sslobj.context = self._context(part_now, chosen, versions, front=None)
                return None

            context.sni_callback = choose
        return context

    def _context(
        self, part: Partition, ck: CertKey | None, versions: tuple[str, ...], *, front: _Key | None
    ) -> ssl.SSLContext:
        chain = chain_of(part, ck) if ck is not None else []
        material: tuple[object, ...] = (
            front,
            versions,
            ck.facts.sha256 if ck is not None else None,
            tuple(c.facts.sha256 for c in chain),
            hashlib.sha256(ck.key_pem).hexdigest() if ck is not None and ck.key_pem else None,
        )
        cached = self._contexts.get(material)
        if cached is not None:
            return cached
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # TLSVersion.TLSv1/TLSv1_1 are deprecated
            context.minimum_version = getattr(ssl.TLSVersion, versions[0])
            context.maximum_version = getattr(ssl.TLSVersion, versions[-1])
        if versions[0] in ("TLSv1", "TLSv1_1"):
            context.set_ciphers("DEFAULT:@SECLEVEL=0")  # OpenSSL 3 refuses TLS < 1.2 at its default level
        if ck is not None and ck.key_pem:
            pem = b"".join(c.facts.cert.public_bytes(serialization.Encoding.PEM) for c in [ck, *chain])
            _load_chain(context, pem, ck.key_pem)
        if len(self._contexts) > 256:
            self._contexts.clear()
        self._contexts[material] = context
        return context


def _load_chain(context: ssl.SSLContext, chain_pem: bytes, key_pem: bytes) -> None:
    # ssl loads a key pair from files only: a private temp dir, removed at once
    with tempfile.TemporaryDirectory(prefix="citrixagent-vip-") as tmp:
        cert_file, key_file = Path(tmp) / "chain.pem", Path(tmp) / "key.pem"
        cert_file.write_bytes(chain_pem)
        key_file.write_bytes(key_pem)
        context.load_cert_chain(str(cert_file), str(key_file))


def _reset(conn: socket.socket) -> None:
    """Close with RST, as an appliance does for a VIP whose vserver is down."""
    with contextlib.suppress(OSError):
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    conn.close()
