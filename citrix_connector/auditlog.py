"""``--log-format json``: one JSON object per log event, for log shippers, and the audit events.

Every record carries ``time``, ``level``, ``logger``, ``run_id`` and ``message``; audit records (one
per profile at the end of a command, one per notification) add ``event``, ``profile``, ``appliance``,
``action``, ``result``, ``order_id``, ``serials`` and ``remote_code``. Messages are the same as in
the text log (the clients redact what they trace) and then pass the :mod:`~citrix_connector.redaction`
scrubber, which the text log uses too.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from .errors import CitrixAgentError, describe_remote_code

if TYPE_CHECKING:  # the CLI imports this module before any command runs: keep the lifecycle out
    from .lifecycle import Outcome

__all__ = ["AUDIT_FIELDS", "JsonFormatter", "RunFilter", "log_outcomes", "new_run_id"]

AUDIT_FIELDS = (
    "event",
    "command",
    "profile",
    "appliance",
    "action",
    "result",
    "order_id",
    "serials",
    "remote_code",
    "error",
    "exit_code",
    "channel",
)

log = logging.getLogger("citrixagent.audit")


def new_run_id() -> str:
    return uuid.uuid4().hex[:12]


class RunFilter(logging.Filter):
    """Stamps the run id on every record and scrubs known secret values from its message."""

    def __init__(self, run_id: str, scrub: Callable[[str], str]) -> None:
        super().__init__()
        self.run_id = run_id
        self.scrub = scrub

    def filter(self, record: logging.LogRecord) -> bool:
        record.run_id = self.run_id
        message = record.getMessage()
        cleaned = self.scrub(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True


class JsonFormatter(logging.Formatter):
    def __init__(self, scrub: Callable[[str], str]) -> None:
        super().__init__()
        self.scrub = scrub

    def _clean(self, value: Any) -> Any:
        if isinstance(value, str):
            return self.scrub(value)
        if isinstance(value, dict):
            return {str(k): self._clean(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [self._clean(v) for v in value]
        return value

    def format(self, record: logging.LogRecord) -> str:
        obj: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, timezone.utc).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "run_id": getattr(record, "run_id", None),
            "message": self.scrub(record.getMessage()),
        }
        for name in AUDIT_FIELDS:
            if hasattr(record, name):
                obj[name] = self._clean(getattr(record, name))
        exc = record.exc_info[1] if record.exc_info else None
        if record.exc_info and not isinstance(exc, CitrixAgentError):  # tracebacks only for bugs
            obj["exception"] = self.scrub(self.formatException(record.exc_info))
        return json.dumps(obj, ensure_ascii=False, default=str)


def log_outcomes(command: str, outcomes: Sequence[Outcome]) -> None:
    """One audit event per profile: what the command did to it."""
    for o in outcomes:
        error = o.details.get("error") if isinstance(o.details.get("error"), dict) else None
        serials = {
            "issued": o.details.get("issued_serial") or o.serial,
            "installed": o.details.get("installed_serial"),
        }
        log.info(
            "%s: %s %s%s",
            o.profile,
            o.action,
            o.result,
            f" ({o.message})" if o.message else "",
            extra={
                "event": "result",
                "command": command,
                "profile": o.profile,
                "appliance": o.appliance or None,
                "action": o.action,
                "result": o.result,
                "order_id": o.order_id,
                "serials": {k: v for k, v in serials.items() if v},
                "remote_code": describe_remote_code(error) if error else None,
                "error": error,
                "exit_code": o.exit_code,
            },
        )
