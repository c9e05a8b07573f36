"""Loading: a YAML file -> a validated model, or one ConfigError listing every problem of the file.

Each problem is ``file:line: field.path: message`` -- the line of the offending YAML node, kept by
the source layer; pydantic's errors are translated into the same wording (unknown keys get a "did
you mean").
"""

from __future__ import annotations

import difflib
import os
import stat
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from . import source
from .appliances import ApplianceEntry, AppliancesFile
from .checks import shown, type_name
from .problems import Loc, Problem, Severity, format_loc, raise_problems
from .profile import Profile
from .rules import LoadContext
from .scm import ScmConfig

M = TypeVar("M", bound=BaseModel)

#: keys of the models that are not YAML keys (set by the loader)
_INTERNAL = frozenset({"source"})
#: where a missing key gets a hint
_MISSING_HINTS: dict[Loc, str] = {("vservers",): "at least one vserver to bind the certificate to"}
_NOUNS: dict[Loc, str] = {("vservers",): "vserver", ("appliances",): "appliance entry"}
#: secrets that may be written in clear (then the file should not be readable by others)
_SECRET_LOCS: dict[type[BaseModel], tuple[Loc, ...]] = {
    ScmConfig: (("password",), ("client_secret",), ("proxy",)),
    Profile: (("appliance", "password"), ("appliance", "proxy")),
}


def load_scm_config(path: Path, env: Mapping[str, str] | None = None) -> ScmConfig:
    """Load and validate ``scm.yaml``; ``ConfigError`` listing every problem."""
    return _load(ScmConfig, Path(path), env)


def load_profile(path: Path, env: Mapping[str, str] | None = None) -> Profile:
    """Load and validate one certificate profile; ``ConfigError`` listing every problem."""
    return _load(Profile, Path(path), env)


def load_appliances_file(path: Path, env: Mapping[str, str] | None = None) -> list[ApplianceEntry]:
    """Load and validate an appliances file (``appliances:`` a list of ``appliance:`` blocks)."""
    path = Path(path)
    doc: list[source.Document] = []
    loaded = _load(AppliancesFile, path, env, keep=doc)
    return [
        ApplianceEntry(appliance, doc[0].line(("appliances", i)))
        for i, appliance in enumerate(loaded.appliances)
    ]


def _load(
    model: type[M], path: Path, env: Mapping[str, str] | None, keep: list[source.Document] | None = None
) -> M:
    doc = source.read(path, os.environ if env is None else env)
    if keep is not None:
        keep.append(doc)
    problems = doc.problems
    if doc.data is None:
        raise_problems(problems)
    if not isinstance(doc.data, dict):
        kind = "a list" if isinstance(doc.data, tuple) else "a scalar"
        problems.append(Problem(doc.file, 1, "", f"expected a mapping (key: value), got {kind}"))
        raise_problems(problems)
    data: dict[str, Any] = doc.data  # type: ignore[assignment]
    for key in _INTERNAL & set(data):
        problems.append(Problem(doc.file, doc.line((key,), key=True), key, _unknown_key(model, (), key)))
        del data[key]
    data["source"] = path
    context = LoadContext(source=path, reported=set(doc.reported), nulls=doc.nulls)
    result: M | None = None
    try:
        result = model.model_validate(data, context=context)
    except ValidationError as exc:
        problems += _translate(model, doc, context, exc)
    problems += _rule_problems(model, doc, context)
    raise_problems(problems)
    assert result is not None
    warnings = [p for p in problems if not p.is_error] + _literal_secret_warnings(model, doc, data)
    if isinstance(result, Profile):
        result._lines_file = path.absolute()  # its lines are read again only if a problem needs one
    if warnings and isinstance(result, (Profile, ScmConfig)):
        result._warnings = tuple(warnings)
    return result


# ------------------------------------------------------------------------------------ translation


def _translate(
    model: type[BaseModel], doc: source.Document, context: LoadContext, exc: ValidationError
) -> list[Problem]:
    out: list[Problem] = []
    suggested: set[Loc] = set()
    errors = exc.errors(include_url=False)
    for err in errors:  # unknown keys first: their suggestions silence the "missing" they explain
        if err["type"] == "extra_forbidden":
            loc = tuple(err["loc"])
            message = _unknown_key(model, loc[:-1], str(loc[-1]))
            if "did you mean '" in message:
                suggested.add((*loc[:-1], message.rsplit("'", 2)[1]))
            out.append(Problem(doc.file, doc.line(loc, key=True), format_loc(loc), message))
    for err in errors:
        loc = tuple(err["loc"])
        kind = err["type"]
        if kind == "extra_forbidden" or _dropped(context, loc):
            continue
        if kind == "config_rule":
            for sub, message in err["ctx"]["problems"]:
                full = (*loc, *sub)
                if not _dropped(context, full):
                    out.append(Problem(doc.file, doc.line(full), format_loc(full), message))
            continue
        if kind == "missing" and loc in suggested:
            continue
        if kind == "too_short" and any(
            len(e["loc"]) > len(loc) and tuple(e["loc"][: len(loc)]) == loc for e in errors
        ):
            continue  # the items that failed are reported themselves
        out.append(Problem(doc.file, doc.line(loc), format_loc(loc), _message(err, loc, context)))
    context.suggested = suggested
    return out


def _dropped(context: LoadContext, loc: Loc) -> bool:
    return any(loc[:i] in context.reported for i in range(1, len(loc) + 1))


def _rule_problems(model: type[BaseModel], doc: source.Document, context: LoadContext) -> list[Problem]:
    suggested = context.suggested
    return [
        Problem(doc.file, doc.line(loc), format_loc(loc), message)
        for loc, message in context.problems
        if loc not in suggested
    ]


def _message(err: Any, loc: Loc, context: LoadContext) -> str:
    kind = err["type"]
    value = err.get("input")
    ctx = err.get("ctx") or {}
    if kind == "config_value":
        return str(ctx["message"])
    if kind == "missing":
        if loc in context.nulls:
            return "must not be empty"
        hint = _MISSING_HINTS.get(loc)
        return "required field is missing" + (f" ({hint})" if hint else "")
    if kind in ("model_type", "model_attributes_type", "dict_type"):
        what = "a list" if isinstance(value, tuple) else "a scalar"
        return f"expected a mapping (key: value), got {what}"
    if kind in ("tuple_type", "list_type"):
        return f"expected a list, got {type_name(value)} {shown(value)}"
    if kind == "too_short":
        noun = _NOUNS.get(loc, "entry")
        return f"at least one {noun} is required" if ctx.get("min_length") == 1 else str(err["msg"])
    if kind == "too_long":
        return f"at most {ctx.get('max_length')} entries, got {ctx.get('actual_length')}"
    return str(err["msg"])


def _unknown_key(model: type[BaseModel], parent: Loc, key: str) -> str:
    allowed = _keys_at(model, parent)
    close = difflib.get_close_matches(key, allowed, n=1, cutoff=0.6)
    if not close:
        lowered = {a.lower(): a for a in allowed}
        close = [lowered[key.lower()]] if key.lower() in lowered else []
    return "unknown key" + (
        f"; did you mean '{close[0]}'?" if close else f" (known keys: {', '.join(allowed)})"
    )


def _keys_at(model: type[BaseModel], loc: Loc) -> list[str]:
    """The YAML keys of the model found at ``loc`` below ``model``."""
    current: Any = model
    for part in loc:
        if isinstance(part, int):
            current = _item_type(current)
            continue
        fields = _yaml_fields(current)
        current = _model_of(fields.get(part))
    return list(_yaml_fields(current))


def _yaml_fields(model: Any) -> dict[str, Any]:
    if not (isinstance(model, type) and issubclass(model, BaseModel)):
        return {}
    return {
        (info.alias or name): info.annotation
        for name, info in model.model_fields.items()
        if name not in _INTERNAL
    }


def _model_of(annotation: Any) -> Any:
    """The model class in ``X``, ``X | None``, ``tuple[X, ...]`` (else the annotation itself)."""
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _model_of(typing.get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType):
        for arg in typing.get_args(annotation):
            found = _model_of(arg)
            if isinstance(found, type) and issubclass(found, BaseModel):
                return found
    return annotation


def _item_type(annotation: Any) -> Any:
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _item_type(typing.get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType):  # an optional list (appliances:)
        found = [_item_type(arg) for arg in typing.get_args(annotation)]
        return next((f for f in found if f is not None), None)
    if origin is tuple:
        return _model_of(typing.get_args(annotation)[0])
    return None


# --------------------------------------------------------------------------------------- warnings


def _literal_secret_warnings(
    model: type[BaseModel], doc: source.Document, data: dict[str, Any]
) -> list[Problem]:
    """A secret written in clear in a file others can read: a warning (as ssh and certbot do)."""
    if os.name != "posix":
        return []
    literal = []
    locs = list(_SECRET_LOCS.get(model, ()))
    entries = data.get("appliances") if model is Profile else None
    for i in range(len(entries) if isinstance(entries, tuple) else 0):
        locs += [("appliances", i, "password"), ("appliances", i, "proxy")]
    for loc in locs:
        value: Any = data
        for part in loc:
            if isinstance(part, int):
                value = value[part] if isinstance(value, tuple) and part < len(value) else None
            else:
                value = value.get(part) if isinstance(value, dict) else None
        if not isinstance(value, str) or loc in doc.referenced:
            continue
        if loc[-1] == "proxy" and not _has_password(value):
            continue
        literal.append(loc)
    if not literal:
        return []
    try:
        mode = stat.S_IMODE(doc.path.stat().st_mode)
    except OSError:
        return []
    if not mode & 0o044:
        return []
    return [
        Problem(
            doc.file,
            doc.line(loc, key=True),
            format_loc(loc),
            f"a secret written in clear in a file readable by group or others (mode {mode:04o}): "
            f"chmod 600 {doc.path}, or write it as ${{ENV_VAR}} or ${{file:PATH}}",
            Severity.WARNING,
        )
        for loc in literal
    ]


def _has_password(url: str) -> bool:
    from urllib.parse import urlsplit

    try:
        return urlsplit(url).password is not None
    except ValueError:
        return False
