"""A run asked to stop (Ctrl-C, SIGTERM from systemd or Task Scheduler's "End") stops at the next wait.

The CLI's signal handler calls :func:`request_stop`; every wait of the agent's own (SCM issuance polling)
sleeps through :func:`sleep`, which wakes at once and raises :class:`StopRequested`. Remote calls already
under way finish (each has a timeout), every journal write is atomic, so the journal stays consistent
and a pending order is kept for the next run.
"""

from __future__ import annotations

import threading

from .errors import StopRequested

__all__ = ["request_stop", "requested_by", "reset", "sleep", "stop_requested"]

_stop = threading.Event()
_signal: list[int] = []  # the signal that asked, for the exit status (128 + signal)


def request_stop(signum: int | None = None) -> None:
    if signum is not None and not _signal:
        _signal.append(signum)
    _stop.set()


def requested_by() -> int | None:
    """The signal number that asked to stop, if one did."""
    return _signal[0] if _signal else None


def stop_requested() -> bool:
    return _stop.is_set()


def reset() -> None:
    """Forget an earlier request (one process may run the CLI several times, as the tests do)."""
    _stop.clear()
    _signal.clear()


def sleep(seconds: float) -> None:
    """``time.sleep`` that a stop request cuts short with :class:`StopRequested`."""
    if _stop.wait(max(0.0, seconds)):
        raise StopRequested("stopped on request while waiting; the order is kept and the next run resumes it")
