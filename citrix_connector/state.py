"""Per-profile state journal and the run lock.

One JSON file per profile under ``<root>/profiles/<profile>.json`` (sorted keys, indent 2, readable by
humans), written atomically (temp file in the same directory, flush + fsync, ``os.replace``). An
unreadable or corrupt file is a :class:`StateError` -- never silently reset, because it may hold the id
of an order already placed at SCM. Private keys are never stored here: local keys live in separate
0600 files at :meth:`StateStore.new_key_path`, written by the caller.

One run at a time holds ``<root>/citrixagent.lock`` (an OS-level lock via ``filelock``, released
when the process ends, even by a crash); a second run fails at once with :class:`LockHeldError`.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal

from .errors import LockHeldError, StateDirError, StateError
from .private_files import FILE_MODE, make_private_dir, open_private
from .state_codec import Invalid, record_from_dict, state_to_json
from .statedir import STATE_DIR_ENV, default_state_dir  # re-exported: where the journal lives

__all__ = [
    "HISTORY_LIMIT",
    "STATE_DIR_ENV",
    "STATE_VERSION",
    "DeploymentRecord",
    "IssuedRecord",
    "OrderRecord",
    "ProfileState",
    "StateStore",
    "default_state_dir",
    "utc_now_iso",
]

STATE_VERSION = 1
HISTORY_LIMIT = 100
LOCK_FILE = "citrixagent.lock"
LICENSE_MARKER = "license-accepted"

# profile names are validated by config; this is the guard against path tricks in the store itself
_NAME_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_#.@=-]{0,127}$")


def utc_now_iso() -> str:
    """Now as ISO-8601 UTC with a ``Z`` suffix, second precision."""
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


# ------------------------------------------------------------------------------------------ records


@dataclass
class OrderRecord:
    """An SCM order placed and not yet collected + recorded."""

    order_id: str
    kind: Literal["enroll", "renew", "replace"]
    api: str
    placed_at: str
    key_location: Literal["local", "appliance"]
    key_ref: str
    csr_pem: str
    common_name: str
    sans: list[str]
    key_desc: str
    previous_order_id: str | None = None
    # Only on a renewal's or replacement's intent (ProfileState.ordering): the orders SCM listed for
    # the common name just before the order was sent, so a run interrupted mid-order can find the one
    # SCM took. A new order is found by its tag instead (None here).
    known_orders: list[str] | None = None
    # Stamped into the order's comments in SCM (``citrixagent:<profile>:<random>``), so a person can
    # find an order whose answer was lost in SCM's UI.
    tag: str | None = None


@dataclass
class IssuedRecord:
    """The last certificate issued for this profile."""

    order_id: str
    serial: str
    not_before: str
    not_after: str
    fingerprint_sha256: str
    common_name: str
    sans: list[str]
    key_desc: str
    key_location: str
    key_ref: str
    cert_pem: str
    chain_pem: list[str]
    issued_at: str


@dataclass
class DeploymentRecord:
    appliance: str
    partition: str | None
    certkey: str
    serial: str
    vservers: list[str]
    deployed_at: str
    cert_file: str
    key_file: str
    #: False between installing and the appliance's config save (a later run saves it); records
    #: written before this field existed were saved
    saved: bool = True
    #: a target of a profile with several appliances (``ProfileState.targets``): its superseded files
    #: (removed after its next saved deployment), and when the check after its save passed
    stale_files: list[str] = field(default_factory=list)
    verified_at: str | None = None


@dataclass
class ProfileState:
    profile: str
    version: int = STATE_VERSION
    source: str | None = None  # the profile file last used with this state (lets `status` find it)
    # Written just before an order is sent to SCM (order_id still ""), replaced by `pending` once SCM
    # answered: found set on load, it means a run died while SCM was taking the order.
    ordering: OrderRecord | None = None
    # The last order SCM declined or revoked before it could be collected ({order_id, kind, at,
    # message}); `run` does not re-order while it is set, an explicit enroll/renew/replace does.
    declined: dict[str, Any] | None = None
    # An order an interrupted run was placing that SCM did not take, or whose id this SCM API cannot
    # tell: `run` places this kind of order again ("enroll" when the order to renew or replace is
    # gone); cleared once an order is journalled.
    reorder: Literal["enroll", "renew", "replace"] | None = None
    # Appliance files of superseded deployments (full paths), removed after the next saved deployment
    # unless a certkey still refers to them.
    stale_files: list[str] = field(default_factory=list)
    # The local key of the certificate issued before the current one: kept (for a rollback by hand)
    # when a saved deployment removes older key files.
    previous_key_ref: str | None = None
    pending: OrderRecord | None = None
    current: IssuedRecord | None = None
    deployed: DeploymentRecord | None = None
    # A profile with several appliances (``appliances:``): one deployment record per target, keyed by
    # its ``appliance`` label (``deployed`` and ``stale_files`` above are a single-target profile's).
    targets: list[DeploymentRecord] = field(default_factory=list)
    revoked: list[dict[str, Any]] = field(default_factory=list)
    history: list[dict[str, Any]] = field(default_factory=list)

    def deployment(self, target: str | None) -> DeploymentRecord | None:
        """The deployment record of ``target`` (an appliance label), or ``deployed`` for None."""
        if target is None:
            return self.deployed
        return next((d for d in self.targets if d.appliance == target), None)

    def set_deployment(self, target: str | None, record: DeploymentRecord) -> None:
        if target is None:
            self.deployed = record
        else:
            self.targets = [*(d for d in self.targets if d.appliance != target), record]

    def stale_files_of(self, target: str | None) -> list[str]:
        """The superseded files waiting for a saved deployment (the list itself: callers edit it)."""
        if target is None:
            return self.stale_files
        record = self.deployment(target)
        return record.stale_files if record is not None else []

    def add_event(self, event: str, **details: Any) -> None:
        """Append ``{"at": now, "event": event, **details}``; keeps the last ``HISTORY_LIMIT``."""
        entry: dict[str, Any] = {"at": utc_now_iso(), "event": event}
        entry.update(details)
        self.history.append(entry)
        if len(self.history) > HISTORY_LIMIT:
            del self.history[: len(self.history) - HISTORY_LIMIT]


# --------------------------------------------------------------------------------------- the store


def _fsync_dir(path: Path) -> None:
    """Make a rename durable (POSIX); a no-op where directories cannot be opened (Windows)."""
    if sys.platform == "win32":
        return
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _replace(src: str, dst: Path) -> None:
    """``os.replace`` with a short retry: on Windows a reader or a virus scanner may hold ``dst``."""
    for attempt in range(5):
        try:
            os.replace(src, dst)
            return
        except PermissionError:
            if sys.platform != "win32" or attempt == 4:
                raise
            time.sleep(0.05 * (attempt + 1))


def atomic_write_text(path: Path, text: str, *, mode: int | None = None) -> None:
    """Write ``text`` to ``path`` atomically (temp file in the same dir, fsync, replace).

    The file is private (0600) unless ``mode`` says otherwise (POSIX; ignored on Windows)."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        if mode is not None and sys.platform != "win32":
            os.fchmod(fd, mode)
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        _replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    _fsync_dir(path.parent)


_CHOOSE = " (choose another with --state-dir)"


class StateStore:
    """The state journal under ``root`` (created 0700 on first write)."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        # per run: each profile's journal path, and the directories known to exist (7 journal
        # writes per deployed profile checked them all again: 2% of a fleet deployment's CPU)
        self._paths: dict[str, Path] = {}
        self._ready: set[Path] = set()

    # -- paths -------------------------------------------------------------------------------

    @staticmethod
    def _check_name(kind: str, name: str) -> None:
        if not _NAME_RE.match(name):
            raise StateError(f"invalid {kind} name for the state store: {name!r}")

    def path_for(self, profile: str) -> Path:
        path = self._paths.get(profile)
        if path is None:
            self._check_name("profile", profile)
            path = self._paths[profile] = self.root / "profiles" / f"{profile}.json"
        return path

    def new_key_path(self, profile: str, tag: str) -> Path:
        """``<root>/keys/<profile>/<tag>.key.pem``; not created (the caller writes it 0600, O_EXCL)."""
        self._check_name("profile", profile)
        self._check_name("key tag", tag)
        return self.root / "keys" / profile / f"{tag}.key.pem"

    @property
    def lock_path(self) -> Path:
        return self.root / LOCK_FILE

    def _ensure_dir(self, path: Path) -> None:
        try:
            make_private_dir(self.root)
            make_private_dir(path)
        except OSError as exc:
            raise StateDirError(
                f"cannot create state directory {path}: {exc.strerror or exc}{_CHOOSE}"
            ) from exc

    def _ready_dir(self, path: Path, *, again: bool = False) -> None:
        """:meth:`_ensure_dir` once per directory and store (``again``: it was removed meanwhile)."""
        if again or path not in self._ready:
            self._ensure_dir(path)
            self._ready.add(path)

    def check_usable(self, *, write: bool) -> None:
        """Raise :class:`StateDirError` (exit 2) before any work when the state directory cannot serve:
        it is a file, or (``write``) it cannot be created or written to."""
        root = self.root
        if root.exists() and not root.is_dir():
            raise StateDirError(f"state directory {root} is not a directory{_CHOOSE}")
        if not write:
            return
        self._ensure_dir(root)
        probe = root / f".write-test-{os.getpid()}"
        try:
            os.close(open_private(probe, os.O_WRONLY | os.O_EXCL))
            probe.unlink()
        except OSError as exc:
            reason = exc.strerror or exc
            raise StateDirError(f"state directory {root} is not writable: {reason}{_CHOOSE}") from exc

    # -- journal -----------------------------------------------------------------------------

    def load(self, profile: str) -> ProfileState:
        """The profile's state; a fresh one when there is no file; StateError if unreadable."""
        path = self.path_for(profile)
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return ProfileState(profile=profile)
        except (OSError, UnicodeDecodeError) as exc:
            raise StateError(f"cannot read state file {path}: {exc}") from exc
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise StateError(
                f"state file {path} is corrupt (line {exc.lineno}: {exc.msg}); it may hold a pending "
                "SCM order id, so it is not reset automatically: repair it, or move it away to start over"
            ) from exc
        # the version first: a newer format may have changed the shape of fields this one knows
        version = data.get("version") if isinstance(data, dict) else None
        if isinstance(version, int) and not isinstance(version, bool) and version > STATE_VERSION:
            raise StateError(
                f"state file {path} has version {version}, written by a newer citrixagent "
                f"(this one understands version {STATE_VERSION})"
            )
        try:
            state = record_from_dict(ProfileState, data)
        except Invalid as exc:
            raise StateError(f"state file {path} is invalid: {exc}") from exc
        if state.profile != profile:
            raise StateError(f"state file {path} belongs to profile {state.profile!r}, not {profile!r}")
        return state

    def save(self, state: ProfileState) -> None:
        """Write atomically: a crash leaves either the old or the new file, never a torn one."""
        path = self.path_for(state.profile)
        self._ready_dir(path.parent)
        if len(state.history) > HISTORY_LIMIT:
            del state.history[: len(state.history) - HISTORY_LIMIT]
        text = state_to_json(state)
        try:
            try:
                atomic_write_text(path, text)
            except FileNotFoundError:  # the directory was removed during the run: made again
                self._ready_dir(path.parent, again=True)
                atomic_write_text(path, text)
        except OSError as exc:
            raise StateError(f"cannot write state file {path}: {exc.strerror or exc}") from exc

    def profiles(self) -> list[str]:
        """Names of the profiles that have a state file, sorted."""
        directory = self.root / "profiles"
        if not directory.is_dir():
            return []
        return sorted(p.stem for p in directory.glob("*.json") if p.is_file() and _NAME_RE.match(p.stem))

    def recorded_sources(self) -> list[Path]:
        """The profile files the journal remembers (those that still exist), sorted."""
        sources = {self.load(name).source for name in self.profiles()}
        return sorted(Path(s) for s in sources if s and Path(s).is_file())

    # -- lock --------------------------------------------------------------------------------

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """Exclusive run lock; raises LockHeldError at once when another run holds it."""
        self._ensure_dir(self.root)
        path = self.lock_path
        try:  # created 0600 here, whatever the umask and filelock's own default
            os.close(open_private(path, os.O_RDWR))
        except OSError as exc:
            raise StateDirError(f"cannot create lock file {path}: {exc.strerror or exc}") from exc
        import filelock  # here: `citrixagent --help` never needs it (a dozen modules to import)

        file_lock = filelock.FileLock(str(path), timeout=0, mode=FILE_MODE)
        try:
            file_lock.acquire()
        except filelock.Timeout:
            raise LockHeldError(
                f"another citrixagent run holds the lock {path}; try again when it has finished"
            ) from None
        except OSError as exc:
            raise StateError(f"cannot create lock file {path}: {exc.strerror or exc}") from exc
        try:
            yield
        finally:
            file_lock.release()

    # -- licence -----------------------------------------------------------------------------

    def license_accepted(self) -> bool:
        return (self.root / LICENSE_MARKER).is_file()

    def record_license_acceptance(self) -> None:
        self._ensure_dir(self.root)
        path = self.root / LICENSE_MARKER
        try:
            atomic_write_text(path, f"licence accepted at {utc_now_iso()}\n")
        except OSError as exc:
            raise StateError(f"cannot write {path}: {exc.strerror or exc}") from exc
