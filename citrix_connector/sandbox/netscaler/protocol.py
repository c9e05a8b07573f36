"""NITRO protocol plumbing shared by every resource: error answers, the request context, query
(`args`/`filter`) parsing, payload field readers and the success/listing envelopes."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from ..httpserver import Request, Response
from .errors import MESSAGES, Fail
from .model import Partition, Session

BOOL_ARGS = frozenset({"snicert", "ca", "deletefromdevice"})


@dataclass
class Ctx:
    """One authenticated NITRO request on its way through a handler."""

    request: Request
    user: str
    session: Session | None
    part: Partition
    query: dict[str, str]
    args: dict[str, str]
    raw: dict[str, str] = field(default_factory=dict)
    warnings: list[tuple[int, str]] = field(default_factory=list)
    show_warnings: bool = False
    empty_bodies: bool = True  # knob empty_success_bodies: some successes answer with no body

    def warn(self, code: int, detail: str | None = None) -> None:
        text = MESSAGES.get(code, "Warning")
        self.warnings.append((code, f"{text} [{detail}]" if detail else text))


def raw_query(raw: str) -> dict[str, str]:
    """Query parameters with their values still percent-encoded (first occurrence wins)."""
    out: dict[str, str] = {}
    for piece in raw.split("&"):
        if not piece:
            continue
        key, _, value = piece.partition("=")
        out.setdefault(unquote(key), value)
    return out


def split_query(raw: str) -> dict[str, str]:
    """Query parameters, each value decoded once."""
    return {k: unquote(v) for k, v in raw_query(raw).items()}


def unquote(text: str) -> str:
    from urllib.parse import unquote

    return unquote(text)


PAIR_SPLIT = re.compile(r",(?=[A-Za-z_][A-Za-z0-9_]*:)")


def pairs(raw_value: str) -> dict[str, str]:
    """``args``/``filter``: ``k1:v1,k2:v2`` from the query value as received (still percent-encoded).

    The appliance decodes the query string once, as any HTTP server does, splits the pairs, then decodes
    each value again: the reference says values must be URL-encoded inside ``args`` (``/`` → ``%2F``). So
    ``args=filelocation:%2Fnsconfig%2Fssl`` written into a URL, and the same text passed through an HTTP
    library's query encoder (``requests``' ``params=``: ``filelocation%3A%252Fnsconfig%252Fssl``), both mean
    ``/nsconfig/ssl``. A ``,`` separates pairs only when a ``name:`` follows, so a comma inside a value
    survives whether it arrives encoded (``%2C``) or not."""
    literal = ":" in raw_value  # separators as written: split first, so an encoded comma stays in its value
    pieces = PAIR_SPLIT.split(raw_value if literal else unquote(raw_value))
    out: dict[str, str] = {}
    for piece in pieces:
        if not piece:
            continue
        key, sep, value = piece.partition(":")
        if not sep:
            raise Fail(400, 1097, unquote(key).strip())
        once = unquote(value) if literal else value  # the HTTP layer's decode
        out[unquote(key).strip()] = unquote(once)  # the appliance's decode of an args value
    return out


def matches(item: dict[str, Any], criteria: dict[str, str]) -> bool:
    for key, wanted in criteria.items():
        if key not in item:
            return False
        value = item[key]
        values = value if isinstance(value, list) else [value]
        texts = [("true" if v else "false") if isinstance(v, bool) else str(v) for v in values]
        if len(wanted) >= 2 and wanted.startswith("/") and wanted.endswith("/"):
            try:
                pattern = re.compile(wanted[1:-1])
            except re.error:
                raise Fail(400, 1097, f"filter, {key}") from None
            if not any(pattern.search(t) for t in texts):
                return False
        elif wanted not in texts:
            return False
    return True


def check_fields(body: dict[str, Any], allowed: set[str]) -> None:
    for key in body:
        if key not in allowed:
            raise Fail(400, 278, key)


def req_str(body: dict[str, Any], key: str) -> str:
    value = body.get(key)
    if value is None or value == "":
        raise Fail(400, 1095, key)
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise Fail(400, 1234, key)
    return str(value)


def opt_str(body: dict[str, Any], key: str) -> str | None:
    value = body.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise Fail(400, 1234, key)
    return str(value)


def flag(body: dict[str, Any], key: str) -> bool:
    value = body.get(key)
    if value is None:
        return False
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false", "yes", "no"):
        return value.lower() in ("true", "yes")
    raise Fail(400, 1097, key)


def int_field(body: dict[str, Any], key: str) -> int | None:
    value = body.get(key)
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise Fail(400, 1234, key)
    if isinstance(value, int):
        return value
    if isinstance(value, str) and re.fullmatch(r"-?\d+", value.strip()):
        return int(value)
    raise Fail(400, 1097, key)


def expiry_fields(body: dict[str, Any]) -> tuple[str | None, int | None]:
    monitor = opt_str(body, "expirymonitor")
    if monitor is not None:
        monitor = monitor.upper()
        if monitor not in ("ENABLED", "DISABLED"):
            raise Fail(400, 1097, "expirymonitor")
    period = int_field(body, "notificationperiod")
    if period is not None and not 10 <= period <= 100:
        raise Fail(400, 1097, "notificationperiod")
    return monitor, period


def ok(ctx: Ctx, status: int = 200, extra: dict[str, Any] | None = None, *, empty: bool = False) -> Response:
    if ctx.warnings:
        code = ctx.warnings[0][0]
        body: dict[str, Any] = {
            "errorcode": code,
            "message": "; ".join(m for _, m in ctx.warnings),
            "severity": "WARNING",
        }
        body.update(extra or {})
        headers: dict[str, str] = {}
        if ctx.show_warnings:
            status = 209
            headers["X-NITRO-WARNING"] = json.dumps(
                [{"errorcode": c, "message": m, "severity": "WARNING"} for c, m in ctx.warnings]
            )
        return Response.json(status, body, headers)
    if empty and ctx.empty_bodies:
        return Response.empty(status)
    body = {"errorcode": 0, "message": "Done", "severity": "NONE"}
    body.update(extra or {})
    return Response.json(status, body)


def listing(ctx: Ctx, resource: str, items: list[dict[str, Any]]) -> Response:
    if "filter" in ctx.query:
        items = [i for i in items if matches(i, pairs(ctx.raw["filter"]))]
    if ctx.query.get("count", "").lower() == "yes":
        return ok(ctx, 200, {resource: [{"__count": len(items)}]})
    if "pagesize" in ctx.query:
        try:
            size = int(ctx.query["pagesize"])
            page = int(ctx.query.get("pageno", "1"))
        except ValueError:
            raise Fail(400, 1097, "pagesize") from None
        if size < 1 or page < 1:
            raise Fail(400, 1097, "pagesize")
        items = items[(page - 1) * size : page * size]
    if "attrs" in ctx.query:
        wanted = [a.strip() for a in ctx.query["attrs"].split(",") if a.strip()]
        items = [{k: i[k] for k in wanted if k in i} for i in items]
    if not items:
        return ok(ctx)
    return ok(ctx, 200, {resource: items})


def is_write(method: str, path: str, raw_query: str) -> bool:
    if method.upper() == "GET" or not path.startswith("/nitro/"):
        return False
    if path.rstrip("/").endswith(("/config/login", "/config/logout")):
        return False
    return not ("/config/nspartition" in path and "action=switch" in raw_query.lower())
