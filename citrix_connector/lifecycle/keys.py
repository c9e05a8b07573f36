"""Local private key housekeeping: after a saved deployment a profile keeps the key of its current
certificate and that of the certificate before it (for a rollback by hand), and the keys of orders
still in flight; every older key file the agent wrote for it is removed."""

from __future__ import annotations

import logging
from pathlib import Path

from ..state import ProfileState, StateStore

log = logging.getLogger("citrixagent")

KEY_SUFFIX = ".key.pem"


def kept_keys(state: ProfileState) -> set[Path]:
    """The key files a profile still needs: current, previous (rollback), pending, being ordered."""
    refs = [state.previous_key_ref]
    for record in (state.current, state.pending, state.ordering):
        if record is not None and record.key_location == "local":
            refs.append(record.key_ref)
    return {Path(ref).absolute() for ref in refs if ref}


def prune_superseded_keys(store: StateStore, state: ProfileState) -> list[str]:
    """Remove the profile's key files under ``<state>/keys/<profile>/`` that :func:`kept_keys` does
    not name; returns their names. Only files the agent wrote there (``*.key.pem``) are touched."""
    directory = store.root / "keys" / state.profile
    if not directory.is_dir():
        return []
    keep = kept_keys(state)
    removed: list[str] = []
    for path in sorted(directory.glob(f"*{KEY_SUFFIX}")):
        if path.absolute() in keep or not path.is_file():
            continue
        try:
            path.unlink()
        except OSError as exc:  # housekeeping only: the next saved deployment tries again
            log.warning("%s: could not remove the superseded key %s: %s", state.profile, path, exc)
            continue
        removed.append(path.name)
    if removed:
        log.info("%s: removed superseded private key file(s) %s", state.profile, ", ".join(removed))
    return removed
