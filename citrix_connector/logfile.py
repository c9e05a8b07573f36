"""The ``--log-file``: created private (0600, rotations too), tracebacks only for unexpected errors.

A profile that fails because SCM or the NetScaler refused, or a file was wrong, is an expected
outcome: its one-line message is logged, not a stack trace. Any other exception is a bug and keeps
its traceback in the file.
"""

from __future__ import annotations

import io
import logging
import logging.handlers
import os
from pathlib import Path

from .errors import CitrixAgentError
from .private_files import open_private

__all__ = ["ExpectedErrorFormatter", "PrivateRotatingFileHandler"]


class PrivateRotatingFileHandler(logging.handlers.RotatingFileHandler):
    """A ``RotatingFileHandler`` whose file (and every rotated successor) is created 0600."""

    def _open(self) -> io.TextIOWrapper:
        fd = open_private(Path(self.baseFilename), os.O_WRONLY | os.O_APPEND)
        return open(fd, "a", encoding=self.encoding, errors=self.errors)


class ExpectedErrorFormatter(logging.Formatter):
    """Formats records without the traceback when the exception is one of the agent's own errors."""

    def format(self, record: logging.LogRecord) -> str:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, CitrixAgentError):
            # a copy: the record is shared with the other handlers (stderr with -v keeps the trace)
            record = logging.makeLogRecord({**record.__dict__, "exc_info": None, "exc_text": None})
        return super().format(record)
