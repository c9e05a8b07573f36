"""Checks that need more than one file: a profile against scm.yaml, and the profile file list."""

from __future__ import annotations

import fnmatch
import functools
from collections.abc import Sequence
from pathlib import Path

from ..errors import ConfigError
from .problems import Problem, Severity
from .profile import Profile, SectigoSpec
from .scm import ScmConfig


def check_profile_against_scm(profile: Profile, scm: ScmConfig) -> list[Problem]:
    """Problems that need both files: errors, and warnings (``severity`` says which)."""
    problems: list[Problem] = []

    def add(path: str, message: str, severity: Severity = Severity.ERROR) -> None:
        problems.append(Problem(str(profile.source), profile.line_of(path), path, message, severity))

    spec = profile.sectigo
    admin_fields = (("org_id", spec.org_id), ("cert_type", spec.cert_type), ("term", spec.term))
    if scm.api == "admin":
        for key, value in admin_fields:
            if value is None and getattr(scm, key) is None:
                add(f"sectigo.{key}", f"required with api: admin (here, or as {key} in {scm.source})")
        if spec.profile_id is not None:
            add(
                "sectigo.profile_id",
                f"only used with api: enrollment; ignored ({scm.source})",
                Severity.WARNING,
            )
    else:
        for key, value in admin_fields:
            if value is not None:
                add(
                    f"sectigo.{key}",
                    f"ignored with api: enrollment (the REST account decides) ({scm.source})",
                    Severity.WARNING,
                )
        if spec.profile_id is None and scm.profile_id is None:
            add(
                "sectigo.profile_id",
                f"not set here nor in {scm.source}; renew needs a profile_id with api: enrollment",
                Severity.WARNING,
            )
    return problems


def sectigo_for(profile: Profile, scm: ScmConfig | None) -> SectigoSpec:
    """The profile's ``sectigo:`` with what it leaves out taken from scm.yaml (admin API: ``org_id``,
    ``cert_type``, ``term``)."""
    spec = profile.sectigo
    if scm is None or scm.api != "admin":
        return spec
    defaults = {"org_id": scm.org_id, "cert_type": scm.cert_type, "term": scm.term}
    missing = {k: v for k, v in defaults.items() if v is not None and getattr(spec, k) is None}
    return spec.model_copy(update=missing) if missing else spec


def _is_scm_file(path: Path) -> bool:
    """scm.yaml variants and the agent settings file (citrixagent.yaml) are never profiles."""
    name = path.name.lower()
    patterns = ("scm*.yaml", "scm*.yml", "citrixagent*.yaml", "citrixagent*.yml")
    return any(fnmatch.fnmatch(name, pattern) for pattern in patterns)


@functools.lru_cache(maxsize=4096)
def _resolved_dir(path: Path) -> Path:
    return path.resolve()


def resolved_path(path: Path) -> Path:
    """``path.resolve()``, with each directory resolved once per process (a fleet's thousand
    profiles share a few directories; resolving every path again cost a dozen system calls each)."""
    if path.name in ("", ".", "..") or path.is_symlink():
        return path.resolve()
    absolute = path.absolute()  # the cache holds absolute directories only (the cwd may change)
    return _resolved_dir(absolute.parent) / absolute.name


def expand_profile_paths(args: Sequence[Path]) -> list[Path]:
    """Files as given; a directory means its ``*.yaml``/``*.yml`` (sorted, not recursive) except
    ``scm*.yaml``/``scm*.yml`` and ``citrixagent*.yaml`` (the settings file). Non-existent
    paths -> one ConfigError naming them all."""
    _resolved_dir.cache_clear()  # once per command: a directory symlink may point elsewhere since
    result: list[Path] = []
    seen: set[Path] = set()
    problems: list[Problem] = []

    def add(path: Path) -> None:
        try:
            key = resolved_path(path)
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
            problems.append(Problem(str(path), 0, "", "no such file or directory"))
    if problems:
        raise ConfigError([str(p) for p in problems], problems)
    return result
