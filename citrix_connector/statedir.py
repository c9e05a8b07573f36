"""Where the state journal lives by default (light: the CLI's ``--help`` prints it)."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["STATE_DIR_ENV", "default_state_dir"]

STATE_DIR_ENV = "CITRIXAGENT_STATE_DIR"


def default_state_dir() -> Path:
    """``$CITRIXAGENT_STATE_DIR`` if set, else the per-user state directory of this OS."""
    configured = os.environ.get(STATE_DIR_ENV, "").strip()
    if configured:
        return Path(configured).expanduser()
    import platformdirs

    return Path(platformdirs.user_state_dir("citrixagent", appauthor=False))
