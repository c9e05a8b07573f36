"""The model of ``scm.yaml``: how to reach Sectigo Certificate Manager."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, PlainValidator, PrivateAttr, ValidationInfo, WithJsonSchema, model_validator
from pydantic.json_schema import SkipJsonSchema

from . import checks
from .checks import url_problem
from .fields import Choice, FilePath, Float, Int, Text, VerifyTls, text_validator
from .problems import Loc, fail
from .proxy import Proxy
from .rules import StrictModel, given, is_null, report
from .values import Secret

ApiKind = Literal["admin", "enrollment"]
AuthKind = Literal["password", "client_cert", "oauth"]

#: SCM ids (organisations, profiles, certificate types) are 32-bit integers
ID_MAX = 2**31 - 1


#: the longest certificate term (days) a profile or scm.yaml may ask for
MAX_TERM_DAYS = 3650


def _cert_type(value: object) -> int | str:
    if isinstance(value, int) and not isinstance(value, bool):
        if not 1 <= value <= ID_MAX:
            raise fail(f"must be between 1 and {ID_MAX}, got {value}")
        return value
    if isinstance(value, str):
        return text_validator(256)(value)
    raise fail(f"expected a profile id or name, got {checks.type_name(value)} {checks.shown(value)}")


#: an SCM certificate profile: its id, or its name (admin API)
CertType = Annotated[
    int | str,
    PlainValidator(_cert_type),
    WithJsonSchema({"anyOf": [{"type": "integer", "minimum": 1}, {"type": "string", "minLength": 1}]}),
]
Term = Annotated[int, Int(1, MAX_TERM_DAYS)]


def _https_url(value: str) -> str:
    return url_problem(value)


def normalise_url(value: str) -> str:
    return value.rstrip("/")


def _url_validator(value: object) -> str:
    return normalise_url(text_validator(2048, check=_https_url)(value))


HttpsUrl = Annotated[
    str,
    PlainValidator(_url_validator),
    WithJsonSchema({"type": "string", "pattern": "^[hH][tT][tT][pP][sS]://", "maxLength": 2048}),
]


class PollSettings(StrictModel):
    """Collect polling, in seconds."""

    first_wait: Annotated[float, Float(lo=0, hi=86400)] = 5.0
    interval: Annotated[float, Float(positive=True, hi=86400)] = 10.0
    timeout: Annotated[float, Float(lo=0, hi=7 * 86400)] = 300.0

    def __init__(self, *args: float, **data: Any) -> None:
        """Also ``PollSettings(first_wait, interval, timeout)``, positionally."""
        if len(args) > 3:
            raise TypeError(f"PollSettings takes at most 3 positional arguments ({len(args)} given)")
        data.update(zip(("first_wait", "interval", "timeout"), args, strict=False))
        super().__init__(**data)


_API = Choice({"admin": "admin", "enrollment": "enrollment"})
_AUTH = Choice({"password": "password", "client_cert": "client_cert", "oauth": "oauth"})


class ScmConfig(StrictModel):
    """scm.yaml. ``api``/``auth`` are inferred from the keys given when absent."""

    source: SkipJsonSchema[Path] = Path("scm.yaml")
    api: Annotated[ApiKind, _API] = Field("admin", description="admin (the SCM admin REST API) or enrollment")
    url: HttpsUrl = Field(description="the API base URL, https://")
    customer_uri: Annotated[str, Text(256, header=True, optional=True)] | None = None
    auth: Annotated[AuthKind, _AUTH] = "password"
    username: Annotated[str, Text(256, header=True)] | None = None
    password: Secret | None = None
    client_cert: FilePath | None = None
    client_key: FilePath | None = None
    client_id: Annotated[str, Text(256, header=True)] | None = None
    client_secret: Secret | None = None
    token_url: HttpsUrl | None = None
    profile_id: Annotated[int, Int(1, ID_MAX)] | None = None
    # admin API: the organization, certificate profile and term of profiles that give none
    org_id: Annotated[int, Int(1, ID_MAX)] | None = Field(
        None, description="admin API: sectigo.org_id of every profile that gives none"
    )
    cert_type: CertType | None = Field(
        None, description="admin API: sectigo.cert_type of every profile that gives none"
    )
    term: Term | None = Field(None, description="admin API: sectigo.term of every profile that gives none")
    verify_tls: VerifyTls = True
    timeout: Annotated[float, Float(positive=True, hi=3600)] = 30.0
    poll: PollSettings = Field(default_factory=PollSettings)
    proxy: Proxy | None = None
    _warnings: tuple[object, ...] = PrivateAttr(default=())

    @property
    def warnings(self) -> tuple[object, ...]:
        """Warnings found while loading (``config.Problem`` with severity warning)."""
        return self._warnings

    @model_validator(mode="before")
    @classmethod
    def _api_and_auth(cls, data: Any, info: ValidationInfo) -> Any:
        """Infer api/auth from the keys given; each mode's required and forbidden keys."""
        if not isinstance(data, dict):
            return data
        data = dict(data)
        problems: list[tuple[Loc, str]] = []
        raw_api = data.get("api")
        api = raw_api.strip().lower() if isinstance(raw_api, str) else None
        if api not in ("admin", "enrollment"):
            uses_client_creds = given(data, "client_id") or given(data, "client_secret")
            inferred = (
                "enrollment"
                if uses_client_creds and not given(data, "username") and not given(data, "auth")
                else "admin"
            )
            if raw_api is None:
                data["api"] = inferred
            api = inferred
        raw_auth = data.get("auth")
        auth = raw_auth.strip().lower() if isinstance(raw_auth, str) else None
        if api == "enrollment":
            if raw_auth is not None and auth != "oauth":
                problems.append(
                    (("auth",), "not used with api: enrollment (it always uses OAuth client credentials)")
                )
            data["auth"] = auth = "oauth"
        elif auth not in ("password", "client_cert", "oauth"):
            inferred_auth = "client_cert" if given(data, "client_cert") else "password"
            if raw_auth is None:
                data["auth"] = inferred_auth
            auth = inferred_auth

        mode = f"api: {api}" + (f", auth: {auth}" if api == "admin" else "")
        needs = {
            "customer_uri": api == "admin" and auth in ("password", "client_cert"),
            "username": api == "admin" and auth in ("password", "client_cert"),
            "password": api == "admin" and auth == "password",
            "client_cert": api == "admin" and auth == "client_cert",
            "client_id": auth == "oauth",
            "client_secret": auth == "oauth",
        }
        allowed = {
            "username": needs["username"],
            "password": needs["password"],
            "client_cert": needs["client_cert"],
            "client_key": needs["client_cert"],
            "client_id": needs["client_id"],
            "client_secret": needs["client_secret"],
            "token_url": auth == "oauth",
            "profile_id": api == "enrollment",
            "org_id": api == "admin",
            "cert_type": api == "admin",
            "term": api == "admin",
        }
        for key, ok in allowed.items():
            if not ok and given(data, key):
                problems.append(((key,), f"not used with {mode}; remove it (or change api/auth)"))
                del data[key]
        for key, needed in needs.items():
            if needed and not given(data, key):
                what = "must not be empty" if is_null(info, (key,)) else "required field is missing"
                problems.append(((key,), f"{what} (needed with {mode})"))
        report(info, problems)
        return data
