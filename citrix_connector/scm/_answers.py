"""Reading SCM's answers: error bodies, order ids, status strings and dates (pure functions)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from datetime import date, datetime
from typing import Any
from urllib.parse import urlsplit

import requests

from .base import OrderState

__all__ = [
    "decode_error",
    "endpoint_of",
    "json_or_none",
    "normalize_state",
    "one_line",
    "order_id_from",
    "parse_date",
    "scrub",
]


def json_or_none(response: requests.Response) -> Any:
    if not response.content:
        return None
    try:
        return json.loads(response.content.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return None


def one_line(text: str, limit: int = 200) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def decode_error(response: requests.Response) -> tuple[int | None, str]:
    """SCM's ``(code, description)`` from an error answer; tolerant of empty, HTML or odd bodies.

    Also understands OAuth error bodies (``error``/``error_description``) for the token server.
    """
    body = json_or_none(response)
    if isinstance(body, Mapping):
        code: int | None = None
        raw_code = body.get("code")
        if isinstance(raw_code, int) and not isinstance(raw_code, bool):
            code = raw_code
        elif isinstance(raw_code, str) and re.fullmatch(r"-?\d+", raw_code.strip()):
            code = int(raw_code.strip())
        parts = [str(body[k]) for k in ("description", "details", "message") if body.get(k)]
        if not parts and body.get("error"):
            parts = [str(body["error"])]
            if body.get("error_description"):
                parts.append(str(body["error_description"]))
            return code, one_line(": ".join(parts))
        return code, one_line("; ".join(dict.fromkeys(parts)))
    text = response.text.strip() if response.content else ""
    if text and not text.startswith("<") and body is None:
        return None, one_line(text)
    return None, response.reason or ""


def endpoint_of(method: str, url: str) -> str:
    """``"POST /api/ssl/v1/enroll"`` -- method and path, no host or query."""
    return f"{method.upper()} {urlsplit(url).path or '/'}"


def scrub(text: str, secrets: Iterable[str]) -> str:
    """``text`` with every secret value replaced by ``***``."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text


def order_id_from(body: Mapping[str, Any], keys: Iterable[str]) -> str | None:
    """The first of ``keys`` holding a non-empty str or int id, as a string."""
    for key in keys:
        value = body.get(key)
        if isinstance(value, bool):
            continue
        if isinstance(value, int) or (isinstance(value, str) and value.strip()):
            return str(value).strip()
    return None


_STATES: dict[str, OrderState] = {
    "issued": "issued",
    "downloaded": "issued",
    "requested": "pending",
    "approved": "pending",
    "saapproved": "pending",
    "applied": "pending",
    "init": "pending",
    "awaitingapproval": "pending",
    "enrolledpendingdownload": "pending",
    "pending": "pending",
    "declined": "declined",
    "rejected": "declined",
    "invalid": "declined",
    "revoked": "revoked",
    "expired": "expired",
    "replaced": "replaced",
}


def normalize_state(status: str) -> OrderState:
    """SCM's status string (any case, spaces/dashes/underscores ignored) -> normalised state."""
    key = re.sub(r"[\s_\-]", "", status).lower()
    return _STATES.get(key, "unknown")


def parse_date(value: object) -> date | None:
    """SCM's default US ``MM/dd/yyyy`` dates, plus ISO forms (``dateFormat=ISO``); None if absent/odd."""
    if not isinstance(value, str) or not value.strip():
        return None
    text = value.strip()
    for fmt in ("%m/%d/%Y", "%Y-%m-%d"):
        try:
            return datetime.strptime(text, fmt).date()
        except ValueError:
            pass
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).date()
    except ValueError:
        return None
