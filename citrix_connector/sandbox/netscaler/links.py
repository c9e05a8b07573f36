"""CA links between certkeys: ``link``/``unlink`` actions, ``sslcertlink`` and
``sslcertificatechain`` (reference §2.3)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..httpserver import Response
from .errors import Fail
from .model import CertKey, Partition
from .pki import verifies
from .protocol import Ctx, check_fields, listing, req_str

if TYPE_CHECKING:
    from .server import NetScalerSimulator


def certkey_for_ssl_op(part: Partition, body: dict[str, Any]) -> CertKey:
    name = req_str(body, "certkey")
    ck = part.certkeys.get(name)
    if ck is None:
        raise Fail(599, 1540, name)
    return ck


def link_certkey(sim: NetScalerSimulator, part: Partition, body: dict[str, Any]) -> None:
    check_fields(body, {"certkey", "linkcertkeyname"})
    ck = certkey_for_ssl_op(part, body)
    target_name = req_str(body, "linkcertkeyname")
    target = part.certkeys.get(target_name)
    if target is None:
        raise Fail(599, 1540, target_name)
    if target.name == ck.name:
        raise Fail(599, 1543)
    if ck.link and sim.link_when_linked != "replace":
        raise Fail(409, 273, f"linkcertkeyname, {ck.link}")
    if not verifies(target.facts.cert, ck.facts.cert):
        raise Fail(599, 1548)
    ck.link = target.name


def sslcertlink(
    sim: NetScalerSimulator, ctx: Ctx, method: str, name: str | None, action: str | None, body: dict[str, Any]
) -> Response:
    if method != "GET":
        raise Fail(405, 1237)
    items = [
        {"certkeyname": ck.name, "linkcertkeyname": ck.link} for ck in ctx.part.certkeys.values() if ck.link
    ]
    return listing(ctx, "sslcertlink", items)


def sslcertificatechain(
    sim: NetScalerSimulator, ctx: Ctx, method: str, name: str | None, action: str | None, body: dict[str, Any]
) -> Response:
    if method != "GET":
        raise Fail(405, 1237)
    part = ctx.part
    names = [name] if name is not None else list(part.certkeys)
    out: list[dict[str, Any]] = []
    for ck_name in names:
        ck = part.certkeys.get(ck_name)
        if ck is None:
            raise Fail(404, 1540, ck_name)
        chain: list[str] = []
        cursor = ck
        while cursor.link and cursor.link not in chain and cursor.link in part.certkeys:
            chain.append(cursor.link)
            cursor = part.certkeys[cursor.link]
        possible = [
            o.name for o in part.certkeys.values() if o is not ck and verifies(o.facts.cert, ck.facts.cert)
        ]
        out.append(
            {
                "certkeyname": ck.name,
                "chainlinked": chain,
                "chainpossiblelinks": possible,
                "chainissuer": ck.facts.issuer,
                "chaincomplete": 1 if cursor.facts.self_signed else 0,
            }
        )
    return listing(ctx, "sslcertificatechain", out)
