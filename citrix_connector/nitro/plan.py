"""What a deployment installs (:class:`DeployPlan`), what it did (:class:`DeployResult`), and the one
place where a dry run and a real write part ways (:meth:`Run.write`).

A plan may stand for a certificate SCM has not issued yet (:class:`NotIssued`): deploy's read-only
pass then produces the plan of the whole installation, with the steps that depend on the certificate
itself (its chain, its issuer link) said as such. Every dry run's appliance steps come from here.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Literal

from cryptography import x509

from ..crypto import cert_info, cert_matches_key, is_issuer, load_private_key, unique_names
from ..errors import ApplianceStateError, CryptoError, NitroAuthError, NitroError
from . import codes
from .client import Binding, CertKey, NitroClient
from .models import VserverTarget
from .naming import CERTKEY_NAME_MAX, cert_names, fresh_stem, join, stamp

if TYPE_CHECKING:
    from .checks import ApplianceView

__all__ = ["DeployPlan", "DeployResult", "NotIssued", "Run", "fail", "step", "with_note"]

log = logging.getLogger("citrixagent.nitro.deploy")


# ----------------------------------------------------------------------------------------- errors


def with_note(exc: NitroError, text: str, *, step: str | None = None) -> NitroError:
    """``exc`` with another message (same class, NITRO fields and step)."""
    cls = NitroAuthError if isinstance(exc, NitroAuthError) else NitroError
    return cls(
        text,
        errorcode=exc.errorcode,
        nitro_message=exc.nitro_message,
        status=exc.status,
        endpoint=exc.endpoint,
        step=step or exc.step,
        failed_items=exc.failed_items,
    )


@contextlib.contextmanager
def step(name: str) -> Iterator[None]:
    """Name the step on any error raised inside (``NitroError.step`` and a ``step <name>:`` prefix)."""
    try:
        yield
    except NitroError as exc:
        if exc.step:
            raise
        raise with_note(exc, f"step {name}: {exc}", step=name) from exc
    except (ApplianceStateError, CryptoError) as exc:
        if str(exc).startswith("step "):
            raise
        raise type(exc)(f"step {name}: {exc}") from exc


def fail(step: str, message: str) -> NitroError:
    return NitroError(f"step {step}: {message}", step=step)


# ------------------------------------------------------------------------------------------ plans


@dataclass(frozen=True)
class NotIssued:
    """Stands in for the leaf of a certificate SCM has not issued yet (plans only, never written)."""

    common_name: str
    sans: tuple[str, ...]
    key_location: Literal["local", "appliance"]


@dataclass
class DeployPlan:
    """What to install: leaf (+ chain, issuer first, no root) under ``certkey``, bound to ``vservers``."""

    certkey: str
    leaf: x509.Certificate | NotIssued
    chain: list[x509.Certificate]
    key_pem: bytes | None
    appliance_keyfile: str | None
    vservers: Sequence[VserverTarget]
    file_base: str

    @classmethod
    def not_issued(
        cls,
        certkey: str,
        *,
        common_name: str,
        sans: Sequence[str],
        key_location: Literal["local", "appliance"],
        vservers: Sequence[VserverTarget],
        file_base: str | None = None,
    ) -> DeployPlan:
        """The plan for a certificate not issued yet: only a dry run of :func:`deploy` accepts it."""
        leaf = NotIssued(common_name, tuple(sans), key_location)
        return cls(certkey, leaf, [], None, None, vservers, file_base or certkey)

    @property
    def issued(self) -> bool:
        return isinstance(self.leaf, x509.Certificate)

    @property
    def serial(self) -> str | None:
        """The leaf's serial (normalised hex); None when not issued yet."""
        return cert_info(self.leaf).serial_hex if isinstance(self.leaf, x509.Certificate) else None

    @property
    def names(self) -> set[str]:
        """The leaf's CN and SANs, lower-cased."""
        if isinstance(self.leaf, x509.Certificate):
            return cert_names(self.leaf)
        return {n.lower() for n in (self.leaf.common_name, *self.leaf.sans) if n}

    def describe(self) -> str:
        """``serial 1A2B, www.example.com, example.com`` (the SANs, else the CN)."""
        if isinstance(self.leaf, x509.Certificate):
            info = cert_info(self.leaf)
            return f"serial {info.serial_hex}, {', '.join(info.sans) or info.common_name}"
        names = unique_names(self.leaf.sans) or [self.leaf.common_name]
        return f"the certificate SCM will issue, {', '.join(names)}"

    @property
    def uploads_key(self) -> bool:
        """A key file goes up with the certificate (the key was made locally)."""
        if isinstance(self.leaf, NotIssued):
            return self.leaf.key_location == "local"
        return self.key_pem is not None

    def validate(self, *, dry_run: bool = False) -> None:
        """Local consistency checks before touching the appliance (CryptoError)."""
        if not self.certkey or len(self.certkey) > CERTKEY_NAME_MAX:
            raise CryptoError(f"certkey name {self.certkey!r} must be 1..{CERTKEY_NAME_MAX} characters")
        if isinstance(self.leaf, NotIssued):
            if not dry_run:
                raise CryptoError(f"no certificate to install as {self.certkey!r}: it is not issued yet")
            return
        if (self.key_pem is None) == (self.appliance_keyfile is None):
            raise CryptoError(
                f"deploy plan for {self.certkey!r} needs exactly one key: a local key or a key file on the "
                "appliance"
            )
        if self.key_pem is not None:
            key = load_private_key(self.key_pem)
            if not cert_matches_key(self.leaf, key):
                raise CryptoError(f"the certificate for {self.certkey!r} does not match the private key")
        previous = self.leaf
        for ca in self.chain:
            if not is_issuer(ca, previous):
                raise CryptoError(
                    f"chain for {self.certkey!r} is out of order: {ca.subject.rfc4514_string()} did not "
                    f"issue {previous.subject.rfc4514_string()}"
                )
            previous = ca


@dataclass
class DeployResult:
    certkey: str
    serial: str  # "" for a plan of a certificate not issued yet
    changed: bool
    actions: list[str]
    vservers_bound: list[str]
    cert_file: str
    key_file: str


# -------------------------------------------------------------------------------------------- run


class Run:
    """The state of one :func:`~.deploy.deploy` call: what it did (or would do), and fresh file names."""

    def __init__(
        self,
        nitro: NitroClient,
        plan: DeployPlan,
        dry_run: bool,
        now: datetime,
        view: ApplianceView | None = None,
        before_certkey: Callable[[Sequence[str]], None] | None = None,
    ) -> None:
        self.nitro = nitro
        # called with the files uploaded since its last call, before a certkey step names them
        # (an HA Primary syncs them to its Secondary first: reference §6)
        self._before_certkey = before_certkey
        self._unsynced: list[str] = []
        self.plan = plan
        self.dry_run = dry_run
        self.stamp = stamp(now)
        self.view = view  # the session's bulk reads: answers the read-only questions without asking
        self.actions: list[str] = []
        self.changed = False
        self.displaced = False  # a binding replaced another certkey's on a vserver
        self._files: set[str] | None = None
        self._all_certkeys: list[CertKey] | None = None

    # -- read-only questions: from the view when there is one, else one request each -------------

    def certkey(self, name: str) -> CertKey | None:
        return self.view.certkey(name) if self.view is not None else self.nitro.get_certkey(name)

    def certkeys_by_serial(self, serial: str) -> list[CertKey]:
        if self.view is not None:
            return self.view.by_serial(serial)
        return self.nitro.find_certkeys_by_serial(serial)

    def vserver_bindings(self, vserver: str) -> list[Binding]:
        if self.view is not None:
            return self.view.vserver_bindings(vserver)
        return self.nitro.vserver_bindings(vserver)

    def path(self, name: str) -> str:
        return join(self.nitro.ssl_dir, name)

    def act(self, text: str) -> None:
        self.actions.append(text)
        log.info("NetScaler %s: %s%s", self.nitro.host, "[dry run] " if self.dry_run else "", text)

    def write(self, text: str, fn: Callable[[], object]) -> None:
        """Record an action; run it unless dry-run."""
        self.act(text)
        self.changed = True
        if not self.dry_run:
            fn()

    def files_ready(self) -> None:
        """Before an add or update names the files uploaded since the last call: hand them to the
        ``before_certkey`` hook (an HA Primary syncs them to its Secondary first). Not in a dry run."""
        if self.dry_run or not self._unsynced or self._before_certkey is None:
            return
        files, self._unsynced = list(self._unsynced), []
        self._before_certkey(files)

    def later(self, text: str) -> None:
        """Record a write whose details wait for the certificate (a plan for one not issued yet)."""
        assert self.dry_run and not self.plan.issued
        self.act(text)
        self.changed = True

    def files(self) -> set[str]:
        if self.view is not None:
            return self.view.files()
        if self._files is None:
            self._files = set(self.nitro.list_files())
        return self._files

    def all_certkeys(self) -> list[CertKey]:
        if self.view is not None:
            return list(self.view.certkeys.values())
        if self._all_certkeys is None:
            self._all_certkeys = self.nitro.list_certkeys()
        return self._all_certkeys

    def upload(self, stem_base: str, ext_content: Sequence[tuple[str, bytes, str]]) -> str:
        """Upload files ``<stem><ext>`` under one fresh stem, in one request (a bulk upload for
        several); returns the stem. 1642 -> next stem."""
        exts = [ext for ext, _, _ in ext_content]
        for _ in range(5):
            stem = fresh_stem(stem_base, self.stamp, self.files() | _uploaded_here(self.nitro), exts)
            names = [f"{stem}{ext}" for ext in exts]
            try:
                for name, (_, _, what) in zip(names, ext_content, strict=True):
                    self.act(f"upload {what} {self.path(name)}")
                self.changed = True
                if not self.dry_run:
                    self.nitro.upload_files(
                        [(name, content) for name, (_, content, _) in zip(names, ext_content, strict=True)]
                    )
                for name in names:
                    self.files().add(name)
                    if not self.dry_run:
                        _remember_upload(self.nitro, name)
                        self._unsynced.append(self.path(name))
                return stem
            except NitroError as exc:
                if not self.dry_run:  # a bulk upload may have created some: never used again
                    for name in names:
                        _remember_upload(self.nitro, name)
                if not codes.file_exists(exc):
                    raise
                log.info("NetScaler %s: %s exists already; choosing another name", self.nitro.host, stem)
                self._files = None
                if self.view is not None:
                    self.view.forget_files()
                self.files().update(f"{stem}{ext}" for ext in exts)
        raise ApplianceStateError(f"cannot upload {stem_base}: every file name tried exists already")


# File names this process uploaded, per appliance URL and SSL directory: never used again, even after
# housekeeping deleted the file on the appliance. An HA secondary keeps the old file under that name
# (the file sync copies, it never deletes), so a propagated update naming it would load the *old*
# certificate there (Citrix CTX579137: never reuse a file name). Across processes the timestamp in
# the name differs (runs are seconds apart); within one process two deployments can share a second.
_UPLOADED: dict[tuple[str, str], set[str]] = {}
_UPLOADED_LOCK = threading.Lock()


def _uploaded_here(nitro: NitroClient) -> set[str]:
    with _UPLOADED_LOCK:
        return set(_UPLOADED.get((nitro.url, nitro.ssl_dir), ()))


def _remember_upload(nitro: NitroClient, name: str) -> None:
    with _UPLOADED_LOCK:
        _UPLOADED.setdefault((nitro.url, nitro.ssl_dir), set()).add(name)
