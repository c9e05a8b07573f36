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
import functools
import json
import os
import re
import sys
import tempfile
import time
import types
import typing
from collections.abc import Iterator
from dataclasses import MISSING, dataclass, field, fields
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal, TypeVar, Union, cast

from .errors import LockHeldError, StateDirError, StateError
from .private_files import FILE_MODE, make_private_dir, open_private
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
    # Only on an order intent (ProfileState.ordering): the orders SCM listed for the common name
    # just before the order was sent, so a run interrupted mid-order can find the one SCM took.
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


# ------------------------------------------------------------------------------------ (de)serializing

_T = TypeVar("_T")


class _Invalid(Exception):
    pass


def _check(value: Any, hint: Any, where: str) -> Any:
    """Check ``value`` against a (simple) type hint; records become dataclass instances."""
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (Union, types.UnionType):
        return _check_union(value, args, where)
    if origin is Literal:
        if not all(isinstance(a, str) for a in args) or not isinstance(value, str):
            raise _Invalid(f"{where}: expected a string, got {type(value).__name__}")
        return value
    if hint is Any:
        return value
    if origin is list:
        if not isinstance(value, list):
            raise _Invalid(f"{where}: expected a list, got {type(value).__name__}")
        (item_hint,) = args or (Any,)
        return [_check(v, item_hint, f"{where}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise _Invalid(f"{where}: expected an object, got {type(value).__name__}")
        return value
    if isinstance(hint, type) and hasattr(hint, "__dataclass_fields__"):
        return _from_dict(hint, value, where)
    return _check_scalar(value, hint, where)


def _check_union(value: Any, args: tuple[Any, ...], where: str) -> Any:
    if value is None and type(None) in args:
        return None
    errors: list[str] = []
    for arg in (a for a in args if a is not type(None)):
        try:
            return _check(value, arg, where)
        except _Invalid as exc:
            errors.append(str(exc))
    raise _Invalid(errors[0] if errors else f"{where}: unexpected null")


#: JSON scalar type -> (is this value one, what the message calls it)
_SCALARS: dict[type, tuple[typing.Callable[[Any], bool], str]] = {
    bool: (lambda v: isinstance(v, bool), "true or false"),
    int: (lambda v: isinstance(v, int) and not isinstance(v, bool), "an integer"),
    str: (lambda v: isinstance(v, str), "a string"),
}


def _check_scalar(value: Any, hint: Any, where: str) -> Any:
    if hint not in _SCALARS:
        raise _Invalid(f"{where}: unsupported type {hint!r}")  # pragma: no cover - programming error
    accepts, expected = _SCALARS[hint]
    if not accepts(value):
        raise _Invalid(f"{where}: expected {expected}, got {type(value).__name__}")
    return value


@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    """The resolved field types of a record class (resolving them costs more than reading a file)."""
    return typing.get_type_hints(cls)


def _from_dict(cls: type[_T], data: Any, where: str) -> _T:
    if not isinstance(data, dict):
        raise _Invalid(f"{where}: expected an object, got {type(data).__name__}")
    hints = _hints(cast("type", cls))
    kwargs: dict[str, Any] = {}
    for f in fields(cls):  # type: ignore[arg-type]
        key_where = f"{where}.{f.name}" if where else f.name
        if f.name not in data:
            if f.default is MISSING and f.default_factory is MISSING:
                raise _Invalid(f"{key_where}: missing")
            continue  # forward compatible: older files lack newer optional fields
        kwargs[f.name] = _check(data[f.name], hints[f.name], key_where)
    return cls(**kwargs)  # unknown extra keys are ignored


# ---- the same checks without building a "where" for every value: a fleet's status reads thousands of
# journals. Anything the fast path refuses goes through _from_dict again, which names the problem.


@functools.cache
def _shape(hint: Any) -> tuple[str, tuple[Any, ...]]:
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (Union, types.UnionType):
        others = tuple(a for a in args if a is not type(None))
        return "union", others + ((None,) if type(None) in args else ())
    if origin is Literal:
        return "literal", args
    if hint is Any:
        return "any", ()
    if origin is list:
        return "list", args or (Any,)
    if origin is dict:
        return "dict", ()
    if isinstance(hint, type) and hasattr(hint, "__dataclass_fields__"):
        return "record", ()
    return "scalar", ()


@functools.cache
def _record_fields(cls: type) -> tuple[tuple[str, Any, bool], ...]:
    hints = _hints(cls)
    return tuple(
        (f.name, hints[f.name], f.default is MISSING and f.default_factory is MISSING) for f in fields(cls)
    )


def _fast(value: Any, hint: Any) -> Any:
    kind, args = _shape(hint)
    if kind == "scalar":
        accepts = _SCALARS.get(hint)
        if accepts is None or not accepts[0](value):
            raise _Invalid
        return value
    if kind == "record":
        return _fast_record(value, hint)
    if kind == "union":
        return _fast_union(value, args)
    if kind == "list":
        if not isinstance(value, list):
            raise _Invalid
        return [_fast(v, args[0]) for v in value]
    if kind == "dict" and not isinstance(value, dict):
        raise _Invalid
    if kind == "literal" and (not all(isinstance(a, str) for a in args) or not isinstance(value, str)):
        raise _Invalid
    return value  # a dict, a literal, Any


def _fast_record(value: Any, cls: type) -> Any:
    if not isinstance(value, dict):
        raise _Invalid
    kwargs: dict[str, Any] = {}
    for name, field_hint, required in _record_fields(cls):
        if name in value:
            kwargs[name] = _fast(value[name], field_hint)
        elif required:
            raise _Invalid
    return cls(**kwargs)


def _fast_union(value: Any, args: tuple[Any, ...]) -> Any:
    if value is None and args and args[-1] is None:
        return None
    for arg in args:
        if arg is None:
            continue
        try:
            return _fast(value, arg)
        except _Invalid:
            pass
    raise _Invalid


def _record_from_dict(cls: type[_T], data: Any) -> _T:
    """:func:`_from_dict`, fast when the data is valid (the usual case)."""
    try:
        return cast("_T", _fast(data, cls))
    except _Invalid:
        return _from_dict(cls, data, "")  # raises _Invalid with where and what


@functools.cache
def _field_names(cls: type) -> tuple[str, ...]:
    return tuple(f.name for f in fields(cls))


def _plain(value: Any) -> Any:
    """What ``dataclasses.asdict`` gives for the journal's records (plain dataclasses, lists, dicts
    and JSON scalars), without its deep copies: several saves per profile per run add up."""
    if hasattr(value, "__dataclass_fields__"):
        return {name: _plain(getattr(value, name)) for name in _field_names(cast("type", type(value)))}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def _state_to_json(state: ProfileState) -> str:
    return json.dumps(_plain(state), sort_keys=True, indent=2, ensure_ascii=False) + "\n"


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

    # -- paths -------------------------------------------------------------------------------

    @staticmethod
    def _check_name(kind: str, name: str) -> None:
        if not _NAME_RE.match(name):
            raise StateError(f"invalid {kind} name for the state store: {name!r}")

    def path_for(self, profile: str) -> Path:
        self._check_name("profile", profile)
        return self.root / "profiles" / f"{profile}.json"

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
            state = _record_from_dict(ProfileState, data)
        except _Invalid as exc:
            raise StateError(f"state file {path} is invalid: {exc}") from exc
        if state.profile != profile:
            raise StateError(f"state file {path} belongs to profile {state.profile!r}, not {profile!r}")
        return state

    def save(self, state: ProfileState) -> None:
        """Write atomically: a crash leaves either the old or the new file, never a torn one."""
        path = self.path_for(state.profile)
        self._ensure_dir(path.parent)
        if len(state.history) > HISTORY_LIMIT:
            del state.history[: len(state.history) - HISTORY_LIMIT]
        try:
            atomic_write_text(path, _state_to_json(state))
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
