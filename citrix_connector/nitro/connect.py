"""Choosing the node to write to: the HA primary (or a standalone box), then the admin partition."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from ..errors import ApplianceStateError, NitroAuthError, NitroError
from .client import NitroClient
from .models import HaInfo

__all__ = ["open_appliance"]

log = logging.getLogger("citrixagent.nitro")


def open_appliance(
    urls: Sequence[str],
    *,
    username: str,
    password: str,
    verify: bool | Path,
    timeout: float = 60,
    partition: str | None = None,
    sleep: Callable[[float], None] = time.sleep,
    proxy: str | None = None,
    lazy_login: bool = False,
) -> NitroClient:
    """A logged-in client on the node that may be written to (HA Primary or standalone).

    One URL on an HA Secondary is refused; with several URLs (both HA nodes) the Primary is used. The
    partition is switched after the HA check. The caller closes the client (``with`` or ``close()``).
    ``lazy_login``: reads without a session, the first write logs in (see :mod:`.session`).
    """
    if isinstance(urls, str):
        urls = [urls]
    if not urls:
        raise ApplianceStateError("no appliance URL given")
    problems: list[str] = []
    last_error: NitroError | None = None
    for url in urls:
        client = NitroClient(
            url,
            username=username,
            password=password,
            verify=verify,
            timeout=timeout,
            partition=partition,
            sleep=sleep,
            proxy=proxy,
            lazy_login=lazy_login,
        )
        try:
            problem = _writable(client, alone=len(urls) == 1)
        except NitroAuthError:
            client.close()
            raise
        except NitroError as exc:
            client.close()
            if len(urls) == 1:
                raise
            last_error = exc
            problems.append(str(exc))
            continue
        except BaseException:
            client.close()
            raise
        if problem is None:
            return client
        client.close()
        problems.append(problem)
    if last_error is not None and len(problems) == 1:
        raise last_error
    raise ApplianceStateError("no HA primary node among " + ", ".join(urls) + ": " + "; ".join(problems))


def _writable(client: NitroClient, *, alone: bool) -> str | None:
    """Log in (unless reads go without a session) and check the HA role: None when this node may be
    written to (the partition switched then), else why not. The only node given being a Secondary is
    an error of its own."""
    if not client.session.lazy_login:
        client.login()
    ha = client.ha_info()
    if ha.state == "Secondary":
        if alone:
            raise ApplianceStateError(
                f"{client.host} is the HA secondary node; point appliance.url at the primary "
                "(or list both nodes)"
            )
        return f"{client.host} is not the HA primary (state {ha.raw_state or 'Secondary'})"
    if client.partition:
        client.switch_partition(client.partition)
    log.debug("NetScaler %s: %s; writing to it", client.host, _ha_wording(ha))
    return None


def _ha_wording(ha: HaInfo) -> str:
    """What the node answered about its HA role, in its own word, and what that makes it."""
    said = ha.raw_state or "no state"
    if ha.state == "Standalone":
        return f"HA state {said}, no HA peer (a standalone node)"
    peer = f" (peer {ha.peer_address})" if ha.peer_address else ""
    return f"HA state {said}, the {ha.state.lower()} node of an HA pair{peer}"
