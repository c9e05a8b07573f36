"""The published JSON Schemas: generated from the models, committed under schemas/, printed by
``citrixagent schema``, and valid for every shipped example and every profile the sandbox writes
(validated as an editor's YAML language server would, with jsonschema)."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
import yaml
from click.testing import CliRunner

from citrix_connector.cli import cli
from citrix_connector.config.schema import SCHEMA_FILES, SchemaKind, json_schema, schema_text
from citrix_connector.sandbox.world import Sandbox

REPO = Path(__file__).resolve().parent.parent
KINDS: tuple[SchemaKind, ...] = ("profile", "scm")


@pytest.mark.parametrize("kind", KINDS)
def test_committed_schema_is_what_the_models_generate(kind: SchemaKind) -> None:
    committed = (REPO / "schemas" / SCHEMA_FILES[kind]).read_text(encoding="utf-8")
    assert committed == schema_text(kind), (
        f"regenerate: citrixagent schema {kind} > schemas/{SCHEMA_FILES[kind]}"
    )
    jsonschema.Draft202012Validator.check_schema(json.loads(committed))


@pytest.mark.parametrize("kind", KINDS)
def test_schema_command_prints_the_committed_schema(kind: SchemaKind) -> None:
    result = CliRunner().invoke(cli, ["schema", kind])
    assert result.exit_code == 0, result.output
    assert result.output == (REPO / "schemas" / SCHEMA_FILES[kind]).read_text(encoding="utf-8")


def _editor_validate(path: Path, kind: SchemaKind) -> list[str]:
    """What a YAML language server reports for ``path`` against the schema its header names."""
    text = path.read_text(encoding="utf-8")
    first = text.splitlines()[0]
    assert first.startswith("# yaml-language-server: $schema="), (path, first)
    target = (path.parent / first.split("=", 1)[1]).resolve()
    schema = json.loads(target.read_text(encoding="utf-8"))
    assert schema == json_schema(kind)
    validator = jsonschema.Draft202012Validator(schema)
    return [f"{list(e.absolute_path)}: {e.message}" for e in validator.iter_errors(yaml.safe_load(text))]


def test_shipped_examples_validate_against_the_published_schema() -> None:
    assert _editor_validate(REPO / "example_cert_config.yaml", "profile") == []
    assert _editor_validate(REPO / "scm.yaml", "scm") == []


def _alternatives() -> list[str]:
    import re

    text = (REPO / "scm.yaml").read_text()
    blocks = re.split(r"^# --- Alternative: .*$", text, flags=re.M)[1:]
    return ["\n".join(line[2:] for line in b.splitlines() if re.match(r"^# [a-z_]+:", line)) for b in blocks]


def test_scm_yaml_alternatives_validate_against_the_schema() -> None:
    validator = jsonschema.Draft202012Validator(json_schema("scm"))
    alternatives = _alternatives()
    assert len(alternatives) == 3
    for text in alternatives:
        assert list(validator.iter_errors(yaml.safe_load(text))) == [], text


def test_sandbox_files_validate_against_the_published_schema(world: Sandbox) -> None:
    profiles = sorted(world.directory.glob("*-profile.yaml"))
    assert len(profiles) >= 5
    for path in profiles:
        assert _editor_validate(path, "profile") == [], path
        assert path.stat().st_mode & 0o077 == 0  # sandbox credentials: owner-only from creation
    for path in sorted(world.directory.glob("scm*.yaml")):
        assert _editor_validate(path, "scm") == [], path


def test_schema_rejects_what_the_loader_rejects() -> None:
    """The schema is not a rubber stamp: unknown keys, wrong types and out-of-range values fail."""
    validator = jsonschema.Draft202012Validator(json_schema("profile"))
    good = {
        "appliance": {"url": "https://adc.example.com", "username": "u", "password": "${P}"},
        "vservers": ["vs1", {"name": "vs2", "type": "cs", "sni": True}],
        "certificate": {"common_name": "www.example.com", "key_type": "ECDSA", "curve": "P-384"},
        "sectigo": {"org_id": 1, "cert_type": "OV", "term": 365, "custom_fields": {"a": "b"}},
    }
    assert list(validator.iter_errors(good)) == []
    for bad in (
        {**good, "vserver": ["x"]},
        {**good, "vservers": []},
        {**good, "renewal": {"days_before_expiry": 0}},
        {**good, "sectigo": {"term": 10**20}},
        {**good, "certificate": {"common_name": "www.example.com", "key_size": "2048"}},
        {**good, "appliance": {**good["appliance"], "url": "ftp://x"}},  # type: ignore[dict-item]
    ):
        assert list(validator.iter_errors(bad)), bad
