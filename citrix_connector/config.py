"""Configuration: ``scm.yaml`` and certificate profiles -> frozen, fully validated dataclasses.

Everything is checked before any network call, and every problem of a file is reported at once, each
as ``"<file>:<line>: <field.path>: <message>"`` (the line of the offending YAML node).

YAML is read with a safe loader (``yaml.compose`` level: no object construction) whose booleans are
only ``true``/``false`` -- ``yes``/``no``/``on``/``off`` stay strings, so ``country: NO`` is Norway
and a boolean field given ``yes`` is reported instead of guessed. ``${ENV_VAR}`` in any string value
is replaced from the environment; ``$${`` gives a literal ``${``.
"""

from __future__ import annotations

import datetime as _dt
import difflib
import fnmatch
import hashlib
import hmac
import ipaddress
import os
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Literal, cast
from urllib.parse import urlsplit

import yaml
from yaml.constructor import SafeConstructor
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from .crypto import KeySpec, Subject
from .errors import ConfigError

__all__ = [
    "ApplianceConfig",
    "CertificateSpec",
    "FrozenMap",
    "PollSettings",
    "Profile",
    "RenewalSpec",
    "ScmConfig",
    "Secret",
    "SectigoSpec",
    "VserverSpec",
    "check_profile_against_scm",
    "derive_certkey_name",
    "expand_profile_paths",
    "load_profile",
    "load_scm_config",
]

CERTKEY_NAME_MAX = 31
PROFILE_NAME_MAX = 63
VSERVER_NAME_MAX = 127

ApiKind = Literal["admin", "enrollment"]
AuthKind = Literal["password", "client_cert", "oauth"]
VserverType = Literal["lb", "cs", "vpn", "authentication"]
KeyLocation = Literal["local", "appliance"]


# ------------------------------------------------------------------------------------------- Secret


class Secret:
    """A secret string. ``repr``/``str``/``format`` show ``***``; :meth:`reveal` gives the value."""

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


class FrozenMap(Mapping[str, str]):
    """A read-only, hashable ``str -> str`` mapping (keeps the config dataclasses hashable)."""

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


# -------------------------------------------------------------------------------------- dataclasses


@dataclass(frozen=True)
class PollSettings:
    """Collect polling, in seconds."""

    first_wait: float = 5.0
    interval: float = 10.0
    timeout: float = 300.0


@dataclass(frozen=True)
class ScmConfig:
    source: Path
    api: ApiKind
    url: str
    customer_uri: str | None
    auth: AuthKind
    username: str | None
    password: Secret | None
    client_cert: Path | None
    client_key: Path | None
    client_id: str | None
    client_secret: Secret | None
    token_url: str | None
    profile_id: int | None
    verify_tls: bool | Path
    timeout: float
    poll: PollSettings


@dataclass(frozen=True)
class ApplianceConfig:
    urls: tuple[str, ...]
    username: str
    password: Secret
    verify_tls: bool | Path
    partition: str | None
    timeout: float

    @property
    def url(self) -> str:
        return self.urls[0]


@dataclass(frozen=True)
class VserverSpec:
    name: str
    type: VserverType
    sni: bool = False


@dataclass(frozen=True)
class CertificateSpec:
    common_name: str
    subject_alt_names: tuple[str, ...]
    key: KeySpec
    key_location: KeyLocation
    subject: Subject
    certkey_name: str


@dataclass(frozen=True)
class SectigoSpec:
    org_id: int | None = None
    cert_type: int | str | None = None
    term: int | None = None
    comments: str | None = None
    external_requester: str | None = None
    custom_fields: Mapping[str, str] = field(default_factory=FrozenMap)
    profile_id: int | None = None


@dataclass(frozen=True)
class RenewalSpec:
    days_before_expiry: int = 30
    percent_of_lifetime: float | None = None
    reuse_key: bool = False


@dataclass(frozen=True)
class Profile:
    name: str
    source: Path
    appliance: ApplianceConfig
    vservers: tuple[VserverSpec, ...]
    certificate: CertificateSpec
    sectigo: SectigoSpec
    renewal: RenewalSpec
    #: line numbers of the profile's sections/fields by dotted path (``"sectigo"``, ``"name"``...),
    #: for messages about this profile produced after loading
    lines: Mapping[str, int] = field(default_factory=dict, repr=False, compare=False)

    def line_of(self, path: str) -> int:
        """Best line for ``path``: the field's own, else its closest recorded parent's, else 1."""
        while path:
            if path in self.lines:
                return self.lines[path]
            path = path.rpartition(".")[0]
        return 1


# ------------------------------------------------------------------------------------- YAML loading

_BOOL_TAG = "tag:yaml.org,2002:bool"
_STR_TAG = "tag:yaml.org,2002:str"
_SCALAR_TAGS = {
    _STR_TAG,
    _BOOL_TAG,
    "tag:yaml.org,2002:int",
    "tag:yaml.org,2002:float",
    "tag:yaml.org,2002:null",
    "tag:yaml.org,2002:timestamp",
}


class _Loader(yaml.SafeLoader):
    """SafeLoader whose only booleans are true/false (YAML 1.2 style)."""


_Loader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != _BOOL_TAG]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver(_BOOL_TAG, re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF"))

_ENV_RE = re.compile(r"\$\$\{|\$\{([A-Za-z_][A-Za-z0-9_]*)\}|\$\{")
_MISSING = object()


def _type_name(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, _dt.date):
        return "date"
    return type(value).__name__


def _node_kind(node: Node) -> str:
    if isinstance(node, MappingNode):
        return "a mapping"
    if isinstance(node, SequenceNode):
        return "a list"
    return "a scalar"


class _Ctx:
    """Problems of one file, plus scalar construction and ${ENV} substitution."""

    def __init__(self, source: Path, env: Mapping[str, str]) -> None:
        self.source = source
        self.file = str(source)
        self.env = env
        self._problems: list[tuple[int, int, str]] = []
        self._constructor = SafeConstructor()
        self.lines: dict[str, int] = {}

    def error(self, node: Node | None, path: str, message: str) -> None:
        line = node.start_mark.line + 1 if node is not None else 1
        text = f"{self.file}:{line}: {path}: {message}" if path else f"{self.file}:{line}: {message}"
        self._problems.append((line, len(self._problems), text))

    @property
    def failed(self) -> bool:
        return bool(self._problems)

    def raise_if_failed(self) -> None:
        if self._problems:
            raise ConfigError([text for _, _, text in sorted(self._problems)])

    def compose(self) -> Node | None:
        """Read and compose the file; unreadable or malformed -> ConfigError at once."""
        try:
            text = self.source.read_text(encoding="utf-8-sig")
        except FileNotFoundError:
            raise ConfigError(f"{self.file}: no such file") from None
        except IsADirectoryError:
            raise ConfigError(f"{self.file}: is a directory, not a file") from None
        except UnicodeDecodeError:
            raise ConfigError(f"{self.file}: not UTF-8 text") from None
        except OSError as exc:
            raise ConfigError(f"{self.file}: cannot read: {exc.strerror or exc}") from None
        loader = _Loader(text)
        try:
            return loader.get_single_node()
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            line = mark.line + 1 if mark is not None else 1
            what = " ".join(p for p in (exc.context, exc.problem) if p) or "syntax error"
            raise ConfigError(f"{self.file}:{line}: invalid YAML: {what}") from None
        except yaml.YAMLError as exc:
            raise ConfigError(f"{self.file}: invalid YAML: {exc}") from None
        finally:
            loader.dispose()

    def scalar(self, node: Node, path: str, *, substitute: bool = True) -> object:
        """The Python value of a scalar node (strings env-substituted); ``_MISSING`` after an error."""
        if not isinstance(node, ScalarNode):
            self.error(node, path, f"expected a single value, got {_node_kind(node)}")
            return _MISSING
        if node.tag not in _SCALAR_TAGS:
            self.error(node, path, f"unsupported YAML tag {node.tag!r}")
            return _MISSING
        try:
            value: object = self._constructor.construct_object(node, deep=True)
        except yaml.YAMLError as exc:
            self.error(node, path, f"invalid value: {getattr(exc, 'problem', None) or exc}")
            return _MISSING
        if isinstance(value, str) and substitute:
            return self.substitute(node, path, value)
        return value

    def substitute(self, node: Node, path: str, value: str) -> object:
        ok = True

        def repl(match: re.Match[str]) -> str:
            nonlocal ok
            text = match.group(0)
            if text == "$${":
                return "${"
            name = match.group(1)
            if name is None:
                ok = False
                self.error(node, path, "malformed '${...}' reference (write '$${' for a literal '${')")
                return text
            if name not in self.env:
                ok = False
                self.error(node, path, f"environment variable {name} is not set")
                return text
            return self.env[name]

        result = _ENV_RE.sub(repl, value)
        return result if ok else _MISSING

    def flatten(self, node: MappingNode, path: str) -> bool:
        try:
            self._constructor.flatten_mapping(node)
        except yaml.YAMLError as exc:
            self.error(node, path, f"invalid merge key: {getattr(exc, 'problem', None) or exc}")
            return False
        return True


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


class _Map:
    """A validated YAML mapping: string keys, no duplicates, no unknown keys."""

    def __init__(self, ctx: _Ctx, node: MappingNode, path: str, items: dict[str, tuple[Node, Node]]) -> None:
        self.ctx = ctx
        self.node = node
        self.prefix = path
        self.items = items
        self.suggested: set[str] = set()  # keys offered as "did you mean" for a misspelt key

    @classmethod
    def open(cls, ctx: _Ctx, node: Node, path: str, allowed: Sequence[str]) -> _Map | None:
        if not isinstance(node, MappingNode):
            ctx.error(node, path, f"expected a mapping (key: value), got {_node_kind(node)}")
            return None
        if path:
            ctx.lines.setdefault(path, node.start_mark.line + 1)
        if not ctx.flatten(node, path):
            return None
        items: dict[str, tuple[Node, Node]] = {}
        suggested: set[str] = set()
        for key_node, value_node in node.value:
            key = (
                ctx.scalar(key_node, path or "(top level)", substitute=False)
                if isinstance(key_node, ScalarNode)
                else None
            )
            if not isinstance(key, str):
                ctx.error(key_node, path or "(top level)", "keys must be plain names")
                continue
            key_path = _join(path, key)
            if key in items:
                first = items[key][0].start_mark.line + 1
                ctx.error(key_node, key_path, f"duplicate key (first given on line {first})")
                continue
            if key not in allowed:
                close = difflib.get_close_matches(key, allowed, n=1, cutoff=0.6)
                if not close:
                    lowered = {a.lower(): a for a in allowed}
                    close = [lowered[key.lower()]] if key.lower() in lowered else []
                hint = f"; did you mean '{close[0]}'?" if close else f" (known keys: {', '.join(allowed)})"
                ctx.error(key_node, key_path, f"unknown key{hint}")
                suggested.update(close)
                continue
            items[key] = (key_node, value_node)
            ctx.lines.setdefault(key_path, key_node.start_mark.line + 1)
        mapping = cls(ctx, node, path, items)
        mapping.suggested = suggested - set(items)
        return mapping

    def child(self, key: str) -> str:
        return _join(self.prefix, key)

    def has(self, key: str) -> bool:
        """Present with a non-null value."""
        pair = self.items.get(key)
        return pair is not None and not (isinstance(pair[1], ScalarNode) and pair[1].tag.endswith(":null"))

    def value_node(self, key: str) -> Node | None:
        pair = self.items.get(key)
        return pair[1] if pair is not None else None

    def line_node(self, key: str) -> Node:
        """The node to blame for ``key``: its value if given, else this mapping."""
        return self.value_node(key) or self.node

    def missing(self, key: str, why: str = "") -> None:
        if key in self.suggested:  # already reported as "unknown key ...; did you mean '<key>'?"
            return
        msg = "must not be empty" if key in self.items else "required field is missing"
        self.ctx.error(self.line_node(key), self.child(key), msg + (f" ({why})" if why else ""))

    def forbid(self, key: str, why: str) -> None:
        if self.has(key):
            self.ctx.error(self.line_node(key), self.child(key), why)

    def raw(self, key: str) -> object:
        """Constructed value; None if absent/null; ``_MISSING`` after an error."""
        if not self.has(key):
            return None
        node = self.value_node(key)
        assert node is not None
        return self.ctx.scalar(node, self.child(key))

    def _bad_type(self, key: str, expected: str, value: object) -> None:
        node = self.value_node(key)
        shown = node.value if isinstance(node, ScalarNode) else value
        hint = " (put it in quotes)" if expected == "a string" and not isinstance(value, bool) else ""
        self.ctx.error(node, self.child(key), f"expected {expected}, got {_type_name(value)} {shown!r}{hint}")

    def get_str(
        self, key: str, *, required: bool = False, why: str = "", max_len: int | None = None
    ) -> str | None:
        if not self.has(key):
            if required:
                self.missing(key, why)
            return None
        value = self.raw(key)
        if value is _MISSING:
            return None
        if not isinstance(value, str):
            self._bad_type(key, "a string", value)
            return None
        value = value.strip()
        if not value:
            if required:
                self.missing(key, why)
            else:
                self.ctx.error(
                    self.value_node(key), self.child(key), "must not be empty (omit the key instead)"
                )
            return None
        if max_len is not None and len(value) > max_len:
            self.ctx.error(self.value_node(key), self.child(key), f"longer than {max_len} characters")
            return None
        return value

    def secret(self, key: str, *, required: bool = False, why: str = "") -> Secret | None:
        if not self.has(key):
            if required:
                self.missing(key, why)
            return None
        value = self.raw(key)
        if value is _MISSING:
            return None
        if not isinstance(value, str):
            node = self.value_node(key)
            # never echo a secret's value
            self.ctx.error(
                node, self.child(key), f"expected a string, got {_type_name(value)} (put it in quotes)"
            )
            return None
        if not value:
            self.missing(key, why)
            return None
        return Secret(value)

    def get_int(
        self, key: str, *, required: bool = False, lo: int | None = None, hi: int | None = None
    ) -> int | None:
        if not self.has(key):
            if required:
                self.missing(key)
            return None
        value = self.raw(key)
        if value is _MISSING:
            return None
        if isinstance(value, bool) or not isinstance(value, int):
            self._bad_type(key, "an integer", value)
            return None
        return value if self._range(key, value, lo, hi) is not None else None

    def get_float(
        self,
        key: str,
        *,
        lo: float | None = None,
        hi: float | None = None,
        positive: bool = False,
    ) -> float | None:
        if not self.has(key):
            return None
        value = self.raw(key)
        if value is _MISSING:
            return None
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            self._bad_type(key, "a number", value)
            return None
        if positive and not value > 0:
            self.ctx.error(self.value_node(key), self.child(key), f"must be greater than 0, got {value}")
            return None
        checked = self._range(key, value, lo, hi)
        return None if checked is None else float(checked)

    def _range(self, key: str, value: int | float, lo: float | None, hi: float | None) -> int | float | None:
        if value != value or (lo is not None and value < lo) or (hi is not None and value > hi):
            if lo is not None and hi is not None:
                rng = f"between {lo:g} and {hi:g}"
            elif lo is not None:
                rng = f"at least {lo:g}"
            else:
                rng = f"at most {hi:g}"
            self.ctx.error(self.value_node(key), self.child(key), f"must be {rng}, got {value}")
            return None
        return value

    def get_bool(self, key: str) -> bool | None:
        if not self.has(key):
            return None
        value = self.raw(key)
        if value is _MISSING:
            return None
        if not isinstance(value, bool):
            self._bad_type(key, "true or false", value)
            return None
        return value

    def choice(self, key: str, choices: Mapping[str, str], *, lower: bool = True) -> str | None:
        """A string mapped through ``choices`` (alias -> canonical); error with did-you-mean."""
        value = self.get_str(key)
        if value is None:
            return None
        probe = value.lower() if lower else value
        if probe in choices:
            return choices[probe]
        canon = sorted(set(choices.values()))
        aliases = sorted(k for k, v in choices.items() if k != v)
        also = f" (or the aliases {', '.join(aliases)})" if aliases else ""
        close = difflib.get_close_matches(probe, list(choices), n=1, cutoff=0.6)
        hint = f"; did you mean '{choices[close[0]]}'?" if close else ""
        self.ctx.error(
            self.value_node(key),
            self.child(key),
            f"must be one of {', '.join(canon)}{also}, got {value!r}{hint}",
        )
        return None

    def sub(self, key: str, allowed: Sequence[str]) -> _Map | None:
        if not self.has(key):
            return None
        node = self.value_node(key)
        assert node is not None
        return _Map.open(self.ctx, node, self.child(key), allowed)

    def get_path(self, key: str, *, directory_ok: bool = False) -> Path | None:
        """A path relative to the YAML file's directory that must exist."""
        value = self.get_str(key)
        if value is None:
            return None
        resolved = _resolve_path(self.ctx.source, value)
        ok = resolved.is_file() or (directory_ok and resolved.is_dir())
        if not ok:
            self.ctx.error(self.value_node(key), self.child(key), f"file not found: {resolved}")
            return None
        return resolved

    def verify_tls(self, key: str = "verify_tls") -> bool | Path:
        if not self.has(key):
            return True
        value = self.raw(key)
        if value is _MISSING:
            return True
        if isinstance(value, bool):
            return value
        if isinstance(value, str):
            got = self.get_path(key, directory_ok=True)
            return got if got is not None else True
        self._bad_type(key, "true, false or a CA bundle path", value)
        return True


def _resolve_path(source: Path, value: str) -> Path:
    path = Path(value).expanduser()
    if not path.is_absolute():
        path = source.parent / path
    return path


def _check_url(value: str, *, allow_http: bool = False) -> tuple[str | None, str]:
    """(normalized url, "") or (None, problem)."""
    try:
        parts = urlsplit(value)
    except ValueError:  # e.g. an unclosed "[" of an IPv6 address; the URL may hold a password
        return None, "not a valid URL"
    # before any message that echoes the URL: a password in it must never be shown
    if parts.username is not None or parts.password is not None:
        return None, "must not contain credentials (user:password@); use the username/password keys"
    if any(ch.isspace() for ch in value):
        return None, f"not a valid URL: {value!r} (contains whitespace)"
    scheme = parts.scheme.lower()
    if scheme == "http" and not allow_http:
        return None, f"must be an https:// URL, got {value!r} (http:// needs allow_http: true)"
    if scheme not in ("https", "http"):
        return None, f"must be an https:// URL, got {value!r}"
    if not parts.hostname:
        return None, f"not a valid URL (no host name): {value!r}"
    if parts.query or parts.fragment:
        return None, f"must not contain a query or fragment: {value!r}"
    try:
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        return None, f"invalid port in URL {value!r}"
    return value.rstrip("/"), ""


def _url(m: _Map, key: str, *, required: bool = False, allow_http: bool = False) -> str | None:
    value = m.get_str(key, required=required)
    if value is None:
        return None
    url, problem = _check_url(value, allow_http=allow_http)
    if url is None:
        m.ctx.error(m.value_node(key), m.child(key), problem)
    return url


# ------------------------------------------------------------------------------------------- names

_NS_NAME_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_#.:@=-]*$")
_PROFILE_NAME_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_#.@=-]*$")
_WINDOWS_RESERVED = {"CON", "PRN", "AUX", "NUL"} | {f"{p}{i}" for p in ("COM", "LPT") for i in range(1, 10)}
_VSERVER_NAME_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_#.:@= -]*$")


def _certkey_name_problem(name: str) -> str:
    if len(name) > CERTKEY_NAME_MAX:
        return f"longer than {CERTKEY_NAME_MAX} characters (NetScaler limit): {name!r}"
    if not _NS_NAME_RE.match(name):
        return (
            f"invalid NetScaler name {name!r}: must start with a letter, digit or '_' and contain "
            "only letters, digits and _ # . : @ = -"
        )
    return ""


def _profile_name_problem(name: str) -> str:
    if len(name) > PROFILE_NAME_MAX:
        return f"longer than {PROFILE_NAME_MAX} characters: {name!r}"
    if not _PROFILE_NAME_RE.match(name):
        return (
            f"invalid profile name {name!r}: must start with a letter, digit or '_' and contain "
            "only letters, digits and _ # . @ = -"
        )
    if name.split(".")[0].upper() in _WINDOWS_RESERVED:
        return f"{name!r} is a reserved file name on Windows"
    return ""


def derive_certkey_name(profile_name: str) -> str:
    """A valid NetScaler certkey name (<= 31 chars) derived from a profile name.

    Invalid characters become ``-``; a name too long is cut and suffixed with ``-`` + 6 hex
    characters of the SHA-256 of the full profile name, so different long names stay distinct.
    """
    name = re.sub(r"[^A-Za-z0-9_#.:@=-]", "-", profile_name)
    if not name or not re.match(r"[A-Za-z0-9_]", name[0]):
        name = "c" + name
    if len(name) > CERTKEY_NAME_MAX:
        digest = hashlib.sha256(profile_name.encode("utf-8")).hexdigest()[:6]
        name = name[: CERTKEY_NAME_MAX - 7] + "-" + digest
    return name


# ------------------------------------------------------------------------------------ DNS / IP names

_LABEL_RE = re.compile(r"^(?!-)[A-Za-z0-9-]{1,63}(?<!-)$")


def _host_name_problem(name: str) -> str:
    """'' when ``name`` is a valid DNS name (leftmost ``*`` label allowed) or an IP address."""
    try:
        ipaddress.ip_address(name)
        return ""
    except ValueError:
        pass
    if not name.isascii():
        return f"{name!r} is not ASCII; use the IDNA form (xn--...)"
    if len(name) > 253:
        return f"{name!r} is longer than 253 characters"
    labels = name.split(".")
    for i, label in enumerate(labels):
        if label == "*" and i == 0:
            continue
        if "*" in label:
            return f"{name!r}: a wildcard must be the whole leftmost label ('*.example.com')"
        if not _LABEL_RE.match(label):
            return f"{name!r} is not a valid DNS name (bad label {label!r})"
    if labels[0] == "*" and len(labels) < 3:
        return f"{name!r}: a wildcard needs at least two labels after it"
    if labels[-1].isdigit():
        return f"{name!r} is neither a valid DNS name nor an IP address"
    return ""


# --------------------------------------------------------------------------------------- scm.yaml

_SCM_KEYS = (
    "api",
    "url",
    "customer_uri",
    "auth",
    "username",
    "password",
    "client_cert",
    "client_key",
    "client_id",
    "client_secret",
    "token_url",
    "profile_id",
    "verify_tls",
    "timeout",
    "poll",
)
_POLL_KEYS = ("first_wait", "interval", "timeout")


def _open_top(ctx: _Ctx, allowed: Sequence[str]) -> _Map:
    root = ctx.compose()
    if root is None:
        raise ConfigError(f"{ctx.file}:1: the file is empty")
    top = _Map.open(ctx, root, "", allowed)
    if top is None:
        ctx.raise_if_failed()
        raise AssertionError("unreachable")  # pragma: no cover
    return top


def load_scm_config(path: Path, env: Mapping[str, str] | None = None) -> ScmConfig:
    """Load and validate ``scm.yaml``; ``ConfigError`` listing every problem."""
    path = Path(path)
    ctx = _Ctx(path, os.environ if env is None else env)
    m = _open_top(ctx, _SCM_KEYS)

    api_raw = m.choice("api", {"admin": "admin", "enrollment": "enrollment"})
    uses_client_creds = m.has("client_id") or m.has("client_secret")
    api: ApiKind
    if api_raw is not None:
        api = cast(ApiKind, api_raw)
    elif uses_client_creds and not m.has("username") and not m.has("auth"):
        api = "enrollment"
    else:
        api = "admin"

    auth: AuthKind
    if api == "admin":
        auth_raw = m.choice("auth", {"password": "password", "client_cert": "client_cert", "oauth": "oauth"})
        if auth_raw is not None:
            auth = cast(AuthKind, auth_raw)
        else:
            auth = "client_cert" if m.has("client_cert") else "password"
    else:
        auth = "oauth"
        if m.has("auth"):
            value = m.raw("auth")
            if value != "oauth":
                m.forbid("auth", "not used with api: enrollment (it always uses OAuth client credentials)")

    mode = f"api: {api}" + (f", auth: {auth}" if api == "admin" else "")
    needs: dict[str, bool] = {
        "customer_uri": api == "admin" and auth in ("password", "client_cert"),
        "username": api == "admin" and auth in ("password", "client_cert"),
        "password": api == "admin" and auth == "password",
        "client_cert": api == "admin" and auth == "client_cert",
        "client_id": auth == "oauth",
        "client_secret": auth == "oauth",
    }
    allowed_here: dict[str, bool] = {
        "customer_uri": True,
        "username": needs["username"],
        "password": needs["password"],
        "client_cert": needs["client_cert"],
        "client_key": needs["client_cert"],
        "client_id": needs["client_id"],
        "client_secret": needs["client_secret"],
        "token_url": auth == "oauth",
        "profile_id": api == "enrollment",
    }
    for key, ok in allowed_here.items():
        if not ok:
            m.forbid(key, f"not used with {mode}; remove it (or change api/auth)")

    why = f"needed with {mode}"
    url = _url(m, "url", required=True)
    customer_uri = m.get_str("customer_uri", required=needs["customer_uri"], why=why)
    username = password = None
    if allowed_here["username"]:
        username = m.get_str("username", required=needs["username"], why=why)
    if allowed_here["password"]:
        password = m.secret("password", required=needs["password"], why=why)
    client_cert = client_key = None
    if needs["client_cert"]:
        if not m.has("client_cert"):
            m.missing("client_cert", why)
        client_cert = m.get_path("client_cert")
        client_key = m.get_path("client_key")
    client_id = client_secret = None
    token_url = None
    if auth == "oauth":
        client_id = m.get_str("client_id", required=True, why=why)
        client_secret = m.secret("client_secret", required=True, why=why)
        token_url = _url(m, "token_url")
    profile_id = m.get_int("profile_id", lo=1) if api == "enrollment" else None
    verify_tls = m.verify_tls()
    timeout = m.get_float("timeout", positive=True, hi=3600)

    poll = PollSettings()
    pm = m.sub("poll", _POLL_KEYS)
    if pm is not None:
        first_wait = pm.get_float("first_wait", lo=0, hi=86400)
        interval = pm.get_float("interval", positive=True, hi=86400)
        ptimeout = pm.get_float("timeout", lo=0, hi=7 * 86400)
        poll = PollSettings(
            first_wait=poll.first_wait if first_wait is None else first_wait,
            interval=poll.interval if interval is None else interval,
            timeout=poll.timeout if ptimeout is None else ptimeout,
        )

    ctx.raise_if_failed()
    assert url is not None
    return ScmConfig(
        source=path,
        api=api,
        url=url,
        customer_uri=customer_uri,
        auth=auth,
        username=username,
        password=password,
        client_cert=client_cert,
        client_key=client_key,
        client_id=client_id,
        client_secret=client_secret,
        token_url=token_url,
        profile_id=profile_id,
        verify_tls=verify_tls,
        timeout=30.0 if timeout is None else timeout,
        poll=poll,
    )


# ----------------------------------------------------------------------------------------- profiles

_PROFILE_KEYS = ("name", "appliance", "vservers", "certificate", "sectigo", "renewal")
_APPLIANCE_KEYS = ("url", "username", "password", "verify_tls", "partition", "timeout", "allow_http")
_VSERVER_KEYS = ("name", "type", "sni")
_CERT_KEYS = (
    "common_name",
    "subject_alt_names",
    "key_type",
    "key_size",
    "curve",
    "key_location",
    "subject",
    "certkey_name",
)
_SUBJECT_KEYS = ("organization", "organizational_unit", "locality", "state", "country", "email")
_SECTIGO_KEYS = (
    "org_id",
    "cert_type",
    "term",
    "comments",
    "external_requester",
    "custom_fields",
    "profile_id",
)
_RENEWAL_KEYS = ("days_before_expiry", "percent_of_lifetime", "reuse_key")
_VSERVER_TYPES: dict[str, str] = {
    "lb": "lb",
    "loadbalancing": "lb",
    "load_balancing": "lb",
    "cs": "cs",
    "contentswitching": "cs",
    "content_switching": "cs",
    "vpn": "vpn",
    "gateway": "vpn",
    "authentication": "authentication",
    "aaa": "authentication",
}
_EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def load_profile(path: Path, env: Mapping[str, str] | None = None) -> Profile:
    """Load and validate one certificate profile; ``ConfigError`` listing every problem."""
    path = Path(path)
    ctx = _Ctx(path, os.environ if env is None else env)
    m = _open_top(ctx, _PROFILE_KEYS)

    name: str | None
    if m.has("name"):
        name = m.get_str("name")
        problem = _profile_name_problem(name) if name is not None else ""
        if problem:
            ctx.error(m.value_node("name"), "name", problem)
    else:
        name = path.stem
        problem = _profile_name_problem(name)
        if problem:
            ctx.error(m.node, "name", f"the file name gives {problem}; set 'name:' in the file")

    appliance = _load_appliance(m)
    vservers = _load_vservers(m)
    certificate = _load_certificate(m, name or path.stem)
    sectigo = _load_sectigo(m)
    renewal = _load_renewal(m)

    ctx.raise_if_failed()
    assert name is not None and appliance is not None and certificate is not None
    return Profile(
        name=name,
        source=path,
        appliance=appliance,
        vservers=vservers,
        certificate=certificate,
        sectigo=sectigo,
        renewal=renewal,
        lines=MappingProxyType(dict(ctx.lines)),
    )


def _load_appliance(top: _Map) -> ApplianceConfig | None:
    if not top.has("appliance"):
        top.missing("appliance")
        return None
    m = top.sub("appliance", _APPLIANCE_KEYS)
    if m is None:
        return None
    ctx = m.ctx
    allow_http = bool(m.get_bool("allow_http"))
    urls: list[str] = []
    if not m.has("url"):
        m.missing("url")
    else:
        node = m.value_node("url")
        assert node is not None
        entries: list[tuple[Node, str]] = []
        if isinstance(node, SequenceNode):
            if not 1 <= len(node.value) <= 2:
                ctx.error(node, m.child("url"), f"give 1 or 2 URLs (an HA pair), got {len(node.value)}")
            for i, item in enumerate(node.value):
                entries.append((item, f"{m.child('url')}[{i}]"))
        else:
            entries.append((node, m.child("url")))
        for item, item_path in entries:
            value = ctx.scalar(item, item_path)
            if value is _MISSING:
                continue
            if not isinstance(value, str) or not value.strip():
                ctx.error(item, item_path, f"expected a URL string, got {_type_name(value)}")
                continue
            url, problem = _check_url(value.strip(), allow_http=allow_http)
            if url is None:
                ctx.error(item, item_path, problem)
            elif url.lower() in (u.lower() for u in urls):
                ctx.error(item, item_path, f"duplicate URL {url!r}")
            else:
                urls.append(url)
    username = m.get_str("username", required=True)
    password = m.secret("password", required=True)
    verify_tls = m.verify_tls()
    partition = m.get_str("partition")
    if partition is not None and not _NS_NAME_RE.match(partition):
        ctx.error(m.value_node("partition"), m.child("partition"), f"invalid partition name {partition!r}")
        partition = None
    timeout = m.get_float("timeout", positive=True, hi=3600)
    if not urls or username is None or password is None:
        return None
    return ApplianceConfig(
        urls=tuple(urls),
        username=username,
        password=password,
        verify_tls=verify_tls,
        partition=partition,
        timeout=60.0 if timeout is None else timeout,
    )


def _load_vservers(top: _Map) -> tuple[VserverSpec, ...]:
    ctx = top.ctx
    if not top.has("vservers"):
        top.missing("vservers", "at least one vserver to bind the certificate to")
        return ()
    node = top.value_node("vservers")
    assert node is not None
    if not isinstance(node, SequenceNode):
        ctx.error(node, "vservers", f"expected a list of vservers, got {_node_kind(node)}")
        return ()
    if not node.value:
        ctx.error(node, "vservers", "at least one vserver is required")
        return ()
    result: list[VserverSpec] = []
    seen: dict[str, int] = {}
    for i, item in enumerate(node.value):
        path = f"vservers[{i}]"
        name: str | None
        vtype: str | None = "lb"
        sni = False
        name_node: Node = item
        if isinstance(item, ScalarNode):
            value = ctx.scalar(item, path)
            if value is _MISSING:
                continue
            if not isinstance(value, str):
                ctx.error(item, path, f"expected a vserver name or a mapping, got {_type_name(value)}")
                continue
            name = value.strip() or None
            if name is None:
                ctx.error(item, path, "empty vserver name")
        else:
            m = _Map.open(ctx, item, path, _VSERVER_KEYS)
            if m is None:
                continue
            name = m.get_str("name", required=True)
            name_node = m.line_node("name")
            if m.has("type"):
                vtype = m.choice("type", _VSERVER_TYPES)
            sni = bool(m.get_bool("sni"))
        if name is None:
            continue
        name_path = f"{path}.name" if isinstance(item, MappingNode) else path
        if len(name) > VSERVER_NAME_MAX or not _VSERVER_NAME_RE.match(name):
            ctx.error(name_node, name_path, f"invalid vserver name {name!r}")
            continue
        if name in seen:
            ctx.error(name_node, name_path, f"duplicate vserver {name!r} (also vservers[{seen[name]}])")
            continue
        seen[name] = i
        if vtype is None:
            continue
        result.append(VserverSpec(name=name, type=cast(VserverType, vtype), sni=sni))
    return tuple(result)


def _load_certificate(top: _Map, profile_name: str) -> CertificateSpec | None:
    if not top.has("certificate"):
        top.missing("certificate")
        return None
    m = top.sub("certificate", _CERT_KEYS)
    if m is None:
        return None
    ctx = m.ctx

    cn = m.get_str("common_name", required=True, max_len=64)
    if cn is not None:
        problem = _host_name_problem(cn)
        if problem:
            ctx.error(m.value_node("common_name"), m.child("common_name"), problem)
            cn = None

    sans: list[str] = [cn] if cn else []
    if m.has("subject_alt_names"):
        node = m.value_node("subject_alt_names")
        assert node is not None
        if not isinstance(node, SequenceNode):
            ctx.error(node, m.child("subject_alt_names"), f"expected a list of names, got {_node_kind(node)}")
        else:
            for i, item in enumerate(node.value):
                item_path = f"{m.child('subject_alt_names')}[{i}]"
                value = ctx.scalar(item, item_path)
                if value is _MISSING:
                    continue
                if not isinstance(value, str) or not value.strip():
                    ctx.error(item, item_path, f"expected a DNS name or IP address, got {_type_name(value)}")
                    continue
                value = value.strip()
                problem = _host_name_problem(value)
                if problem:
                    ctx.error(item, item_path, problem)
                elif value.lower() not in (s.lower() for s in sans):
                    sans.append(value)

    key = _load_key(m)
    location = m.choice("key_location", {"local": "local", "appliance": "appliance"}) or "local"

    subject_values: dict[str, str | None] = dict.fromkeys(_SUBJECT_KEYS)
    sm = m.sub("subject", _SUBJECT_KEYS)
    if sm is not None:
        limits = {"organization": 64, "organizational_unit": 64, "locality": 128, "state": 128, "email": 128}
        for key_name in _SUBJECT_KEYS:
            if key_name == "country":
                country = sm.get_str("country")
                if country is not None:
                    if not (len(country) == 2 and country.isascii() and country.isalpha()):
                        ctx.error(
                            sm.value_node("country"),
                            sm.child("country"),
                            f"must be a 2-letter country code (ISO 3166), got {country!r}",
                        )
                    else:
                        subject_values["country"] = country.upper()
                continue
            subject_values[key_name] = sm.get_str(key_name, max_len=limits[key_name])
        email = subject_values["email"]
        if email is not None and not _EMAIL_RE.match(email):
            ctx.error(sm.value_node("email"), sm.child("email"), f"not an e-mail address: {email!r}")
    if location == "appliance":
        for key_name in ("country", "state", "organization"):
            if subject_values[key_name] is None and not (sm is not None and sm.has(key_name)):
                where = sm.node if sm is not None else m.node
                ctx.error(
                    where,
                    f"{m.child('subject')}.{key_name}",
                    "required when key_location is appliance (NetScaler's CSR command needs it)",
                )

    certkey: str | None
    if m.has("certkey_name"):
        certkey = m.get_str("certkey_name")
        problem = _certkey_name_problem(certkey) if certkey is not None else ""
        if problem:
            ctx.error(m.value_node("certkey_name"), m.child("certkey_name"), problem)
            certkey = None
    else:
        certkey = derive_certkey_name(profile_name)

    if cn is None or key is None or certkey is None or ctx.failed:
        return None
    return CertificateSpec(
        common_name=cn,
        subject_alt_names=tuple(sans),
        key=key,
        key_location=cast(KeyLocation, location),
        subject=Subject(**subject_values),
        certkey_name=certkey,
    )


def _load_key(m: _Map) -> KeySpec | None:
    ctx = m.ctx
    key_type = m.get_str("key_type")
    size = m.get_int("key_size")
    curve = m.get_str("curve")
    if (m.has("key_type") and key_type is None) or (m.has("key_size") and size is None):
        return None
    if m.has("curve") and curve is None:
        return None
    algorithm = key_type or "RSA"
    is_rsa = algorithm.strip().upper() == "RSA"
    if is_rsa and size is None and curve is None:
        size = 2048
    elif not is_rsa and size is None and curve is None:
        curve = "P-256"
    try:
        return KeySpec.parse(algorithm, size, curve)
    except ValueError as exc:
        message = str(exc)
        if "algorithm" in message or not (m.has("key_size") or m.has("curve")):
            blame = "key_type"
        elif "does not match" in message and m.has("key_size"):
            blame = "key_size"
        elif "curve" in message and m.has("curve"):
            blame = "curve"
        elif m.has("key_size"):
            blame = "key_size"
        else:
            blame = "key_type"
        ctx.error(m.line_node(blame), m.child(blame), message)
        return None


def _load_sectigo(top: _Map) -> SectigoSpec:
    m = top.sub("sectigo", _SECTIGO_KEYS)
    if m is None:
        return SectigoSpec()
    ctx = m.ctx
    cert_type: int | str | None = None
    if m.has("cert_type"):
        value = m.raw("cert_type")
        if isinstance(value, bool) or not isinstance(value, (int, str)):
            if value is not _MISSING:
                m._bad_type("cert_type", "a profile id or name", value)
        elif isinstance(value, int):
            cert_type = m.get_int("cert_type", lo=1)
        else:
            cert_type = m.get_str("cert_type")

    custom: dict[str, str] = {}
    if m.has("custom_fields"):
        node = m.value_node("custom_fields")
        assert node is not None
        cpath = m.child("custom_fields")
        pairs: list[tuple[Node, str | None, str | None]] = []
        if isinstance(node, MappingNode):
            if ctx.flatten(node, cpath):
                for key_node, value_node in node.value:
                    key = ctx.scalar(key_node, cpath, substitute=False)
                    if not isinstance(key, str) or not key.strip():
                        ctx.error(key_node, cpath, "field names must be non-empty strings")
                        continue
                    item_path = f"{cpath}.{key}"
                    value = ctx.scalar(value_node, item_path)
                    if value is _MISSING:
                        continue
                    if not isinstance(value, str):
                        ctx.error(
                            value_node,
                            item_path,
                            f"expected a string, got {_type_name(value)} (put it in quotes)",
                        )
                        continue
                    pairs.append((key_node, key.strip(), value))
        elif isinstance(node, SequenceNode):
            for i, item in enumerate(node.value):
                fm = _Map.open(ctx, item, f"{cpath}[{i}]", ("name", "value"))
                if fm is None:
                    continue
                fname = fm.get_str("name", required=True)
                fvalue = fm.get_str("value", required=True)
                pairs.append((fm.line_node("name"), fname, fvalue))
        else:
            ctx.error(node, cpath, "expected a mapping (name: value) or a list of {name, value}")
        for key_node, fname, fvalue in pairs:
            if fname is None or fvalue is None:
                continue
            if fname in custom:
                ctx.error(key_node, f"{cpath}.{fname}", "duplicate custom field")
            elif len(fvalue) > 256:
                ctx.error(key_node, f"{cpath}.{fname}", "value longer than 256 characters")
            else:
                custom[fname] = fvalue

    return SectigoSpec(
        org_id=m.get_int("org_id", lo=1),
        cert_type=cert_type,
        term=m.get_int("term", lo=1),
        comments=m.get_str("comments", max_len=1024),
        external_requester=m.get_str("external_requester"),
        custom_fields=FrozenMap(custom),
        profile_id=m.get_int("profile_id", lo=1),
    )


def _load_renewal(top: _Map) -> RenewalSpec:
    m = top.sub("renewal", _RENEWAL_KEYS)
    if m is None:
        return RenewalSpec()
    days = m.get_int("days_before_expiry", lo=1, hi=365)
    percent = m.get_float("percent_of_lifetime", lo=1, hi=99)
    reuse = m.get_bool("reuse_key")
    return RenewalSpec(
        days_before_expiry=30 if days is None else days,
        percent_of_lifetime=percent,
        reuse_key=bool(reuse),
    )


# ------------------------------------------------------------------------------- cross-file checks


def check_profile_against_scm(profile: Profile, scm: ScmConfig) -> list[str]:
    """Problems that need both files. Entries starting with ``"warning: "`` are advisory only."""
    problems: list[str] = []

    def at(path: str, message: str) -> str:
        return f"{profile.source}:{profile.line_of(path)}: {path}: {message}"

    spec = profile.sectigo
    if scm.api == "admin":
        for key, value in (("org_id", spec.org_id), ("cert_type", spec.cert_type), ("term", spec.term)):
            if value is None:
                problems.append(at(f"sectigo.{key}", f"required with api: admin ({scm.source})"))
        if spec.profile_id is not None:
            problems.append(
                "warning: "
                + at("sectigo.profile_id", f"only used with api: enrollment; ignored ({scm.source})")
            )
    else:
        for key, value in (("org_id", spec.org_id), ("cert_type", spec.cert_type), ("term", spec.term)):
            if value is not None:
                problems.append(
                    "warning: "
                    + at(
                        f"sectigo.{key}",
                        f"ignored with api: enrollment (the REST account decides) ({scm.source})",
                    )
                )
        if spec.profile_id is None and scm.profile_id is None:
            problems.append(
                "warning: "
                + at(
                    "sectigo.profile_id",
                    f"not set here nor in {scm.source}; renew needs a profile_id with api: enrollment",
                )
            )
    return problems


# ------------------------------------------------------------------------------------ profile paths


def _is_scm_file(path: Path) -> bool:
    name = path.name.lower()
    return fnmatch.fnmatch(name, "scm*.yaml") or fnmatch.fnmatch(name, "scm*.yml")


def expand_profile_paths(args: Sequence[Path]) -> list[Path]:
    """Files as given; a directory means its ``*.yaml``/``*.yml`` (sorted, not recursive) except
    ``scm*.yaml``/``scm*.yml``. Non-existent paths -> one ConfigError naming them all."""
    result: list[Path] = []
    seen: set[Path] = set()
    problems: list[str] = []

    def add(path: Path) -> None:
        try:
            key = path.resolve()
        except OSError:
            key = path.absolute()
        if key not in seen:
            seen.add(key)
            result.append(path)

    for arg in args:
        path = Path(arg)
        if path.is_dir():
            found = [
                p
                for p in path.iterdir()
                if p.suffix.lower() in (".yaml", ".yml") and p.is_file() and not _is_scm_file(p)
            ]
            for p in sorted(found, key=lambda p: p.name):
                add(p)
        elif path.exists():
            add(path)
        else:
            problems.append(f"{path}: no such file or directory")
    if problems:
        raise ConfigError(problems)
    return result
