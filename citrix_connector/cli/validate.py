"""validate: everything ``run`` would refuse before its first network call, with run's messages and
exit code (2), as text or (``--json``) as typed problems."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from ..errors import EXIT_CONFIG, CitrixAgentError, UsageError
from ..notify.names import DEFAULT_SETTINGS_FILE
from .common import _load_scm, _load_settings, profiles_argument
from .context import LICENSE_ENV, Context
from .group import cli

if TYPE_CHECKING:
    from ..config import Problem

T = TypeVar("T")


class _Report:
    """What validate found: the files it accepted and every problem (errors and warnings)."""

    def __init__(self, text: bool) -> None:
        self.text = text
        self.files: list[dict[str, Any]] = []
        self.problems: list[Problem] = []

    def ok(self, kind: str, path: Path | str, summary: str, **facts: Any) -> None:
        self.files.append({"file": str(path), "kind": kind, **facts})
        if self.text:
            click.echo(f"ok  {path} ({summary})")

    def add(self, problems: list[Problem]) -> None:
        self.problems.extend(problems)
        if self.text:
            for problem in problems:
                click.echo(f"{problem.severity.value}: {problem}", err=True)

    def refused(self, error: CitrixAgentError, file: Path | str | None = None) -> None:
        """``error`` as run prints it (one ``error:`` line per problem), typed for --json."""
        from ..errors import ConfigError
        from ..preflight import typed_problems

        self.problems.extend(typed_problems(error, file))
        if self.text:
            for line in error.problems if isinstance(error, ConfigError) else [str(error)]:
                click.echo(f"error: {line}", err=True)

    def warn(self, message: str, file: Path | str | None = None) -> None:
        from ..config import Problem, Severity

        self.add([Problem(str(file or ""), 0, "", message, Severity.WARNING)])

    def guard(self, step: Callable[[], T], file: Path | str | None = None) -> T | None:
        try:
            return step()
        except CitrixAgentError as exc:
            self.refused(exc, file)
            return None

    @property
    def failed(self) -> bool:
        return any(p.is_error for p in self.problems)


@cli.command(short_help="Check everything run would refuse, no network.")
@profiles_argument
@click.pass_obj
def validate(ctx: Context, profiles: tuple[str, ...]) -> None:
    """Check the state directory, citrixagent.yaml, scm.yaml and PROFILES (files or directories)
    without any network call: everything `run` would refuse before its first request, with the same
    message and exit code 2. With --json: {"ok", "files", "problems": [{file, line, field, message,
    severity}]}."""
    from ..preflight import check_profile_files, check_state_dir

    report = _Report(text=not ctx.json_output)
    report.guard(lambda: check_state_dir(ctx.store), ctx.state_dir)
    _licence_note(ctx, report)
    settings_path = ctx.settings_path or Path(DEFAULT_SETTINGS_FILE)
    settings = report.guard(lambda: _load_settings(ctx), settings_path)
    if settings is not None:
        report.ok("settings", settings_path, "agent settings")
    scm = report.guard(lambda: _load_scm(ctx, required=False, log_warnings=False), ctx.scm_config_path)
    if scm is not None:
        report.ok("scm", scm.source, f"SCM {scm.api} API", api=scm.api)
        report.add(_problems(scm.warnings))
    if profiles:
        if scm is None and ctx.scm_config_path is None:
            report.warn(
                "no SCM configuration (pass --scm-config PATH or put scm.yaml in the current "
                "directory): the profiles are checked on their own; run refuses to start without it"
            )
        checks = report.guard(lambda: check_profile_files(profiles, scm), profiles[0]) or []
        for check in checks:
            report.add(check.warnings)
            if check.error is not None:
                report.refused(check.error, check.path)
            elif check.profile is not None:
                p = check.profile
                summary = f"{p.name}: {p.certificate.key.describe()}, {len(p.vservers)} vserver(s)"
                if p.is_multi:
                    summary += f", {len(p.targets)} appliances, rollout {p.rollout}"
                report.ok("profile", check.path, summary, name=p.name)
    elif scm is None and not report.problems:
        raise UsageError("nothing to validate: name profiles, or pass --scm-config")
    if ctx.json_output:
        body = {
            "ok": not report.failed,
            "files": report.files,
            "problems": [p.to_dict() for p in report.problems],
        }
        click.echo(json.dumps(body, indent=2))
    sys.exit(EXIT_CONFIG if report.failed else 0)


def _licence_note(ctx: Context, report: _Report) -> None:
    """run refuses without the licence terms accepted; validate itself does not need them."""
    import os

    if ctx.accept_license or os.environ.get(LICENSE_ENV, "").strip().lower() in {"yes", "y", "true", "1"}:
        return
    try:
        accepted = ctx.store.license_accepted()
    except OSError:
        return
    if not accepted:
        report.warn(
            "the licence terms (LICENSE.txt) have not been accepted yet: run would refuse to start; "
            f"run once interactively, or pass --accept-license, or set {LICENSE_ENV}=yes",
            ctx.state_dir,
        )


def _problems(items: tuple[object, ...]) -> list[Problem]:
    from ..config import Problem

    return [item for item in items if isinstance(item, Problem)]
