"""Everything ``run`` checks before its first network call, in one place, so that ``run`` and
``validate`` reject the same things with the same message and exit code: the state directory, the
settings file, scm.yaml, the profile paths (an empty directory, a missing file), every profile file
on its own and against scm.yaml, ``probe:`` overrides the loopback guard refuses, and profile names
used twice."""

from __future__ import annotations

import gc
import os
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import ConfigError, UsageError

if TYPE_CHECKING:
    from .config import Problem, Profile, ScmConfig
    from .state import StateStore

__all__ = ["ProfileCheck", "check_profile_files", "check_state_dir", "typed_problems"]


@dataclass
class ProfileCheck:
    """One profile file: the profile (None when it is refused), its warnings, why it was refused."""

    path: Path
    profile: Profile | None
    warnings: list[Problem] = field(default_factory=list)
    error: ConfigError | None = None


def check_profile_files(args: Sequence[str | Path], scm: ScmConfig | None) -> list[ProfileCheck]:
    """Every profile file ``args`` names (a directory: its ``*.yaml``), loaded and checked against
    ``scm`` (when given); a name used by an earlier file refuses the later one. Raises
    :class:`UsageError` when nothing is named or a directory holds no profile, and
    :class:`ConfigError` for paths that do not exist."""
    from .config import expand_profile_paths

    if not args:
        raise UsageError("no profile given: name profile files or a directory of profiles")
    paths = expand_profile_paths([Path(a) for a in args])
    if not paths:
        raise UsageError(f"no *.yaml profiles found in {', '.join(str(a) for a in args)}")
    with _loading():
        return _check_each(paths, scm)


@contextmanager
def _loading() -> Iterator[None]:
    """No garbage collection while the profiles load: a collector scanning a heap that grows by ten
    thousand profiles cost a third of loading them (10,000 profiles: 1.3 s of 6.6 s). The CLI then
    keeps them out of the collector's sight for the command (:func:`cli.common.keep_out_of_gc`)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _check_each(paths: list[Path], scm: ScmConfig | None) -> list[ProfileCheck]:
    from .config import Problem, check_profile_against_scm, load_profile
    from .config.problems import raise_problems
    from .probe.guard import refused_overrides

    checks: list[ProfileCheck] = []
    names: dict[str, Path] = {}
    for path in paths:
        check = ProfileCheck(path, None)
        checks.append(check)
        try:
            profile = load_profile(path)
            check.warnings.extend(_as_problems(profile.warnings))
            refused = [Problem(str(path), line, f, text) for f, line, text in refused_overrides(profile)]
            raise_problems(refused)  # the loopback guard (tests, demo, sandbox): before any network call
            if scm is not None:
                crossed = check_profile_against_scm(profile, scm)
                check.warnings.extend(p for p in crossed if not p.is_error)
                raise_problems(crossed)
            if profile.name in names:
                problem = Problem(
                    str(path),
                    profile.line_of("name") if "name" in profile.lines else 0,
                    "name",
                    f"profile name '{profile.name}' is also used by {names[profile.name]}",
                )
                raise ConfigError([str(problem)], [problem])
        except ConfigError as exc:
            check.error = exc
            continue
        names[profile.name] = path
        check.profile = profile
    return checks


def check_state_dir(store: StateStore) -> None:
    """What ``run`` refuses about the state directory (:class:`~.errors.StateDirError`, exit 2),
    without creating anything: it is a file, it exists and cannot be written, or it cannot be
    created because its nearest existing parent cannot be written."""
    root = store.root
    store.check_usable(write=False)
    if root.exists():
        store.check_usable(write=True)  # probes with a file it removes again
        return
    parent = root.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not os.access(parent, os.W_OK | os.X_OK):
        store.check_usable(write=True)  # fails where run would, with run's message


def typed_problems(error: Exception, file: str | Path | None = None) -> list[Problem]:
    """The problems of ``error`` as typed records (file, line, field, message, severity)."""
    from .config import Problem

    if isinstance(error, ConfigError):
        typed = [d for d in error.details if isinstance(d, Problem)]
        if typed and len(typed) == len(error.problems):
            return typed
        return [Problem(str(file or ""), 0, "", text) for text in error.problems]
    return [Problem(str(file or ""), 0, "", str(error))]


def _as_problems(items: Iterable[object]) -> list[Problem]:
    from .config import Problem, Severity

    return [i if isinstance(i, Problem) else Problem("", 0, "", str(i), Severity.WARNING) for i in items]
