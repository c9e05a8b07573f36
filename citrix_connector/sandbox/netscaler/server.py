"""The simulated NetScaler's server: NITRO routing, request context, Python hooks for tests.

See the package docstring for what it simulates and the choices it makes where the reference is silent.
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
from collections.abc import Callable
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from ..httpserver import ControlRoute, Request, Response, SimServer
from . import auth, certkeys, control, files, keys, links, nsconfig, system, vservers
from .certkeys import certkey_add, certkey_view
from .errors import Fail
from .links import link_certkey
from .model import (
    RESOURCE_KIND,
    VSERVER_KINDS,
    File,
    Model,
    Partition,
    TimelineEntry,
    User,
    Vserver,
    covered,
    norm_path,
    serving,
)
from .protocol import BOOL_ARGS, Ctx, is_write, pairs, raw_query, split_query, unquote
from .vips import VipListeners, check_loopback
from .vservers import bind

if TYPE_CHECKING:
    from .ha import HaPair

Handler = Callable[["NetScalerSimulator", Ctx, str, "str | None", "str | None", "dict[str, Any]"], Response]

ROUTES: dict[str, Handler] = {
    "logout": auth.logout,
    "nsversion": system.nsversion,
    "nsconfig": nsconfig.nsconfig,
    "systemfile": files.systemfile,
    "sslcertkey": certkeys.sslcertkey,
    "sslcertlink": links.sslcertlink,
    "sslcertificatechain": links.sslcertificatechain,
    "sslrsakey": keys.sslrsakey,
    "sslecdsakey": keys.sslecdsakey,
    "sslcertreq": keys.sslcertreq,
    "hanode": system.hanode,
    "hafiles": system.hafiles,
    "nspartition": system.nspartition,
    "sslvserver": vservers.sslvserver,
    "sslvserver_sslcertkey_binding": vservers.sslvserver_sslcertkey_binding,
    "sslcertkey_sslvserver_binding": vservers.sslcertkey_sslvserver_binding,
    "sslcertkey_binding": vservers.sslcertkey_binding,
    "sslvserver_binding": vservers.sslvserver_binding,
}


# markers of a bulk request's body between parsing and dispatch (not NITRO field names)
_BULK = "__bulk_items__"
_ONERROR = "__bulk_onerror__"


class NetScalerSimulator(SimServer):
    """A NetScaler ADC with a NITRO v1 API, on 127.0.0.1 over HTTPS."""

    name = "netscaler"
    CONTROL_ROUTES: tuple[ControlRoute, ...] = control.ROUTES

    def __init__(
        self,
        tls_cert_pem: bytes,
        tls_key_pem: bytes,
        *,
        username: str = "nsroot",
        password: str = "sandbox-nsroot",
        host: str = "127.0.0.1",
        port: int = 0,
        version: str = "NetScaler NS13.1: Build 50.23.nc",
    ) -> None:
        super().__init__(tls_cert_pem, tls_key_pem, host=host, port=port)
        self.version = version
        self.primaryip = host  # the NSIP the appliance reports (loopback: the sandbox never leaves it)
        # ---- knobs (plain attributes; also settable over POST /_sim/knobs) ----
        self.session_timeout = 1800  # seconds of idle time before a session expires (sliding)
        self.save_in_progress_times = 0  # the next N saves fail with 599/293
        self.domain_check = "overlap"  # update: "overlap" (share one name) | "equal" (same name set)
        self.link_break_mode = "warning"  # update breaking a CA link: "warning" (1587) | "error" (599/1587)
        self.sni_break_mode = "warning"  # update breaking SNI bindings: "warning" | "error" (3637/3638)
        self.link_when_linked = "error"  # link while already linked: "error" (409/273) | "replace"
        self.server_binding_replace = "warn"  # 2nd non-SNI server cert: "warn" (1546) | "silent" | "error"
        self.duplicate_binding = "error"  # identical binding again: "error" (409/273) | "ignore"
        self.legacy_missing_file_codes = False  # missing cert/key file: 1647, or 1631/1632 when True
        self.systemfile_missing_errorcode = 258  # or 3441
        self.secondary_writes = "warn"  # on a Secondary: "warn" (1028, applied) | "reject" (599/1028)
        self.switch_without_session = "reject"  # partition Switch with header auth: "reject" 257 | "ignore"
        self.basic_auth_allowed = False
        self.header_auth_allowed = True  # False: X-NITRO-USER/PASS refused with 401/352 (a session needed)
        self.empty_success_bodies = True  # systemfile add and certkey update answer with an empty body
        # ---- state ----
        self.model = Model(users={username: User(password)})
        self.vips = VipListeners(self)  # real TLS on every SSL vserver's VIP
        self.ha_pair: HaPair | None = None  # set when joined into an HA pair (see .ha)

    # ================================================================================ lifecycle

    def start(self) -> NetScalerSimulator:
        super().start()
        with self.lock:
            self.vips.start()
        return self

    def stop(self) -> None:
        self.vips.stop()
        super().stop()

    def add_user(self, username: str, password: str, *, partitions: list[str] | None = None) -> None:
        with self.lock:
            self.model.users[username] = User(password, set(partitions) if partitions is not None else None)

    def add_partition(self, name: str) -> None:
        with self.lock:
            if name in self.model.partitions:
                raise ValueError(f"partition {name} exists")
            if not re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_\-.]{0,30}", name):
                raise ValueError(f"bad partition name {name!r}")
            self.model.partitions[name] = Partition(
                name, len(self.model.partitions), f"/var/partitions/{name}/ssl"
            )

    def add_vserver(
        self,
        name: str,
        kind: str,
        servicetype: str = "SSL",
        ipv46: str = "127.0.0.1",
        port: int = 0,
        snienable: bool = False,
        *,
        partition: str = "default",
        serve_vip: bool = True,
    ) -> None:
        """Seed a virtual server: ``kind`` is ``lb``, ``cs``, ``vpn`` or ``authentication``.

        The VIP must be a loopback address; a TLS-terminating vserver's VIP is bound at once (``port`` 0:
        a free port, written back to the vserver) and serves real TLS while the simulator runs, unless
        ``serve_vip`` is False (fleet-sized benchmarks: thousands of vservers, no socket each)."""
        if kind not in VSERVER_KINDS:
            raise ValueError(f"kind must be one of {sorted(VSERVER_KINDS)}")
        check_loopback(ipv46)
        with self.lock:
            part = self.model.partition(partition)
            if name in part.vservers:
                raise ValueError(f"vserver {name} exists")
            vs = Vserver(name, kind, servicetype.upper(), ipv46, int(port), snienable, serves_vip=serve_vip)
            part.vservers[name] = vs
            if self.model.ha_state != "Secondary":
                self.vips.reserve(part, vs)
            self.model.record("python:add_vserver", 0)

    def vip(self, vserver: str, *, partition: str = "default") -> tuple[str, int]:
        """``(ipv46, port)`` of a vserver: where its TLS is served."""
        with self.lock:
            vs = self.model.partition(partition).vservers[vserver]
            return vs.ipv46, vs.port

    def set_ha(
        self, state: str = "Primary", peer_address: str | None = None, *, peer: str | None = None
    ) -> None:
        """``Primary`` | ``Secondary`` | ``standalone``; ``peer_address`` (alias ``peer``): the other node's
        NSIP, listed as hanode id 1."""
        if state not in ("Primary", "Secondary", "standalone"):
            raise ValueError("state must be Primary, Secondary or standalone")
        with self.lock:
            self.model.ha_state = state
            self.model.peer_address = (peer_address or peer) if state != "standalone" else None
            self.vips.refresh()

    def expire_sessions(self) -> None:
        """Kill every login session now (the next call with its token gets 401/444)."""
        with self.lock:
            self.model.dead_tokens.update(self.model.sessions)
            self.model.sessions.clear()

    def put_file(self, path: str, data: bytes, *, partition: str = "default") -> None:
        """Place a file on the box (no validation)."""
        with self.lock:
            now = self.clock()
            self.model.partition(partition).files[norm_path(path)] = File(bytes(data), now, now)

    def get_file(self, path: str, *, partition: str = "default") -> bytes | None:
        with self.lock:
            entry = self.model.partition(partition).files.get(norm_path(path))
            return entry.data if entry else None

    def install_certkey(
        self,
        name: str,
        cert_pem: bytes,
        key_pem: bytes | None = None,
        *,
        partition: str = "default",
        link: str | None = None,
    ) -> None:
        """Upload files and add a certkey through the real validation path (ValueError on refusal)."""
        with self.lock:
            part = self.model.partition(partition)
            fields: dict[str, Any] = {"certkey": name, "cert": f"{part.ssl_dir}/{name}.crt"}
            self.put_file(fields["cert"], cert_pem, partition=partition)
            if key_pem is not None:
                fields["key"] = f"{part.ssl_dir}/{name}.key"
                self.put_file(fields["key"], key_pem, partition=partition)
            try:
                certkey_add(self, part, fields)
                if link:
                    link_certkey(self, part, {"certkey": name, "linkcertkeyname": link})
            except Fail as exc:
                raise ValueError(f"{exc.code}: {exc.message}") from None
            self.model.record("python:install_certkey", 0)

    def bind_certkey(
        self,
        vserver: str,
        certkey: str,
        *,
        snicert: bool = False,
        ca: bool = False,
        partition: str = "default",
    ) -> None:
        with self.lock:
            part = self.model.partition(partition)
            try:
                bind(
                    self,
                    part,
                    {"vservername": vserver, "certkeyname": certkey, "snicert": snicert, "ca": ca},
                    [],
                )
            except Fail as exc:
                raise ValueError(f"{exc.code}: {exc.message}") from None
            self.model.record("python:bind_certkey", 0)

    def reboot(self) -> None:
        """Reload the saved configuration: unsaved certkeys/links/bindings are lost; files stay."""
        with self.lock:
            for part in self.model.partitions.values():
                if part.saved is not None:
                    part.certkeys = copy.deepcopy(part.saved["certkeys"])
                    part.bindings = copy.deepcopy(part.saved["bindings"])
                    snienable = part.saved["snienable"]
                    for vs in part.vservers.values():
                        vs.snienable = snienable.get(vs.name, vs.snienable)
                else:
                    part.certkeys, part.bindings = {}, []
                part.configchanged = False
            self.model.sessions.clear()
            self.model.record("python:reboot", 0)

    # ---- inspection ----

    def state(self, partition: str = "default") -> dict[str, Any]:
        """A JSON-able dump of one partition's state."""
        with self.lock:
            part = self.model.partition(partition)
            return {
                "partition": part.name,
                "ssl_dir": part.ssl_dir,
                "files": {
                    path: {
                        "size": len(f.data),
                        "sha256": hashlib.sha256(f.data).hexdigest(),
                        "mtime": f.mtime.isoformat(),
                    }
                    for path, f in sorted(part.files.items())
                },
                "certkeys": {name: certkey_view(ck, self.clock()) for name, ck in part.certkeys.items()},
                "links": {name: ck.link for name, ck in part.certkeys.items() if ck.link},
                "bindings": [asdict(b) for b in part.bindings],
                "vservers": {
                    vs.name: {
                        "kind": vs.kind,
                        "servicetype": vs.servicetype,
                        "ipv46": vs.ipv46,
                        "port": vs.port,
                        "snienable": vs.snienable,
                        "curstate": "UP" if covered(part, vs) or not vs.terminates_tls else "DOWN",
                        "serving": serving(part, vs.name, None),
                    }
                    for vs in part.vservers.values()
                },
                "configchanged": part.configchanged,
                "saved": not part.configchanged,
                "lastconfigsavetime": part.lastconfigsavetime.isoformat()
                if part.lastconfigsavetime
                else None,
                "ha_state": self.model.ha_state,
            }

    def serving_certificate(
        self, vserver: str, *, servername: str | None = None, partition: str = "default"
    ) -> str | None:
        """Serial of the certificate a TLS client would get (SNI ``servername`` optional), or None."""
        with self.lock:
            return serving(self.model.partition(partition), vserver, servername)

    def count_writes(self) -> int:
        """Non-GET NITRO calls received (login, logout and partition switches are not writes)."""
        return sum(1 for r in self.requests if is_write(r.method, r.path, r.query))

    def timeline(self) -> list[TimelineEntry]:
        with self.lock:
            return list(self.model.timeline)

    def gaps(self) -> list[tuple[str, str]]:
        """``(vserver, request)`` for every write after which a vserver that had been serving a
        certificate had none. Vservers outside the default partition are named ``<partition>:<name>``."""
        with self.lock:
            out: list[tuple[str, str]] = []
            ever: set[tuple[str, str]] = set()
            for entry in self.model.timeline:
                for key, covered in entry.coverage.items():
                    if covered:
                        ever.add(key)
                    elif key in ever:
                        out.append((key[1] if key[0] == "default" else f"{key[0]}:{key[1]}", entry.request))
            return out

    # ================================================================================ control API

    def handle_control(self, route: str, request: Request) -> Response:
        return control.control(self, route, request)

    # ================================================================================ dispatch

    def handle(self, request: Request) -> Response:
        if self.ha_pair is not None:
            self.ha_pair.tick()
        routed: list[tuple[Ctx, str]] = []
        try:
            response = self._handle(request, routed)
        except Fail as fail:
            response = Response.json(
                fail.status, {"errorcode": fail.code, "message": fail.message, "severity": "ERROR"}
            )
        if is_write(request.method, request.path, request.raw_query):
            label = f"{request.method} {request.path}" + (
                f"?{request.raw_query}" if request.raw_query else ""
            )
            self.model.record(label, response.status)
            pair = self.ha_pair
            if pair is not None and routed and response.status < 300 and pair.primary is self:
                ctx, resource = routed[0]
                pair.propagate(request, ctx.part.name, resource, label)
        return response

    def apply_propagated(self, request: Request, partition: str, label: str) -> None:
        """Apply a command the HA Primary propagated (lock held; raises :class:`Fail` when it fails)."""
        self._handle(request, [], propagated=partition)
        self.model.record(f"ha:{label}", 200)

    def _handle(
        self, request: Request, routed: list[tuple[Ctx, str]], *, propagated: str | None = None
    ) -> Response:
        segments = request.raw_path.split("/")
        if (
            len(segments) < 5
            or segments[1] != "nitro"
            or segments[2] != "v1"
            or segments[3]
            not in (
                "config",
                "stat",
            )
        ):
            raise Fail(404, 258, request.path)
        if len(segments) > 6:
            raise Fail(404, 258, request.path)
        api = segments[3]
        resource = unquote(segments[4])
        name = unquote(unquote(segments[5])) if len(segments) == 6 and segments[5] else None
        query = split_query(request.raw_query)
        raw = raw_query(request.raw_query)
        method = request.method.upper()
        if method not in ("GET", "POST", "PUT", "DELETE"):
            raise Fail(405, 1237)
        if api == "config" and resource == "login":
            if method != "POST":
                raise Fail(405, 1237)
            return auth.login(self, request)
        if propagated is None:
            ctx = auth.authenticate(self, request, query)
        else:
            ctx = Ctx(request, "ha-propagation", None, self.model.partition(propagated), query, {})
        ctx.raw = raw
        ctx.empty_bodies = bool(self.empty_success_bodies)
        if "args" in query:
            ctx.args = pairs(raw["args"])
            for key in BOOL_ARGS & ctx.args.keys():
                if ctx.args[key] not in ("true", "false"):
                    raise Fail(400, 1097, key)
        if query.get("warning", "").lower() == "yes":
            ctx.show_warnings = True
        body: dict[str, Any] = {}
        if method in ("POST", "PUT"):
            body = self._body(ctx, request, resource)
        action = query.get("action")
        # session state, and the file sync a Secondary may be asked to pull, are not configuration writes
        is_session_op = resource in ("logout", "hafiles") or (resource == "nspartition" and method == "POST")
        if method != "GET" and not is_session_op and propagated is None:
            auth.secondary_guard(self, ctx)
        routed.append((ctx, resource))
        if api == "stat":
            if resource == "hanode" and method == "GET":
                return system.stat_hanode(self, ctx)
            raise Fail(404, 258, resource)
        if resource in RESOURCE_KIND:
            return vservers.vserver(self, ctx, method, name, resource)
        handler = ROUTES.get(resource)
        if handler is None:
            raise Fail(404, 1232, resource)
        if _BULK in body:
            return self._bulk(ctx, handler, method, name, action, body[_BULK], body[_ONERROR])
        return handler(self, ctx, method, name, action, body)

    def _bulk(
        self, ctx: Ctx, handler: Handler, method: str, name: str | None, action: str | None,
        items: list[Any], onerror: str,
    ) -> Response:  # fmt: skip
        """A bulk add: each item as its own add, in order. ``exit`` (the default) stops at the first
        failure, ``continue`` tries every item; any failure answers 207 / 1243 with an envelope per
        item tried, as NetScaler does. Items before a failure stay added."""
        answers: list[dict[str, Any]] = []
        last: Response | None = None
        failed = False
        for item in items:
            try:
                if not isinstance(item, dict):
                    raise Fail(400, 1234, "systemfile")
                last = handler(self, ctx, method, name, action, item)
                answers.append({"errorcode": 0, "message": "Done", "severity": "NONE"})
            except Fail as fail:
                failed = True
                answers.append({"errorcode": fail.code, "message": fail.message, "severity": "ERROR"})
                if onerror == "exit":
                    break
        if failed:
            body = {
                "errorcode": 1243,
                "message": "Bulk operation failed",
                "severity": "ERROR",
                "response": answers,
            }
            return Response.json(207, body)
        assert last is not None
        return last

    def _body(self, ctx: Ctx, request: Request, resource: str) -> dict[str, Any]:
        if not request.body.strip():
            return {}
        ctype = (request.header("content-type") or "").lower()
        if "json" not in ctype:
            raise Fail(400, 1233, message="Invalid JSON input (Content-Type must be application/json)")
        try:
            data = json.loads(request.body.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError):
            raise Fail(400, 1233) from None
        if not isinstance(data, dict):
            raise Fail(400, 1233)
        params = data.get("params")
        if isinstance(params, dict) and str(params.get("warning", "")).upper() == "YES":
            ctx.show_warnings = True
        obj = data.get(resource)
        if obj is None:
            return {}
        if isinstance(obj, list):
            if len(obj) > 1 and resource == "systemfile" and request.method.upper() == "POST":
                onerror = params.get("onerror") if isinstance(params, dict) else None
                onerror = str(onerror or request.header("x-nitro-onerror") or "exit").lower()
                if onerror not in ("exit", "continue"):
                    raise Fail(
                        400,
                        1097,
                        "onerror",
                        message=f"Invalid argument value (onerror {onerror} not simulated)",
                    )
                return {_BULK: obj, _ONERROR: onerror}
            if len(obj) != 1:
                raise Fail(
                    400, 1234, resource, message="Invalid JSON data type (bulk requests are not simulated)"
                )
            obj = obj[0]
        if not isinstance(obj, dict):
            raise Fail(400, 1234, resource)
        return obj
