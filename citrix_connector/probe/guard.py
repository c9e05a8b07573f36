"""The loopback-only guard: while the test suite, the demo, the sandbox or a benchmark runs, a TLS probe
may connect to 127.0.0.0/8 and ::1 only, and anything else is refused before a socket is opened.

The guard is on when the environment variable ``CITRIXAGENT_LOOPBACK_ONLY`` is set to anything but
``""``/``0`` (``tests/conftest.py`` sets it for the whole suite), or once :func:`enable` was called in
this process (the sandbox does, when it starts, so the demo and the benchmarks are covered too). It
cannot be switched off again inside a process that enabled it.

With the guard on, a probe target must be a loopback IP literal or ``localhost`` (which is taken as
127.0.0.1 without asking a resolver: a DNS query would itself leave the machine).
"""

from __future__ import annotations

import ipaddress
import os
import threading
from typing import TYPE_CHECKING

from ..errors import LoopbackOnlyError

if TYPE_CHECKING:
    from ..config import Profile

__all__ = ["ENV_VAR", "checked_address", "check_overrides", "enable", "enabled", "refused_overrides"]

ENV_VAR = "CITRIXAGENT_LOOPBACK_ONLY"

_lock = threading.Lock()
_enabled_here = False


def enable() -> None:
    """Switch the guard on for the rest of this process."""
    global _enabled_here
    with _lock:
        _enabled_here = True


def enabled() -> bool:
    """True when probes may only connect to loopback addresses."""
    return _enabled_here or os.environ.get(ENV_VAR, "").strip() not in ("", "0")


def checked_address(host: str, port: int, *, what: str) -> str:
    """The address to connect to for ``host``: ``host`` itself with the guard off; with the guard on a
    loopback IP literal (``localhost`` → ``127.0.0.1``), else :class:`LoopbackOnlyError`. ``what``
    names the probe in the message (e.g. ``"vserver vs_www"``)."""
    if not enabled():
        return host
    text = host.strip().strip("[]")
    if text.lower() == "localhost":
        return "127.0.0.1"
    try:
        ip = ipaddress.ip_address(text)
    except ValueError:
        ip = None
    if ip is not None and ip.is_loopback:
        return str(ip)
    raise LoopbackOnlyError(
        f"{what}: refusing to probe {host}:{port}: only loopback addresses (127.0.0.0/8, ::1) may be "
        f"probed here ({ENV_VAR} is set, or the sandbox runs in this process)"
    )


def refused_overrides(profile: Profile) -> list[tuple[str, int, str]]:
    """The ``probe: host:port`` overrides of ``profile``'s vservers this guard refuses, as (field,
    line, message): checked when a profile is loaded for ``validate`` and before ``run`` makes any
    network call, so such a profile is refused before anything is ordered or deployed."""
    refused: list[tuple[str, int, str]] = []
    for i, vs in enumerate(profile.vservers):
        if vs.probe is None:
            continue
        field = f"vservers[{i}].probe"
        try:
            checked_address(vs.probe.host, vs.probe.port, what=f"vserver {vs.name}")
        except LoopbackOnlyError as exc:
            refused.append((field, profile.line_of(field), str(exc)))
    return refused


def check_overrides(profile: Profile) -> None:
    """:class:`LoopbackOnlyError` (``file:line: field: ...``) for the first refused override."""
    for field, line, message in refused_overrides(profile):
        raise LoopbackOnlyError(f"{profile.source}:{line}: {field}: {message}")
