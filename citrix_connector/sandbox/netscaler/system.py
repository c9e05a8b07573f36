"""System resources: ``nsversion``, HA (``hanode``, ``stat/hanode``, ``hafiles``) and admin partitions
(``nspartition``), reference §2.9, §2.10."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..httpserver import Response
from .errors import Fail
from .protocol import Ctx, check_fields, listing, ok, req_str

if TYPE_CHECKING:
    from .server import NetScalerSimulator


def nsversion(
    sim: NetScalerSimulator, ctx: Ctx, method: str, name: str | None, action: str | None, body: dict[str, Any]
) -> Response:
    if method != "GET":
        raise Fail(405, 1237)
    return ok(
        ctx,
        200,
        {
            "nsversion": {
                "version": f"{sim.version}, Date: Jan 10 2024, 10:11:12   (64-bit)",
                "mode": "1",
            }
        },
    )


def hanode(
    sim: NetScalerSimulator, ctx: Ctx, method: str, name: str | None, action: str | None, body: dict[str, Any]
) -> Response:
    if method != "GET":
        raise Fail(405, 1237, message="Only GET is simulated for hanode")
    local_state = "Primary" if sim.model.ha_state == "standalone" else sim.model.ha_state
    nodes: list[dict[str, Any]] = [
        {
            "id": 0,
            "name": "",
            "ipaddress": sim.primaryip,
            "state": local_state,
            "hastatus": "ENABLED",
            "hasync": "ENABLED",
            "haprop": "ENABLED",
            "masterstatetime": 3600,
            "flags": 0,
        }
    ]
    if sim.model.ha_state != "standalone" and sim.model.peer_address:
        nodes.append(
            {
                "id": 1,
                "name": "",
                "ipaddress": sim.model.peer_address,
                "state": "Secondary" if sim.model.ha_state == "Primary" else "Primary",
                "hastatus": "ENABLED",
                "hasync": "ENABLED",
                "haprop": "ENABLED",
            }
        )
    if name is not None:
        nodes = [n for n in nodes if str(n["id"]) == name]
        if not nodes:
            raise Fail(404, 258, f"id, {name}")
    return listing(ctx, "hanode", nodes)


def stat_hanode(sim: NetScalerSimulator, ctx: Ctx) -> Response:
    if sim.model.ha_state == "standalone":
        info = {"hacurstatus": "NO", "hacurstate": "UP", "hacurmasterstate": "Primary"}
    else:
        info = {"hacurstatus": "YES", "hacurstate": "UP", "hacurmasterstate": sim.model.ha_state}
    failures = sim.ha_pair.sync_failures if sim.ha_pair is not None else 0
    info.update(
        {"haerrsyncfailure": str(failures), "haerrproptimeout": "0", "hatotpktrx": "0", "hatotpkttx": "0"}
    )
    return ok(ctx, 200, {"hanode": info})


def hafiles(
    sim: NetScalerSimulator, ctx: Ctx, method: str, name: str | None, action: str | None, body: dict[str, Any]
) -> Response:
    if method != "POST" or action != "sync":
        raise Fail(400, 1240, action or method)
    check_fields(body, {"mode"})
    mode = body.get("mode", ["all"])
    modes = [str(m) for m in mode] if isinstance(mode, list) else [str(mode)]
    allowed = {"all", "bookmarks", "ssl", "imports", "misc", "all_plus_misc"}
    bad = [m for m in modes if m.lower() not in allowed]
    if bad:
        raise Fail(400, 1097, f"mode, {bad[0]}")
    if sim.ha_pair is not None:
        # answered OK even when the pair's sync is broken: the failure shows in stat/hanode haerrsyncfailure
        sim.ha_pair.sync_files(modes)
    return ok(ctx)


def nspartition(
    sim: NetScalerSimulator, ctx: Ctx, method: str, name: str | None, action: str | None, body: dict[str, Any]
) -> Response:
    if method == "GET":
        visible = list(sim.model.partitions.values()) if ctx.part.name == "default" else [ctx.part]
        rows = []
        for p in visible:
            if p is ctx.part:
                ptype = "Current Partition"
            elif p.name == "default":
                ptype = "Default Partition"
            else:
                ptype = "Admin Partition"
            rows.append(
                {
                    "partitionname": p.name,
                    "partitionid": p.id,
                    "partitiontype": ptype,
                    "maxbandwidth": "10240",
                    "minbandwidth": "10240",
                    "maxconn": "1024",
                    "maxmemlimit": "10",
                }
            )
        if name is not None:
            rows = [r for r in rows if r["partitionname"] == name]
            if not rows:
                raise Fail(404, 2755, name)
        return listing(ctx, "nspartition", rows)
    if method == "POST" and action is not None and action.lower() == "switch":
        check_fields(body, {"partitionname"})
        target = req_str(body, "partitionname")
        if ctx.session is None:
            if sim.switch_without_session == "ignore":
                return ok(ctx)
            raise Fail(599, 257, message="Operation not permitted (partition switch needs a login session)")
        if target not in sim.model.partitions:
            raise Fail(599, 2755, target)
        allowed = sim.model.users[ctx.user].partitions
        if allowed is not None and target != "default" and target not in allowed:
            raise Fail(599, 2138, target)
        ctx.session.partition = target
        return ok(ctx)
    if method == "POST" and action is None:
        raise Fail(599, 257, message="Operation not permitted (partitions are seeded with add_partition)")
    if action is not None:
        raise Fail(400, 1240, action)
    raise Fail(405, 1237)
