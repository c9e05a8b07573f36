"""One fleet worker computes at a time; the others wait on their sockets without contending.

The fleet pool runs a thread per appliance (up to the cap), because a worker spends most of its time
waiting for NITRO and SCM. The Python work between those waits runs one thread at a time anyway
(the GIL); 50 or 256 runnable threads taking turns at it cost CPU of their own (measured on 2 cores:
~0.3 s of the 1.3 s that ``status`` of 1,000 profiles on 50 appliances spent after loading them).
So a worker holds this slot while it computes and gives it up while it waits: an HTTP exchange, a
sleep, the TLS probes, a key generation (which runs outside the GIL, on another core).

Only the threads of the fleet pool take the slot (:func:`computing`); :func:`waiting` does nothing
in any other thread. Nothing may wait for another worker while holding it: every lock of the package
is held for a few statements only, never across a wait.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["computing", "waiting"]

_slot = threading.Lock()
_here = threading.local()


def _holding() -> bool:
    return bool(getattr(_here, "held", False))


@contextmanager
def computing() -> Iterator[None]:
    """Hold the slot for this worker's work (re-entered in the same thread: nothing more)."""
    if _holding():
        yield
        return
    _slot.acquire()
    _here.held = True
    try:
        yield
    finally:
        _here.held = False
        _slot.release()


@contextmanager
def waiting() -> Iterator[None]:
    """Give the slot up while this thread waits (a no-op outside a :func:`computing` block)."""
    if not _holding():
        yield
        return
    _here.held = False
    _slot.release()
    try:
        yield
    finally:
        _slot.acquire()
        _here.held = True
