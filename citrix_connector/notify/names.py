"""Names the CLI needs before any command runs (without importing pydantic and the settings model)."""

from __future__ import annotations

SETTINGS_ENV = "CITRIXAGENT_SETTINGS"
DEFAULT_SETTINGS_FILE = "citrixagent.yaml"
