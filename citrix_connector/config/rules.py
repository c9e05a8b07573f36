"""Shared machinery of the models: the strict model base, the validation context, rule reporting."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationInfo, model_validator
from typing_extensions import Self

from .problems import Loc, rule_error


class StrictModel(BaseModel):
    """Strict (no coercion), unknown keys rejected, immutable.

    The names of the fields a file gave (pydantic's ``model_fields_set``) are kept in one shared
    unchangeable set per distinct combination, not a set per instance: a set is 216-728 bytes, and a
    profile has five or more sections, so at 10,000 profiles that alone is 16 MB. A copy gets its own
    mutable set back (``model_copy(update=...)`` adds to it)."""

    model_config = ConfigDict(strict=True, extra="forbid", frozen=True, allow_inf_nan=False)

    @model_validator(mode="after")
    def _share_fields_set(self) -> Self:
        names = frozenset(self.__pydantic_fields_set__)
        shared = _FIELD_SETS.get(names)
        if shared is None:
            shared = _FIELD_SETS.setdefault(names, _SharedFieldSet(names))
        object.__setattr__(self, "__pydantic_fields_set__", shared)
        return self

    def __copy__(self) -> Self:
        return _own_fields_set(super().__copy__())

    def __deepcopy__(self, memo: dict[int, Any] | None = None) -> Self:
        return _own_fields_set(super().__deepcopy__(memo))


_M = TypeVar("_M", bound=BaseModel)


class _SharedFieldSet(set[str]):
    """A fields-set shared by many instances: a real ``set`` (pydantic-core insists, e.g. for
    ``model_dump(exclude_unset=True)``) that refuses to change."""

    def _refuse(self, *_args: object) -> None:
        raise TypeError("a shared fields-set cannot change (copy the model first)")

    add = discard = remove = update = clear = pop = _refuse  # type: ignore[assignment]
    difference_update = intersection_update = symmetric_difference_update = _refuse
    __ior__ = __iand__ = __isub__ = __ixor__ = _refuse  # type: ignore[assignment]


def _own_fields_set(copied: _M) -> _M:
    object.__setattr__(copied, "__pydantic_fields_set__", set(copied.__pydantic_fields_set__))
    return copied


# Every distinct combination of given field names, shared by the instances that have it. Bounded by
# the models' fields (in practice a few dozen combinations), whatever the number of profiles.
_FIELD_SETS: dict[frozenset[str], _SharedFieldSet] = {}


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
