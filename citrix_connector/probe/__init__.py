"""The TLS probe: connect to each vserver's VIP and see what a client really gets.

* ``guard.py``: loopback only while tests, demo, sandbox or benchmarks run (refused before connecting)
* ``targets.py``: VIPs from NITRO (or the profile's ``probe: host:port``) and the SNI names to send
* ``handshake.py``: one handshake, trusting nothing and sending nothing but the ClientHello
* ``judge.py``: pure: served vs expected → ok / wrong certificate / chain incomplete / old protocol /
  name mismatch / unreachable
* ``run.py``: the guard, then the handshakes in parallel, then the verdicts
"""

from __future__ import annotations

from .guard import checked_address
from .models import Expectation, NoHandshake, ProbeMode, Served, VipReport, VipStatus, VipTarget
from .run import DEFAULT_TIMEOUT, probe_vips

__all__ = [
    "DEFAULT_TIMEOUT",
    "Expectation",
    "NoHandshake",
    "ProbeMode",
    "Served",
    "VipReport",
    "VipStatus",
    "VipTarget",
    "checked_address",
    "probe_vips",
]
