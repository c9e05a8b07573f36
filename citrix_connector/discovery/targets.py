"""What to discover: an appliances file (a list of entries in the profiles' ``appliance:`` shape) or
profiles (files or directories), whose appliances are discovered. Validated before any network call.

Appliances file::

    appliances:
      - url: https://adc1.example.com          # or [node1, node2] for an HA pair
        username: discovery
        password: ${ADC_PASSWORD}
        verify_tls: ca.pem
        partition: web                         # optional: only this partition (default: all)
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from urllib.parse import urlsplit

import yaml

from ..config import Profile, Secret, expand_profile_paths, load_appliances_file, load_profile
from ..errors import ConfigError

__all__ = ["Target", "is_appliances_file", "load_targets"]


@dataclass(frozen=True)
class Target:
    """One appliance (or HA pair) to discover."""

    name: str
    urls: tuple[str, ...]
    username: str
    password: Secret
    verify_tls: bool | Path
    timeout: float
    partitions: tuple[str, ...] | None  # None: every partition
    #: how the password was given (a ``${ENV}`` reference is copied into generated profiles; a
    #: literal never is)
    password_ref: str | None = None
    source: str = ""
    #: (partition, certkey) -> profile name, for certkeys a loaded profile manages
    managed: Mapping[tuple[str, str], str] = field(default_factory=dict)


def _raw_passwords(path: Path) -> list[object]:
    """The password values of an appliances file as written (before ${...} substitution)."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8-sig"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return []
    entries = data.get("appliances") if isinstance(data, dict) else None
    if not isinstance(entries, list):
        return []
    return [entry.get("password") if isinstance(entry, dict) else None for entry in entries]


def _env_ref(raw: str | None) -> str | None:
    """The raw value when it is exactly one ``${NAME}`` reference (what a generated profile may copy)."""
    if raw is None:
        return None
    text = raw.strip()
    if text.startswith("${") and text.endswith("}") and text.count("${") == 1:
        name = text[2:-1]
        if name and (name[0].isalpha() or name[0] == "_") and all(c.isalnum() or c == "_" for c in name):
            return text
    return None


def is_appliances_file(path: Path) -> bool:
    """True for a YAML file whose top level has ``appliances:`` (a profile has ``appliance:``)."""
    if not path.is_file():
        return False
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8-sig"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return False
    return isinstance(data, dict) and "appliances" in data


def _host(url: str) -> str:
    return urlsplit(url).netloc or url


def _unique(name: str, taken: set[str]) -> str:
    candidate, n = name, 2
    while candidate in taken:
        candidate = f"{name}#{n}"
        n += 1
    taken.add(candidate)
    return candidate


def _load_appliances_file(path: Path, env: Mapping[str, str], taken: set[str]) -> list[Target]:
    entries = load_appliances_file(path, env)
    raw = _raw_passwords(path)
    out: list[Target] = []
    for i, entry in enumerate(entries):
        appliance = entry.appliance
        password = raw[i] if i < len(raw) else None
        out.append(
            Target(
                name=_unique(_host(appliance.url), taken),
                urls=appliance.urls,
                username=appliance.username,
                password=appliance.password,
                verify_tls=appliance.verify_tls,
                timeout=appliance.timeout,
                partitions=(appliance.partition,) if appliance.partition else None,
                password_ref=_env_ref(password) if isinstance(password, str) else None,
                source=f"{path}:{entry.line}",
            )
        )
    return out


def _profile_password_ref(profile: Profile) -> str | None:
    try:
        data = yaml.safe_load(profile.source.read_text(encoding="utf-8-sig"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return None
    if isinstance(data, dict) and isinstance(data.get("appliance"), dict):
        value = data["appliance"].get("password")
        return _env_ref(value) if isinstance(value, str) else None
    return None


def _targets_from_profiles(profiles: Sequence[Profile], taken: set[str]) -> list[Target]:
    groups: dict[tuple[tuple[str, ...], str], list[Profile]] = {}
    # a profile with several appliances (appliances:) is a profile of each of them
    for p in [q.for_target(t) if q.is_multi else q for q in profiles for t in q.targets]:
        key = (tuple(sorted(u.lower().rstrip("/") for u in p.appliance.urls)), p.appliance.username)
        groups.setdefault(key, []).append(p)
    out: list[Target] = []
    for members in groups.values():
        first = members[0]
        named = {p.appliance.partition for p in members}
        partitions = None if None in named else tuple(sorted(str(n) for n in named))
        managed = {(p.appliance.partition or "default", p.certificate.certkey_name): p.name for p in members}
        out.append(
            Target(
                name=_unique(_host(first.appliance.url), taken),
                urls=first.appliance.urls,
                username=first.appliance.username,
                password=first.appliance.password,
                verify_tls=first.appliance.verify_tls,
                timeout=first.appliance.timeout,
                partitions=partitions,
                password_ref=next((r for r in map(_profile_password_ref, members) if r), None),
                source=str(first.source),
                managed=managed,
            )
        )
    return out


def load_targets(
    sources: Sequence[Path],
    *,
    partitions: Sequence[str] = (),
    env: Mapping[str, str] | None = None,
) -> tuple[list[Target], list[Profile]]:
    """Targets from appliances files and profiles (files or directories), and the profiles loaded.
    ``partitions`` (``--partition``) overrides every target's own choice. ``ConfigError`` lists every
    problem of every file."""
    environ = os.environ if env is None else env
    problems: list[str] = []
    taken: set[str] = set()
    targets: list[Target] = []
    profiles: list[Profile] = []
    profile_paths: list[Path] = []
    for source in sources:
        if is_appliances_file(source):
            try:
                targets.extend(_load_appliances_file(source, environ, taken))
            except ConfigError as exc:
                problems.extend(exc.problems)
        else:
            try:
                profile_paths.extend(expand_profile_paths([source]))
            except ConfigError as exc:
                problems.extend(exc.problems)
    for path in profile_paths:
        if is_appliances_file(path):
            continue
        try:
            profiles.append(load_profile(path, environ))
        except ConfigError as exc:
            problems.extend(exc.problems)
    if problems:
        raise ConfigError(problems)
    targets.extend(_targets_from_profiles(profiles, taken))
    # a profile for an appliance that is also listed in an appliances file marks its certkeys managed
    merged: dict[tuple[object, ...], Target] = {}
    for t in targets:
        key = (tuple(sorted(u.lower().rstrip("/") for u in t.urls)), t.username, t.partitions)
        if key in merged:
            prev = merged[key]
            merged[key] = replace(prev, managed={**prev.managed, **t.managed})
        else:
            merged[key] = t
    result = list(merged.values())
    if partitions:
        result = [replace(t, partitions=tuple(dict.fromkeys(partitions))) for t in result]
    if not result:
        raise ConfigError("nothing to discover: no appliance in " + ", ".join(str(s) for s in sources))
    return result, profiles
