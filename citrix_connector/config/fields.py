"""Field types of the configuration models: each a validator with our own wording plus the JSON
Schema an editor uses for it. Strict: no value is coerced from another type ("2048" is not 2048)."""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Annotated, Any

from pydantic import GetCoreSchemaHandler, GetJsonSchemaHandler, ValidationInfo
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema, core_schema

from . import checks
from .checks import shown, type_name
from .problems import fail


class Validated:
    """``Annotated[T, Validated(check, schema)]``: our validator (own wording) and JSON Schema."""

    __slots__ = ("check", "schema")

    def __init__(self, check: Callable[..., Any], schema: dict[str, Any], *, with_info: bool = False) -> None:
        self.check = check if with_info else (lambda value, _info: check(value))
        self.schema = schema

    def __get_pydantic_core_schema__(self, source: Any, handler: GetCoreSchemaHandler) -> CoreSchema:
        return core_schema.with_info_plain_validator_function(self.check)

    def __get_pydantic_json_schema__(
        self, schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        return dict(self.schema)


# ------------------------------------------------------------------------------------------- text


def _kind(value: object) -> str:
    return "a mapping" if isinstance(value, dict) else "a list" if isinstance(value, (tuple, list)) else ""


def expect_str(value: object, *, hint: bool = True) -> str:
    """``value`` if it is a string, else the error "expected a string, got ..."."""
    if isinstance(value, str):
        return value
    if _kind(value):
        raise fail(f"expected a single value, got {_kind(value)}")
    quote = " (put it in quotes)" if hint and not isinstance(value, bool) and value is not None else ""
    raise fail(f"expected a string, got {type_name(value)} {shown(value)}{quote}")


def text_validator(
    max_len: int | None = None,
    *,
    header: bool = False,
    optional: bool = False,
    check: Callable[[str], str] | None = None,
) -> Callable[[object], str]:
    def validate(value: object) -> str:
        text = expect_str(value).strip()
        if not text:
            raise fail("must not be empty (omit the key instead)" if optional else "must not be empty")
        if max_len is not None and len(text) > max_len:
            raise fail(f"longer than {max_len} characters")
        if header:
            problem = checks.header_problem(text)
            if problem:
                raise fail(problem)
        if check is not None:
            problem = check(text)
            if problem:
                raise fail(problem)
        return text

    return validate


def Text(  # noqa: N802 - a type factory
    max_len: int | None = None,
    *,
    header: bool = False,
    optional: bool = False,
    check: Callable[[str], str] | None = None,
    schema: dict[str, Any] | None = None,
) -> Validated:
    """A stripped, non-empty string; ``header``: it travels in an HTTP header (Latin-1, no CR/LF)."""
    json: dict[str, Any] = {"type": "string", "minLength": 1}
    if max_len is not None:
        json["maxLength"] = max_len
    json.update(schema or {})
    return Validated(text_validator(max_len, header=header, optional=optional, check=check), json)


# ----------------------------------------------------------------------------------------- numbers


def _range_message(value: float, lo: float | None, hi: float | None) -> str:
    if lo is not None and hi is not None:
        rng = f"between {lo:g} and {hi:g}"
    elif lo is not None:
        rng = f"at least {lo:g}"
    else:
        rng = f"at most {hi:g}"
    return f"must be {rng}, got {value}"


def Int(lo: int | None = None, hi: int | None = None) -> Validated:  # noqa: N802
    def validate(value: object) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise fail(f"expected an integer, got {type_name(value)} {shown(value)}")
        if (lo is not None and value < lo) or (hi is not None and value > hi):
            raise fail(_range_message(value, lo, hi))
        return value

    json: dict[str, Any] = {"type": "integer"}
    if lo is not None:
        json["minimum"] = lo
    if hi is not None:
        json["maximum"] = hi
    return Validated(validate, json)


def Float(lo: float | None = None, hi: float | None = None, *, positive: bool = False) -> Validated:  # noqa: N802
    def validate(value: object) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise fail(f"expected a number, got {type_name(value)} {shown(value)}")
        if not math.isfinite(value):
            raise fail(f"must be a finite number, got {value}")
        if positive and not value > 0:
            raise fail(f"must be greater than 0, got {value}")
        if (lo is not None and value < lo) or (hi is not None and value > hi):
            raise fail(_range_message(value, lo, hi))
        return float(value)

    json: dict[str, Any] = {"type": "number"}
    if positive:
        json["exclusiveMinimum"] = 0
    if lo is not None:
        json["minimum"] = lo
    if hi is not None:
        json["maximum"] = hi
    return Validated(validate, json)


def _bool(value: object) -> bool:
    if not isinstance(value, bool):
        raise fail(f"expected true or false, got {type_name(value)} {shown(value)}")
    return value


Bool = Annotated[bool, Validated(_bool, {"type": "boolean"})]


# ----------------------------------------------------------------------------------------- choices


def _case_insensitive_pattern(words: list[str]) -> str:
    def ci(word: str) -> str:
        return "".join(f"[{c.lower()}{c.upper()}]" if c.isalpha() else re.escape(c) for c in word)

    return "^(" + "|".join(ci(w) for w in words) + ")$"


def Choice(  # noqa: N802
    choices: Mapping[str, str],
    *,
    normalise: Callable[[str], str] = str.lower,
    canonical: list[str] | None = None,
    error: Callable[[str], str] | None = None,
) -> Validated:
    """One of ``choices`` (accepted spelling -> canonical value), matched after ``normalise``."""
    canon = canonical or sorted(set(choices.values()))
    aliases = sorted(k for k, v in choices.items() if k != v and k.lower() != v.lower())

    def validate(value: object) -> str:
        text = expect_str(value).strip()
        probe = normalise(text)
        if probe in choices:
            return choices[probe]
        if error is not None:
            raise fail(error(text))
        also = f" (or the aliases {', '.join(aliases)})" if aliases else ""
        close = difflib.get_close_matches(probe, list(choices), n=1, cutoff=0.6)
        hint = f"; did you mean '{choices[close[0]]}'?" if close else ""
        raise fail(f"must be one of {', '.join(canon)}{also}, got {shown(text)}{hint}")

    spellings = list(dict.fromkeys([*canon, *aliases]))
    json: dict[str, Any] = {
        "anyOf": [{"enum": spellings}, {"type": "string", "pattern": _case_insensitive_pattern(spellings)}],
        "description": f"one of {', '.join(canon)}"
        + (f" (aliases: {', '.join(aliases)})" if aliases else ""),
    }
    return Validated(validate, json)


# ------------------------------------------------------------------------------------------- paths


def base_dir(info: ValidationInfo) -> Path:
    """The directory relative paths are resolved against: the YAML file's (else the working dir)."""
    context = info.context
    source = getattr(context, "source", None)
    return source.parent if isinstance(source, Path) else Path(".")


def _resolve(value: str, info: ValidationInfo) -> Path:
    path = Path(value).expanduser()
    return path if path.is_absolute() else base_dir(info) / path


def _existing_file(value: object, info: ValidationInfo) -> Path:
    if isinstance(value, Path):
        return value
    path = _resolve(text_validator(4096)(value), info)
    if not path.is_file():
        raise fail(f"file not found: {path}")
    return path


FilePath = Annotated[
    Path,
    Validated(
        _existing_file,
        {"type": "string", "minLength": 1, "description": "a file, relative to this file"},
        with_info=True,
    ),
]


def _verify_tls(value: object, info: ValidationInfo) -> bool | Path:
    if isinstance(value, (bool, Path)):
        return value
    if not isinstance(value, str):
        raise fail(f"expected true, false or a CA bundle path, got {type_name(value)} {shown(value)}")
    path = _resolve(text_validator(4096)(value), info)
    if not (path.is_file() or path.is_dir()):
        raise fail(f"file not found: {path}")
    return path


VerifyTls = Annotated[
    bool | Path,
    Validated(
        _verify_tls,
        {
            "anyOf": [{"type": "boolean"}, {"type": "string", "minLength": 1}],
            "description": "true (default), false, or a CA bundle file/directory relative to this file",
        },
        with_info=True,
    ),
]
