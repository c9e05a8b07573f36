"""The SSL file sync before the certkey step, for the deployment on one session's appliance.

:func:`before_certkey` builds the hook :func:`~citrix_connector.nitro.deploy.deploy` calls after the
uploads and before the add/update that names them: on an HA Primary it forces the SSL file sync and
looks read-only at the Secondary (the other URL of ``appliance.url``) until the files are there,
within ``ha_sync.deadline``. The session remembers whether every sync it asked for brought the files
(:attr:`ApplianceSession.files_synced`), so the check after the save does not request another one.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from ..config import Profile
from ..nitro.client import NitroClient
from ..nitro.hasync import sync_before_certkey
from .context import ApplianceSession, Context

__all__ = ["before_certkey", "secondary_url"]


def secondary_url(urls: Sequence[str], primary: NitroClient) -> str | None:
    """The first configured URL that is not the node written to (the pair's Secondary), or None."""
    here = primary.url.rstrip("/").lower()
    peers = [u for u in urls if u.rstrip("/").lower() != here]
    return peers[0] if peers else None


def before_certkey(
    ctx: Context, profile: Profile, session: ApplianceSession
) -> Callable[[Sequence[str]], None] | None:
    """The deploy hook for ``profile`` on ``session`` (None when ``ha_sync.verify`` is false)."""
    if not profile.ha_sync.verify:
        return None

    def hook(files: Sequence[str]) -> None:
        from .verify import open_node

        primary = session.nitro
        url = secondary_url(session.config.urls, primary)
        opener: Callable[[], NitroClient] | None = None
        if url is not None:
            peer_url = url

            def opener() -> NitroClient:
                return open_node(session.config, peer_url, sleep=ctx.sleep)

        ok = sync_before_certkey(
            primary,
            files,
            open_secondary=opener,
            peer=(url or "").split("://", 1)[-1],
            deadline=profile.ha_sync.deadline,
            interval=profile.ha_sync.interval,
            monotonic=ctx.monotonic,
            sleep=ctx.sleep,
        )
        if primary.known_ha_info().state == "Primary":
            session.files_synced = ok and session.files_synced is not False

    return hook
