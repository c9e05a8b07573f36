"""The YAML source layer: a file -> plain Python data, with the line of every node kept.

The file is read as bytes and decoded strictly (a bad byte is reported with its line and byte
offset); characters YAML forbids (NUL, other C0/C1 controls) are reported with line and column
before parsing. Parsing consumes the event stream of libyaml's C parser when available (PyYAML's
pure-Python parser otherwise) and builds dicts, tuples and scalars iteratively -- no recursion, so
deep nesting is a reported problem, not a ``RecursionError``. No object is ever constructed from a
tag: only the standard scalar tags are accepted.

YAML 1.2 booleans: only ``true``/``false`` are booleans (``yes``/``no``/``on``/``off`` stay strings,
so ``country: NO`` is Norway). ``${ENV_VAR}`` and ``${file:PATH}`` in any string value are
replaced (``$${`` gives a literal ``${``); a key with a null value is treated as absent.

Bounds (each a reported problem at its line): file size, nesting depth, entries per mapping or
list, scalar length, digits of a number, and the number of nodes after alias expansion (so an
"alias bomb" is refused instead of expanded).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

from .document import (  # re-exported: the source layer's public names
    MAX_DEPTH,
    MAX_ENTRIES,
    MAX_FILE_BYTES,
    MAX_NODES,
    MAX_NUMBER_CHARS,
    MAX_SCALAR_CHARS,
    MAX_SECRET_FILE_BYTES,
    Document,
    Fatal,
)
from .problems import Problem
from .yaml_builder import HAVE_LIBYAML, Builder

# characters YAML does not allow in a stream (c-printable), plus lone surrogates
_FORBIDDEN_RE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x84\x86-\x9f\ud800-\udfff\ufffe\uffff]")


def read(path: Path, env: Mapping[str, str]) -> Document:
    """Read ``path`` into a :class:`Document`; a problem that stops reading leaves ``data`` None."""
    doc = Document(path)
    try:
        text = _read_text(doc)
        _check_characters(doc, text)
        doc.data = Builder(doc, env).build(text)
    except Fatal:
        doc.data = None
    return doc


def _read_text(doc: Document) -> str:
    file = doc.file
    try:
        with open(doc.path, "rb") as handle:
            raw = handle.read(MAX_FILE_BYTES + 1)
    except FileNotFoundError:
        doc.problems.append(Problem(file, 0, "", "no such file"))
        raise Fatal from None
    except IsADirectoryError:
        doc.problems.append(Problem(file, 0, "", "is a directory, not a file"))
        raise Fatal from None
    except OSError as exc:
        doc.problems.append(Problem(file, 0, "", f"cannot read: {exc.strerror or exc}"))
        raise Fatal from None
    if len(raw) > MAX_FILE_BYTES:
        doc.problems.append(Problem(file, 1, "", f"larger than {MAX_FILE_BYTES // (1024 * 1024)} MiB"))
        raise Fatal
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        bad = raw[exc.start : exc.start + 1].hex()
        doc.problems.append(
            Problem(file, line, "", f"not UTF-8 text: invalid byte 0x{bad} at byte offset {exc.start}")
        )
        raise Fatal from None


def _check_characters(doc: Document, text: str) -> None:
    match = _FORBIDDEN_RE.search(text)
    if match is None:
        return
    line = text.count("\n", 0, match.start()) + 1
    column = match.start() - (text.rfind("\n", 0, match.start()) + 1) + 1
    code = f"U+{ord(match.group()):04X}"
    hint = " (a binary file?)" if match.group() == "\x00" else ""
    doc.problems.append(
        Problem(doc.file, line, "", f"control character {code} at column {column} is not allowed{hint}")
    )
    raise Fatal


__all__ = [
    "HAVE_LIBYAML",
    "MAX_DEPTH",
    "MAX_ENTRIES",
    "MAX_FILE_BYTES",
    "MAX_NODES",
    "MAX_NUMBER_CHARS",
    "MAX_SCALAR_CHARS",
    "MAX_SECRET_FILE_BYTES",
    "Document",
    "read",
]
