"""SCM collections of an appliance's orders, fetched ahead while the appliance installs.

A worker installs its appliance's certificates one after another; each one first needs its order
collected from SCM (a wait for issuance, then a download). Done in line, every profile paid the SCM
round trip before its first NITRO request. Here one helper thread per appliance collects the orders
one after another in the same order, as far ahead as SCM has issued them, so the downloads overlap
the installations; the worker takes each result when it gets there. (After a crash more orders may
be journalled as issued but not installed: the next run installs them, as after any crash.)

The helper only talks to SCM, through the worker's own SCM client (one connection, one OAuth token
per worker, as before; the worker does not use it meanwhile: a group with a multi-appliance
collection, which the worker does in line, collects everything in line), and writes the collected
certificate to the profile's journal (:func:`~.install.collect_journalled`, as in line); the
appliance session stays with the worker. A failed
collection is raised where the worker takes it, so the profile's row is the same as before. It holds
the compute slot like every fleet worker (``cpuslot.py``), giving it up while it waits.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor

from ..config import Profile
from ..cpuslot import computing, waiting
from ..scm import ScmClient
from ..state import ProfileState
from . import install
from .context import Context

__all__ = ["Collections"]


class Collections:
    """The collections of ``profiles`` (single-appliance, each with a deferred collect), in order."""

    def __init__(self, ctx: Context, profiles: Sequence[Profile]) -> None:
        self._ctx = ctx
        self._futures: dict[str, Future[ProfileState]] = {}
        self._pool: ThreadPoolExecutor | None = None
        if len(profiles) < 2:  # nothing to overlap: the worker collects in line
            return
        try:
            client = ctx.scm  # the worker's: it talks to SCM no more until the helper is done
        except Exception:  # no SCM to talk to: each collection in line fails in its own row
            return
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="collect")
        for profile in profiles:
            self._futures[profile.name] = self._pool.submit(self._collect, profile, client)

    def _collect(self, profile: Profile, client: ScmClient) -> ProfileState:
        with computing():
            self._ctx.lend_scm(client)
            return install.collect_journalled(self._ctx, profile)

    def take(self, profile: Profile) -> ProfileState | None:
        """The profile's state with its certificate collected (raising what the collection raised),
        or None when it is collected in line."""
        future = self._futures.pop(profile.name, None)
        if future is None:
            return None
        if future.done():
            return future.result()
        with waiting():  # the slot goes to the others (the helper among them) while this waits
            return future.result()

    def close(self) -> None:
        """Wait for the collection under way; the ones not started are dropped (after an interrupt,
        "stop at once": their orders stay pending in the journal, for the next run)."""
        if self._pool is not None:
            with waiting():
                self._pool.shutdown(wait=True, cancel_futures=True)
