"""The revocation reasons SCM accepts, by the name the CLI takes (no imports: the CLI builds its
``--reason`` choice from it before any command runs)."""

from __future__ import annotations

from collections.abc import Mapping

REVOCATION_REASONS: Mapping[str, int] = {
    "unspecified": 0,
    "key-compromise": 1,
    "affiliation-changed": 3,
    "superseded": 4,
    "cessation-of-operation": 5,
}
