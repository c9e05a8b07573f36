"""The verification keys of a profile: ``probe:`` (mode, timeout; or the mode alone), a vserver's
``probe: host:port`` and ``ha_sync:`` — loaded strictly with file:line errors, and described by the
published JSON Schema the same way (what the loader refuses, the schema refuses)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from citrix_connector.config import load_profile
from citrix_connector.config.schema import json_schema
from citrix_connector.config.verify import HostPort
from citrix_connector.errors import ConfigError

BASE: dict[str, Any] = {
    "appliance": {"url": "https://adc.example.com", "username": "u", "password": "p"},
    "vservers": ["vs1"],
    "certificate": {"common_name": "www.example.com"},
}


def write(tmp_path: Path, **extra: Any) -> Path:
    path = tmp_path / "p.yaml"
    path.write_text(yaml.safe_dump({**BASE, **extra}, sort_keys=False))
    return path


def schema_errors(data: dict[str, Any]) -> list[str]:
    validator = jsonschema.Draft202012Validator(json_schema("profile"))
    return [e.message for e in validator.iter_errors(data)]


def test_defaults(tmp_path: Path) -> None:
    profile = load_profile(write(tmp_path))
    assert (profile.probe.mode, profile.probe.timeout) == ("on", 5.0)
    assert (profile.ha_sync.verify, profile.ha_sync.deadline, profile.ha_sync.interval) == (True, 120.0, 5.0)
    assert profile.vservers[0].probe is None


GOOD: list[dict[str, Any]] = [
    {"probe": "required"},
    {"probe": "off"},
    {"probe": "warn-only"},
    {"probe": {"mode": "on", "timeout": 2.5}},
    {"probe": {"timeout": 1}},
    {"ha_sync": {"verify": False}},
    {"ha_sync": {"deadline": 0, "interval": 0.5}},
    {"vservers": [{"name": "vs1", "probe": "vip.example.com:443"}]},
    {"vservers": [{"name": "vs1", "probe": "127.0.0.1:8443"}, {"name": "vs2", "probe": "[::1]:443"}]},
]


@pytest.mark.parametrize("extra", GOOD)
def test_accepted_by_loader_and_schema(tmp_path: Path, extra: dict[str, Any]) -> None:
    load_profile(write(tmp_path, **extra))
    assert schema_errors({**BASE, **extra}) == []


def test_values_as_read(tmp_path: Path) -> None:
    profile = load_profile(
        write(
            tmp_path,
            probe="warn",
            vservers=[
                {"name": "vs1", "probe": "[::1]:443"},
                {"name": "vs2", "probe": "vip.example.com:8443"},
            ],
        )
    )
    assert profile.probe.mode == "warn-only"
    assert [v.probe for v in profile.vservers] == [HostPort("::1", 443), HostPort("vip.example.com", 8443)]
    assert str(profile.vservers[0].probe) == "[::1]:443"


BAD: list[tuple[dict[str, Any], str, str]] = [
    ({"probe": "sometimes"}, "probe.mode", "must be one of on, off, warn-only, required"),
    ({"probe": {"mode": "on", "timeout": 0}}, "probe.timeout", "must be greater than 0"),
    ({"probe": {"mode": "on", "retries": 3}}, "probe.retries", "unknown key"),
    ({"ha_sync": {"deadline": -1}}, "ha_sync.deadline", "must be between 0 and 3600"),
    ({"ha_sync": {"verify": "yes"}}, "ha_sync.verify", "expected true or false"),
    ({"vservers": [{"name": "vs1", "probe": "vip.example.com"}]}, "vservers[0].probe", "expected host:port"),
    (
        {"vservers": [{"name": "vs1", "probe": "vip.example.com:0"}]},
        "vservers[0].probe",
        "between 1 and 65535",
    ),
    ({"vservers": [{"name": "vs1", "probe": "::1:443"}]}, "vservers[0].probe", "in brackets: [::1]:443"),
    ({"vservers": [{"name": "vs1", "probe": "*.example.com:443"}]}, "vservers[0].probe", "wildcard"),
]


@pytest.mark.parametrize(("extra", "field", "message"), BAD)
def test_refused_with_file_line_field(
    tmp_path: Path, extra: dict[str, Any], field: str, message: str
) -> None:
    path = write(tmp_path, **extra)
    with pytest.raises(ConfigError) as caught:
        load_profile(path)
    [problem] = caught.value.problems
    assert problem.startswith(f"{path}:") and f": {field}: " in problem and message in problem, problem
    line = int(problem.split(":")[1])
    assert field.split(".")[0].split("[")[0] in path.read_text().splitlines()[line - 1] or line > 1


@pytest.mark.parametrize(("extra", "field", "message"), [b for b in BAD if "wildcard" not in b[2]])
def test_refused_by_the_schema_too(extra: dict[str, Any], field: str, message: str) -> None:
    assert schema_errors({**BASE, **extra}), extra
