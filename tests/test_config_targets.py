"""The ``appliances:`` form of a profile (several targets, one certificate): loading, the rules
across its entries (each problem at file:line: field, exit 2), and the published JSON Schema."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from citrix_connector.config import load_profile
from citrix_connector.config.schema import json_schema
from citrix_connector.errors import ConfigError

A = {"url": "https://127.0.0.1:9001", "username": "u", "password": "${PW}"}
B = {"url": "https://127.0.0.1:9002", "username": "u", "password": "${PW}"}
PAIR = {"url": ["https://127.0.0.1:9003", "https://127.0.0.1:9004"], "username": "u", "password": "${PW}"}
ENV = {"PW": "secret"}


def _profile(**top: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "vservers": ["vs_a", {"name": "vs_b", "type": "cs"}],
        "certificate": {"common_name": "www.example.com"},
    }
    data.update(top)
    return data


def _write(tmp_path: Path, data: dict[str, Any], name: str = "web.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    os.chmod(path, 0o600)
    return path


def _problems(path: Path) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_profile(path, env=ENV)
    assert info.value.exit_code == 2
    return info.value.problems


def _line(path: Path, text: str, nth: int = 0) -> int:
    lines = [i for i, line in enumerate(path.read_text().splitlines(), 1) if text in line]
    return lines[nth]


def test_appliances_lists_targets_each_with_the_profiles_vservers_or_its_own(tmp_path: Path) -> None:
    own = {**B, "vservers": [{"name": "vs_dr", "sni": True}]}
    path = _write(tmp_path, _profile(appliances=[A, own, PAIR], rollout="Canary"))
    profile = load_profile(path, env=ENV)
    assert profile.is_multi and profile.rollout == "canary"
    targets = profile.targets
    assert [t.index for t in targets] == [0, 1, 2]
    assert [t.appliance.urls for t in targets] == [
        ("https://127.0.0.1:9001",),
        ("https://127.0.0.1:9002",),
        ("https://127.0.0.1:9003", "https://127.0.0.1:9004"),
    ]
    assert [[v.name for v in t.vservers] for t in targets] == [["vs_a", "vs_b"], ["vs_dr"], ["vs_a", "vs_b"]]
    assert targets[1].vservers[0].sni is True
    assert profile.appliance is targets[0].appliance  # the first target (the canary)
    one = profile.for_target(targets[1])
    assert not one.is_multi and one.appliance.url == "https://127.0.0.1:9002"
    assert [v.name for v in one.vservers] == ["vs_dr"]
    assert (one.name, one.certificate.certkey_name, one.source) == ("web", "web", path)
    assert targets[2].appliance.password.reveal() == "secret"


def test_a_one_entry_list_is_exactly_appliance(tmp_path: Path) -> None:
    profile = load_profile(_write(tmp_path, _profile(appliances=[{**A, "vservers": ["vs_x"]}])), env=ENV)
    assert not profile.is_multi
    assert profile.appliance.url == "https://127.0.0.1:9001"
    assert [v.name for v in profile.vservers] == ["vs_x"]
    assert len(profile.targets) == 1 and profile.rollout == "all"


def test_single_appliance_profile_is_one_target(tmp_path: Path) -> None:
    profile = load_profile(_write(tmp_path, _profile(appliance=A)), env=ENV)
    assert not profile.is_multi
    (target,) = profile.targets
    assert target.appliance is profile.appliance and target.vservers == profile.vservers


def test_appliance_and_appliances_together_are_refused(tmp_path: Path) -> None:
    path = _write(tmp_path, _profile(appliance=A, appliances=[A, B]))
    assert _problems(path) == [
        f"{path}:{_line(path, 'appliances:') + 1}: appliances: give either appliance: (one) or appliances: "
        "(several), not both"
    ]


def test_neither_appliance_nor_appliances_is_refused(tmp_path: Path) -> None:
    path = _write(tmp_path, _profile())
    assert _problems(path) == [
        f"{path}:1: appliance: required field is missing (or appliances: a list of appliances)"
    ]
    path.write_text("appliance:\n" + path.read_text())
    assert _problems(path) == [f"{path}:1: appliance: must not be empty"]


def test_key_location_appliance_needs_a_single_target(tmp_path: Path) -> None:
    subject = {"country": "DE", "state": "Berlin", "organization": "Example"}
    cert = {"common_name": "www.example.com", "key_location": "appliance", "subject": subject}
    path = _write(tmp_path, _profile(appliances=[A, PAIR], certificate=cert))
    assert _problems(path) == [
        f"{path}:{_line(path, 'key_location')}: certificate.key_location: key_location: appliance cannot "
        "serve 2 appliances (a key made on one box cannot be installed on another); use key_location: local"
    ]
    # one appliance (or one HA pair) keeps the on-box key
    assert load_profile(_write(tmp_path, _profile(appliance=PAIR, certificate=cert)), env=ENV)


def test_the_same_appliance_twice_and_a_duplicate_vserver_of_an_entry_are_refused(tmp_path: Path) -> None:
    again = {**A, "url": "https://127.0.0.1:9001/", "vservers": ["vs_c", "vs_c"]}
    other_partition = {**A, "partition": "p2"}
    path = _write(tmp_path, _profile(appliances=[A, again, other_partition]))
    url_line = _line(path, "url: https://127.0.0.1:9001/")
    vs_line = _line(path, "- vs_c", 1)
    assert _problems(path) == [
        f"{path}:{url_line}: appliances[1].url: the same appliance and partition as appliances[0]",
        f"{path}:{vs_line}: appliances[1].vservers[1]: duplicate vserver 'vs_c' "
        "(also appliances[1].vservers[0])",
    ]


def test_entries_are_checked_as_appliance_is(tmp_path: Path) -> None:
    bad = {**B, "vserver": ["vs_x"], "timeout": -1}
    path = _write(tmp_path, _profile(appliances=[A, bad], rollout="sometimes"))
    problems = _problems(path)
    assert (
        f"{path}:{_line(path, 'vserver:')}: appliances[1].vserver: unknown key; did you mean 'vservers'?"
        in problems
    )
    assert any(p.startswith(f"{path}:{_line(path, 'timeout')}: appliances[1].timeout: ") for p in problems)
    assert (
        f"{path}:{_line(path, 'rollout')}: rollout: must be one of all, canary, got 'sometimes'" in problems
    )
    assert len(problems) == 3


def test_literal_password_of_an_entry_in_a_readable_file_is_a_warning(tmp_path: Path) -> None:
    path = _write(tmp_path, _profile(appliances=[A, {**B, "password": "in-clear"}]))
    os.chmod(path, 0o644)
    profile = load_profile(path, env=ENV)
    (warning,) = profile.warnings
    assert str(warning).startswith(
        f"{path}:{_line(path, 'in-clear')}: appliances[1].password: a secret written"
    )


def test_schema_describes_the_appliances_form(tmp_path: Path) -> None:
    validator = jsonschema.Draft202012Validator(json_schema("profile"))

    def errors(data: dict[str, Any]) -> list[str]:
        return [e.message for e in validator.iter_errors(json.loads(json.dumps(data)))]

    assert errors(_profile(appliances=[A, {**B, "vservers": ["vs_dr"]}, PAIR], rollout="canary")) == []
    assert errors(_profile(appliance=A)) == []
    assert errors(_profile(appliance=A, appliances=[A, B]))  # both
    assert errors(_profile())  # neither
    assert errors(_profile(appliances=[A, B], rollout="never"))
    onbox = {"common_name": "www.example.com", "key_location": "appliance"}
    assert errors(_profile(appliances=[A, B], certificate=onbox))
    assert errors(_profile(appliances=[A], certificate=onbox)) == []


def test_discover_counts_a_profile_with_several_appliances_as_a_profile_of_each(tmp_path: Path) -> None:
    from citrix_connector.discovery.targets import _targets_from_profiles

    profile = load_profile(_write(tmp_path, _profile(appliances=[A, PAIR])), env=ENV)
    found = _targets_from_profiles([profile], set())
    assert [t.urls for t in found] == [("https://127.0.0.1:9001",), tuple(PAIR["url"])]
    assert [t.managed for t in found] == [{("default", "web"): "web"}] * 2
