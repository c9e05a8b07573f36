"""A socketserver served on a daemon thread, started and stopped the same way by every simulator."""

from __future__ import annotations

import socketserver
import threading


class ServingThread:
    """Runs ``server.serve_forever`` on a daemon thread; :meth:`stop` shuts it down and closes it."""

    def __init__(self, server: socketserver.BaseServer, name: str) -> None:
        self.server = server
        # A short poll interval: shutdown() waits up to one interval, and tests stop many servers.
        self._thread = threading.Thread(
            target=lambda: server.serve_forever(poll_interval=0.02), name=name, daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(timeout=5)
