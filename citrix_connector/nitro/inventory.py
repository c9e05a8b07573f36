"""Bulk, read-only NITRO reads of what an appliance holds: every certkey, vserver and SSL binding of
each admin partition, in a handful of requests whatever the number of certkeys.

Per appliance: login, ``GET hanode`` (HA role), ``GET nspartition`` (when no partition is named), logout.
Per partition (after a ``Switch`` outside the default one): ``GET sslcertkey``,
``GET sslvserver_sslcertkey_binding?bulkbindings=yes``, ``GET lbvserver|csvserver|vpnvserver|
authenticationvserver`` (names and service types only) and ``GET sslvserver`` (SNI flags): seven reads.

Nothing here writes to the appliance: the only POSTs are login, logout and the session's partition
switch, which change no configuration.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ApplianceStateError, NitroAuthError, NitroError
from . import codes
from .client import VSERVER_KINDS, NitroClient

__all__ = [
    "ApplianceSnapshot",
    "PartitionSnapshot",
    "RawBinding",
    "RawVserver",
    "list_partitions",
    "read_appliance",
    "read_partition",
]

log = logging.getLogger("citrixagent.nitro")


@dataclass(frozen=True)
class RawVserver:
    """A virtual server of any kind, as far as certificates care."""

    name: str
    kind: str  # lb | cs | vpn | authentication
    servicetype: str
    sni_enabled: bool = False

    @property
    def terminates_tls(self) -> bool:
        st = self.servicetype.upper()
        return st not in ("", "SSL_BRIDGE") and (st.startswith("SSL") or st.startswith("DTLS"))


@dataclass(frozen=True)
class RawBinding:
    """One row of ``sslvserver_sslcertkey_binding``: a certkey bound to a vserver."""

    vserver: str
    certkey: str
    sni: bool = False
    ca: bool = False


@dataclass(frozen=True)
class PartitionSnapshot:
    """What one admin partition holds. ``certkeys`` are NITRO's own records (no key material: the
    appliance returns file paths and parsed certificate facts only)."""

    partition: str
    certkeys: tuple[Mapping[str, Any], ...]
    vservers: tuple[RawVserver, ...]
    bindings: tuple[RawBinding, ...]


@dataclass(frozen=True)
class ApplianceSnapshot:
    """One appliance (an HA pair counts once): the node that was read and its partitions."""

    host: str
    url: str
    ha_state: str
    partitions: tuple[PartitionSnapshot, ...]
    requests: int  # NITRO requests made, login/logout included


def _records(body: Mapping[str, Any] | None, resource: str) -> list[dict[str, Any]]:
    if not body:
        return []
    value = body.get(resource)
    if isinstance(value, dict):
        return [value]
    if isinstance(value, list):
        return [v for v in value if isinstance(v, dict)]
    return []


def _flag(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    return str(value or "").strip().lower() in ("true", "yes", "1", "enabled", "on")


class _Counted:
    """Counts the NITRO calls made through one client (for the benchmark and the report)."""

    def __init__(self, client: NitroClient) -> None:
        self.client = client
        self.calls = 0

    def get(self, resource: str, *, extra: Mapping[str, str] | None = None) -> dict[str, Any] | None:
        self.calls += 1
        return self.client.session.call("GET", resource, extra=extra, missing_ok=True)


def list_partitions(client: NitroClient) -> list[str]:
    """Names of the admin partitions (``default`` first). A box without partition support (or a user
    who may not list them) has just ``default``."""
    return _list_partitions(_Counted(client))


def _list_partitions(counted: _Counted) -> list[str]:
    try:
        body = counted.get("nspartition")
    except NitroAuthError:
        raise
    except NitroError as exc:
        if exc.errorcode is None:  # transport failure: not an answer about partitions
            raise
        log.debug(
            "NetScaler %s: no partition list (%s); reading the default partition", counted.client.host, exc
        )
        return ["default"]
    names = [str(r.get("partitionname") or "") for r in _records(body, "nspartition")]
    names = [n for n in names if n]
    return ["default", *sorted(n for n in set(names) if n != "default")]


def read_partition(client: NitroClient, partition: str = "default") -> PartitionSnapshot:
    """Every certkey, vserver and SSL binding of the partition the session is in now."""
    return _read_partition(_Counted(client), partition)


def _read_partition(counted: _Counted, partition: str) -> PartitionSnapshot:
    certkeys = tuple(_records(counted.get("sslcertkey"), "sslcertkey"))
    binding_rows = _records(
        counted.get("sslvserver_sslcertkey_binding", extra={"bulkbindings": "yes"}),
        "sslvserver_sslcertkey_binding",
    )
    bindings = tuple(
        RawBinding(
            vserver=str(r.get("vservername") or ""),
            certkey=str(r.get("certkeyname") or ""),
            sni=_flag(r.get("snicert")),
            ca=_flag(r.get("ca")),
        )
        for r in binding_rows
        if r.get("vservername") and r.get("certkeyname")
    )
    kinds: list[tuple[str, str, str]] = []  # (name, kind, servicetype)
    for kind, collection in VSERVER_KINDS.items():
        body = counted.get(collection, extra={"attrs": "name,servicetype"})
        for rec in _records(body, collection):
            name = str(rec.get("name") or "")
            if name:
                kinds.append((name, kind, str(rec.get("servicetype") or "")))
    sni = {
        str(r.get("vservername") or ""): _flag(r.get("snienable"))
        for r in _records(counted.get("sslvserver", extra={"attrs": "vservername,snienable"}), "sslvserver")
    }
    vservers = tuple(RawVserver(name, kind, st, sni.get(name, False)) for name, kind, st in kinds)
    return PartitionSnapshot(partition, certkeys, vservers, bindings)


def _open_reader(
    urls: Sequence[str],
    *,
    username: str,
    password: str,
    verify: bool | Path,
    timeout: float,
    sleep: Callable[[float], None],
) -> tuple[NitroClient, str, int]:
    """A logged-in client on the HA primary (or a standalone node) among ``urls``; (client, HA state,
    requests made). A lone secondary, or a pair whose primary cannot be reached, is an error: a
    secondary's configuration may lag behind, and discovery never follows a peer address it was not
    given."""
    problems: list[str] = []
    requests = 0
    last: NitroError | None = None
    for url in urls:
        client = NitroClient(
            url, username=username, password=password, verify=verify, timeout=timeout, sleep=sleep
        )
        try:
            requests += 1
            client.login()
            requests += 1
            ha = client.ha_info()
        except NitroAuthError:
            client.close()
            raise
        except NitroError as exc:
            client.close()
            last = exc
            problems.append(str(exc))
            continue
        if ha.state == "Secondary":
            requests += 1  # logout
            client.close()
            problems.append(f"{client.host} is the HA secondary node")
            continue
        return client, ha.state, requests
    if last is not None and len(urls) == 1:
        raise last
    if len(urls) == 1:
        raise ApplianceStateError(
            f"{problems[0]}; list the primary too (appliance.url takes both nodes of a pair)"
        )
    raise ApplianceStateError("no reachable HA primary among " + ", ".join(urls) + ": " + "; ".join(problems))


def read_appliance(
    urls: Sequence[str],
    *,
    username: str,
    password: str,
    verify: bool | Path = True,
    timeout: float = 60,
    partitions: Sequence[str] | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> ApplianceSnapshot:
    """Read every partition (or the named ones) of one appliance or HA pair, read-only.

    Raises :class:`NitroAuthError` (wrong password), :class:`NitroError` (unreachable, refused) or
    :class:`ApplianceStateError` (secondary only, unknown partition)."""
    client, ha_state, requests = _open_reader(
        urls, username=username, password=password, verify=verify, timeout=timeout, sleep=sleep
    )
    counted = _Counted(client)
    try:
        wanted = list(dict.fromkeys(partitions)) if partitions else _list_partitions(counted)
        snapshots: list[PartitionSnapshot] = []
        current = "default"
        for name in wanted:
            if name != current:
                try:
                    requests += 1
                    client.switch_partition(name)
                except NitroError as exc:
                    if codes.no_such_partition(exc):
                        raise ApplianceStateError(
                            f"NetScaler {client.host}: no admin partition {name!r}"
                        ) from exc
                    raise
                current = name
            snapshots.append(_read_partition(counted, name))
        return ApplianceSnapshot(
            host=client.host,
            url=client.url,
            ha_state=ha_state,
            partitions=tuple(snapshots),
            requests=requests + counted.calls + 1,  # + logout
        )
    finally:
        client.close()
