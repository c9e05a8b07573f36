"""The simulator's ``/_sim/`` control routes (seed, inspect, knobs) for a separate process."""

from __future__ import annotations

import base64
from typing import TYPE_CHECKING, Any

from ..httpserver import Request, Response, SimServer
from .protocol import split_query, unquote

if TYPE_CHECKING:
    from .server import NetScalerSimulator


# attributes of the simulator settable over POST /_sim/knobs
KNOBS = (
    "session_timeout",
    "save_in_progress_times",
    "domain_check",
    "link_break_mode",
    "sni_break_mode",
    "link_when_linked",
    "server_binding_replace",
    "duplicate_binding",
    "legacy_missing_file_codes",
    "systemfile_missing_errorcode",
    "secondary_writes",
    "switch_without_session",
    "basic_auth_allowed",
    "header_auth_allowed",
    "empty_success_bodies",
    "primaryip",
    "version",
)


#: the routes :func:`control` answers (``GET /_sim/`` lists them)
ROUTES: tuple[tuple[str, str, str], ...] = (
    ("GET", "/state", "files, keys, certkeys, links, vservers and bindings (?partition=NAME)"),
    ("GET", "/serving/{vserver}", "the serial a vserver serves (?servername=SNI name)"),
    ("GET", "/writes", "how many writes the appliance took"),
    ("GET", "/gaps", "moments a bound vserver had no valid certificate"),
    ("GET", "/timeline", "every request with the vservers' certificate coverage after it"),
    ("POST", "/vservers", "add a vserver: {name, kind, servicetype, ipv46, port, snienable, partition}"),
    ("POST", "/partitions", "add an admin partition: {name}"),
    ("POST", "/users", "add a NITRO user: {username, password, partitions}"),
    ("POST", "/ha", "set this node's HA state: {state, peer_address}"),
    ("GET", "/ha_pair", "the HA pair: pending commands, syncs, failures"),
    ("POST", "/ha_pair", "HA pair knobs: {file_sync_interval, file_sync_broken, propagation_without_files}"),
    ("POST", "/ha_pair/sync", "an SSL file sync now"),
    ("POST", "/ha_pair/failover", "swap the roles (the VIPs move)"),
    ("POST", "/expire_sessions", "end every NITRO session"),
    ("POST", "/reboot", "reboot: unsaved certkeys, links and bindings are lost (files stay)"),
    ("POST", "/files", "put a file: {path, content_b64, partition}"),
    ("GET", "/knobs", "the simulator's knobs"),
    ("POST", "/knobs", "set knobs (a JSON object of knob: value)"),
)


def control(sim: NetScalerSimulator, route: str, request: Request) -> Response:
    query = split_query(request.raw_query)
    partition = query.get("partition", "default")
    try:
        body: Any = request.json() if request.body else {}
    except ValueError:
        return Response.json(400, {"error": "bad JSON"})
    try:
        if route == "/state" and request.method == "GET":
            return Response.json(200, sim.state(partition))
        if route.startswith("/serving/") and request.method == "GET":
            serial = sim.serving_certificate(
                unquote(route[len("/serving/") :]),
                servername=query.get("servername"),
                partition=partition,
            )
            return Response.json(200, {"serial": serial})
        if route == "/writes" and request.method == "GET":
            return Response.json(200, {"count": sim.count_writes()})
        if route == "/gaps" and request.method == "GET":
            return Response.json(200, [list(g) for g in sim.gaps()])
        if route == "/timeline" and request.method == "GET":
            return Response.json(
                200,
                [
                    {
                        "seq": e.seq,
                        "request": e.request,
                        "status": e.status,
                        "coverage": {f"{p}:{v}": c for (p, v), c in e.coverage.items()},
                    }
                    for e in sim.timeline()
                ],
            )
        if route == "/vservers" and request.method == "POST":
            sim.add_vserver(
                str(body["name"]),
                str(body["kind"]),
                str(body.get("servicetype", "SSL")),
                str(body.get("ipv46", "127.0.0.1")),
                int(body.get("port", 0)),
                bool(body.get("snienable", False)),
                partition=str(body.get("partition", "default")),
            )
            return Response.empty(204)
        if route == "/partitions" and request.method == "POST":
            sim.add_partition(str(body["name"]))
            return Response.empty(204)
        if route == "/users" and request.method == "POST":
            parts = body.get("partitions")
            sim.add_user(str(body["username"]), str(body["password"]), partitions=parts)
            return Response.empty(204)
        if route == "/ha" and request.method == "POST":
            sim.set_ha(str(body.get("state", "Primary")), body.get("peer_address"))
            return Response.empty(204)
        if route.startswith("/ha_pair"):
            return _ha_pair(sim, route, request.method, body)
        if route == "/expire_sessions" and request.method == "POST":
            sim.expire_sessions()
            return Response.empty(204)
        if route == "/reboot" and request.method == "POST":
            sim.reboot()
            return Response.empty(204)
        if route == "/files" and request.method == "POST":
            sim.put_file(
                str(body["path"]),
                base64.b64decode(str(body["content_b64"])),
                partition=str(body.get("partition", "default")),
            )
            return Response.empty(204)
        if route == "/knobs" and request.method == "POST":
            for key, value in body.items():
                if key not in KNOBS:
                    return Response.json(400, {"error": f"unknown knob {key}"})
                setattr(sim, key, value)
            return Response.empty(204)
        if route == "/knobs" and request.method == "GET":
            return Response.json(200, {k: getattr(sim, k) for k in KNOBS})
    except (KeyError, ValueError, TypeError) as exc:
        return Response.json(400, {"error": str(exc)})
    return SimServer.handle_control(sim, route, request)


def _ha_pair(sim: NetScalerSimulator, route: str, method: str, body: Any) -> Response:
    """``GET /_sim/ha_pair`` (state), ``POST /_sim/ha_pair`` (knobs ``file_sync_interval``,
    ``file_sync_broken``, ``propagation_without_files``: ``fail`` | ``wait``),
    ``POST /_sim/ha_pair/sync``, ``POST /_sim/ha_pair/failover``."""
    pair = sim.ha_pair
    if pair is None:
        return Response.json(404, {"error": "this node is not in an HA pair"})
    if route == "/ha_pair" and method == "GET":
        return Response.json(200, pair.describe())
    if route == "/ha_pair" and method == "POST":
        for key, value in body.items():
            if key == "file_sync_interval":
                pair.file_sync_interval = None if value is None else float(value)
            elif key == "file_sync_broken":
                pair.file_sync_broken = bool(value)
            elif key == "propagation_without_files" and value in ("fail", "wait"):
                pair.propagation_without_files = str(value)
            else:
                return Response.json(400, {"error": f"unknown HA pair knob {key}"})
        return Response.empty(204)
    if route == "/ha_pair/sync" and method == "POST":
        return Response.json(200, {"synced": pair.sync_files()})
    if route == "/ha_pair/failover" and method == "POST":
        pair.failover()
        return Response.empty(204)
    return sim.unknown_control_route(route, method)
