"""Progress of long waits (SCM issuing an order), for a person watching a terminal or a scheduler's log.

The waiting code publishes :class:`WaitEvent` objects; whoever shows them subscribes a sink. Nothing
here prints unless the CLI subscribed a :class:`WaitRenderer`, and the renderer writes to stderr only,
so ``--json`` output on stdout stays clean.

- On a terminal (and not ``TERM=dumb``): one live line naming every order being waited for with its
  elapsed time and deadline, redrawn every second and cleared when the last wait ends.
- Elsewhere (cron, Task Scheduler, a pipe): one line when a wait starts, a short "still waiting" line
  every ``interval`` seconds of waiting, and one line when it ends.

``NO_COLOR`` is honoured: the live line then uses no escape sequences (it is cleared with spaces).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Literal, Protocol, TextIO

__all__ = ["WaitEvent", "WaitKind", "WaitRenderer", "publish", "subscribed"]

WaitKind = Literal["start", "poll", "done", "pending", "failed"]


@dataclass(frozen=True)
class WaitEvent:
    """One step of a wait: ``elapsed`` and ``deadline`` are seconds since the wait started."""

    kind: WaitKind
    order_id: str
    elapsed: float
    deadline: float
    detail: str = ""


class Sink(Protocol):
    def __call__(self, event: WaitEvent) -> None: ...


_sinks: list[Sink] = []
_sinks_lock = threading.Lock()


def publish(event: WaitEvent) -> None:
    """Hand ``event`` to every subscribed sink (none: nothing happens)."""
    with _sinks_lock:
        sinks = list(_sinks)
    for sink in sinks:
        sink(event)


@contextmanager
def subscribed(sink: Sink) -> Iterator[Sink]:
    with _sinks_lock:
        _sinks.append(sink)
    try:
        yield sink
    finally:
        with _sinks_lock:
            _sinks.remove(sink)


def _seconds(value: float) -> str:
    value = max(0, int(value))
    return f"{value // 60}m{value % 60:02d}s" if value >= 60 else f"{value}s"


@dataclass
class _Wait:
    event: WaitEvent
    seen_at: float  # the renderer's clock when the last event for this order arrived
    last_line_at: float  # the wait's elapsed time when the last line-mode line was written


class WaitRenderer:
    """Shows :class:`WaitEvent` objects on ``stream`` (a live line on a terminal, lines otherwise)."""

    def __init__(
        self,
        stream: TextIO,
        *,
        live: bool | None = None,
        interval: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
        environ: dict[str, str] | None = None,
        refresh: float = 1.0,
    ) -> None:
        env = os.environ if environ is None else environ
        self.stream = stream
        self.live = (
            (_isatty(stream) and env.get("TERM", "") != "dumb") if live is None else live
        )
        self.plain = "NO_COLOR" in env  # no escape sequences
        self.interval = interval
        self.clock = clock
        self.refresh = refresh
        self._waits: dict[str, _Wait] = {}
        self._lock = threading.Lock()
        self._drawn = 0  # characters of the live line now on screen
        self._stop = threading.Event()
        self._ticker: threading.Thread | None = None

    # -- the sink
    def __call__(self, event: WaitEvent) -> None:
        with self._lock:
            if self.live:
                self._live_event(event)
            else:
                self._line_event(event)

    def close(self) -> None:
        self._stop.set()
        if self._ticker is not None:
            self._ticker.join(timeout=2)
        with self._lock:
            self._waits.clear()
            self._clear()

    # -- line mode (no terminal)
    def _line_event(self, event: WaitEvent) -> None:
        oid, deadline = event.order_id, _seconds(event.deadline)
        if event.kind == "start":
            self._waits[oid] = _Wait(event, self.clock(), event.elapsed)
            self._write(f"waiting for SCM to issue order {oid} (gives up after {deadline})\n")
            return
        wait = self._waits.get(oid)
        if event.kind == "poll":
            if wait is None:
                self._waits[oid] = wait = _Wait(event, self.clock(), event.elapsed)
            if event.elapsed - wait.last_line_at >= self.interval:
                wait.last_line_at = event.elapsed
                detail = f": {event.detail}" if event.detail else ""
                self._write(
                    f"still waiting for order {oid}: {_seconds(event.elapsed)} of {deadline}{detail}\n"
                )
            return
        self._waits.pop(oid, None)
        self._write(f"{_ending(event)}\n")

    # -- live mode (a terminal)
    def _live_event(self, event: WaitEvent) -> None:
        if event.kind in ("start", "poll"):
            self._waits[event.order_id] = _Wait(event, self.clock(), event.elapsed)
            if self._ticker is None:
                self._ticker = threading.Thread(target=self._tick, name="progress", daemon=True)
                self._ticker.start()
            self._draw()
            return
        self._waits.pop(event.order_id, None)
        self._clear()
        if event.kind != "done":  # a wait that did not end in a certificate leaves a line behind
            self._write(f"{_ending(event)}\n")
        self._draw()

    def _tick(self) -> None:
        while not self._stop.wait(self.refresh):
            with self._lock:
                if self._waits:
                    self._draw()

    def _draw(self) -> None:
        if not self._waits:
            self._clear()
            return
        now = self.clock()
        parts = []
        for oid, wait in self._waits.items():
            elapsed = wait.event.elapsed + (now - wait.seen_at)
            parts.append(f"order {oid} {_seconds(elapsed)}/{_seconds(wait.event.deadline)}")
        text = "waiting for SCM: " + ", ".join(parts)
        self._clear()
        self._write(text)
        self._drawn = len(text)

    def _clear(self) -> None:
        if not self._drawn:
            return
        self._write("\r" + " " * self._drawn + "\r" if self.plain else "\r\x1b[K")
        self._drawn = 0

    def _write(self, text: str) -> None:
        try:
            self.stream.write(text)
            self.stream.flush()
        except (OSError, ValueError):  # a closed or broken stderr must not stop the work
            pass


def _ending(event: WaitEvent) -> str:
    oid, elapsed = event.order_id, _seconds(event.elapsed)
    if event.kind == "done":
        return f"order {oid} issued after {elapsed}"
    if event.kind == "pending":
        return f"order {oid} still not issued after {elapsed}; the order is kept and the next run resumes it"
    detail = f": {event.detail}" if event.detail else ""
    return f"stopped waiting for order {oid} after {elapsed}{detail}"


def _isatty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False
