"""The `citrixagent` group and the global options every command takes, before or after its name."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
from click.core import ParameterSource

from .. import __version__
from ..notify.names import SETTINGS_ENV
from ..statedir import default_state_dir
from .context import EXIT_CODES_HELP, LICENSE_ENV, Context


def _apply_global(click_ctx: click.Context, param: click.Parameter, value: Any) -> Any:
    """A global option given after the command name: it overrides the one before (or its default)."""
    # Only what was typed after the command: an environment variable already reached the group's copy,
    # and must not override an option typed before the command.
    if param.name is None or click_ctx.get_parameter_source(param.name) is not ParameterSource.COMMANDLINE:
        return value
    obj = click_ctx.find_object(Context)
    if obj is None:  # the group always makes one; a command invoked on its own has none
        return value
    attribute = {"scm_config": "scm_config_path"}.get(param.name, param.name)
    setattr(obj, attribute, obj.verbose + value if param.name == "verbose" else value)
    if param.name in ("verbose", "log_file", "log_format"):
        obj.setup_output()
    return value


def _global_options(*, on_group: bool) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """The options every command takes, before or after its name (defined once, pip-tools style)."""
    extra: dict[str, Any] = {} if on_group else {"expose_value": False, "callback": _apply_global}
    options = [
        click.option(
            "--scm-config",
            type=click.Path(path_type=Path),
            envvar="CITRIXAGENT_SCM_CONFIG",
            help="scm.yaml with the SCM URL and credentials (default: ./scm.yaml).",
            **extra,
        ),
        click.option(
            "--state-dir",
            type=click.Path(path_type=Path),
            envvar="CITRIXAGENT_STATE_DIR",
            help="Where the state journal, local keys and the run lock live "
            f"(default: {default_state_dir()}).",
            **extra,
        ),
        click.option(
            "--log-file",
            type=click.Path(path_type=Path),
            envvar="CITRIXAGENT_LOG_FILE",
            help="Also log every decision and remote call (secrets redacted) to this rotating file.",
            **extra,
        ),
        click.option(
            "-v",
            "--verbose",
            count=True,
            help="Log to stderr, with request tracing (secrets redacted).",
            **extra,
        ),
        click.option(
            "--json", "json_output", is_flag=True, help="Machine-readable results on stdout.", **extra
        ),
        click.option(
            "--accept-license",
            is_flag=True,
            help=f"Accept LICENSE.txt (or set {LICENSE_ENV}=yes).",
            **extra,
        ),
        click.option(
            "--log-format",
            type=click.Choice(["text", "json"]),
            default="text",
            envvar="CITRIXAGENT_LOG_FORMAT",
            show_default=True,
            help="json: one JSON object per log event (run id, profile, action, result, ...).",
            **extra,
        ),
        click.option(
            "--settings",
            "settings_path",
            type=click.Path(path_type=Path),
            envvar=SETTINGS_ENV,
            help="Agent settings (notifications) file (default: ./citrixagent.yaml when present).",
            **extra,
        ),
        click.option(
            "--metrics-file",
            type=click.Path(path_type=Path),
            envvar="CITRIXAGENT_METRICS_FILE",
            help="After each run, write Prometheus metrics here (node_exporter textfile collector).",
            **extra,
        ),
    ]

    def decorate(f: Callable[..., Any]) -> Callable[..., Any]:
        # A function collects decorators bottom-up; an existing command appends in order.
        for option in options if isinstance(f, click.Command) else reversed(options):
            f = option(f)
        return f

    return decorate


class _Group(click.Group):
    """Commands get the global options too, so `citrixagent status --json` works like
    `citrixagent --json status`."""

    def add_command(self, cmd: click.Command, name: str | None = None) -> None:
        if not isinstance(cmd, click.Group):
            _global_options(on_group=False)(cmd)
        super().add_command(cmd, name)


@click.group(
    cls=_Group,
    epilog=EXIT_CODES_HELP,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110},
)
@click.version_option(__version__, prog_name="citrixagent")
@_global_options(on_group=True)
@click.pass_context
def cli(
    click_ctx: click.Context,
    scm_config: Path | None,
    state_dir: Path | None,
    log_file: Path | None,
    log_format: str,
    settings_path: Path | None,
    metrics_file: Path | None,
    verbose: int,
    json_output: bool,
    accept_license: bool,
) -> None:
    """citrixagent: NetScaler certificates issued, renewed and installed from Sectigo Certificate Manager.

    Global options may be given before or after the command name."""
    obj = Context(
        scm_config,
        state_dir or default_state_dir(),
        json_output,
        verbose,
        accept_license,
        log_file,
        settings_path=settings_path,
        metrics_file=metrics_file,
        log_format=log_format,
    )
    obj.setup_output()
    click_ctx.obj = obj
    click_ctx.call_on_close(obj.close)
