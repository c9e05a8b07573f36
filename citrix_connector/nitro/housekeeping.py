"""After a deployment: the one config save per appliance per run, and removing superseded files."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence

from ..errors import NitroError
from . import codes
from .client import CertKey, NitroClient
from .naming import join
from .plan import step

__all__ = ["remove_unreferenced_files", "save"]

log = logging.getLogger("citrixagent.nitro.deploy")


def save(nitro: NitroClient) -> None:
    """Save the running configuration (``save ns config``), once per appliance per run."""
    with step("save"):
        nitro.save_config()


def remove_unreferenced_files(
    nitro: NitroClient,
    paths: Sequence[str],
    *,
    dry_run: bool = False,
    certkeys: Iterable[CertKey] | None = None,
) -> list[str]:
    """Delete the given appliance files (full paths, e.g. superseded certificate and key files)
    unless a certkey still refers to them. Returns the paths deleted (or that would be).

    Housekeeping after a saved deployment: only files the caller knows it uploaded or created are
    named here, never files found by pattern. ``certkeys``: the partition's certkeys as read after
    the save (one read for all the profiles of an appliance); read now when not given.
    """
    referenced: set[str] = set()
    for ck in nitro.list_certkeys() if certkeys is None else certkeys:
        for ref in (ck.cert, ck.key):
            if ref:
                referenced.add(ref if "/" in ref else join(nitro.ssl_dir, ref))
    doomed = [p for p in dict.fromkeys(paths) if p and p not in referenced]
    if dry_run:
        return doomed
    deleted: list[str] = []
    for path in doomed:
        directory, _, name = path.replace("\\", "/").rpartition("/")
        try:
            nitro.delete_file(name, directory or None)
        except NitroError as exc:
            # already gone (an earlier cleanup that stopped half-way, or an admin): nothing to do
            if not codes.file_missing(exc):
                raise
            log.info("NetScaler %s: %s is gone already", nitro.host, path)
            continue
        deleted.append(path)
    return deleted
