"""Virtual servers (read), ``sslvserver`` settings and the one certificate binding table with its
three views (reference §2.6, §2.7)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..httpserver import Response
from .errors import MESSAGES, Fail
from .model import RESOURCE_KIND, Binding, Partition, Vserver, covered
from .protocol import Ctx, check_fields, flag, listing, ok, opt_str, req_str

if TYPE_CHECKING:
    from .server import NetScalerSimulator


def vserver_view(part: Partition, vs: Vserver) -> dict[str, Any]:
    up = not vs.terminates_tls or covered(part, vs)
    curstate = "OUT OF SERVICE" if vs.state != "ENABLED" else ("UP" if up else "DOWN")
    view: dict[str, Any] = {
        "name": vs.name,
        "servicetype": vs.servicetype,
        "ipv46": vs.ipv46,
        "port": vs.port,
        "state": vs.state,
        "curstate": curstate,
        "effectivestate": curstate,
        "status": 1 if curstate == "UP" else 2,
    }
    if vs.terminates_tls and not up:
        view["value"] = "Certkey not bound"
    return view


def vserver(sim: NetScalerSimulator, ctx: Ctx, method: str, name: str | None, resource: str) -> Response:
    if method != "GET":
        raise Fail(405, 1237, message="Only GET is simulated for virtual servers")
    kind = RESOURCE_KIND[resource]
    part = ctx.part
    if name is not None:
        vs = part.vservers.get(name)
        if vs is None or vs.kind != kind:
            raise Fail(404, 258, f"name, {name}")
        return listing(ctx, resource, [vserver_view(part, vs)])
    items = [vserver_view(part, vs) for vs in part.vservers.values() if vs.kind == kind]
    return listing(ctx, resource, items)


def sslvserver_view(vs: Vserver) -> dict[str, Any]:
    view: dict[str, Any] = {
        "vservername": vs.name,
        "snienable": "ENABLED" if vs.snienable else "DISABLED",
        "ssl3": "DISABLED",
        "tls1": "ENABLED",
        "tls11": "ENABLED",
        "tls12": "ENABLED",
        "tls13": "DISABLED",
        "sessreuse": "ENABLED",
        "sesstimeout": 120,
        "clientauth": "DISABLED",
        "sendclosenotify": "YES",
    }
    view.update(vs.ssl_params)
    return view


def sslvserver(
    sim: NetScalerSimulator, ctx: Ctx, method: str, name: str | None, action: str | None, body: dict[str, Any]
) -> Response:
    part = ctx.part
    if method == "GET":
        if name is not None:
            vs = part.vservers.get(name)
            if vs is None or not vs.is_ssl:
                raise Fail(404, 258, f"vservername, {name}")
            return listing(ctx, "sslvserver", [sslvserver_view(vs)])
        return listing(ctx, "sslvserver", [sslvserver_view(vs) for vs in part.vservers.values() if vs.is_ssl])
    if method == "PUT":
        if name is not None and "vservername" not in body:
            body = {**body, "vservername": name}
        allowed_flags = {
            "snienable",
            "ssl3",
            "tls1",
            "tls11",
            "tls12",
            "tls13",
            "sessreuse",
            "clientauth",
        }
        check_fields(body, {"vservername", "sesstimeout", "sendclosenotify", "sslprofile", *allowed_flags})
        vs_name = req_str(body, "vservername")
        vs = part.vservers.get(vs_name)
        if vs is None:
            raise Fail(599, 461, vs_name)
        if not vs.is_ssl:
            raise Fail(599, 1544, vs_name)
        for key in allowed_flags & body.keys():
            value = opt_str(body, key)
            if value is None or value.upper() not in ("ENABLED", "DISABLED"):
                raise Fail(400, 1097, key)
            if key == "snienable":
                vs.snienable = value.upper() == "ENABLED"
            else:
                vs.ssl_params[key] = value.upper()
        for key in ("sesstimeout", "sendclosenotify", "sslprofile"):
            if key in body:
                vs.ssl_params[key] = body[key]
        part.mark_changed(sim.clock())
        return ok(ctx)
    raise Fail(405, 1237)


def binding_view(b: Binding) -> dict[str, Any]:
    view: dict[str, Any] = {
        "vservername": b.vserver,
        "certkeyname": b.certkey,
        "snicert": b.snicert,
        "ca": b.ca,
        "skipcaname": b.skipcaname,
        "cleartextport": 0,
    }
    if b.ocspcheck:
        view["ocspcheck"] = b.ocspcheck
    if b.crlcheck:
        view["crlcheck"] = b.crlcheck
    return view


def certkey_binding_view(b: Binding) -> dict[str, Any]:
    return {
        "certkey": b.certkey,
        "servername": b.vserver,
        "vserver": True,
        "ca": b.ca,
        "data": 0,
        "version": 0,
    }


def bind(
    sim: NetScalerSimulator, part: Partition, body: dict[str, Any], warnings: list[tuple[int, str]]
) -> None:
    check_fields(body, {"vservername", "certkeyname", "snicert", "ca", "ocspcheck", "crlcheck", "skipcaname"})
    vs_name = req_str(body, "vservername")
    ck_name = req_str(body, "certkeyname")
    snicert, ca = flag(body, "snicert"), flag(body, "ca")
    vs = part.vservers.get(vs_name)
    if vs is None:
        raise Fail(599, 461, vs_name)
    if not vs.terminates_tls:
        raise Fail(599, 1544, vs_name)
    ck = part.certkeys.get(ck_name)
    if ck is None:
        raise Fail(599, 1540, ck_name)
    if snicert and ca:
        raise Fail(400, 1092, "snicert, ca")
    ocsp = opt_str(body, "ocspcheck")
    crl = opt_str(body, "crlcheck")
    for key, value in (("ocspcheck", ocsp), ("crlcheck", crl)):
        if value is not None and value.capitalize() not in ("Mandatory", "Optional"):
            raise Fail(400, 1097, key)
        if value is not None and not ca:
            raise Fail(400, 1093, "ca")
    existing = [b for b in part.bindings if b.vserver == vs_name]
    if any(b.certkey == ck_name and b.snicert == snicert and b.ca == ca for b in existing):
        if sim.duplicate_binding == "ignore":
            return
        raise Fail(409, 273, f"certkeyname, {ck_name}")
    new = Binding(
        vs_name,
        ck_name,
        snicert,
        ca,
        ocsp.capitalize() if ocsp else None,
        crl.capitalize() if crl else None,
        flag(body, "skipcaname"),
    )
    if ca:
        part.bindings.append(new)
        return
    if ck.key_path is None:
        raise Fail(599, 1547, ck_name)
    if snicert:
        if not vs.snienable:
            raise Fail(599, 3627, vs_name)
        if not ck.facts.cn:
            raise Fail(599, 3628, ck_name)
        for b in existing:
            other = part.certkeys.get(b.certkey)
            if b.snicert and other and other.facts.cn and other.facts.cn.lower() == ck.facts.cn.lower():
                raise Fail(599, 3629, ck_name)
        part.bindings.append(new)
        return
    current = [b for b in existing if not b.snicert and not b.ca]
    if current:
        if sim.server_binding_replace == "error":
            raise Fail(599, 1546, current[0].certkey)
        # Swap in place: the vserver never goes without a server certificate.
        index = part.bindings.index(current[0])
        part.bindings[index] = new
        if sim.server_binding_replace == "warn":
            warnings.append((1546, f"{MESSAGES[1546]} [{current[0].certkey}]"))
        return
    part.bindings.append(new)


def sslvserver_sslcertkey_binding(
    sim: NetScalerSimulator, ctx: Ctx, method: str, name: str | None, action: str | None, body: dict[str, Any]
) -> Response:
    part = ctx.part
    if method in ("PUT", "POST") and action is None:
        if name is not None and "vservername" not in body:
            body = {**body, "vservername": name}
        bind(sim, part, body, ctx.warnings)
        part.mark_changed(sim.clock())
        return ok(ctx, 201)
    if method == "GET":
        if name is None:
            return listing(ctx, "sslvserver_sslcertkey_binding", [binding_view(b) for b in part.bindings])
        if name not in part.vservers:
            raise Fail(404, 461, name)
        items = [binding_view(b) for b in part.bindings if b.vserver == name]
        return listing(ctx, "sslvserver_sslcertkey_binding", items)
    if method == "DELETE":
        vs_name = name or ctx.args.get("vservername")
        if not vs_name:
            raise Fail(400, 1095, "vservername")
        if vs_name not in part.vservers:
            raise Fail(599, 461, vs_name)
        ck_name = ctx.args.get("certkeyname")
        if not ck_name:
            raise Fail(400, 1095, "certkeyname")
        snicert = ctx.args.get("snicert") == "true"
        ca = ctx.args.get("ca") == "true"
        for b in part.bindings:
            if b.vserver == vs_name and b.certkey == ck_name and b.snicert == snicert and b.ca == ca:
                part.bindings.remove(b)
                part.mark_changed(sim.clock())
                return ok(ctx)
        raise Fail(599, 1542, ck_name)
    if action is not None:
        raise Fail(400, 1240, action)
    raise Fail(405, 1237)


def sslcertkey_sslvserver_binding(
    sim: NetScalerSimulator, ctx: Ctx, method: str, name: str | None, action: str | None, body: dict[str, Any]
) -> Response:
    if method != "GET":
        raise Fail(405, 1237)
    part = ctx.part
    if name is None:
        items = [certkey_binding_view(b) for b in part.bindings]
    else:
        if name not in part.certkeys:
            raise Fail(404, 1540, name)
        items = [certkey_binding_view(b) for b in part.bindings if b.certkey == name]
    return listing(ctx, "sslcertkey_sslvserver_binding", items)


def sslcertkey_binding(
    sim: NetScalerSimulator, ctx: Ctx, method: str, name: str | None, action: str | None, body: dict[str, Any]
) -> Response:
    if method != "GET":
        raise Fail(405, 1237)
    part = ctx.part
    names = [name] if name is not None else list(part.certkeys)
    items: list[dict[str, Any]] = []
    for ck_name in names:
        if ck_name not in part.certkeys:
            raise Fail(404, 1540, ck_name)
        entry: dict[str, Any] = {"certkey": ck_name}
        rows = [certkey_binding_view(b) for b in part.bindings if b.certkey == ck_name]
        if rows:
            entry["sslcertkey_sslvserver_binding"] = rows
        items.append(entry)
    return listing(ctx, "sslcertkey_binding", items)


def sslvserver_binding(
    sim: NetScalerSimulator, ctx: Ctx, method: str, name: str | None, action: str | None, body: dict[str, Any]
) -> Response:
    if method != "GET":
        raise Fail(405, 1237)
    part = ctx.part
    if name is not None:
        vs = part.vservers.get(name)
        if vs is None or not vs.is_ssl:
            raise Fail(404, 461, name)
        names = [name]
    else:
        names = [vs.name for vs in part.vservers.values() if vs.is_ssl]
    items: list[dict[str, Any]] = []
    for vs_name in names:
        entry: dict[str, Any] = {"vservername": vs_name}
        rows = [binding_view(b) for b in part.bindings if b.vserver == vs_name]
        if rows:
            entry["sslvserver_sslcertkey_binding"] = rows
        items.append(entry)
    return listing(ctx, "sslvserver_binding", items)
