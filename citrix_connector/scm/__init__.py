"""SCM clients behind one interface (:class:`ScmClient`); :func:`make_scm_client` picks the one
``scm.yaml`` asks for (``api: admin`` or ``api: enrollment``)."""

from __future__ import annotations

import time
from collections.abc import Callable

from ..config import ScmConfig
from .admin import AdminScmClient
from .base import (
    REVOCATION_REASONS,
    CollectResult,
    EnrollRequest,
    OrderState,
    OrderStatus,
    Organization,
    ScmCapabilities,
    ScmClient,
    carries_tag,
)
from .enrollment import EnrollmentScmClient
from .polling import wait_for_certificate

__all__ = [
    "REVOCATION_REASONS",
    "AdminScmClient",
    "CollectResult",
    "EnrollRequest",
    "EnrollmentScmClient",
    "OrderState",
    "OrderStatus",
    "Organization",
    "ScmCapabilities",
    "ScmClient",
    "capabilities_of",
    "carries_tag",
    "make_scm_client",
    "wait_for_certificate",
]


def make_scm_client(config: ScmConfig, *, sleep: Callable[[float], None] = time.sleep) -> ScmClient:
    """The client for ``config.api``; ``sleep`` is used between retries (tests pass a no-op)."""
    if config.api == "admin":
        return AdminScmClient(config, sleep=sleep)
    if config.api == "enrollment":
        return EnrollmentScmClient(config, sleep=sleep)
    raise ValueError(f"unknown SCM api {config.api!r}")


def capabilities_of(config: ScmConfig) -> ScmCapabilities:
    """What the API ``config`` configures can do, without making a client (e.g. for a dry run)."""
    if config.api == "admin":
        return AdminScmClient.capabilities
    if config.api == "enrollment":
        return EnrollmentScmClient.capabilities
    raise ValueError(f"unknown SCM api {config.api!r}")
