"""citrixagent.yaml: validated like the other files (file:line: field: message, did-you-mean, ${ENV})."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from citrix_connector.errors import ConfigError
from citrix_connector.notify.settings import load_settings, settings_json_schema

REPO = Path(__file__).resolve().parent.parent


def problems(tmp_path: Path, text: str, env: dict[str, str] | None = None) -> list[str]:
    path = tmp_path / "citrixagent.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_settings(path, env or {})
    return [p.replace(f"{path}:", "@") for p in info.value.problems]


def test_the_example_file_is_valid() -> None:
    env = {"CITRIXAGENT_SMTP_PASSWORD": "pw-123456", "CITRIXAGENT_TEAMS_WEBHOOK": "https://hooks.test/x"}
    settings = load_settings(REPO / "example_citrixagent.yaml", env)
    assert settings.notify.email is not None
    assert settings.notify.email.effective_port == 587
    password = settings.notify.email.password
    assert password is not None and password.reveal() == "pw-123456"
    assert [c.channel_id for c in settings.notify.channels] == ["email", "webhook:teams"]
    assert "pw-123456" not in repr(settings)


def test_empty_file_means_defaults(tmp_path: Path) -> None:
    path = tmp_path / "citrixagent.yaml"
    path.write_text("")
    settings = load_settings(path, {})
    assert settings.notify.channels == [] and settings.notify.expiry_warning_days == [30, 14, 7, 1]


def test_every_problem_with_its_line(tmp_path: Path) -> None:
    found = problems(
        tmp_path,
        "notify:\n"
        "  failed_after_run: 2\n"  # 2
        "  email:\n"
        "    host: smtp.test\n"
        "    sender: agent@x.test\n"
        "    recipients: [ops@x.test, not-an-address]\n"  # 6
        "    security: startls\n"  # 7
        "  webhooks:\n"
        "    - url: http://hooks.test/x\n"  # 9
        "      verify_tls: false\n",  # 10
    )
    assert found == [
        "@2: notify.failed_after_run: unknown key; did you mean 'failed_after_runs'?",
        "@6: notify.email.recipients: not an e-mail address: 'not-an-address'",
        "@7: notify.email.security: Input should be 'starttls' or 'tls'",
        "@9: notify.webhooks[0].url: must be an https:// URL",
        "@10: notify.webhooks[0].verify_tls: notifications are only sent over verified TLS: give true or the "
        "path of a CA bundle",
    ]


def test_secrets_come_from_the_environment(tmp_path: Path) -> None:
    text = (
        "notify:\n  email:\n    host: h.test\n    sender: a@b.test\n    recipients: [c@d.test]\n"
        "    username: agent\n    password: ${SMTP_PW}\n"
    )
    assert problems(tmp_path, text) == ["@7: notify.email.password: environment variable SMTP_PW is not set"]
    path = tmp_path / "citrixagent.yaml"
    settings = load_settings(path, {"SMTP_PW": "s3cret-value"})
    assert settings.secrets() == ["s3cret-value"]


def test_login_needs_both_halves_and_webhook_names_differ(tmp_path: Path) -> None:
    found = problems(
        tmp_path,
        "notify:\n  email:\n    host: h.test\n    sender: a@b.test\n    recipients: [c@d.test]\n"
        "    username: agent\n",
    )
    assert found == ["@2: notify.email: username and password go together: give both or neither"]
    found = problems(
        tmp_path, "notify:\n  webhooks:\n    - url: https://a.test/x\n    - url: https://b.test/y\n"
    )
    assert found == ["@1: notify: webhook names must differ (give each a name:): webhook"]


def test_relative_ca_bundle_is_relative_to_the_file(tmp_path: Path) -> None:
    (tmp_path / "ca.pem").write_text("x")
    path = tmp_path / "citrixagent.yaml"
    path.write_text("notify:\n  webhooks:\n    - url: https://a.test/x\n      verify_tls: ca.pem\n")
    assert load_settings(path, {}).notify.webhooks[0].verify_tls == tmp_path / "ca.pem"


def test_json_schema_is_generated_from_the_models() -> None:
    schema = settings_json_schema()
    notify = schema["$defs"]["NotifySettings"]
    assert notify["additionalProperties"] is False
    assert {"failed_after_runs", "pending_after_runs", "expiry_warning_days", "email", "webhooks"} <= set(
        notify["properties"]
    )
    assert schema["$defs"]["EmailChannel"]["properties"]["security"]["enum"] == ["starttls", "tls"]


def test_the_committed_schema_is_what_the_models_generate() -> None:
    from citrix_connector.notify.settings import SCHEMA_FILE, settings_schema_text

    committed = (REPO / "schemas" / SCHEMA_FILE).read_text(encoding="utf-8")
    assert committed == settings_schema_text(), (
        "regenerate: citrixagent schema settings > schemas/settings.schema.json"
    )


def test_the_schema_command_prints_the_committed_settings_schema() -> None:
    from click.testing import CliRunner

    from citrix_connector.cli import cli

    result = CliRunner().invoke(cli, ["schema", "settings"])
    assert result.exit_code == 0, result.output
    assert result.output == (REPO / "schemas" / "settings.schema.json").read_text(encoding="utf-8")


def test_the_example_file_passes_an_editor_style_schema_check() -> None:
    import jsonschema
    import yaml

    schema = json.loads((REPO / "schemas" / "settings.schema.json").read_text(encoding="utf-8"))
    example = yaml.safe_load((REPO / "example_citrixagent.yaml").read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator(schema).validate(example)
    bad: dict[str, object] = {"notify": {"emial": {}}}
    assert not jsonschema.Draft202012Validator(schema).is_valid(bad)
