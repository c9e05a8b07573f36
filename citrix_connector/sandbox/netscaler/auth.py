"""Authentication: login sessions, per-request header auth, optional Basic auth, logout, and the
HA Secondary write guard (reference §1)."""

from __future__ import annotations

import base64
import binascii
import json
import secrets
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from ..httpserver import Request, Response
from .errors import Fail
from .model import Session
from .protocol import Ctx, ok, unquote

if TYPE_CHECKING:
    from .server import NetScalerSimulator


def login(sim: NetScalerSimulator, request: Request) -> Response:
    try:
        data = json.loads(request.body.decode("utf-8")) if request.body.strip() else {}
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise Fail(400, 1233) from None
    obj = data.get("login") if isinstance(data, dict) else None
    if not isinstance(obj, dict):
        raise Fail(400, 1095, "username")
    username, password = obj.get("username"), obj.get("password")
    if not username:
        raise Fail(400, 1095, "username")
    if password is None:
        raise Fail(400, 1095, "password")
    user = sim.model.users.get(str(username))
    if user is None or user.password != str(password):
        raise Fail(401, 354)
    timeout = sim.session_timeout
    if obj.get("timeout") not in (None, ""):
        try:
            timeout = int(obj["timeout"])
        except (TypeError, ValueError):
            raise Fail(400, 1097, "timeout") from None
        if timeout < 1:
            raise Fail(400, 1097, "timeout")
    token = "##" + secrets.token_hex(32).upper()
    sim.model.sessions[token] = Session(token, str(username), "default", timeout, sim.clock())
    return Response.json(
        201,
        {"errorcode": 0, "message": "Done", "severity": "NONE", "sessionid": token},
        {"Set-Cookie": f"NITRO_AUTH_TOKEN={token}; path=/nitro/v1; Secure; HttpOnly"},
    )


def authenticate(sim: NetScalerSimulator, request: Request, query: dict[str, str]) -> Ctx:
    def ctx(user: str, session: Session | None, partition: str) -> Ctx:
        return Ctx(request, user, session, sim.model.partitions[partition], query, {})

    user_hdr = request.header("x-nitro-user")
    if user_hdr is not None:
        if not sim.header_auth_allowed:
            raise Fail(401, 352)
        user = sim.model.users.get(user_hdr)
        if user is None or user.password != (request.header("x-nitro-pass") or ""):
            raise Fail(401, 354)
        return ctx(user_hdr, None, "default")
    token = token_of(request)
    if token is not None:
        session = sim.model.sessions.get(token)
        if session is None:
            raise Fail(401, 444)
        now = sim.clock()
        if now - session.last_used > timedelta(seconds=session.timeout):
            del sim.model.sessions[token]
            sim.model.dead_tokens.add(token)
            raise Fail(401, 444)
        session.last_used = now
        if session.partition not in sim.model.partitions:
            session.partition = "default"
        return ctx(session.user, session, session.partition)
    auth = request.header("authorization") or ""
    if auth.lower().startswith("basic "):
        if not sim.basic_auth_allowed:
            raise Fail(401, 1244)
        try:
            user_name, _, pw = base64.b64decode(auth[6:].strip()).decode("utf-8").partition(":")
        except (binascii.Error, UnicodeDecodeError):
            raise Fail(401, 354) from None
        user = sim.model.users.get(user_name)
        if user is None or user.password != pw:
            raise Fail(401, 354)
        return ctx(user_name, None, "default")
    raise Fail(401, 1027)


def secondary_guard(sim: NetScalerSimulator, ctx: Ctx) -> None:
    if sim.model.ha_state != "Secondary":
        return
    if sim.secondary_writes == "reject":
        raise Fail(599, 1028)
    ctx.warn(1028)


def logout(
    sim: NetScalerSimulator, ctx: Ctx, method: str, name: str | None, action: str | None, body: dict[str, Any]
) -> Response:
    if method != "POST":
        raise Fail(405, 1237)
    if ctx.session is not None:
        sim.model.sessions.pop(ctx.session.token, None)
        sim.model.dead_tokens.add(ctx.session.token)
    return ok(ctx)


def token_of(request: Request) -> str | None:
    token = request.cookie("NITRO_AUTH_TOKEN") or request.cookie("sessionid")
    if token:
        return unquote(token)
    quirk = request.header("set-cookie")  # adc-nitro-go sends the token in a request header named Set-Cookie
    if quirk:
        for part in quirk.split(";"):
            key, _, value = part.strip().partition("=")
            if key == "NITRO_AUTH_TOKEN" and value:
                return unquote(value)
    return None
