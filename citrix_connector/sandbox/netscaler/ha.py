"""Two simulated nodes as one HA pair (reference §2.9, §6).

* Commands written on the Primary (add/update/link/bind/set/unset/delete, save, ...) are propagated to
  the Secondary as they succeed, the way HA command propagation replays them there.
* Files are not propagated: key/CSR creation and ``systemfile`` uploads stay on the Primary until an SSL
  file sync copies the partitions' SSL directories to the Secondary — on demand
  (``POST hafiles?action=sync``, on either node) or every ``file_sync_interval`` seconds (evaluated
  lazily against the simulators' clock whenever either node is asked something, so an injected clock
  drives it without sleeping). ``file_sync_broken`` makes every sync copy nothing and count a failure
  (``stat/hanode`` ``haerrsyncfailure``), like a pair whose rsync never works.
* A propagated command that needs a file the Secondary does not have yet (1647/1631/1632) **fails**
  there (``propagation_without_files = "fail"``, the default, as on a real pair, reference §6): it is
  counted in ``propagation_errors``, and it and every command propagated after it (a link or bind of
  the certkey it did not add) are replayed, in order, by the next successful file sync (the config
  sync that fixes the Secondary up later). ``"wait"`` (the older, forgiving model) makes the command
  and everything after it wait for the files instead, without an error. Either way the Secondary
  holds a new certificate only after the file sync — and never, if the sync never works; only the
  agent that syncs the files *before* the certkey step leaves no propagation error.
* The Secondary refuses writes (599/1028; its ``secondary_writes`` knob, ``"reject"`` in a pair) and
  serves no VIP; :meth:`HaPair.failover` swaps the roles (VIPs move to the new Primary).
* Both nodes share one lock, so propagation and sync never deadlock.
"""

from __future__ import annotations

import posixpath
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from ..httpserver import Request
from .errors import Fail

if TYPE_CHECKING:
    from .server import NetScalerSimulator

# resources whose writes stay on the node (files, session state, HA itself)
_LOCAL = frozenset(
    {"login", "logout", "systemfile", "sslrsakey", "sslecdsakey", "sslcertreq", "hafiles", "nspartition"}
)
_MISSING_FILE = frozenset({1647, 1631, 1632})
_SYNC_MODES = frozenset({"ssl", "all", "all_plus_misc"})


@dataclass
class Propagated:
    """A command waiting to be applied on the Secondary."""

    request: Request
    partition: str
    label: str


@dataclass
class HaPair:
    """A Primary and a Secondary simulator joined into one pair."""

    primary: NetScalerSimulator
    secondary: NetScalerSimulator
    file_sync_interval: float | None = None  # seconds between automatic SSL file syncs; None = on demand
    file_sync_broken: bool = False  # every sync copies nothing and counts a failure
    propagation_without_files: str = "fail"  # "fail" (real) | "wait": a command whose files are missing
    pending: list[Propagated] = field(default_factory=list)
    held: list[Propagated] = field(default_factory=list)  # failed for want of files: replayed at a sync
    propagation_errors: list[str] = field(default_factory=list)
    sync_count: int = 0
    sync_failures: int = 0
    last_sync: datetime | None = None

    def __post_init__(self) -> None:
        if self.primary is self.secondary:
            raise ValueError("an HA pair needs two simulators")
        self.secondary.lock = self.primary.lock
        for node in (self.primary, self.secondary):
            node.ha_pair = self
        self._assign_roles()
        self.last_sync = self.primary.clock()

    # -- roles ------------------------------------------------------------------------------------
    def _assign_roles(self) -> None:
        for node, role, peer in (
            (self.primary, "Primary", self.secondary),
            (self.secondary, "Secondary", self.primary),
        ):
            node.model.ha_state = role
            node.model.peer_address = peer.host
            node.secondary_writes = "reject" if role == "Secondary" else node.secondary_writes
            node.vips.refresh()

    def peer_of(self, node: NetScalerSimulator) -> NetScalerSimulator:
        return self.secondary if node is self.primary else self.primary

    def failover(self) -> None:
        """The Secondary takes over: roles swap and the VIPs move to it. Waiting commands are dropped
        (they were never applied on the new Primary) and counted as propagation errors."""
        with self.primary.lock:
            for item in self.pending:
                self.propagation_errors.append(f"{item.label}: dropped at failover")
            self.pending.clear()
            for item in self.held:
                self.propagation_errors.append(f"{item.label}: not replayed, dropped at failover")
            self.held.clear()
            old_primary = self.primary
            old_primary.secondary_writes = "reject"
            self.secondary.secondary_writes = "warn"
            self.primary, self.secondary = self.secondary, old_primary
            self.primary.vips.release_all()
            self.secondary.vips.release_all()
            self._assign_roles()

    # -- seeding ----------------------------------------------------------------------------------
    def add_vserver(self, name: str, kind: str, *args: Any, **kwargs: Any) -> None:
        """Seed a vserver on both nodes (same VIP: it floats to whichever node is Primary)."""
        self.primary.add_vserver(name, kind, *args, **kwargs)
        partition = str(kwargs.get("partition", "default"))
        vs = self.primary.model.partition(partition).vservers[name]
        self.secondary.add_vserver(
            name, kind, vs.servicetype, vs.ipv46, vs.port, vs.snienable, partition=partition
        )

    def add_partition(self, name: str) -> None:
        self.primary.add_partition(name)
        self.secondary.add_partition(name)

    # -- propagation ------------------------------------------------------------------------------
    def propagate(self, request: Request, partition: str, resource: str, label: str) -> None:
        """Called by the Primary (lock held) after a write succeeded."""
        if resource in _LOCAL:
            return
        self.pending.append(Propagated(request, partition, label))
        self._drain()

    def _drain(self) -> None:
        """Apply the waiting commands in order (lock held)."""
        while self.pending:
            item = self.pending[0]
            try:
                self.secondary.apply_propagated(item.request, item.partition, item.label)
            except Fail as fail:
                if fail.code in _MISSING_FILE and self.propagation_without_files == "wait":
                    return  # waits for the files (and everything after it waits too)
                self.propagation_errors.append(f"{item.label}: {fail.code} {fail.message}")
                if fail.code in _MISSING_FILE or self.held:
                    self.held.append(item)  # the next file sync's config sync replays it
            self.pending.pop(0)

    def _replay(self) -> None:
        """After a file sync: replay, in order, the commands that failed (``"fail"`` mode); one that
        fails again is recorded again and dropped."""
        held, self.held = self.held, []
        for item in held:
            try:
                self.secondary.apply_propagated(item.request, item.partition, item.label)
            except Fail as fail:
                self.propagation_errors.append(f"{item.label} (replayed): {fail.code} {fail.message}")

    # -- file sync --------------------------------------------------------------------------------
    def sync_files(self, modes: Iterable[str] = ("ssl",)) -> bool:
        """Copy the SSL directories of every partition to the Secondary, then apply waiting commands.
        False when the sync is broken (nothing copied)."""
        wanted = {m.lower() for m in modes}
        if not wanted & _SYNC_MODES:
            return True
        self.last_sync = self.primary.clock()
        if self.file_sync_broken:
            self.sync_failures += 1
            return False
        for part in self.primary.model.partitions.values():
            target = self.secondary.model.partitions.get(part.name)
            if target is None:
                continue
            for path, entry in part.files.items():
                if _under(path, part.ssl_dir):
                    target.files[path] = type(entry)(entry.data, entry.mtime, entry.atime)
        self.sync_count += 1
        self._replay()
        self._drain()
        return True

    def tick(self) -> None:
        """The periodic sync, evaluated lazily (lock held)."""
        if self.file_sync_interval is None or self.last_sync is None:
            return
        now = self.primary.clock()
        if (now - self.last_sync).total_seconds() >= self.file_sync_interval:
            self.sync_files()

    def describe(self) -> dict[str, Any]:
        return {
            "primary": self.primary.url,
            "secondary": self.secondary.url,
            "file_sync_interval": self.file_sync_interval,
            "file_sync_broken": self.file_sync_broken,
            "propagation_without_files": self.propagation_without_files,
            "pending": [p.label for p in self.pending],
            "held": [p.label for p in self.held],
            "propagation_errors": list(self.propagation_errors),
            "sync_count": self.sync_count,
            "sync_failures": self.sync_failures,
        }


def _under(path: str, directory: str) -> bool:
    return posixpath.dirname(path) == directory or path.startswith(directory.rstrip("/") + "/")
