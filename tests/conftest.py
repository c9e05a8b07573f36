"""Shared pytest fixtures. Expensive objects (RSA 3072/4096 keys, the local CA) are session-scoped."""

from __future__ import annotations

import pytest

from citrix_connector.crypto import KeySpec, PrivateKey, generate_private_key
from citrix_connector.sandbox.ca import LocalCA

# ---------------------------------------------------------------------------------------- crypto

ALL_KEY_SPECS: tuple[KeySpec, ...] = (
    KeySpec("RSA", size=2048),
    KeySpec("RSA", size=3072),
    KeySpec("RSA", size=4096),
    KeySpec("ECDSA", curve="P-256"),
    KeySpec("ECDSA", curve="P-384"),
)


@pytest.fixture(scope="session")
def keys() -> dict[str, PrivateKey]:
    """One private key per supported spec, keyed by ``KeySpec.describe()`` ("RSA 2048", ...)."""
    return {spec.describe(): generate_private_key(spec) for spec in ALL_KEY_SPECS}


@pytest.fixture(scope="session")
def local_ca() -> LocalCA:
    """A session-wide sandbox CA. Tests that rotate its intermediate should use their own LocalCA."""
    return LocalCA.create("Citrixagent Test")
