"""The decisions and the steps: enroll, collect, renew, replace, revoke, redeploy, status, run.

No Click and no HTTP here: the SCM client and the NetScaler sessions are made by injected factories,
time comes from injected clocks, so tests drive every path against the sandbox without waiting.

* :mod:`.runner`: :class:`Agent`, the commands over profiles (pool, appliance sessions, save once);
* :mod:`.decide`: what ``run`` does for a profile now (pure);
* :mod:`.ordering`: placing an order with a write-ahead intent, and recovering an interrupted one;
* :mod:`.install`: collecting an issued certificate and installing it;
* :mod:`.status`: ``status`` and ``revoke``;
* :mod:`.plan`: the dry-run plan of an order;
* :mod:`.outcome`: what happened, and the public :class:`Outcome` row built once from it.

Guarantees kept here (see design.md):

* the intent to order is journalled before the order is sent, and the SCM order id as soon as SCM
  answers, so a crash never leads to a second order; a pending order is always resumed, never
  re-placed; an order SCM declines stops unattended re-ordering until a person acts;
* one NITRO session per appliance per run, one config save per appliance per run (and a deployment
  whose save did not happen is saved by the next run);
* profiles on different appliances run concurrently (bounded); profiles on the same appliance run
  one after the other in their session, all placing their orders before any is collected;
* one failing profile does not stop the others; its outcome carries the exit code.
"""

from __future__ import annotations

from .context import ApplianceSession, default_nitro_opener, utc_now
from .decide import Decision, decide
from .outcome import EXIT_ATTENTION, Action, Outcome, Result, worst_exit_code
from .runner import Agent

__all__ = [
    "EXIT_ATTENTION",
    "Action",
    "Agent",
    "ApplianceSession",
    "Decision",
    "Outcome",
    "Result",
    "decide",
    "default_nitro_opener",
    "utc_now",
    "worst_exit_code",
]
