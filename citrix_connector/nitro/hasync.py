"""The HA secondary in sync: before the certkey step, force the SSL file sync on the Primary and see
the uploaded files on the Secondary (:func:`sync_before_certkey`: a propagated add/update that
arrives before its files fails there, reference §6); after the deployment is saved, check, with
read-only NITRO calls on the Secondary, that it holds the new certificate.

Nothing is ever written to the Secondary: on it the agent logs in (a session, not configuration),
reads ``hanode`` (its role), ``sslcertkey/<name>`` (serial, files) and ``systemfile`` listings (the
files are there), and logs out. The wait is a poll with a deadline and an injected clock and sleep
(``scm/polling.py``'s idea), so tests never really wait.

Why both checks: command propagation brings the certkey's *configuration* to the Secondary at once,
but its files only arrive with the file sync; until they have, the Secondary cannot serve the new
certificate after a failover (Citrix CTX579137).
"""

from __future__ import annotations

import logging
import math
import posixpath
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from ..errors import CitrixAgentError
from .client import CertKey, NitroClient

__all__ = [
    "ChainLink",
    "HaSyncResult",
    "SecondaryLook",
    "chain_of",
    "files_missing_on",
    "look_at_secondary",
    "sync_before_certkey",
    "trigger_file_sync",
    "wait_for_files",
    "wait_for_secondary",
]

log = logging.getLogger("citrixagent.nitro")

SYNC_MODE = "ssl"


def trigger_file_sync(primary: NitroClient) -> None:
    """``sync ha files ssl`` on the Primary (``POST hafiles?action=sync``, reference §2.9)."""
    primary.session.call("POST", "hafiles", action="sync", payload={"hafiles": {"mode": [SYNC_MODE]}})


@dataclass(frozen=True)
class ChainLink:
    """One CA certkey the leaf's link chain names on the Primary: the Secondary must hold it too."""

    certkey: str  # the CA certkey's name
    serial: str  # its serial on the Primary
    link: str | None  # the certkey it links to in turn (None: the end of the chain)


@dataclass(frozen=True)
class SecondaryLook:
    """What one read-only look at the Secondary found."""

    role: str  # Primary | Secondary | Standalone, as its hanode says
    serial: str | None  # the certkey's serial there (None: no such certkey)
    missing_files: tuple[str, ...] = ()  # files the certkey (or a CA of its chain) names, not there
    chain_problem: str | None = None  # the CA chain differs from the Primary's: what differs

    def holds(self, serial: str) -> bool:
        return (
            self.role == "Secondary"
            and self.serial == serial
            and not self.missing_files
            and self.chain_problem is None
        )

    def describe(self, serial: str) -> str:
        if self.role != "Secondary":
            return f"it reports HA state {self.role}, not Secondary"
        if self.serial is None:
            return "it has no such certkey yet"
        if self.serial != serial:
            return f"it still holds serial {self.serial}"
        if self.chain_problem is not None:
            return self.chain_problem
        return "its files " + ", ".join(self.missing_files) + " have not arrived"


def look_at_secondary(
    secondary: NitroClient, certkey: str, chain: Sequence[ChainLink] = ()
) -> SecondaryLook:
    """Read-only: the Secondary's role, its certkey's serial and link, every CA certkey of ``chain``
    (the Primary's link chain from the leaf up: name, serial, its own link) and whether the files
    all these name exist there."""
    role = secondary.ha_info().state
    found = secondary.get_certkey(certkey)
    if found is None:
        return SecondaryLook(role, None)
    wanted = [f for f in (found.cert, found.key or "") if f]
    problem: str | None = None
    holder, link = certkey, found.linkcertkeyname
    for ca in chain:
        if link != ca.certkey:
            problem = f"certkey {holder!r} is linked to {link!r} there, not to {ca.certkey!r}"
            break
        there = secondary.get_certkey(ca.certkey)
        if there is None:
            problem = f"it has no CA certkey {ca.certkey!r}"
            break
        if there.serial != ca.serial:
            problem = f"its CA certkey {ca.certkey!r} holds serial {there.serial}, not {ca.serial}"
            break
        if there.cert:
            wanted.append(there.cert)
        holder, link = ca.certkey, there.linkcertkeyname
    return SecondaryLook(role, found.serial, files_missing_on(secondary, wanted), problem)


def chain_of(primary_certkeys: Callable[[str], CertKey | None], certkey: str) -> tuple[ChainLink, ...]:
    """The link chain of ``certkey`` as the Primary holds it (``primary_certkeys`` looks a certkey
    up, e.g. the session's view): each CA certkey, its serial and its own link; loops stop."""
    links: list[ChainLink] = []
    seen = {certkey}
    leaf = primary_certkeys(certkey)
    name = leaf.linkcertkeyname if leaf is not None else None
    while name and name not in seen and len(links) < 10:
        seen.add(name)
        ca = primary_certkeys(name)
        if ca is None:
            break
        links.append(ChainLink(name, ca.serial, ca.linkcertkeyname or None))
        name = ca.linkcertkeyname
    return tuple(links)


def files_missing_on(node: NitroClient, files: Sequence[str]) -> tuple[str, ...]:
    """Read-only: which of ``files`` (absolute, or relative to its SSL directory) ``node`` lacks;
    one ``systemfile`` listing per directory."""
    listings: dict[str, set[str]] = {}
    missing: list[str] = []
    for path in files:
        full = path if path.startswith("/") else posixpath.join(node.ssl_dir, path)
        directory, name = posixpath.split(full)
        if directory not in listings:
            listings[directory] = set(node.list_files(directory))
        if name not in listings[directory]:
            missing.append(full)
    return tuple(missing)


def sync_before_certkey(
    primary: NitroClient,
    files: Sequence[str],
    *,
    open_secondary: Callable[[], NitroClient] | None,
    peer: str,
    deadline: float,
    interval: float,
    monotonic: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> bool:
    """After uploading ``files`` to an HA Primary and before the add/update that names them: force
    the SSL file sync, then (when the Secondary is known) look read-only until it holds them.

    A propagated add or update that reaches the Secondary before its files fails there (reference
    §6), so the files go first. True when the files are known to be on the Secondary (or nothing
    needs syncing: not an HA Primary); False after a warning (the sync could not be requested, or
    the files did not arrive by ``deadline``): the deployment goes on, and the check after the save
    fails the target if the Secondary still lacks the certificate."""
    if primary.known_ha_info().state != "Primary":
        return True
    try:
        trigger_file_sync(primary)
    except CitrixAgentError as exc:
        log.warning("NetScaler %s: the SSL file sync could not be requested: %s", primary.host, exc)
        return False
    if open_secondary is None:
        return True  # requested; the Secondary cannot be read (not among the configured URLs)
    missing = wait_for_files(
        open_secondary, files, deadline=deadline, interval=interval, monotonic=monotonic, sleep=sleep
    )
    if missing:
        log.warning(
            "NetScaler %s: after the SSL file sync the secondary %s still lacks %s",
            primary.host,
            peer,
            ", ".join(missing),
        )
        return False
    log.info("NetScaler %s: secondary %s holds %s", primary.host, peer, ", ".join(files))
    return True


def wait_for_files(
    open_secondary: Callable[[], NitroClient],
    files: Sequence[str],
    *,
    deadline: float,
    interval: float,
    monotonic: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> tuple[str, ...]:
    """Look read-only at the Secondary until it holds ``files`` (returns ``()``), or until
    ``deadline`` seconds have passed (returns what it still lacks; a Secondary that cannot be read
    lacks them all). At most ``1 + ceil(deadline / interval)`` looks."""
    start = monotonic()
    max_looks = 1 + math.ceil(deadline / interval)
    missing: tuple[str, ...] = tuple(files)
    client: NitroClient | None = None
    try:
        for look in range(1, max_looks + 1):
            try:
                if client is None:
                    client = open_secondary()
                missing = files_missing_on(client, files)
            except CitrixAgentError as exc:
                log.debug("the secondary could not be read: %s", exc)
                missing = tuple(files)
                if client is not None:
                    client.close()
                    client = None
            if not missing:
                return ()
            elapsed = monotonic() - start
            if elapsed >= deadline or look >= max_looks:
                break
            sleep(min(interval, max(deadline - elapsed, 0.0)))
    finally:
        if client is not None:
            client.close()
    return missing


@dataclass(frozen=True)
class HaSyncResult:
    """The verdict on one HA pair after a deployment."""

    peer: str  # the Secondary's host (or URL) as configured
    in_sync: bool
    detail: str
    looks: int = 0  # read-only looks taken at the Secondary
    triggered: bool = False  # the file sync was requested on the Primary

    def to_dict(self) -> dict[str, object]:
        return {
            "peer": self.peer,
            "in_sync": self.in_sync,
            "detail": self.detail,
            "looks": self.looks,
            "file_sync_triggered": self.triggered,
        }


def wait_for_secondary(
    open_secondary: Callable[[], NitroClient],
    certkey: str,
    serial: str,
    *,
    chain: Sequence[ChainLink] = (),
    peer: str,
    deadline: float,
    interval: float,
    monotonic: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> HaSyncResult:
    """Look at the Secondary until it holds ``certkey`` with ``serial``, linked like ``chain`` (the
    Primary's CA certkeys, each with its serial), and every file these name, or until
    ``deadline`` seconds have passed (then ``in_sync`` is False and ``detail`` says what it lacked).
    A Secondary that cannot be reached or logged in to is looked at again until the deadline too.
    At most ``1 + ceil(deadline / interval)`` looks are taken, whatever the clock says."""
    start = monotonic()
    max_looks = 1 + math.ceil(deadline / interval)
    looks = 0
    last = "it was not looked at"
    client: NitroClient | None = None
    try:
        while True:
            try:
                if client is None:
                    client = open_secondary()
                seen = look_at_secondary(client, certkey, chain)
                looks += 1
                if seen.holds(serial):
                    text = f"secondary {peer} holds {certkey} serial {serial}{_and_chain(chain)}"
                    return HaSyncResult(peer, True, text, looks)
                last = seen.describe(serial)
            except CitrixAgentError as exc:
                looks += 1
                last = f"it could not be read: {exc}"
                if client is not None:
                    client.close()
                    client = None
            elapsed = monotonic() - start
            if elapsed >= deadline or looks >= max_looks:
                break
            log.debug("secondary %s not in sync yet (%s); looking again in %g s", peer, last, interval)
            sleep(min(interval, max(deadline - elapsed, 0.0)))
    finally:
        if client is not None:
            client.close()
    return HaSyncResult(
        peer,
        False,
        f"secondary {peer} did not receive {certkey} serial {serial} within {deadline:g} s: {last}",
        looks,
    )


def _and_chain(chain: Sequence[ChainLink]) -> str:
    if not chain:
        return " and its files"
    cas = ", ".join(repr(ca.certkey) for ca in chain)
    return f", linked to its CA certkey{'s' if len(chain) > 1 else ''} {cas}, and their files"
