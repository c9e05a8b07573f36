"""Where a profile's certificate goes: the appliance (or HA pair) model, the vservers, and the
``appliances:`` form (several targets, one certificate) with the rules across its entries.

A profile names exactly one of ``appliance:`` (one appliance or an HA pair) and ``appliances:`` (a list
of such blocks, each with an optional ``vservers:`` of its own instead of the profile's). Either way the
lifecycle sees :attr:`Profile.targets <citrix_connector.config.Profile.targets>`: one :class:`Target`
per appliance, each with the vservers it gets.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, Field, PlainValidator, ValidationInfo, WithJsonSchema

from . import checks
from .fields import Bool, Choice, Float, Text, VerifyTls
from .problems import Loc, fail, format_loc, rule_error
from .proxy import Proxy
from .rules import StrictModel, is_null
from .values import Secret
from .verify import ProbeAddress

VserverType = Literal["lb", "cs", "vpn", "authentication"]
Rollout = Literal["all", "canary"]

#: bounds (documented in the README)
MAX_VSERVERS = 64
MAX_TARGETS = 32

# ------------------------------------------------------------------------------------- appliance


def _urls(value: object, info: ValidationInfo) -> tuple[str, ...]:
    allow_http = info.data.get("allow_http") is True
    if isinstance(value, tuple):
        if not 1 <= len(value) <= 2:
            raise fail(f"give 1 or 2 URLs (an HA pair), got {len(value)}")
        items = value
    else:
        items = (value,)
    urls: list[str] = []
    for i, item in enumerate(items):
        if not isinstance(item, str) or not item.strip():
            got = checks.type_name(item)
            raise _at(value, i, f"expected a URL string, got {got}")
        problem = checks.url_problem(item.strip(), allow_http=allow_http)
        if problem:
            raise _at(value, i, problem)
        url = item.strip().rstrip("/")
        if url.lower() in (u.lower() for u in urls):
            raise _at(value, i, f"duplicate URL {url!r}")
        urls.append(url)
    return tuple(urls)


def _at(value: object, index: int, message: str) -> Exception:
    return rule_error(((index,) if isinstance(value, tuple) else (), message))


_URL_SCHEMA = {"type": "string", "pattern": "^[hH][tT][tT][pP][sS]?://", "maxLength": 2048}


class ApplianceConfig(StrictModel):
    """The NetScaler (or HA pair) to install on."""

    allow_http: Bool = False
    urls: Annotated[
        tuple[str, ...],
        PlainValidator(_urls),
        WithJsonSchema(
            {
                "description": "the NITRO URL, or a list of two for an HA pair",
                "anyOf": [_URL_SCHEMA, {"type": "array", "items": _URL_SCHEMA, "minItems": 1, "maxItems": 2}],
            }
        ),
    ] = Field(alias="url")
    username: Annotated[str, Text(255, header=True)]
    password: Secret
    verify_tls: VerifyTls = True
    partition: (
        Annotated[str, Text(255, check=lambda v: checks.ns_name_problem(v, "partition name"))] | None
    ) = None
    timeout: Annotated[float, Float(positive=True, hi=3600)] = 60.0
    proxy: Proxy | None = None

    @property
    def url(self) -> str:
        return self.urls[0]


# -------------------------------------------------------------------------------------- vservers

_VSERVER_TYPES: dict[str, str] = {
    "lb": "lb",
    "loadbalancing": "lb",
    "load_balancing": "lb",
    "cs": "cs",
    "contentswitching": "cs",
    "content_switching": "cs",
    "vpn": "vpn",
    "gateway": "vpn",
    "authentication": "authentication",
    "aaa": "authentication",
}


class VserverSpec(StrictModel):
    name: Annotated[str, Text(checks.VSERVER_NAME_MAX, check=checks.vserver_name_problem)]
    type: Annotated[VserverType, Choice(_VSERVER_TYPES)] = "lb"
    sni: Bool = False
    #: connect here instead of the VIP NITRO reports (NAT, a firewall's external address)
    probe: ProbeAddress | None = None


def _vserver_item(value: object) -> object:
    return {"name": value} if isinstance(value, str) else value


Vserver = Annotated[VserverSpec, BeforeValidator(_vserver_item, json_schema_input_type=str | VserverSpec)]
Vservers = Annotated[tuple[Vserver, ...], Field(min_length=1, max_length=MAX_VSERVERS)]

# --------------------------------------------------------------------------------- several targets


class ApplianceTarget(ApplianceConfig):
    """One entry of ``appliances:``: an appliance or an HA pair exactly as ``appliance:``, and
    optionally the vservers it gets instead of the profile's ``vservers:``."""

    vservers: Vservers | None = Field(None, description="default: the profile's vservers")


@dataclass(frozen=True)
class Target:
    """One appliance (or HA pair) the profile's certificate is deployed to, with its vservers."""

    index: int
    appliance: ApplianceConfig
    vservers: tuple[VserverSpec, ...]


ROLLOUT_CHOICE = Choice({"all": "all", "canary": "canary"})

#: the rules of :func:`target_problems` an editor can check (added to the profile's JSON Schema)
PROFILE_SCHEMA_RULES: dict[str, Any] = {
    "oneOf": [{"required": ["appliance"]}, {"required": ["appliances"]}],
    "if": {"required": ["appliances"], "properties": {"appliances": {"minItems": 2}}},
    "then": {
        "properties": {
            "certificate": {
                "properties": {
                    "key_location": {"not": {"pattern": "^\\s*[aA][pP][pP][lL][iI][aA][nN][cC][eE]\\s*$"}}
                }
            }
        }
    },
}


def target_problems(data: dict[str, Any], info: ValidationInfo) -> list[tuple[Loc, str]]:
    """The rules across ``appliance:`` / ``appliances:`` (on the raw data, so every problem of the
    file is reported at once): exactly one of them, no appliance twice, no on-box key for several."""
    single, several = data.get("appliance"), data.get("appliances")
    if single is not None and several is not None:
        return [(("appliances",), "give either appliance: (one) or appliances: (several), not both")]
    if single is None and several is None:
        for key in ("appliance", "appliances"):
            if is_null(info, (key,)):
                return [((key,), "must not be empty")]
        return [(("appliance",), "required field is missing (or appliances: a list of appliances)")]
    problems: list[tuple[Loc, str]] = []
    if isinstance(several, tuple):
        problems += _duplicate_targets(several)
        for i, entry in enumerate(several):
            if isinstance(entry, dict):
                problems += duplicate_vservers(entry.get("vservers"), ("appliances", i, "vservers"))
        certificate = data.get("certificate")
        location = certificate.get("key_location") if isinstance(certificate, dict) else None
        if len(several) > 1 and isinstance(location, str) and location.strip().lower() == "appliance":
            problems.append(
                (
                    ("certificate", "key_location"),
                    f"key_location: appliance cannot serve {len(several)} appliances (a key made on one "
                    "box cannot be installed on another); use key_location: local",
                )
            )
    return problems


def _target_key(entry: dict[str, Any]) -> tuple[object, ...] | None:
    urls = entry.get("url")
    items = urls if isinstance(urls, tuple) else (urls,)
    if not all(isinstance(u, str) for u in items):
        return None
    partition = entry.get("partition")
    return (frozenset(u.strip().rstrip("/").lower() for u in items), partition)


def _duplicate_targets(entries: tuple[object, ...]) -> list[tuple[Loc, str]]:
    seen: dict[tuple[object, ...], int] = {}
    problems: list[tuple[Loc, str]] = []
    for i, entry in enumerate(entries):
        key = _target_key(entry) if isinstance(entry, dict) else None
        if key is None:
            continue
        if key in seen:
            problems.append(
                (("appliances", i, "url"), f"the same appliance and partition as appliances[{seen[key]}]")
            )
        else:
            seen[key] = i
    return problems


def duplicate_vservers(vservers: object, where: Loc = ("vservers",)) -> list[tuple[Loc, str]]:
    if not isinstance(vservers, tuple):
        return []
    seen: dict[str, int] = {}
    problems: list[tuple[Loc, str]] = []
    label = format_loc(where)
    for i, item in enumerate(vservers):
        name = item.get("name") if isinstance(item, dict) else item
        if not isinstance(name, str) or not name.strip():
            continue
        name = name.strip()
        loc: Loc = (*where, i, "name") if isinstance(item, dict) else (*where, i)
        if name in seen:
            problems.append((loc, f"duplicate vserver {name!r} (also {label}[{seen[name]}])"))
        else:
            seen[name] = i
    return problems
