"""Typed configuration problems: an error or a warning, always at ``file:line: field.path``.

A :class:`Problem` is what every check of a configuration file produces -- the YAML source layer,
the pydantic models, the cross-file checks. Its severity is a field, so callers filter on it; nobody
parses message text. ``str(problem)`` is the one-line form users see.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from pydantic_core import PydanticCustomError

from ..errors import ConfigError

Loc = tuple[str | int, ...]

#: at most this many problems are listed for one file; the rest are counted
MAX_REPORTED = 50


class Severity(str, enum.Enum):
    ERROR = "error"
    WARNING = "warning"


@dataclass(frozen=True)
class Problem:
    """One problem of one configuration file."""

    file: str
    line: int
    field: str
    message: str
    severity: Severity = Severity.ERROR

    @property
    def is_error(self) -> bool:
        return self.severity is Severity.ERROR

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{where}: {self.field}: {self.message}" if self.field else f"{where}: {self.message}"

    def to_dict(self) -> dict[str, object]:
        return {
            "file": self.file,
            "line": self.line,
            "field": self.field,
            "message": self.message,
            "severity": self.severity.value,
        }


def format_loc(loc: Sequence[str | int]) -> str:
    """``("vservers", 0, "name")`` -> ``"vservers[0].name"``."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out = f"{out}.{part}" if out else part
    return out


def raise_problems(problems: Iterable[Problem]) -> None:
    """Raise one :class:`ConfigError` for the errors among ``problems`` (sorted by line); no-op if none."""
    errors = sorted((p for p in problems if p.is_error), key=lambda p: p.line)
    if not errors:
        return
    shown = errors[:MAX_REPORTED]
    texts = [str(p) for p in shown]
    if len(errors) > len(shown):
        rest = errors[len(shown)]
        texts.append(f"{rest.file}:{rest.line}: ... and {len(errors) - len(shown)} more problems")
    raise ConfigError(texts, shown)


def rule_error(*problems: tuple[Loc, str]) -> PydanticCustomError:
    """An error of a cross-field rule: each entry is (location relative to the model, message).

    The loader expands it into one problem per entry, each at its own field and line.
    """
    first = problems[0][1] if problems else "invalid"
    return PydanticCustomError("config_rule", "{summary}", {"summary": first, "problems": list(problems)})


def fail(message: str) -> PydanticCustomError:
    """A field-level error whose message is shown as is."""
    return PydanticCustomError("config_value", "{message}", {"message": message})
