"""The dry-run plan of an order: what would be ordered, then how its certificate would be installed.

Every installation step of a plan comes from deploy's own read-only pass (``deploy(dry_run=True)``),
for a certificate that exists (see :mod:`.install`) and for one SCM has not issued yet
(:meth:`~citrix_connector.nitro.deploy.DeployPlan.not_issued`): what the appliance holds now decides
add or update in place, the file names, and which bindings are missing.
"""

from __future__ import annotations

from ..config import Profile, sectigo_for
from ..nitro.deploy import DeployPlan, deploy
from ..scm import capabilities_of
from ..state import OrderRecord, ProfileState
from ..wording import with_article
from .context import ApplianceSession, Context
from .outcome import Done, OrderKind, RowFacts


def plan_order(
    ctx: Context,
    profile: Profile,
    state: ProfileState,
    session: ApplianceSession,
    kind: OrderKind,
) -> Done:
    cert = profile.certificate
    plan = []
    if kind == "renew" and profile.renewal.reuse_key:
        plan.append("reuse the current key and make a new CSR")
    elif cert.key_location == "local":
        plan.append(
            f"generate {with_article(cert.key.describe())} key locally and a CSR for "
            + ", ".join(cert.subject_alt_names)
        )
    else:
        plan.append(
            f"create {with_article(cert.key.describe())} key and a CSR on {session.node} "
            f"for {', '.join(cert.subject_alt_names)}"
        )
    api = ctx.scm_config.api if ctx.scm_config else "?"
    if kind == "enroll":
        s = sectigo_for(profile, ctx.scm_config)
        detail = (
            f"org {s.org_id}, type {s.cert_type}, term {s.term}"
            if ctx.scm_config is not None and capabilities_of(ctx.scm_config).enroll_from_profile
            else "REST account's profile and term"
        )
        plan.append(f"order a new certificate from SCM ({api} API: {detail})")
    else:
        prev = state.current.order_id if state.current else "?"
        plan.append(f"{kind} SCM order {prev} ({api} API)")
    plan.append("wait for SCM to issue it, then install it:")
    plan.extend(deploy_plan_for_new(profile, session))
    plan.append(f"save the configuration of {session.node}")
    return Done(
        kind,
        "planned",
        "dry run: nothing ordered, nothing written",
        RowFacts.of(state, None, ctx.clock()),
        plan=tuple(plan),
    )


def deploy_plan_for_new(
    profile: Profile, session: ApplianceSession, pending: OrderRecord | None = None
) -> list[str]:
    """How the certificate of an order not issued yet (``pending``, or one about to be placed) would
    be installed: deploy's read-only pass over what the appliance holds now."""
    cert = profile.certificate
    plan = DeployPlan.not_issued(
        cert.certkey_name,
        common_name=pending.common_name if pending else cert.common_name,
        sans=pending.sans if pending else cert.subject_alt_names,
        key_location=pending.key_location if pending else cert.key_location,
        vservers=profile.vservers,
        file_base=cert.certkey_name,
    )
    result = deploy(session.nitro, plan, dry_run=True)
    return [f"  {action}" for action in result.actions]
