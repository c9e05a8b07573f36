"""Shared machinery of the models: the strict model base, the validation context, rule reporting."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from pydantic import BaseModel, ConfigDict, ValidationInfo

from .problems import Loc, rule_error


class StrictModel(BaseModel):
    """Strict (no coercion), unknown keys rejected, immutable."""

    model_config = ConfigDict(strict=True, extra="forbid", frozen=True, allow_inf_nan=False)


@dataclass
class LoadContext:
    """Passed as pydantic's validation context by the loader."""

    source: Path | None = None
    #: problems found by the cross-field rules (model validators), relative to the root model
    problems: list[tuple[Loc, str]] = field(default_factory=list)
    #: locations already reported (errors pydantic finds there later are dropped)
    reported: set[Loc] = field(default_factory=set)
    #: keys given with a null value (treated as absent; "must not be empty" when required)
    nulls: set[Loc] = field(default_factory=set)
    #: keys offered as "did you mean" for a misspelt key (their "missing" is not reported twice)
    suggested: set[Loc] = field(default_factory=set)


def report(info: ValidationInfo, problems: list[tuple[Loc, str]]) -> None:
    """Hand the problems a root model's rule found to the loader (all problems of a file at once);
    raise them when validating without the loader's context."""
    if not problems:
        return
    context = info.context
    if isinstance(context, LoadContext):
        context.problems.extend(problems)
        context.reported.update(loc for loc, _ in problems)
        return
    raise rule_error(*problems)


def is_null(info: ValidationInfo, loc: Loc) -> bool:
    context = info.context
    return isinstance(context, LoadContext) and loc in context.nulls


def given(data: dict[str, object], key: str) -> bool:
    return data.get(key) is not None
