"""Global options after the command name, help texts, one-line usage errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from citrix_connector.sandbox.world import Sandbox
from citrix_connector.state import StateStore

COMMANDS = ["enroll", "renew", "replace", "revoke", "status", "run", "validate", "demo", "schedule"]


def test_global_options_after_the_command(world: Sandbox, cli, tmp_path: Path) -> None:
    state = tmp_path / "other-state"
    profile = world.profile_path("lb-profile")
    res = cli("enroll", "--scm-config", world.scm_yaml, "--state-dir", state, "--json", profile)
    assert res.code == 0, res.output
    assert json.loads(res.out)[0]["result"] == "ok"
    assert StateStore(state).load("lb-profile").current is not None  # the state dir typed after the command
    res = cli("status", "--json", "--state-dir", state, "--scm-config", world.scm_yaml, profile)
    assert res.code == 0, res.output
    assert json.loads(res.out)[0]["serial"]


def test_option_after_the_command_wins(world: Sandbox, cli, tmp_path: Path) -> None:
    first, second = tmp_path / "first", tmp_path / "second"
    res = cli("--state-dir", first, "--scm-config", world.scm_yaml, "enroll", "--state-dir", second,
              world.profile_path("lb-profile"))
    assert res.code == 0, res.output
    assert StateStore(second).load("lb-profile").current is not None
    assert StateStore(first).load("lb-profile").current is None


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_help_shows_the_global_options(cli, command: str) -> None:
    res = cli(command, "--help")
    assert res.code == 0
    for option in ("--scm-config", "--state-dir", "--log-file", "--verbose", "--json", "--accept-license"):
        assert option in res.out, (command, option)
    assert "(default:" in res.out  # --state-dir shows where the state lives


@pytest.mark.parametrize("command", ["enroll", "renew", "replace", "run"])
def test_profiles_shown_required_and_missing_is_one_line(cli, command: str) -> None:
    assert f"citrixagent {command} [OPTIONS] PROFILES..." in cli(command, "--help").out
    res = cli(command)
    assert res.code == 2
    assert res.err.strip().splitlines() == [
        f"error: Missing argument 'PROFILES...'. (see 'citrixagent {command} --help')"
    ]


def test_top_level_descriptions_are_whole(cli) -> None:
    out = cli("--help").out
    listing = out[out.index("Commands:") :]
    assert "..." not in listing.split("Exit codes")[0]


def test_a_settings_file_in_a_profile_directory_is_not_a_profile(world: Sandbox, cli, tmp_path: Path) -> None:
    """`sandbox serve --notify` writes citrixagent.yaml beside the profiles: directory commands skip it."""
    (world.directory / "citrixagent.yaml").write_text("notify: {}\n", encoding="utf-8")
    res = cli("--scm-config", world.scm_yaml, "validate", world.directory)
    assert res.code == 0, res.output
    assert "citrixagent.yaml" not in res.output
