"""YAML events -> plain data with the line of every node, iteratively (YAML 1.2 booleans, ${...}
references, bounds, merge keys; no object constructed from a tag). Used by :mod:`.source`."""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Mapping
from pathlib import Path
from typing import NoReturn

import yaml
from yaml.constructor import SafeConstructor
from yaml.nodes import ScalarNode

from .document import (
    MAX_DEPTH,
    MAX_ENTRIES,
    MAX_NODES,
    MAX_NUMBER_CHARS,
    MAX_SCALAR_CHARS,
    MAX_SECRET_FILE_BYTES,
    Document,
    Fatal,
)
from .problems import Loc, Problem, format_loc

_BOOL_TAG = "tag:yaml.org,2002:bool"
_STR_TAG = "tag:yaml.org,2002:str"
_INT_TAG = "tag:yaml.org,2002:int"
_FLOAT_TAG = "tag:yaml.org,2002:float"
_NULL_TAG = "tag:yaml.org,2002:null"
_TS_TAG = "tag:yaml.org,2002:timestamp"
_MERGE_TAG = "tag:yaml.org,2002:merge"
_SEQ_TAG = "tag:yaml.org,2002:seq"
_MAP_TAG = "tag:yaml.org,2002:map"
_SCALAR_TAGS = {_STR_TAG, _BOOL_TAG, _INT_TAG, _FLOAT_TAG, _NULL_TAG, _TS_TAG}


class _Resolver(yaml.resolver.Resolver):
    """PyYAML's resolver whose only booleans are true/false (YAML 1.2 style)."""


_Resolver.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != _BOOL_TAG]
    for first, resolvers in yaml.resolver.Resolver.yaml_implicit_resolvers.items()
}
_Resolver.add_implicit_resolver(
    _BOOL_TAG, re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)

_IMPLICIT = _Resolver.yaml_implicit_resolvers
_ScalarEvent = yaml.ScalarEvent


def _resolve_plain(value: str) -> str:
    """The tag of a plain (unquoted) scalar, as PyYAML's resolver finds it (YAML 1.2 booleans)."""
    for tag, regexp in _IMPLICIT.get(value[0] if value else "", ()):
        if regexp.match(value):
            return str(tag)
    return _STR_TAG


_CONSTRUCTOR = SafeConstructor()
#: libyaml's C parser when PyYAML was built with it (only its event stream is used)
_Parser: type = getattr(yaml, "CBaseLoader", None) or yaml.BaseLoader
HAVE_LIBYAML = _Parser is not yaml.BaseLoader

_REF_RE = re.compile(r"\$\$\{|\$\{([A-Za-z_][A-Za-z0-9_]*)\}|\$\{file:([^}]*)\}|\$\{")


class _Frame:
    __slots__ = ("anchor", "items", "keys", "loc", "merges", "pending", "tagged", "is_map")

    def __init__(self, loc: Loc, is_map: bool, anchor: str | None) -> None:
        self.loc = loc
        self.is_map = is_map
        self.anchor = anchor
        self.items: list[object] = []
        self.keys: dict[str, object] = {}
        self.merges: list[tuple[object, int]] = []
        self.pending: object = _NO_KEY  # the mapping key waiting for its value
        self.tagged = False


_NO_KEY = object()
_SKIP = object()  # a key that was rejected: its value is read and dropped


#: Key locations are the same few tuples in every profile; a profile keeps its key lines for its
#: life (file:line messages), so one shared tuple per location instead of one per profile.
_LOCS: dict[Loc, Loc] = {}


def _interned(where: Loc, key: str) -> Loc:
    loc = (*where, key)
    if len(_LOCS) < 65536:
        return _LOCS.setdefault(loc, loc)
    return loc


class Builder:
    """Events -> data. Iterative: the nesting depth is the length of ``stack``."""

    def __init__(self, doc: Document, env: Mapping[str, str]) -> None:
        self.doc = doc
        self.env = env
        self.anchors: dict[str, tuple[object, int]] = {}
        self.sizes: dict[int, int] = {}  # id(container) -> node count (for anchors)
        self.nodes = 0

    def fail(self, line: int, message: str) -> NoReturn:
        self.doc.problems.append(Problem(self.doc.file, line, "", message))
        raise Fatal

    def build(self, text: str) -> object:
        parser = _Parser(text)
        stack: list[_Frame] = []
        root: object = None
        documents = 0
        value_lines = self.doc.value_lines
        try:
            while True:
                event = parser.get_event()
                cls = type(event)
                if cls is _ScalarEvent:  # the common case first
                    line = event.start_mark.line + 1
                    self.nodes += 1
                    if self.nodes > MAX_NODES:
                        self.fail(line, f"more than {MAX_NODES} YAML nodes")
                    top = stack[-1] if stack else None
                    if top is not None and top.is_map and top.pending is _NO_KEY:
                        key = self._scalar(event, True, top.loc, line)
                        top.pending = self._key(top, key, line)
                        continue
                    loc = self._child_loc(top)
                    value = self._scalar(event, False, loc, line)
                    if event.anchor is not None:
                        self.anchors[event.anchor] = (value, 1)
                    if top is None:
                        root = value
                    else:
                        if loc not in value_lines:
                            value_lines[loc] = line
                        self._add(top, value, line)
                    continue
                if event is None or cls is yaml.StreamEndEvent:
                    break
                line = event.start_mark.line + 1 if event.start_mark is not None else 1
                if cls is yaml.DocumentStartEvent:
                    documents += 1
                    if documents > 1:
                        self.fail(line, "more than one YAML document in the file")
                    continue
                if cls is yaml.StreamStartEvent or cls is yaml.DocumentEndEvent:
                    continue
                if cls is yaml.MappingEndEvent or cls is yaml.SequenceEndEvent:
                    frame = stack.pop()
                    value = self._finish(frame)
                    if stack:
                        self._add(stack[-1], value, line)
                    else:
                        root = value
                    continue
                self.nodes += 1
                if self.nodes > MAX_NODES:
                    self.fail(line, f"more than {MAX_NODES} YAML nodes")
                top = stack[-1] if stack else None
                is_key = top is not None and top.is_map and top.pending is _NO_KEY
                loc = top.loc if is_key and top is not None else self._child_loc(top)
                if cls is yaml.MappingStartEvent or cls is yaml.SequenceStartEvent:
                    if len(stack) >= MAX_DEPTH:
                        self.fail(line, f"nested deeper than {MAX_DEPTH} levels")
                    is_map = cls is yaml.MappingStartEvent
                    frame = _Frame(loc, is_map, event.anchor)
                    if event.tag not in (None, "!", _MAP_TAG if is_map else _SEQ_TAG):
                        self._error(loc, f"unsupported YAML tag {event.tag!r}", line)
                        frame.tagged = True
                    if not is_key:
                        value_lines.setdefault(loc, line)
                    stack.append(frame)
                    continue
                if cls is yaml.AliasEvent:
                    if event.anchor is None or event.anchor not in self.anchors:
                        self.fail(line, f"unknown alias *{event.anchor}")
                    value, size = self.anchors[event.anchor]
                    self.nodes += size
                    if self.nodes > MAX_NODES:
                        self.fail(line, f"more than {MAX_NODES} YAML nodes after expanding aliases")
                    if top is None:
                        root = value
                    else:
                        if not is_key:
                            value_lines.setdefault(loc, line)
                        self._add(top, value, line)
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            what = " ".join(p for p in (exc.context, exc.problem) if p) or "syntax error"
            self.fail(mark.line + 1 if mark is not None else 1, f"invalid YAML: {what}")
        except yaml.YAMLError as exc:
            self.fail(1, f"invalid YAML: {exc}")
        finally:
            parser.dispose()
        if documents == 0:
            self.fail(1, "the file is empty")
        return root

    # ------------------------------------------------------------------------------- structure

    @staticmethod
    def _child_loc(top: _Frame | None) -> Loc:
        """The location of the next value node under ``top`` (not of a key)."""
        if top is None:
            return ()
        if not top.is_map:
            return (*top.loc, len(top.items))
        pending = top.pending
        if type(pending) is str:
            return (*top.loc, pending)
        return (*top.loc, "<<" if pending is _MergeKey else "\x00")  # merged or dropped value

    def _error(self, loc: Loc, message: str, line: int) -> None:
        self.doc.problems.append(Problem(self.doc.file, line, format_loc(loc), message))
        self.doc.reported.add(loc)

    def _add(self, frame: _Frame, value: object, line: int) -> None:
        if not frame.is_map:
            frame.items.append(value)
            return
        if frame.pending is _NO_KEY:  # value is a key (a mapping or list as a key)
            frame.pending = self._key(frame, value, line)
            return
        key = frame.pending
        frame.pending = _NO_KEY
        if type(key) is str:
            if value is None:
                self.doc.nulls.add((*frame.loc, key))
            else:
                frame.keys[key] = value
        elif key is _MergeKey:
            frame.merges.append((value, line))

    def _key(self, frame: _Frame, key: object, line: int) -> object:
        where = frame.loc
        if key is _MergeKey:
            return key
        if not isinstance(key, str):
            self.doc.problems.append(
                Problem(self.doc.file, line, format_loc(where) or "(top level)", "keys must be plain names")
            )
            return _SKIP
        loc = _interned(where, key)
        if loc in self.doc.key_lines:
            first = self.doc.key_lines[loc]
            self.doc.problems.append(
                Problem(self.doc.file, line, format_loc(loc), f"duplicate key (first given on line {first})")
            )
            return _SKIP
        self.doc.key_lines[loc] = line
        return key

    def _finish(self, frame: _Frame) -> object:
        value: dict[str, object] | tuple[object, ...]
        if frame.is_map:
            if frame.merges:
                merged: dict[str, object] = {}
                for item, line in frame.merges:
                    sources = item if isinstance(item, tuple) else (item,)
                    for source in sources:
                        if not isinstance(source, dict):
                            self.doc.problems.append(
                                Problem(
                                    self.doc.file,
                                    line,
                                    format_loc(frame.loc) or "(top level)",
                                    "invalid merge key: '<<' needs a mapping or a list of mappings",
                                )
                            )
                            continue
                        for k, v in source.items():
                            merged.setdefault(k, v)
                            self.doc.key_lines.setdefault((*frame.loc, k), line)
                merged.update(frame.keys)
                value = merged
            else:
                value = frame.keys
        else:
            value = tuple(frame.items)
        if len(value) > MAX_ENTRIES:  # reported once, and not validated entry by entry
            self._error(frame.loc, f"more than {MAX_ENTRIES} entries", self.doc.line(frame.loc))
            value = {} if frame.is_map else ()
        if frame.anchor is not None:
            self.anchors[frame.anchor] = (value, self._size(value))
        return value

    def _size(self, value: object) -> int:
        total = 1
        todo = [value]
        while todo:
            item = todo.pop()
            if isinstance(item, dict):
                total += len(item)
                todo.extend(item.values())
            elif isinstance(item, tuple):
                total += len(item)
                todo.extend(item)
            if total > MAX_NODES:
                break
        return total

    # ---------------------------------------------------------------------------------- scalars

    def _scalar(self, event: yaml.ScalarEvent, is_key: bool, loc: Loc, line: int) -> object:
        value: str = event.value
        tag = event.tag
        if tag is None or tag == "!":
            if not event.implicit[0]:  # quoted: a string
                if len(value) > MAX_SCALAR_CHARS:
                    self._error(loc, f"value longer than {MAX_SCALAR_CHARS} characters", line)
                    return _SKIP if is_key else ""
                return value if is_key else self._substitute(value, loc, line)
            tag = _resolve_plain(value)
        if len(value) > MAX_SCALAR_CHARS:
            self._error(loc, f"value longer than {MAX_SCALAR_CHARS} characters", line)
            return _SKIP if is_key else ""
        if tag == _STR_TAG:
            return value if is_key else self._substitute(value, loc, line)
        if tag == _MERGE_TAG and is_key:
            return _MergeKey
        if tag not in _SCALAR_TAGS:
            self._error(loc, f"unsupported YAML tag {tag!r}", line)
            return _SKIP if is_key else value
        if tag == _NULL_TAG:
            return None
        if tag == _BOOL_TAG:
            return value.lower() == "true"
        if tag in (_INT_TAG, _FLOAT_TAG) and len(value) > MAX_NUMBER_CHARS:
            self._error(loc, f"number too large ({len(value)} characters)", line)
            return _SKIP if is_key else 0
        if tag == _INT_TAG and value.isdigit() and (value[0] != "0" or value == "0"):
            return int(value)
        node = ScalarNode(tag, value)
        try:
            if tag == _INT_TAG:
                return _CONSTRUCTOR.construct_yaml_int(node)
            if tag == _FLOAT_TAG:
                return _CONSTRUCTOR.construct_yaml_float(node)
            return _CONSTRUCTOR.construct_yaml_timestamp(node)
        except (ValueError, OverflowError, yaml.YAMLError):
            self._error(loc, f"invalid value {value[:40]!r} for tag {tag}", line)
            return _SKIP if is_key else value

    def _substitute(self, value: str, loc: Loc, line: int) -> object:
        if "$" not in value:
            return value
        problems: list[str] = []
        used = False

        def repl(match: re.Match[str]) -> str:
            nonlocal used
            text = match.group(0)
            if text == "$${":
                return "${"
            used = True
            name, file_ref = match.group(1), match.group(2)
            if file_ref is not None:
                return self._read_secret_file(file_ref.strip(), problems) or text
            if name is None:
                problems.append("malformed '${...}' reference (write '$${' for a literal '${')")
                return text
            if name not in self.env:
                problems.append(f"environment variable {name} is not set")
                return text
            return self.env[name]

        result = _REF_RE.sub(repl, value)
        if used:
            self.doc.referenced.add(loc)
        for message in problems:
            self.doc.problems.append(Problem(self.doc.file, line, format_loc(loc), message))
            self.doc.reported.add(loc)
        return result

    def _read_secret_file(self, ref: str, problems: list[str]) -> str | None:
        if not ref:
            problems.append("'${file:}' needs a path")
            return None
        path = Path(ref).expanduser()
        if not path.is_absolute():
            path = self.doc.path.parent / path
        try:
            info = path.stat()
            if not stat.S_ISREG(info.st_mode):
                problems.append(f"secret file {path} is not a regular file")
                return None
            if os.name == "posix" and info.st_mode & 0o044:
                problems.append(
                    f"secret file {path} is readable by group or others "
                    f"(mode {stat.S_IMODE(info.st_mode):04o}); chmod 600 it"
                )
                return None
            with open(path, "rb") as handle:
                raw = handle.read(MAX_SECRET_FILE_BYTES + 1)
        except FileNotFoundError:
            problems.append(f"secret file not found: {path}")
            return None
        except OSError as exc:
            problems.append(f"cannot read secret file {path}: {exc.strerror or exc}")
            return None
        if len(raw) > MAX_SECRET_FILE_BYTES:
            problems.append(f"secret file {path} is larger than {MAX_SECRET_FILE_BYTES} bytes")
            return None
        try:
            text = raw.decode("utf-8-sig").rstrip("\r\n")
        except UnicodeDecodeError:
            problems.append(f"secret file {path} is not UTF-8 text")
            return None
        if not text:
            problems.append(f"secret file {path} is empty")
            return None
        return text


class _MergeKeyType:
    def __repr__(self) -> str:
        return "<<"


_MergeKey = _MergeKeyType()
