"""Known secret values scrubbed from any text that leaves the agent (JSON log lines, notifications).

The clients already redact what they trace (secret fields and headers, see :mod:`citrix_connector.http`);
this is the second belt: the configured secret values themselves (SCM and appliance passwords, client
secrets, SMTP password, webhook URLs and tokens) are replaced by ``***`` wherever they appear.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable

__all__ = ["REDACTED", "Scrubber", "scrubber"]

REDACTED = "***"
MIN_SECRET_LENGTH = 4  # shorter values would scrub ordinary words


class Scrubber:
    def __init__(self) -> None:
        self._secrets: tuple[str, ...] = ()
        self._lock = threading.Lock()

    def add(self, values: Iterable[str | None]) -> None:
        with self._lock:
            known = set(self._secrets)
            known.update(v for v in values if v and len(v) >= MIN_SECRET_LENGTH)
            self._secrets = tuple(sorted(known, key=len, reverse=True))  # longest first

    def clear(self) -> None:
        with self._lock:
            self._secrets = ()

    def __call__(self, text: str) -> str:
        for secret in self._secrets:
            if secret in text:
                text = text.replace(secret, REDACTED)
        return text


#: the process-wide scrubber the CLI fills with every secret it loads
scrubber = Scrubber()
