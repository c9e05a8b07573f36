"""The journal's JSON <-> its typed records, checked against the records' type hints.

A value of the wrong type is :class:`Invalid` with where it was (``orders[2].ssl_id``); the store turns
that into a :class:`~citrix_connector.errors.StateError` naming the file. A fast path checks the same
without building a location per value (a fleet's status reads thousands of journals)."""

from __future__ import annotations

import functools
import json
import types
import typing
from dataclasses import MISSING, fields
from typing import Any, Literal, TypeVar, Union, cast

_T = TypeVar("_T")


class Invalid(Exception):
    pass


def _check(value: Any, hint: Any, where: str) -> Any:
    """Check ``value`` against a (simple) type hint; records become dataclass instances."""
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (Union, types.UnionType):
        return _check_union(value, args, where)
    if origin is Literal:
        if not all(isinstance(a, str) for a in args) or not isinstance(value, str):
            raise Invalid(f"{where}: expected a string, got {type(value).__name__}")
        return value
    if hint is Any:
        return value
    if origin is list:
        if not isinstance(value, list):
            raise Invalid(f"{where}: expected a list, got {type(value).__name__}")
        (item_hint,) = args or (Any,)
        return [_check(v, item_hint, f"{where}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise Invalid(f"{where}: expected an object, got {type(value).__name__}")
        return value
    if isinstance(hint, type) and hasattr(hint, "__dataclass_fields__"):
        return _from_dict(hint, value, where)
    return _check_scalar(value, hint, where)


def _check_union(value: Any, args: tuple[Any, ...], where: str) -> Any:
    if value is None and type(None) in args:
        return None
    errors: list[str] = []
    for arg in (a for a in args if a is not type(None)):
        try:
            return _check(value, arg, where)
        except Invalid as exc:
            errors.append(str(exc))
    raise Invalid(errors[0] if errors else f"{where}: unexpected null")


#: JSON scalar type -> (is this value one, what the message calls it)
_SCALARS: dict[type, tuple[typing.Callable[[Any], bool], str]] = {
    bool: (lambda v: isinstance(v, bool), "true or false"),
    int: (lambda v: isinstance(v, int) and not isinstance(v, bool), "an integer"),
    str: (lambda v: isinstance(v, str), "a string"),
}


def _check_scalar(value: Any, hint: Any, where: str) -> Any:
    if hint not in _SCALARS:
        raise Invalid(f"{where}: unsupported type {hint!r}")  # pragma: no cover - programming error
    accepts, expected = _SCALARS[hint]
    if not accepts(value):
        raise Invalid(f"{where}: expected {expected}, got {type(value).__name__}")
    return value


@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    """The resolved field types of a record class (resolving them costs more than reading a file)."""
    return typing.get_type_hints(cls)


def _from_dict(cls: type[_T], data: Any, where: str) -> _T:
    if not isinstance(data, dict):
        raise Invalid(f"{where}: expected an object, got {type(data).__name__}")
    hints = _hints(cast("type", cls))
    kwargs: dict[str, Any] = {}
    for f in fields(cls):  # type: ignore[arg-type]
        key_where = f"{where}.{f.name}" if where else f.name
        if f.name not in data:
            if f.default is MISSING and f.default_factory is MISSING:
                raise Invalid(f"{key_where}: missing")
            continue  # forward compatible: older files lack newer optional fields
        kwargs[f.name] = _check(data[f.name], hints[f.name], key_where)
    return cls(**kwargs)  # unknown extra keys are ignored


# ---- the same checks without building a "where" for every value: a fleet's status reads thousands of
# journals. Anything the fast path refuses goes through _from_dict again, which names the problem.


@functools.cache
def _shape(hint: Any) -> tuple[str, tuple[Any, ...]]:
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (Union, types.UnionType):
        others = tuple(a for a in args if a is not type(None))
        return "union", others + ((None,) if type(None) in args else ())
    if origin is Literal:
        return "literal", args
    if hint is Any:
        return "any", ()
    if origin is list:
        return "list", args or (Any,)
    if origin is dict:
        return "dict", ()
    if isinstance(hint, type) and hasattr(hint, "__dataclass_fields__"):
        return "record", ()
    return "scalar", ()


@functools.cache
def _record_fields(cls: type) -> tuple[tuple[str, Any, bool], ...]:
    hints = _hints(cls)
    return tuple(
        (f.name, hints[f.name], f.default is MISSING and f.default_factory is MISSING) for f in fields(cls)
    )


def _fast(value: Any, hint: Any) -> Any:
    """``value`` as a ``hint`` (Invalid, without a message, when it is not one)."""
    return _decoder(hint)(value)


Decode = typing.Callable[[Any], Any]


def _refuse(value: Any) -> Any:
    raise Invalid


def _same(value: Any) -> Any:
    return value


@functools.cache
def _decoder(hint: Any) -> Decode:
    """A decoder for ``hint``, built once per type: a fleet's journals are read a thousand at a time,
    and looking each field's type up again for every value cost more than reading the file."""
    kind, args = _shape(hint)
    if kind == "scalar":
        accepts = _SCALARS.get(hint)
        return _refuse if accepts is None else _checked(accepts[0])
    if kind == "record":
        return _record_decoder(hint)
    if kind == "union":
        return _union_decoder(args)
    if kind == "list":
        return _list_decoder(args[0])
    if kind == "dict":
        return _checked(lambda v: isinstance(v, dict))
    if kind == "literal":
        strings = all(isinstance(a, str) for a in args)
        return _checked(lambda v: isinstance(v, str)) if strings else _refuse
    return _same  # Any


def _checked(accepts: typing.Callable[[Any], bool]) -> Decode:
    def check(value: Any) -> Any:
        if not accepts(value):
            raise Invalid
        return value

    return check


def _union_decoder(args: tuple[Any, ...]) -> Decode:
    optional = bool(args) and args[-1] is None
    choices = [a for a in args if a is not None]

    def union(value: Any) -> Any:
        if value is None and optional:
            return None
        for arg in choices:
            try:
                return _decoder(arg)(value)
            except Invalid:
                pass
        raise Invalid

    return union


def _list_decoder(item: Any) -> Decode:
    def listed(value: Any) -> Any:
        if not isinstance(value, list):
            raise Invalid
        each = _decoder(item)
        return [each(v) for v in value]

    return listed


def _record_decoder(cls: type) -> Decode:
    compiled: tuple[tuple[str, Decode, bool], ...] | None = None  # on first use: records may nest

    def record(value: Any) -> Any:
        nonlocal compiled
        if not isinstance(value, dict):
            raise Invalid
        fields_ = compiled
        if fields_ is None:  # built whole, then published in one assignment (threads read it)
            fields_ = tuple((name, _decoder(h), required) for name, h, required in _record_fields(cls))
            compiled = fields_
        kwargs: dict[str, Any] = {}
        for name, decode, required in fields_:
            if name in value:
                kwargs[name] = decode(value[name])
            elif required:
                raise Invalid
        return cls(**kwargs)

    return record


def record_from_dict(cls: type[_T], data: Any) -> _T:
    """:func:`_from_dict`, fast when the data is valid (the usual case)."""
    try:
        return cast("_T", _fast(data, cls))
    except Invalid:
        return _from_dict(cls, data, "")  # raises Invalid with where and what


@functools.cache
def _field_names(cls: type) -> tuple[str, ...]:
    return tuple(f.name for f in fields(cls))


def plain(value: Any) -> Any:
    """What ``dataclasses.asdict`` gives for the journal's records (plain dataclasses, lists, dicts
    and JSON scalars), without its deep copies: several saves per profile per run add up."""
    if hasattr(value, "__dataclass_fields__"):
        return {name: plain(getattr(value, name)) for name in _field_names(cast("type", type(value)))}
    if isinstance(value, list):
        return [plain(v) for v in value]
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    return value


def state_to_json(state: Any) -> str:
    return json.dumps(plain(state), sort_keys=True, indent=2, ensure_ascii=False) + "\n"
