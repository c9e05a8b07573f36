"""A parsed YAML file (data, node lines, problems) and the bounds every file is read within."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from .problems import Loc, Problem, Severity, format_loc

MAX_FILE_BYTES = 4 * 1024 * 1024
MAX_DEPTH = 32
MAX_ENTRIES = 1000
MAX_NODES = 100_000
MAX_SCALAR_CHARS = 65536
MAX_NUMBER_CHARS = 40
MAX_SECRET_FILE_BYTES = 65536


@dataclass
class Document:
    """A parsed file: its data, node lines and the problems found while reading it."""

    path: Path
    data: object = None
    value_lines: dict[Loc, int] = field(default_factory=dict)
    key_lines: dict[Loc, int] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)
    #: locations already reported by this layer (later errors at or below them are dropped)
    reported: set[Loc] = field(default_factory=set)
    #: locations whose value came (partly) from a ${...} reference
    referenced: set[Loc] = field(default_factory=set)
    #: locations of keys given with a null value (treated as absent)
    nulls: set[Loc] = field(default_factory=set)

    @property
    def file(self) -> str:
        return str(self.path)

    def line(self, loc: Loc, *, key: bool = False) -> int:
        """The line of ``loc``'s key (``key=True``) or value; else of its closest parent; else 1."""
        if key and loc in self.key_lines:
            return self.key_lines[loc]
        while True:
            if loc in self.value_lines:
                return self.value_lines[loc]
            if loc in self.key_lines:
                return self.key_lines[loc]
            if not loc:
                return 1
            loc = loc[:-1]

    def error(self, loc: Loc, message: str, *, line: int | None = None, key: bool = False) -> None:
        self.problems.append(
            Problem(self.file, self.line(loc, key=key) if line is None else line, format_loc(loc), message)
        )
        self.reported.add(loc)

    def warn(self, loc: Loc, message: str) -> None:
        self.problems.append(
            Problem(self.file, self.line(loc, key=True), format_loc(loc), message, Severity.WARNING)
        )

    def was_reported(self, loc: Loc) -> bool:
        return any(loc[: i + 1] in self.reported for i in range(len(loc))) or () in self.reported


class Fatal(Exception):
    """The file cannot be read into data at all (the problem is already recorded)."""
