"""The agent settings file (``citrixagent.yaml``): where notifications go and when they are sent.

Declared as pydantic models (strict, unknown keys refused, frozen); the JSON Schema published for the
file comes from them. Secrets (SMTP password, webhook tokens and header values) are :class:`Secret`
values: ``repr``/``str`` show ``***``, only the channel that sends reveals them.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
    PlainValidator,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from ..config import Secret
from .names import DEFAULT_SETTINGS_FILE as DEFAULT_SETTINGS_FILE
from .names import SETTINGS_ENV as SETTINGS_ENV

__all__ = [
    "DEFAULT_EXPIRY_DAYS",
    "EmailChannel",
    "NotifySettings",
    "Settings",
    "WebhookChannel",
    "load_settings",
    "settings_json_schema",
    "settings_schema_text",
]

DEFAULT_EXPIRY_DAYS = (30, 14, 7, 1)


def _to_secret(value: object) -> Secret:
    if isinstance(value, Secret):
        return value
    if isinstance(value, str) and value:
        return Secret(value)
    if isinstance(value, str):
        raise ValueError("must not be empty")
    raise ValueError(f"expected a string, got {type(value).__name__}")


SecretText = Annotated[
    Secret,
    PlainValidator(_to_secret),
    PlainSerializer(lambda s: "***", return_type=str),
    WithJsonSchema({"type": "string", "minLength": 1, "description": "a secret: write ${ENV_VAR}"}),
]


def _to_verify(value: object, info: ValidationInfo) -> bool | Path:
    if value is True:
        return True
    if value is False:
        raise ValueError(
            "notifications are only sent over verified TLS: give true or the path of a CA bundle"
        )
    if isinstance(value, Path):
        return value
    if isinstance(value, str) and value.strip():
        path = Path(value).expanduser()
        base = (info.context or {}).get("base_dir") if isinstance(info.context, dict) else None
        if not path.is_absolute() and isinstance(base, Path):
            path = base / path
        if not path.is_file():
            raise ValueError(f"file not found: {path}")
        return path
    raise ValueError(f"expected true or a CA bundle path, got {value!r}")


VerifyTls = Annotated[
    bool | Path,
    PlainValidator(_to_verify),
    PlainSerializer(lambda v: v if isinstance(v, bool) else str(v)),
    WithJsonSchema(
        {
            "description": "true (the system's CA store) or the path of a CA bundle (PEM)",
            "oneOf": [{"const": True}, {"type": "string", "minLength": 1}],
        }
    ),
]


class _Model(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)


class EmailChannel(_Model):
    """E-mail over SMTP with STARTTLS (port 587) or implicit TLS (port 465), certificate verified."""

    host: str = Field(min_length=1, description="SMTP server host name")
    port: int | None = Field(default=None, ge=1, le=65535, description="default 587 (starttls), 465 (tls)")
    security: Literal["starttls", "tls"] = Field(
        default="starttls", description="starttls: plain connect then STARTTLS; tls: implicit TLS"
    )
    verify_tls: VerifyTls = True
    username: str | None = Field(default=None, min_length=1, description="SMTP login (optional)")
    password: SecretText | None = None
    sender: str = Field(min_length=3, description="the From address")
    recipients: list[str] = Field(min_length=1, description="one or more To addresses")
    subject_prefix: str = "[citrixagent]"
    timeout: float = Field(default=30.0, gt=0, le=300, description="seconds per SMTP connection")

    @field_validator("sender")
    @classmethod
    def _sender_is_address(cls, value: str) -> str:
        return _address(value)

    @field_validator("recipients")
    @classmethod
    def _recipients_are_addresses(cls, value: list[str]) -> list[str]:
        return [_address(v) for v in value]

    @model_validator(mode="after")
    def _login_complete(self) -> EmailChannel:
        if (self.username is None) != (self.password is None):
            raise ValueError("username and password go together: give both or neither")
        return self

    @property
    def effective_port(self) -> int:
        return self.port or (587 if self.security == "starttls" else 465)

    @property
    def channel_id(self) -> str:
        return "email"


def _address(value: str) -> str:
    text = value.strip()
    local, at, domain = text.rpartition("@")
    if not at or not local or not domain or any(c.isspace() for c in text) or "," in text:
        raise ValueError(f"not an e-mail address: {value!r}")
    return text


class WebhookChannel(_Model):
    """A JSON POST to an HTTPS URL (Teams/Slack incoming webhooks read its ``text`` field)."""

    name: str = Field(default="webhook", pattern=r"^[A-Za-z0-9_.-]{1,40}$", description="shown in reports")
    url: SecretText = Field(description="https:// URL (it often holds a token: treated as a secret)")
    verify_tls: VerifyTls = True
    bearer_token: SecretText | None = Field(default=None, description="sent as Authorization: Bearer")
    headers: dict[str, SecretText] = Field(default_factory=dict, description="extra headers (secret values)")
    timeout: float = Field(default=10.0, gt=0, le=120, description="seconds per request")

    @field_validator("url")
    @classmethod
    def _https_only(cls, value: Secret) -> Secret:
        text = value.reveal()
        if not text.lower().startswith("https://") or len(text) <= len("https://"):
            raise ValueError("must be an https:// URL")
        if any(c.isspace() for c in text):
            raise ValueError("must not contain whitespace")
        return value

    @field_validator("headers")
    @classmethod
    def _header_names(cls, value: dict[str, Secret]) -> dict[str, Secret]:
        for key in value:
            if not key or not all(c.isalnum() or c in "-_" for c in key):
                raise ValueError(f"not an HTTP header name: {key!r}")
            if key.lower() in {"content-type", "content-length", "host"}:
                raise ValueError(f"header {key} is set by citrixagent")
        return value

    @property
    def channel_id(self) -> str:
        return f"webhook:{self.name}"


class NotifySettings(_Model):
    """When to notify and through which channels."""

    failed_after_runs: int = Field(
        default=1, ge=1, le=1000, description="a profile that failed on this many runs in a row"
    )
    pending_after_runs: int = Field(
        default=3,
        ge=1,
        le=1000,
        description="an order still pending after its collect deadline on this many runs in a row",
    )
    expiry_warning_days: list[int] = Field(
        default_factory=lambda: list(DEFAULT_EXPIRY_DAYS),
        min_length=1,
        description="warn once as a certificate not yet renewed crosses each of these days left",
    )
    resolved: bool = Field(default=True, description="send a 'resolved' message when a condition clears")
    summary: bool = Field(default=False, description="also report what was enrolled, renewed, deployed")
    email: EmailChannel | None = None
    webhooks: list[WebhookChannel] = Field(default_factory=list)

    @field_validator("expiry_warning_days")
    @classmethod
    def _days(cls, value: list[int]) -> list[int]:
        if any(d < 0 or d > 3650 for d in value):
            raise ValueError("days must be between 0 and 3650")
        if len(set(value)) != len(value):
            raise ValueError("each threshold once")
        return sorted(value, reverse=True)

    @model_validator(mode="after")
    def _unique_webhook_names(self) -> NotifySettings:
        names = [w.name for w in self.webhooks]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"webhook names must differ (give each a name:): {', '.join(dupes)}")
        return self

    @property
    def channels(self) -> list[EmailChannel | WebhookChannel]:
        return [*([self.email] if self.email else []), *self.webhooks]


class Settings(_Model):
    """``citrixagent.yaml``: the agent's own settings (today: notifications)."""

    notify: NotifySettings = Field(default_factory=NotifySettings)

    def secrets(self) -> list[str]:
        """Every secret value the file holds (for scrubbing any text that leaves the agent)."""
        found: list[str] = []
        for channel in self.notify.channels:
            if isinstance(channel, EmailChannel):
                if channel.password is not None:
                    found.append(channel.password.reveal())
            else:
                found.append(channel.url.reveal())
                if channel.bearer_token is not None:
                    found.append(channel.bearer_token.reveal())
                found.extend(v.reveal() for v in channel.headers.values())
        return found


SCHEMA_FILE = "settings.schema.json"  # the committed copy under schemas/


def settings_json_schema() -> dict[str, Any]:
    """The JSON Schema of ``citrixagent.yaml``, generated from the models."""
    schema = Settings.model_json_schema(mode="validation")
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        **{k: v for k, v in schema.items() if k != "title"},
        "title": "citrixagent settings (citrixagent.yaml)",
    }


def settings_schema_text() -> str:
    """The schema as ``schemas/settings.schema.json`` holds it (sorted keys, 2-space indent)."""
    import json

    return json.dumps(settings_json_schema(), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


# ------------------------------------------------------------------------------------------ loading

# SETTINGS_ENV and DEFAULT_SETTINGS_FILE live in names.py (the CLI reads them before any import of this)


def _loc_text(loc: tuple[str | int, ...]) -> str:
    out = ""
    for part in loc:
        out = f"{out}[{part}]" if isinstance(part, int) else (f"{out}.{part}" if out else str(part))
    return out


def _node_lines(node: Any, loc: tuple[str | int, ...], lines: dict[tuple[str | int, ...], int]) -> None:
    import yaml

    lines[loc] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            if isinstance(key, yaml.ScalarNode):
                lines[loc + (key.value,)] = key.start_mark.line + 1
                _node_lines(value, loc + (key.value,), lines)
                lines[loc + (key.value,)] = key.start_mark.line + 1
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _node_lines(item, loc + (index,), lines)


def _substitute(
    value: Any, env: Mapping[str, str], loc: tuple[str | int, ...], bad: list[tuple[Any, str]]
) -> Any:
    if isinstance(value, str):

        def repl(match: re.Match[str]) -> str:
            if match.group(0) == "$${":
                return "${"
            name = match.group(1)
            if name is None:
                bad.append((loc, "malformed '${...}' reference (write '$${' for a literal '${')"))
            elif name not in env:
                bad.append((loc, f"environment variable {name} is not set"))
            else:
                return env[name]
            return match.group(0)

        return _ENV_RE.sub(repl, value)
    if isinstance(value, dict):
        return {k: _substitute(v, env, loc + (k,), bad) for k, v in value.items()}
    if isinstance(value, list):
        return [_substitute(v, env, loc + (i,), bad) for i, v in enumerate(value)]
    return value


_ENV_RE = re.compile(r"\$\$\{|\$\{([A-Za-z_][A-Za-z0-9_]*)\}|\$\{")


def _fields_at(loc: tuple[str | int, ...]) -> list[str]:
    model: Any = Settings
    for part in loc:
        if isinstance(part, int):
            continue
        info = model.model_fields.get(part) if hasattr(model, "model_fields") else None
        if info is None:
            return []
        annotation = info.annotation
        for candidate in (annotation, *getattr(annotation, "__args__", ())):
            if isinstance(candidate, type) and issubclass(candidate, BaseModel):
                model = candidate
                break
        else:
            return []
    return list(model.model_fields) if hasattr(model, "model_fields") else []


def load_settings(path: Path, env: Mapping[str, str] | None = None) -> Settings:
    """Read and validate ``citrixagent.yaml``; every problem as ``file:line: field: message``."""
    import difflib

    import yaml
    from pydantic import ValidationError

    from ..errors import ConfigError

    env = os.environ if env is None else env
    file = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise ConfigError(f"{file}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{file}: cannot read: {exc}") from None
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        raise ConfigError(f"{file}:{mark.line + 1 if mark else 1}: invalid YAML: {exc.problem}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{file}: invalid YAML: {exc}") from None
    lines: dict[tuple[str | int, ...], int] = {}
    if node is not None:
        _node_lines(node, (), lines)
    data = {} if data is None else data
    if not isinstance(data, dict):
        raise ConfigError(f"{file}:1: expected a mapping (key: value) at the top level")
    bad: list[tuple[Any, str]] = []
    data = _substitute(data, env, (), bad)
    problems: list[tuple[int, str]] = []

    def line_of(loc: tuple[str | int, ...]) -> int:
        while loc and loc not in lines:
            loc = loc[:-1]
        return lines.get(loc, 1)

    for loc, message in bad:
        problems.append((line_of(loc), f"{file}:{line_of(loc)}: {_loc_text(loc)}: {message}"))
    if not problems:
        try:
            settings = Settings.model_validate(data, context={"base_dir": Path(path).parent})
        except ValidationError as exc:
            for error in exc.errors():
                loc = tuple(error["loc"])
                message = str(error["msg"]).removeprefix("Value error, ")
                if error["type"] == "extra_forbidden":
                    close = difflib.get_close_matches(str(loc[-1]), _fields_at(loc[:-1]), n=1, cutoff=0.6)
                    message = "unknown key" + (f"; did you mean '{close[0]}'?" if close else "")
                problems.append((line_of(loc), f"{file}:{line_of(loc)}: {_loc_text(loc)}: {message}"))
        else:
            return settings
    raise ConfigError([text for _, text in sorted(problems)])
