"""Probe a set of VIPs: the loopback guard first (every target, before any socket), then the
handshakes in parallel (bounded), then the verdicts in the targets' order."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor

from ..cpuslot import waiting
from .guard import checked_address
from .handshake import handshake
from .judge import judge
from .models import Expectation, NoHandshake, Served, VipReport, VipTarget

__all__ = ["DEFAULT_TIMEOUT", "MAX_PARALLEL", "Connect", "probe_vips"]

DEFAULT_TIMEOUT = 5.0
MAX_PARALLEL = 8

Connect = Callable[[str, int, "str | None", float], "Served | NoHandshake"]


def _default_connect(
    address: str, port: int, server_name: str | None, timeout: float
) -> Served | NoHandshake:
    return handshake(address, port, server_name, timeout=timeout)


def probe_vips(
    targets: Sequence[VipTarget],
    expect: Expectation,
    *,
    timeout: float = DEFAULT_TIMEOUT,
    parallel: int = MAX_PARALLEL,
    connect: Connect = _default_connect,
) -> list[VipReport]:
    """Hand shake with every usable target and judge what each served. Raises
    :class:`~citrix_connector.errors.LoopbackOnlyError` before connecting anywhere when the guard is
    on and any target is not a loopback address."""
    usable = [t for t in targets if t.unusable is None]
    addresses = {id(t): checked_address(t.host, t.port, what=f"vserver {t.vserver}") for t in usable}
    results: dict[int, Served | NoHandshake] = {}

    def one(target: VipTarget) -> tuple[int, Served | NoHandshake]:
        return id(target), connect(addresses[id(target)], target.port, target.server_name, timeout)

    if usable:
        with waiting(), ThreadPoolExecutor(max_workers=max(1, min(parallel, len(usable)))) as pool:
            results.update(pool.map(one, usable))
    reports: list[VipReport] = []
    for target in targets:
        if target.unusable is not None:
            got: Served | NoHandshake = NoHandshake(target.unusable)
        else:
            got = results[id(target)]
        reports.append(judge(target, got, expect))
    return reports
