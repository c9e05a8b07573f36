"""What the notifier remembers between runs: ``<state dir>/notify.json``.

Streak counters and the last run of each profile (``status --format nagios`` reads them too), and per
channel what it has been told, so a condition is sent once, and a channel that failed hears it on the
next run. The file holds no order ids and no secrets: an unreadable one is logged and started over
(the worst case is a repeated message), never a reason to fail a run.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..state import atomic_write_text
from ..state_codec import plain
from .conditions import Delivered, Streaks

__all__ = ["ChannelMemory", "LastRun", "NotifyMemory", "load_memory", "memory_path", "save_memory"]

log = logging.getLogger("citrixagent.notify")

MEMORY_FILE = "notify.json"
MEMORY_VERSION = 1
INFO_QUEUE_LIMIT = 200


@dataclass
class ChannelMemory:
    delivered: Delivered = field(default_factory=dict)
    queued_info: list[dict[str, Any]] = field(default_factory=list)  # summary items not yet delivered
    last_attempt: str | None = None
    last_success: str | None = None
    last_error: str | None = None


@dataclass
class LastRun:
    at: str
    action: str
    result: str
    message: str = ""


@dataclass
class NotifyMemory:
    version: int = MEMORY_VERSION
    streaks: dict[str, Streaks] = field(default_factory=dict)
    last_runs: dict[str, LastRun] = field(default_factory=dict)
    channels: dict[str, ChannelMemory] = field(default_factory=dict)

    def to_json(self) -> str:
        # without asdict's deep copies, and compact: one entry per profile, rewritten every run
        return json.dumps(plain(self), sort_keys=True, separators=(",", ":"), ensure_ascii=False) + "\n"


def memory_path(state_dir: Path) -> Path:
    return Path(state_dir) / MEMORY_FILE


def _from_data(data: Any) -> NotifyMemory:
    if not isinstance(data, dict) or data.get("version") != MEMORY_VERSION:
        raise ValueError(f"unknown format (version {data.get('version') if isinstance(data, dict) else '?'})")
    memory = NotifyMemory()
    for name, raw in dict(data.get("streaks") or {}).items():
        memory.streaks[str(name)] = Streaks(int(raw["failed"]), int(raw["pending"]), raw.get("since"))
    for name, raw in dict(data.get("last_runs") or {}).items():
        memory.last_runs[str(name)] = LastRun(
            str(raw["at"]), str(raw["action"]), str(raw["result"]), str(raw.get("message", ""))
        )
    for name, raw in dict(data.get("channels") or {}).items():
        memory.channels[str(name)] = ChannelMemory(
            delivered={str(k): dict(v) for k, v in dict(raw.get("delivered") or {}).items()},
            queued_info=[dict(i) for i in list(raw.get("queued_info") or [])],
            last_attempt=raw.get("last_attempt"),
            last_success=raw.get("last_success"),
            last_error=raw.get("last_error"),
        )
    return memory


def load_memory(state_dir: Path) -> NotifyMemory:
    """The remembered state; a fresh one when missing or unreadable (logged)."""
    path = memory_path(state_dir)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return NotifyMemory()
    except (OSError, UnicodeDecodeError) as exc:
        log.warning("cannot read %s (%s): notification memory starts over", path, exc)
        return NotifyMemory()
    try:
        return _from_data(json.loads(text))
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        log.warning("%s is unreadable (%s): notification memory starts over", path, exc)
        return NotifyMemory()


def save_memory(state_dir: Path, memory: NotifyMemory) -> None:
    """Atomic write (temp file + rename); raises OSError for the caller to log."""
    for channel in memory.channels.values():
        del channel.queued_info[: max(0, len(channel.queued_info) - INFO_QUEUE_LIMIT)]
    path = memory_path(state_dir)
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    atomic_write_text(path, memory.to_json())
