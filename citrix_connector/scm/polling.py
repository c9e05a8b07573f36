"""Wait for an SCM order to be issued: collect with a deadline, check the status now and then.

Time is injected (``clock``/``sleep``) so tests never really wait.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from cryptography import x509

from .. import stopping
from ..config import PollSettings
from ..errors import CitrixAgentError, PendingError, ScmDeclinedError
from ..progress import WaitEvent, WaitKind, publish
from .base import CollectResult, ScmClient

__all__ = ["wait_for_certificate"]

log = logging.getLogger("citrixagent.scm")

#: SCM status strings after which polling can never succeed.
_FATAL_STATUSES = frozenset({"declined", "rejected", "revoked", "invalid"})


def wait_for_certificate(
    client: ScmClient,
    order_id: str,
    poll: PollSettings,
    *,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = stopping.sleep,
    status_every: int = 3,
    on_wait: Callable[[CollectResult], None] | None = None,
    since_order: float = 0.0,
) -> tuple[x509.Certificate, ...]:
    """Collect ``order_id`` until SCM issues it; return its certificates (leaf and chain).

    Waits ``poll.first_wait`` seconds, then tries :meth:`ScmClient.collect` every ``poll.interval``
    seconds until ``poll.timeout`` seconds after the call started. Every ``status_every`` not-ready
    answers (0 = never) the order status is read: declined, rejected or revoked raises
    :class:`ScmDeclinedError`. At the deadline raises :class:`PendingError` (the order id stays
    valid; a later run resumes). Errors from the client propagate unchanged.

    ``since_order``: seconds since the order was placed, counted against the first wait (a fleet
    collects its orders one after the other, long after placing them: each must not wait again).
    """
    start = clock()
    deadline = start + poll.timeout

    def event(kind: WaitKind, detail: str = "") -> None:
        publish(WaitEvent(kind, order_id, clock() - start, poll.timeout, detail))

    event("start")
    try:
        first_wait = min(poll.first_wait, max(0.0, poll.first_wait - since_order))
        certificates = _poll(
            client, order_id, poll, clock, sleep, status_every, on_wait, start, deadline, first_wait
        )
    except PendingError:
        event("pending")
        raise
    except CitrixAgentError as exc:
        event("failed", str(exc))
        raise
    event("done")
    return certificates


def _poll(
    client: ScmClient,
    order_id: str,
    poll: PollSettings,
    clock: Callable[[], float],
    sleep: Callable[[float], None],
    status_every: int,
    on_wait: Callable[[CollectResult], None] | None,
    start: float,
    deadline: float,
    first_wait: float,
) -> tuple[x509.Certificate, ...]:
    first = min(first_wait, max(0.0, deadline - clock()))
    if first > 0:
        log.info("waiting %.0fs before collecting certificate %s", first, order_id)
        sleep(first)
    polls = 0
    last_answer: str | None = None  # identical answers in a row are logged once
    while True:
        result = client.collect(order_id)
        elapsed = clock() - start
        if result.ready:
            log.info(
                "certificate %s collected after %d not-ready answer(s), %.0fs",
                order_id,
                polls,
                elapsed,
            )
            return result.certificates
        polls += 1
        answer = _describe(result)
        if answer != last_answer:
            log.info(
                "certificate %s not issued yet (%s); %.0fs of %gs, asking again every %gs",
                order_id,
                answer,
                elapsed,
                poll.timeout,
                poll.interval,
            )
            last_answer = answer
        publish(WaitEvent("poll", order_id, elapsed, poll.timeout, answer))
        if on_wait is not None:
            on_wait(result)
        if status_every > 0 and polls % status_every == 0:
            status = client.status(order_id)
            if status.state in ("declined", "revoked") or status.status.strip().lower() in _FATAL_STATUSES:
                raise ScmDeclinedError(
                    f"certificate {order_id} was {status.status or status.state} at SCM; "
                    "it will never be issued (place a new order)",
                    description=status.status,
                )
            log.debug("certificate %s status at SCM: %s", order_id, status.status or status.state)
        remaining = deadline - clock()
        if remaining <= 0:
            raise PendingError(
                f"certificate {order_id} still pending at SCM after {poll.timeout:g}s "
                f"({answer}); run again to resume",
                order_id=order_id,
            )
        sleep(min(poll.interval, remaining))


def _describe(result: CollectResult) -> str:
    description = result.description or "not ready"
    if result.code is None:
        return description
    return f"code {result.code}: {description}"
