"""The published JSON Schemas of profiles and scm.yaml, generated from the models.

Committed copies live in ``schemas/`` (a test keeps them equal to what the models generate); YAML
files point editors at them with a first line ``# yaml-language-server: $schema=<url or path>``.
"""

from __future__ import annotations

import json
from typing import Any, Literal

from .profile import Profile
from .scm import ScmConfig

SchemaKind = Literal["profile", "scm"]
SCHEMA_FILES: dict[SchemaKind, str] = {"profile": "profile.schema.json", "scm": "scm.schema.json"}
_TITLES = {"profile": "citrixagent certificate profile", "scm": "citrixagent scm.yaml"}


def json_schema(kind: SchemaKind) -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of a profile or of scm.yaml, as the loader accepts them."""
    model = Profile if kind == "profile" else ScmConfig
    schema = model.model_json_schema(mode="validation")
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        **{k: v for k, v in schema.items() if k != "title"},
        "title": _TITLES[kind],
    }


def schema_text(kind: SchemaKind) -> str:
    """The schema as the committed file holds it (sorted keys, 2-space indent, final newline)."""
    return json.dumps(json_schema(kind), indent=2, sort_keys=True, ensure_ascii=False) + "\n"
