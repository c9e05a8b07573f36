"""One discovery: every target read in parallel (bulk, read-only), SCM matched, findings computed.

A target that fails (unreachable, refused login, unknown partition, a secondary without a reachable
primary) is reported on its own; the others complete."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import datetime

from ..config import ScmConfig
from ..errors import CitrixAgentError
from ..nitro.inventory import ApplianceSnapshot, read_appliance
from ..scm import make_scm_client
from ..scm.admin import AdminScmClient
from .build import entries_from_partition
from .findings import DEFAULT_EXPIRING_DAYS, all_findings
from .model import CertkeyEntry, Inventory, TargetResult
from .scm_match import ENROLLMENT_NOTE, match_serials
from .targets import Target

__all__ = ["discover"]

log = logging.getLogger("citrixagent.discovery")


def _read(target: Target, sleep: Callable[[float], None]) -> ApplianceSnapshot | CitrixAgentError:
    try:
        return read_appliance(
            target.urls,
            username=target.username,
            password=target.password.reveal(),
            verify=target.verify_tls,
            timeout=target.timeout,
            partitions=target.partitions,
            sleep=sleep,
        )
    except CitrixAgentError as exc:
        log.debug("discovery of %s failed: %s", target.name, exc)
        return exc


def _match_scm(
    inventory: Inventory, scm: ScmConfig | None, org_id: int | None, sleep: Callable[[float], None]
) -> None:
    if scm is None:
        inventory.scm_note = "SCM not consulted (no scm.yaml given): the appliance side only"
        return
    if scm.api != "admin":
        inventory.scm_note = ENROLLMENT_NOTE
        return
    client = make_scm_client(scm, sleep=sleep)
    try:
        assert isinstance(client, AdminScmClient)
        serials = sorted({e.serial for e in inventory.certkeys if e.serial and not e.is_ca})
        matches, only, requests = match_serials(client, serials, org_id=org_id)
    except CitrixAgentError as exc:
        inventory.scm_note = f"SCM matching failed: {exc}"
        inventory.scm_error = True
        return
    finally:
        client.close()
    inventory.scm_checked = True
    inventory.scm_requests = requests
    inventory.scm_only = only
    updated: list[CertkeyEntry] = []
    for e in inventory.certkeys:
        if e.is_ca:
            updated.append(e)
            continue
        match = matches.get(e.serial)
        updated.append(replace(e, scm=match, source="scm" if match else "other"))
    inventory.certkeys = updated


def discover(
    targets: Sequence[Target],
    *,
    scm: ScmConfig | None,
    now: datetime,
    expiring_days: int = DEFAULT_EXPIRING_DAYS,
    workers: int = 8,
    org_id: int | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> Inventory:
    """Read every target (``workers`` at a time), match SCM, compute the findings."""
    inventory = Inventory(discovered_at=now)
    with ThreadPoolExecutor(max_workers=max(1, min(workers, len(targets)))) as pool:
        results = list(pool.map(lambda t: _read(t, sleep), targets))
    for target, result in zip(targets, results, strict=True):
        if isinstance(result, CitrixAgentError):
            inventory.targets.append(TargetResult(target.name, target.urls, ok=False, error=str(result)))
            continue
        entries: list[CertkeyEntry] = []
        for part in result.partitions:
            entries.extend(entries_from_partition(target.name, result.host, part, now, target.managed))
        inventory.certkeys.extend(entries)
        inventory.targets.append(
            TargetResult(
                target.name,
                target.urls,
                ok=True,
                host=result.host,
                ha_state=result.ha_state,
                partitions=tuple(p.partition for p in result.partitions),
                certkeys=len(entries),
                requests=result.requests,
            )
        )
    _match_scm(inventory, scm, org_id, sleep)
    inventory.findings = all_findings(inventory.certkeys, expiring_days=expiring_days)
    return inventory
