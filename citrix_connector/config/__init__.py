"""Configuration: ``scm.yaml`` and certificate profiles -> frozen, strictly validated pydantic models.

Everything is checked before any network call, and every problem of a file is reported at once, each
as ``"<file>:<line>: <field.path>: <message>"`` (the line of the offending YAML node).

- :mod:`.source`: the YAML source layer (file -> data + the line of every node; bounds; ${...})
- :mod:`.scm`, :mod:`.profile`: the models (their JSON Schema is published under ``schemas/``)
- :mod:`.loader`: file -> model, pydantic's errors in our wording
- :mod:`.crosscheck`: checks that need two files; :mod:`.schema`: the JSON Schemas
"""

from __future__ import annotations

from .appliances import ApplianceEntry
from .checks import CERTKEY_NAME_MAX, PROFILE_NAME_MAX, VSERVER_NAME_MAX, derive_certkey_name
from .crosscheck import check_profile_against_scm, expand_profile_paths, sectigo_for
from .loader import load_appliances_file, load_profile, load_scm_config
from .problems import Problem, Severity
from .profile import (
    ApplianceConfig,
    ApplianceTarget,
    CertificateSpec,
    KeyLocation,
    Profile,
    RenewalSpec,
    SectigoSpec,
    SubjectSpec,
    Target,
    VserverSpec,
    VserverType,
)
from .proxy import ProxySetting
from .scm import ApiKind, AuthKind, PollSettings, ScmConfig
from .target import Rollout
from .values import FrozenMap, Secret

__all__ = [
    "CERTKEY_NAME_MAX",
    "PROFILE_NAME_MAX",
    "VSERVER_NAME_MAX",
    "ApiKind",
    "ApplianceEntry",
    "ApplianceConfig",
    "ApplianceTarget",
    "AuthKind",
    "CertificateSpec",
    "FrozenMap",
    "KeyLocation",
    "PollSettings",
    "Problem",
    "Profile",
    "ProxySetting",
    "RenewalSpec",
    "Rollout",
    "ScmConfig",
    "Secret",
    "SectigoSpec",
    "Severity",
    "SubjectSpec",
    "Target",
    "VserverSpec",
    "VserverType",
    "check_profile_against_scm",
    "derive_certkey_name",
    "expand_profile_paths",
    "load_appliances_file",
    "load_profile",
    "load_scm_config",
    "sectigo_for",
]
