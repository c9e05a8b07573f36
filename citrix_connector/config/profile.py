"""The model of a certificate profile: which certificate, from SCM, onto which NetScaler vservers."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal, cast

from pydantic import (
    ConfigDict,
    Field,
    PlainValidator,
    PrivateAttr,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
    model_validator,
)
from pydantic.json_schema import SkipJsonSchema

from ..crypto import ALGORITHM_ALIASES, CURVE_ALIASES, CURVE_BITS, RSA_SIZES, Curve, KeySpec, Subject
from . import checks
from .fields import Bool, Choice, Float, Int, Text, expect_str, text_validator
from .problems import Loc, fail, rule_error
from .proxy import ProxySetting
from .rules import StrictModel, report
from .scm import ID_MAX, CertType, Term
from .target import (
    MAX_TARGETS,
    MAX_VSERVERS,
    PROFILE_SCHEMA_RULES,
    ROLLOUT_CHOICE,
    ApplianceConfig,
    ApplianceTarget,
    Rollout,
    Target,
    Vservers,
    VserverSpec,
    VserverType,
    duplicate_vservers,
    target_problems,
)
from .values import FrozenMap
from .verify import HaSyncSpec, ProbeSetting, ProbeSpec

KeyLocation = Literal["local", "appliance"]

#: bounds of what SCM and NetScaler accept (documented in the README)
MAX_SANS = 250
MAX_CUSTOM_FIELDS = 50
_SUPPORTED = "supported: RSA 2048/3072/4096, ECDSA P-256/P-384"

# ----------------------------------------------------------------------------------- certificate

_KEY_SIZES = (*RSA_SIZES, *CURVE_BITS.values())


def _curve_key(text: str) -> str:
    return text.replace("-", "").replace("_", "").replace(" ", "").upper()


def _key_size(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise fail(f"expected an integer, got {checks.type_name(value)} {checks.shown(value)}")
    if value not in _KEY_SIZES:
        raise fail(f"unsupported key size {value} ({_SUPPORTED})")
    return value


class SubjectSpec(StrictModel):
    """Subject attributes besides the CN."""

    organization: Annotated[str, Text(64, optional=True)] | None = None
    organizational_unit: Annotated[str, Text(64, optional=True)] | None = None
    locality: Annotated[str, Text(128, optional=True)] | None = None
    state: Annotated[str, Text(128, optional=True)] | None = None
    country: (
        Annotated[
            str,
            PlainValidator(lambda v: _country(v)),
            WithJsonSchema({"type": "string", "pattern": "^[A-Za-z]{2}$", "description": "ISO 3166 code"}),
        ]
        | None
    ) = None
    email: Annotated[str, Text(128, optional=True, check=checks.email_problem)] | None = None


def _country(value: object) -> str:
    text = text_validator(optional=True)(value)
    if not (len(text) == 2 and text.isascii() and text.isalpha()):
        raise fail(f"must be a 2-letter country code (ISO 3166), got {checks.shown(text)}")
    return text.upper()


_HostName = Text(253, check=checks.host_name_problem)


_DEFAULT_SUBJECT = SubjectSpec()  # shared by every profile without a subject: section (frozen)


class CertificateSpec(StrictModel):
    common_name: Annotated[str, Text(64, check=checks.host_name_problem)]
    subject_alt_names: Annotated[tuple[Annotated[str, _HostName], ...], Field(max_length=MAX_SANS)] = ()
    key_type: (
        Annotated[
            str,
            Choice(
                ALGORITHM_ALIASES,
                normalise=str.upper,
                canonical=["RSA", "ECDSA"],
                error=lambda v: f"unsupported key algorithm {checks.shown(v)} ({_SUPPORTED})",
            ),
        ]
        | None
    ) = None
    key_size: (
        Annotated[
            int, PlainValidator(_key_size), WithJsonSchema({"type": "integer", "enum": list(_KEY_SIZES)})
        ]
        | None
    ) = None
    curve: (
        Annotated[
            str,
            Choice(
                CURVE_ALIASES,
                normalise=_curve_key,
                canonical=["P-256", "P-384"],
                error=lambda v: f"unsupported ECDSA curve {checks.shown(v)} ({_SUPPORTED})",
            ),
        ]
        | None
    ) = None
    key_location: Annotated[KeyLocation, Choice({"local": "local", "appliance": "appliance"})] = "local"
    subject_fields: SubjectSpec = Field(default_factory=lambda: _DEFAULT_SUBJECT, alias="subject")
    #: derived from the profile name when not given
    certkey_name: Annotated[str, Text(check=checks.certkey_name_problem)] = Field(
        "", validate_default=True, description="default: derived from the profile name"
    )
    # a factory, not a default: pydantic deep-copies a default for every profile loaded
    _key: KeySpec = PrivateAttr(default_factory=lambda: KeySpec("RSA", size=2048))

    @property
    def key(self) -> KeySpec:
        return self._key

    @property
    def subject(self) -> Subject:
        s = self.subject_fields
        return Subject(s.organization, s.organizational_unit, s.locality, s.state, s.country, s.email)

    @model_validator(mode="after")
    def _key_and_names(self) -> CertificateSpec:
        self._key = self._key_spec()
        sans = [self.common_name]
        for name in self.subject_alt_names:
            if name.lower() not in (s.lower() for s in sans):
                sans.append(name)
        object.__setattr__(self, "subject_alt_names", tuple(sans))
        return self

    def _key_spec(self) -> KeySpec:
        """The key from key_type/key_size/curve; an error names the field at fault."""
        size, curve = self.key_size, self.curve
        if (self.key_type or "RSA") == "RSA":
            if curve is not None:
                raise rule_error((("curve",), f"a curve ({curve}) only applies to ECDSA keys, not RSA"))
            if size is not None and size not in RSA_SIZES:
                raise rule_error((("key_size",), f"unsupported RSA key size {size} ({_SUPPORTED})"))
            return KeySpec("RSA", size=size or 2048)
        by_size = {bits: name for name, bits in CURVE_BITS.items()}
        if size is not None and size not in by_size:
            raise rule_error((("key_size",), f"unsupported ECDSA key size {size} ({_SUPPORTED})"))
        if curve is not None and size is not None and CURVE_BITS[cast(Curve, curve)] != size:
            raise rule_error((("key_size",), f"key size {size} does not match curve {curve}"))
        named = curve or (by_size[size] if size is not None else "P-256")
        return KeySpec("ECDSA", curve=named)  # type: ignore[arg-type]


# --------------------------------------------------------------------------------------- sectigo


def _custom_fields(value: object) -> FrozenMap:
    if isinstance(value, FrozenMap):
        return value
    pairs: list[tuple[Loc, str, object]] = []
    if isinstance(value, dict):
        pairs = [((key,), key, item) for key, item in value.items()]
    elif isinstance(value, tuple):
        for i, item in enumerate(value):
            if not isinstance(item, dict):
                raise rule_error(((i,), "expected a mapping with name and value"))
            unknown = sorted(set(item) - {"name", "value"})
            if unknown:
                raise rule_error(((i, unknown[0]), "unknown key (known keys: name, value)"))
            if "name" not in item or "value" not in item:
                missing = "name" if "name" not in item else "value"
                raise rule_error(((i, missing), "required field is missing"))
            name = item["name"]
            if not isinstance(name, str):
                raise rule_error(((i, "name"), "field names must be non-empty strings"))
            pairs.append(((i, "value"), name, item["value"]))
    else:
        raise fail("expected a mapping (name: value) or a list of {name, value}")
    if len(pairs) > MAX_CUSTOM_FIELDS:
        raise fail(f"at most {MAX_CUSTOM_FIELDS} custom fields, got {len(pairs)}")
    result: dict[str, str] = {}
    for loc, name, item in pairs:
        name = name.strip()
        if not name or len(name) > 128:
            raise rule_error((loc, "field names must be non-empty strings of at most 128 characters"))
        if not isinstance(item, str):
            got = checks.type_name(item)
            raise rule_error((loc, f"expected a string, got {got} (put it in quotes)"))
        if name in result:
            raise rule_error((loc, "duplicate custom field"))
        if len(item) > 256:
            raise rule_error((loc, "value longer than 256 characters"))
        result[name] = item
    return FrozenMap(result)


_FIELD_ITEM = {
    "type": "object",
    "properties": {"name": {"type": "string"}, "value": {"type": "string", "maxLength": 256}},
    "required": ["name", "value"],
    "additionalProperties": False,
}


class SectigoSpec(StrictModel):
    org_id: Annotated[int, Int(1, ID_MAX)] | None = None
    cert_type: CertType | None = None
    term: Term | None = None
    comments: Annotated[str, Text(1024, optional=True)] | None = None
    external_requester: Annotated[str, Text(256, optional=True)] | None = None
    custom_fields: Annotated[
        FrozenMap,
        PlainValidator(_custom_fields),
        WithJsonSchema(
            {
                "anyOf": [
                    {"type": "object", "additionalProperties": {"type": "string", "maxLength": 256}},
                    {"type": "array", "items": _FIELD_ITEM, "maxItems": MAX_CUSTOM_FIELDS},
                ]
            }
        ),
    ] = Field(default_factory=FrozenMap)
    profile_id: Annotated[int, Int(1, ID_MAX)] | None = None


class RenewalSpec(StrictModel):
    days_before_expiry: Annotated[int, Int(1, 365)] = 30
    percent_of_lifetime: Annotated[float, Float(lo=1, hi=99)] | None = None
    reuse_key: Bool = False


# --------------------------------------------------------------------------------------- profile


# the default sections, made once (frozen models: sharing them is safe)
_DEFAULT_SECTIGO = SectigoSpec()
_DEFAULT_RENEWAL = RenewalSpec()
_DEFAULT_PROBE = ProbeSpec()
_DEFAULT_HA_SYNC = HaSyncSpec()


class Profile(StrictModel):
    """One certificate profile. ``name`` defaults to the file name without its extension."""

    model_config = ConfigDict(json_schema_extra=PROFILE_SCHEMA_RULES)

    name: Annotated[str, Text(check=checks.profile_name_problem)] = Field(
        "", validate_default=True, description="default: the file name without .yaml/.yml"
    )
    source: SkipJsonSchema[Path] = Path("profile.yaml")
    # exactly one of appliance: / appliances: (the rule is in .target); read both through `targets`
    single_appliance: ApplianceConfig | None = Field(
        None, alias="appliance", description="the appliance (or HA pair); or appliances: for several"
    )
    appliances: Annotated[tuple[ApplianceTarget, ...], Field(min_length=1, max_length=MAX_TARGETS)] | None = (
        Field(None, description="several appliances (or HA pairs), one certificate deployed to each")
    )
    rollout: Annotated[Rollout, ROLLOUT_CHOICE] = Field(
        "all", description="appliances: deploy to all at once, or to the first (verified) then the rest"
    )
    vservers: Vservers
    certificate: CertificateSpec
    # sections a profile leaves out share one (frozen) default instance: a fleet's 10,000 profiles
    # would otherwise hold 40,000 identical models
    sectigo: SectigoSpec = Field(default_factory=lambda: _DEFAULT_SECTIGO)
    renewal: RenewalSpec = Field(default_factory=lambda: _DEFAULT_RENEWAL)
    probe: ProbeSetting = Field(default_factory=lambda: _DEFAULT_PROBE)
    ha_sync: HaSyncSpec = Field(default_factory=lambda: _DEFAULT_HA_SYNC)
    # A profile loaded from a file keeps the file's absolute path instead of its line map, and reads
    # it again when a problem needs a line (a fleet's 10,000 profiles would otherwise hold ~40 MiB of
    # line maps that only an error message ever looks at); one built without a file has no lines.
    _lines_file: Path | None = PrivateAttr(default=None)
    _lines: dict[str, int] | None = PrivateAttr(default=None)
    _warnings: tuple[object, ...] = PrivateAttr(default=())

    @property
    def lines(self) -> dict[str, int]:
        """Line numbers of the profile's keys by dotted path (``"sectigo"``, ``"name"``...)."""
        if self._lines is None:
            from .problems import format_loc

            key_lines = {} if self._lines_file is None else _key_lines_of(self._lines_file)
            self._lines = {format_loc(loc): line for loc, line in key_lines.items()}
        return self._lines

    def line_of(self, path: str) -> int:
        """Best line for ``path``: the field's own, else its closest recorded parent's, else 1."""
        lines = self.lines
        while path:
            if path in lines:
                return lines[path]
            path = path.rpartition(".")[0]
        return 1

    @property
    def appliance(self) -> ApplianceConfig:
        """The appliance of a single-target profile; of several, the first (the canary)."""
        if self.single_appliance is not None:
            return self.single_appliance
        assert self.appliances  # the model's rule: one of the two is given
        return self.appliances[0]

    @property
    def targets(self) -> tuple[Target, ...]:
        """Every appliance the certificate goes to, in the profile's order, with its vservers."""
        if self.single_appliance is not None or not self.appliances:
            return (Target(0, self.appliance, self.vservers),)
        return tuple(
            Target(i, entry, entry.vservers or self.vservers) for i, entry in enumerate(self.appliances)
        )

    @property
    def is_multi(self) -> bool:
        """Several targets (``appliances:`` with two or more entries): one journal, a record per target."""
        return self.single_appliance is None and len(self.appliances or ()) > 1

    def for_target(self, target: Target) -> Profile:
        """This profile as a single-target one (its name, certificate and journal) for ``target``."""
        return self.model_copy(
            update={"single_appliance": target.appliance, "appliances": None, "vservers": target.vservers}
        )

    @property
    def warnings(self) -> tuple[object, ...]:
        """Warnings found while loading (``config.Problem`` with severity warning)."""
        return self._warnings

    @model_validator(mode="before")
    @classmethod
    def _defaults_and_cross_checks(cls, data: Any, info: ValidationInfo) -> Any:
        if not isinstance(data, dict):
            return data
        data = dict(data)
        problems: list[tuple[Loc, str]] = []
        source = data.get("source")
        stem = source.stem if isinstance(source, Path) else ""
        name = data.get("name")
        if name is None and stem:
            problem = checks.profile_name_problem(stem)
            if problem:
                problems.append((("name",), f"the file name gives {problem}; set 'name:' in the file"))
            data["name"] = stem
        base = name.strip() if isinstance(name, str) and name.strip() else stem
        certificate = data.get("certificate")
        if isinstance(certificate, dict) and certificate.get("certkey_name") is None and base:
            data["certificate"] = {**certificate, "certkey_name": checks.derive_certkey_name(base)}
        problems += duplicate_vservers(data.get("vservers"))
        problems += target_problems(data, info)
        report(info, problems)
        return data

    @model_validator(mode="after")
    def _one_entry_is_one_appliance(self) -> Profile:
        """``appliances:`` with one entry is exactly ``appliance:`` (its vservers the profile's)."""
        if self.single_appliance is None and self.appliances and len(self.appliances) == 1:
            (entry,) = self.appliances
            object.__setattr__(self, "single_appliance", entry)
            object.__setattr__(self, "vservers", entry.vservers or self.vservers)
        return self


__all__ = [
    "MAX_VSERVERS",
    "ApplianceConfig",
    "ApplianceTarget",
    "CertificateSpec",
    "KeyLocation",
    "Profile",
    "ProxySetting",
    "RenewalSpec",
    "SectigoSpec",
    "SubjectSpec",
    "Target",
    "VserverSpec",
    "VserverType",
    "expect_str",
    "field_validator",
]


def _key_lines_of(path: Path) -> dict[Loc, int]:
    """The lines of the keys of the profile file ``path``, read again (empty when it is gone)."""
    import os

    from . import source

    return source.read(path, os.environ).key_lines if path.is_file() else {}
