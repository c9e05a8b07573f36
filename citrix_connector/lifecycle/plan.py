"""The dry-run plan of an order: what would be ordered, then how its certificate would be installed.

A certificate that exists is planned by deploy's own read-only pass (see :mod:`.install`); one that
SCM has not issued yet cannot be, so its installation is described from what the appliance holds now.
"""

from __future__ import annotations

from ..config import Profile
from ..state import ProfileState
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
            f"generate a {cert.key.describe()} key locally and a CSR for {', '.join(cert.subject_alt_names)}"
        )
    else:
        plan.append(
            f"create a {cert.key.describe()} key and a CSR on {session.label} "
            f"for {', '.join(cert.subject_alt_names)}"
        )
    api = ctx.scm_config.api if ctx.scm_config else "?"
    if kind == "enroll":
        s = profile.sectigo
        detail = (
            f"org {s.org_id}, type {s.cert_type}, term {s.term}"
            if api == "admin"
            else "REST account's profile and term"
        )
        plan.append(f"order a new certificate from SCM ({api} API: {detail})")
    else:
        prev = state.current.order_id if state.current else "?"
        plan.append(f"{kind} SCM order {prev} ({api} API)")
    plan.append("wait for SCM to issue it, then install it:")
    plan.extend(deploy_plan_for_new(profile, session))
    plan.append(f"save the configuration of {session.label}")
    return Done(
        kind,
        "planned",
        "dry run: nothing ordered, nothing written",
        RowFacts.of(state, None, ctx.clock()),
        plan=tuple(plan),
    )


def deploy_plan_for_new(profile: Profile, session: ApplianceSession) -> list[str]:
    cert = profile.certificate
    installed = session.installed(profile)
    with_key = " and key" if cert.key_location == "local" else ""
    steps = ["  install the issuing CA certificate(s) unless already installed (found by serial), and link"]
    if installed is not None and installed.serial:
        steps.append(
            f"  upload the new certificate{with_key} and update certkey {cert.certkey_name} in place "
            "(bindings kept)"
        )
    else:
        steps.append(f"  upload the certificate{with_key} and add certkey {cert.certkey_name}")
    bound = set(installed.bound_vservers) if installed is not None else set()
    for vs in profile.vservers:
        if vs.name not in bound:
            sni = " as SNI certificate" if vs.sni else ""
            steps.append(f"  bind {cert.certkey_name} to {vs.type} vserver {vs.name}{sni}")
    return steps
