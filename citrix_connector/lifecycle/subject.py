"""The subject of a CSR made on the appliance (``key_location: appliance``): NetScaler's CSR command
needs country, state and organization. What the profile leaves out comes from the SCM organization
the order goes to (admin API: ``GET /organization/v1/{id}``, the validated organization SCM fills an
OV certificate from), or, where the API cannot read organizations (the REST Enrollment API, whose
REST account fixes the organization), from documented placeholders that SCM replaces or drops."""

from __future__ import annotations

import dataclasses
import logging

from ..config import Profile, sectigo_for
from ..crypto import Subject
from ..errors import ScmUnsupportedError, UsageError
from .context import Context

log = logging.getLogger("citrixagent")

#: NetScaler's sslcertreq needs these three
REQUIRED = ("country", "state", "organization")
#: where the organization cannot be read: ISO 3166's "user-assigned" code and a neutral state; the
#: organization is the certificate's common name
PLACEHOLDER_COUNTRY = "XX"
PLACEHOLDER_STATE = "Unspecified"


def appliance_subject(ctx: Context, profile: Profile) -> Subject:
    """The profile's subject with country, state and organization filled where it gives none."""
    subject = profile.certificate.subject
    missing = [name for name in REQUIRED if not getattr(subject, name)]
    if not missing:
        return subject
    org_id = sectigo_for(profile, ctx.scm_config).org_id
    try:
        if org_id is None:
            raise ScmUnsupportedError("no organization id")
        org = ctx.scm.organization(org_id)
    except ScmUnsupportedError:
        values: dict[str, str | None] = {
            "country": PLACEHOLDER_COUNTRY,
            "state": PLACEHOLDER_STATE,
            "organization": profile.certificate.common_name,
        }
        source = "placeholders (the SCM API in use cannot read the organization)"
    else:
        values = {"country": org.country, "state": org.state, "organization": org.name}
        source = f"SCM organization {org_id} ({org.name})"
        for name in missing:
            value = values[name]
            if not value or (name == "country" and not (len(value) == 2 and value.isalpha())):
                raise UsageError(
                    f"{profile.name}: SCM organization {org_id} has no usable {name} "
                    f"({value!r}); set certificate.subject.{name} in {profile.source}"
                )
    filled = {name: str(values[name]) for name in missing}
    log.info(
        "%s: CSR subject %s from %s",
        profile.name,
        ", ".join(f"{name} {filled[name]!r}" for name in missing),
        source,
    )
    return dataclasses.replace(subject, **filled)
