"""``nsconfig``: the dirty flag and ``save`` (reference §2.8)."""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Any

from ..httpserver import Response
from .errors import Fail
from .pki import ctime
from .protocol import Ctx, check_fields, flag, ok

if TYPE_CHECKING:
    from .server import NetScalerSimulator


def nsconfig(
    sim: NetScalerSimulator, ctx: Ctx, method: str, name: str | None, action: str | None, body: dict[str, Any]
) -> Response:
    part = ctx.part
    if method == "GET":
        info = {
            "ipaddress": sim.primaryip,
            "netmask": "255.255.255.0",
            "primaryip": sim.primaryip,
            "systemtype": "Stand-alone" if sim.model.ha_state == "standalone" else "HA",
            "configchanged": part.configchanged,
            "lastconfigchangedtime": ctime(part.lastconfigchangedtime),
            "lastconfigsavetime": ctime(part.lastconfigsavetime),
            "currentsytemtime": ctime(sim.clock()),
            "timezone": "CoordinatedUniversalTime",
            "nsvlan": "0",
        }
        return ok(ctx, 200, {"nsconfig": info})
    if method == "POST" and action == "save":
        check_fields(body, {"all"})
        save_all = flag(body, "all")
        if save_all and part.name != "default":
            raise Fail(599, 2772)
        if sim.save_in_progress_times > 0:
            sim.save_in_progress_times -= 1
            raise Fail(599, 293)
        for target in sim.model.partitions.values() if save_all else [part]:
            target.configchanged = False
            target.lastconfigsavetime = sim.clock()
            target.saved = {
                "certkeys": copy.deepcopy(target.certkeys),
                "bindings": copy.deepcopy(target.bindings),
                "snienable": {vs.name: vs.snienable for vs in target.vservers.values()},
            }
        return ok(ctx)
    if method == "POST" and action is not None:
        raise Fail(400, 1240, action)
    raise Fail(405, 1237)
