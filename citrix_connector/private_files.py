"""Files and directories private to the agent's account, from the moment they exist.

Everything the agent creates (the state directory and its ``keys/`` and ``profiles/`` folders, the
lock file, journal and temp files, the log file and its rotations) is 0700 for directories and 0600
for files, whatever the process umask: the mode is given at creation and then set explicitly, because
a umask can only remove bits (under ``umask 000`` a ``mkdir(parents=True)`` makes 0777 parents).

Existing files and directories keep the mode their owner gave them. On Windows, POSIX modes do not
apply (files inherit the ACL of their folder; see the README): the calls create without ``chmod``.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

__all__ = ["DIR_MODE", "FILE_MODE", "make_private_dir", "open_private"]

DIR_MODE = 0o700
FILE_MODE = 0o600
_POSIX = sys.platform != "win32"


def make_private_dir(path: Path) -> None:
    """Create ``path`` and every missing parent as 0700 directories; existing ones are left alone.

    Raises ``OSError`` like ``Path.mkdir``; an existing ``path`` is fine.
    """
    path = Path(path)
    missing: list[Path] = []
    probe = path
    while not probe.exists():
        missing.append(probe)
        if probe.parent == probe:
            break
        probe = probe.parent
    for directory in reversed(missing):
        try:
            directory.mkdir(mode=DIR_MODE)
        except FileExistsError:
            continue  # created meanwhile by another process: not ours to change
        if _POSIX:
            os.chmod(directory, DIR_MODE)
    if not path.is_dir():
        raise NotADirectoryError(f"{path} is not a directory")


def open_private(path: Path, flags: int) -> int:
    """``os.open(path, flags | O_CREAT)`` creating the file 0600; returns the descriptor.

    A file created by this call gets exactly 0600 (umask notwithstanding); an existing file keeps its
    mode. Symbolic links are not followed where the OS can refuse them.
    """
    flags |= os.O_CREAT | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_BINARY", 0)
    if not flags & os.O_EXCL:
        try:  # create exclusively first, to know whether the file is ours to set the mode of
            fd = os.open(path, flags | os.O_EXCL, FILE_MODE)
        except FileExistsError:
            return os.open(path, flags & ~os.O_CREAT, FILE_MODE)
    else:
        fd = os.open(path, flags, FILE_MODE)
    if _POSIX:
        try:
            os.fchmod(fd, FILE_MODE)
        except OSError:
            os.close(fd)
            raise
    return fd
