"""What every step of a command shares: the journal, the SCM client of the worker thread, the
clocks, the flags; and the one NITRO session a run holds per appliance."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, TypedDict

from ..config import ApplianceConfig, Profile, ScmConfig
from ..errors import CitrixAgentError, UsageError
from ..hints import CommandHint
from ..nitro.checks import ApplianceView, preflight
from ..nitro.client import NitroClient
from ..nitro.deploy import InstalledState, open_appliance
from ..nitro.models import VserverTarget
from ..proxy import proxy_argument
from ..scm import ScmClient
from ..state import ProfileState, StateStore

log = logging.getLogger("citrixagent")


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


class ApplianceSession:
    """The one NITRO session a run holds for an appliance (opened on first use).

    What is installed is answered from one bulk read of every certkey and binding of the partition
    (:class:`~citrix_connector.nitro.checks.ApplianceView`, two requests whatever the number of
    profiles), read on first use; a deployment keeps it up to date with what its verification read
    back, any other write (or a deployment that failed) makes it read again when next asked. The
    vservers' preflight is answered from the same view, once per set of vservers and session."""

    def __init__(self, config: ApplianceConfig, opener: Callable[[ApplianceConfig], NitroClient]) -> None:
        self.config = config
        self._opener = opener
        self._client: NitroClient | None = None
        self._changed = False
        self._view: ApplianceView | None = None
        self._preflighted: set[tuple[tuple[str, str, bool], ...]] = set()
        #: (profile, its journal, the target's label or None): installed here, waiting for the save
        self.unsaved_profiles: list[tuple[Profile, ProfileState, str | None]] = []
        #: HA Primary: None = no SSL file sync before a certkey step yet; True = each one brought the
        #: files to the Secondary (the check after the save requests no other); False = one did not
        self.files_synced: bool | None = None

    @property
    def changed(self) -> bool:
        """Something was written that needs a config save."""
        return self._changed

    @changed.setter
    def changed(self, value: bool) -> None:
        if value:
            self.forget_view()  # a write may have changed any certkey, binding or file
        self._changed = value

    def deployed(self, changed: bool) -> None:
        """A deployment finished; its read-back updated the view, so the view is kept."""
        self._changed = self._changed or changed

    @property
    def label(self) -> str:
        """The appliance as the journal keys it: its first configured URL (stable across an HA
        failover). Messages name :attr:`node` instead."""
        return self._named(self.config.url)

    @property
    def node(self) -> str:
        """The node this session writes to, as messages name it: of an HA pair the Primary it
        connected to (after a failover the other URL of ``appliance.url``), else :attr:`label`."""
        return self._named(self._client.url if self._client is not None else self.config.url)

    def _named(self, url: str) -> str:
        host = url.split("://", 1)[-1].rstrip("/")
        return f"{host}[{self.config.partition}]" if self.config.partition else host

    @property
    def nitro(self) -> NitroClient:
        if self._client is None:
            self._client = self._opener(self.config)
        return self._client

    def installed(self, profile: Profile) -> InstalledState | None:
        """What the appliance holds under the profile's certkey, bound to which of its vservers."""
        return self.view().installed(profile.certificate.certkey_name, profile.vservers)

    def view(self) -> ApplianceView:
        """Every certkey and binding of the partition (read when first asked, and again after a
        write the view did not see)."""
        if self._view is None:
            self._view = ApplianceView(self.nitro)
        return self._view

    def forget_view(self) -> None:
        """The next question reads certkeys, bindings and files again (after a write the view did
        not see, e.g. a deployment that failed half-way)."""
        if self._view is not None:
            self._view.invalidate()

    def preflight(self, vservers: Sequence[VserverTarget]) -> None:
        """:func:`~citrix_connector.nitro.checks.preflight` from the view; the same vservers are
        checked once per session (before the order, not again before the install)."""
        key = tuple((vs.name, vs.type, vs.sni) for vs in vservers)
        if key in self._preflighted:
            return
        preflight(self.nitro, vservers, self.view())
        self._preflighted.add(key)

    def close(self) -> None:
        if self._client is not None:
            try:
                self._client.close()  # logs out and releases the HTTP session
            except CitrixAgentError as exc:
                log.warning("logout from %s failed: %s", self.label, exc)
            self._client = None


def appliance_key(config: ApplianceConfig) -> tuple[Any, ...]:
    return (tuple(config.urls), config.partition, config.username)


class NitroOptions(TypedDict):
    """What a NITRO client of an appliance is opened with, whichever node (checked by mypy against
    ``NitroClient`` and ``open_appliance``)."""

    username: str
    password: str
    verify: bool | Path
    timeout: float
    partition: str | None
    sleep: Callable[[float], None]
    proxy: str | None
    lazy_login: bool


def nitro_options(config: ApplianceConfig, sleep: Callable[[float], None]) -> NitroOptions:
    """What a NITRO client of ``config``'s appliance is opened with (any of its nodes)."""
    return {
        "username": config.username,
        "password": config.password.reveal(),
        "verify": config.verify_tls,
        "timeout": config.timeout,
        "partition": config.partition,
        "sleep": sleep,
        # the configured proxy: (an older config without the key: the environment decides)
        "proxy": proxy_argument(getattr(config, "proxy", None)),
        # reads without a NITRO session, the first write logs in: status and an idle run make
        # no login and no logout (a partition is session state: logged in from the start there)
        "lazy_login": True,
    }


def default_nitro_opener(
    config: ApplianceConfig, *, sleep: Callable[[float], None] = time.sleep
) -> NitroClient:
    return open_appliance(config.urls, **nitro_options(config, sleep))


@dataclass
class Context:
    """The runtime of one command: built by :class:`~citrix_connector.lifecycle.Agent`."""

    scm_config: ScmConfig | None
    store: StateStore
    scm_factory: Callable[[ScmConfig], ScmClient]
    clock: Callable[[], datetime]
    monotonic: Callable[[], float]
    sleep: Callable[[float], None]
    dry_run: bool
    force: bool
    #: ``hint("replace", profile.source)``: a command line that works when typed (see hints.py)
    hint: CommandHint = field(default_factory=CommandHint)
    _local: threading.local = field(default_factory=threading.local)
    _clients: list[ScmClient] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def scm(self) -> ScmClient:
        """The SCM client of this worker thread (made on first use)."""
        client: ScmClient | None = getattr(self._local, "scm", None)
        if client is None:
            config = self.require_scm_config()
            client = self.scm_factory(config)
            self._local.scm = client
            with self._lock:
                self._clients.append(client)
        return client

    def lend_scm(self, client: ScmClient) -> None:
        """This thread uses ``client``: a worker's own, lent to its helper while the worker does not
        use it (``prefetch.py``); no second connection, token or discovery of the token URL."""
        self._local.scm = client

    def require_scm_config(self) -> ScmConfig:
        if self.scm_config is None:
            raise UsageError("no scm.yaml given: use --scm-config PATH (needed to talk to SCM)")
        return self.scm_config

    def close_scm_clients(self) -> None:
        with self._lock:
            for client in self._clients:
                client.close()
            self._clients.clear()
        self._local = threading.local()
