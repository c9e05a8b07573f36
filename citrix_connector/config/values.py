"""Small value types of the configuration: :class:`Secret` and :class:`FrozenMap`."""

from __future__ import annotations

import hmac
from collections.abc import Iterator, Mapping
from typing import Any

from pydantic import GetCoreSchemaHandler, GetJsonSchemaHandler
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema, PydanticCustomError, core_schema

from .checks import header_problem


class Secret:
    """A secret string. ``repr``/``str``/``format`` show ``***``; :meth:`reveal` gives the value.

    As a model field it accepts a string (never echoed in an error message) or a Secret, and
    refuses control characters and characters outside Latin-1 (a secret may travel in an HTTP
    header, where they would break or inject headers).
    """

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "***"

    def __str__(self) -> str:
        return "***"

    def __format__(self, format_spec: str) -> str:
        return "***"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Secret):
            return NotImplemented
        return hmac.compare_digest(self._value.encode("utf-8"), other._value.encode("utf-8"))

    def __hash__(self) -> int:
        return hash(self._value)

    def __bool__(self) -> bool:
        return bool(self._value)

    @classmethod
    def __get_pydantic_core_schema__(cls, source: Any, handler: GetCoreSchemaHandler) -> CoreSchema:
        return core_schema.no_info_plain_validator_function(cls._validate)

    @classmethod
    def __get_pydantic_json_schema__(
        cls, schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        return {
            "type": "string",
            "minLength": 1,
            "writeOnly": True,
            "description": "a secret: write it as ${ENV_VAR} or ${file:PATH} rather than in clear",
        }

    @classmethod
    def _validate(cls, value: object) -> Secret:
        if isinstance(value, Secret):
            return value
        if not isinstance(value, str):
            kind = "boolean" if isinstance(value, bool) else type(value).__name__
            kind = {"int": "integer", "float": "number", "NoneType": "null"}.get(kind, kind)
            # never echo a secret's value
            raise PydanticCustomError(
                "config_value", "{message}", {"message": f"expected a string, got {kind} (put it in quotes)"}
            )
        if not value:
            raise PydanticCustomError("config_value", "{message}", {"message": "must not be empty"})
        problem = header_problem(value, secret=True)
        if problem:
            raise PydanticCustomError("config_value", "{message}", {"message": problem})
        return cls(value)


class FrozenMap(Mapping[str, str]):
    """A read-only, hashable ``str -> str`` mapping (keeps the config models hashable)."""

    __slots__ = ("_data",)

    def __init__(self, data: Mapping[str, str] | None = None) -> None:
        self._data: dict[str, str] = dict(data or {})

    def __getitem__(self, key: str) -> str:
        return self._data[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __hash__(self) -> int:
        return hash(frozenset(self._data.items()))

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Mapping):
            return dict(self._data) == dict(other)
        return NotImplemented

    def __repr__(self) -> str:
        return repr(self._data)
