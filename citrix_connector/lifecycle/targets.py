"""A profile with several appliances (``appliances:``): one SCM order, one certificate, every target.

The certificate side is the profile's, exactly as for one appliance (the journal's intent, order,
pending, current; :func:`~.decide.decide`); the deployment side is per target: each target has its own
deployment record in the journal (``ProfileState.targets``, keyed by the appliance's label), its own
result row, and is decided on its own (:func:`~.decide.decide_target`) once no order is due.

* Every target is preflighted before anything is ordered: one target that cannot take the
  certificate (a missing vserver) means no order.
* A failed target never rolls back the others; its row fails (exit 1, naming the appliance) and the
  next run installs the journal's certificate on the targets that lack it only: no order, and
  nothing written to the targets that serve it (their check is read-only).
* ``rollout: canary``: the first target is installed, its appliance saved and checked (the
  read-back of :func:`verify_target`) before any other is touched; when it fails the others are
  left as they are and the next run tries the canary again (its journal record says whether its
  check passed). ``all`` (the default) installs every target in the profile's order.

The runner holds one NITRO session per appliance for the whole run (a target shares it with the
single-appliance profiles of the same appliance) and saves each appliance once at the end.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from ..config import Profile, Target
from ..errors import EXIT_FAILURE, CitrixAgentError, StateError, UsageError
from ..nitro.checks import InstalledState
from ..state import ProfileState
from . import install, ordering, status
from . import verify as verification
from .context import ApplianceSession, Context, appliance_key
from .decide import Decision, decide, decide_target, serving_current
from .outcome import EXIT_ATTENTION, Action, Deferred, Done, OrderKind, RowFacts, iso
from .plan import deploy_plan_for_new, plan_order

log = logging.getLogger("citrixagent")


@dataclass(frozen=True)
class Slot:
    """One target of a profile in this run: the profile as that target's, and its appliance session."""

    target: Target
    profile: Profile
    session: ApplianceSession

    @property
    def label(self) -> str:
        """The target as the journal keys it (its first configured URL)."""
        return self.session.label

    @property
    def node(self) -> str:
        """The target as messages name it: the node written to (an HA pair's current Primary)."""
        return self.session.node


#: what a command does for a profile with several targets: its order (collected later), or one row
#: per target in the profile's order
MultiStep = Deferred | list[Done]
MultiWork = Callable[[Profile, list[Slot]], MultiStep]


# ------------------------------------------------------------------------------------- grouping


def group_profiles(profiles: Sequence[Profile]) -> list[list[Profile]]:
    """Profiles in groups that share no appliance (each group runs in one worker with one session per
    appliance): a profile with several targets joins the groups of all its appliances."""
    parent: dict[tuple[Any, ...], tuple[Any, ...]] = {}

    def find(key: tuple[Any, ...]) -> tuple[Any, ...]:
        while parent[key] != key:
            parent[key] = parent[parent[key]]
            key = parent[key]
        return key

    for profile in profiles:
        keys = [appliance_key(t.appliance) for t in profile.targets]
        for key in keys:
            parent.setdefault(key, key)
        for key in keys[1:]:
            parent[find(key)] = find(keys[0])
    groups: dict[tuple[Any, ...], list[Profile]] = {}
    for profile in profiles:
        groups.setdefault(find(appliance_key(profile.appliance)), []).append(profile)
    return list(groups.values())


def guard(
    profile: Profile,
    slots: list[Slot],
    work: MultiWork,
    failed_as: Action | None = None,
    ctx: Context | None = None,
) -> MultiStep:
    """``work``'s step, or what it raised as a failed row for every target (never an exception);
    with ``ctx`` each failed row says what its target still serves (from the journal)."""
    try:
        return work(profile, slots)
    except Exception as exc:  # a failure, or a bug, must not stop the other profiles
        row = Done.of_exception(profile.name, exc, failed_as)
    log.info("%s: %s %s (%s)", profile.name, row.action, row.result, row.message)
    if ctx is not None and row.result == "failed":
        return _served_rows(ctx, profile, slots, row)
    return [row for _ in slots]


def _served_rows(ctx: Context, profile: Profile, slots: list[Slot], row: Done) -> list[Done]:
    """``row`` for every target, each with what that target serves by its journal record (e.g. an
    order SCM could not take: the old certificate is still bound and serving there)."""
    try:
        state = _load(ctx, profile, slots, recover=False)
    except CitrixAgentError:  # the journal itself is what failed: nothing more to say
        return [row for _ in slots]
    now = ctx.clock()
    return [replace(row, facts=RowFacts.served(state, now, target=s.label)) for s in slots]


# ------------------------------------------------------------------------------------- commands


def run(ctx: Context, profile: Profile, slots: list[Slot]) -> MultiStep:
    """``run``: resume or place the profile's order, else bring every target to its certificate."""
    state = _load(ctx, profile, slots)
    now = ctx.clock()
    decision = decide(slots[0].profile, state, None, now, hint=ctx.hint)
    log.info("%s: run decides %s: %s", profile.name, decision.action, decision.reason)
    if decision.action == "blocked":
        return [_row(ctx, state, s, "blocked", "failed", decision.reason, EXIT_FAILURE) for s in slots]
    if decision.action == "collect" and state.pending is None:  # an interrupted order, in a dry run
        return [_row(ctx, state, s, "collect", "planned", decision.reason) for s in slots]
    if decision.action == "collect":
        return _collect_step(ctx, profile, state, slots, decision.reason)
    if decision.action in ("enroll", "renew", "replace"):
        kind: OrderKind = decision.action
        return order(ctx, profile, state, slots, kind, why=decision.reason)
    return deploy(ctx, profile, state, slots, action="redeploy")


def enroll(ctx: Context, profile: Profile, slots: list[Slot]) -> MultiStep:
    state = _load(ctx, profile, slots)
    if state.pending is not None:
        return _collect_step(ctx, profile, state, slots)
    if state.current is not None and not ctx.force:
        return deploy(
            ctx,
            profile,
            state,
            slots,
            action="redeploy",
            why="enrolled before; installing that certificate",
            nothing="already enrolled and installed; use renew or replace, or --force for a new order",
        )
    return order(ctx, profile, state, slots, "enroll")


def order_command(ctx: Context, profile: Profile, slots: list[Slot], kind: OrderKind) -> MultiStep:
    """``renew`` / ``replace``: one order for the profile, its certificate then on every target."""
    state = _load(ctx, profile, slots)
    if state.pending is not None:
        return _collect_step(ctx, profile, state, slots)
    if state.current is None:
        raise UsageError(
            f"{profile.name}: nothing to {kind}: no certificate was enrolled for this profile "
            f"yet; run `{ctx.hint('run', profile.source)}` to enroll one"
        )
    return order(ctx, profile, state, slots, kind)


def collect(ctx: Context, profile: Profile, slots: list[Slot], deferred: Deferred) -> list[Done]:
    """The second pass: collect the profile's order once, then install it on every target."""
    state = ctx.store.load(profile.name)
    if state.pending is None:  # cannot happen: the first pass journalled it
        raise StateError(f"{profile.name}: no pending order to collect")
    install.collect_issued(ctx, slots[0].profile, state)
    return deploy(ctx, profile, state, slots, action=deferred.action, why=deferred.why, fresh=True)


def status_rows(ctx: Context, profile: Profile, slots: list[Slot], *, probe: bool = False) -> list[Done]:
    """``status``: a row per target (read-only; SCM is asked once, about an order in flight);
    ``probe``: each target's VIPs too."""
    state = _load(ctx, profile, slots, recover=False)
    rows = [
        status.status(ctx, s.profile, s.session, state=state, target=s.label, ask_scm=i == 0, probe=probe)
        for i, s in enumerate(slots)
    ]
    lead = slots[0]
    if profile.rollout == "canary" and rows[0].result == "ok" and not _verified(state, lead.label):
        why = (
            f"the canary {lead.node} serves the certificate but its check after the save has not "
            "passed yet: run checks it before installing on the other targets"
        )
        details = {**rows[0].details, "next": "check", "next_reason": why}
        rows[0] = replace(rows[0], result="attention", message=why, details=details, exit_code=EXIT_ATTENTION)
    return rows


def revoke(ctx: Context, profile: Profile, slots: list[Slot], reason: str, reason_code: int) -> list[Done]:
    """``revoke``: the one certificate at SCM, then a row per target (warning where it still serves)."""
    return status.revoke_targets(ctx, profile, [(s.profile, s.session) for s in slots], reason, reason_code)


# ---------------------------------------------------------------------------------------- steps


def order(
    ctx: Context, profile: Profile, state: ProfileState, slots: list[Slot], kind: OrderKind, *, why: str = ""
) -> MultiStep:
    """Preflight every target, then place the one order (its collection is deferred)."""
    failures = _preflight_all(slots, kind)
    if failures:
        names = ", ".join(slots[i].node for i in failures)
        return [
            failures[i]
            if i in failures
            else _row(ctx, state, s, kind, "nothing", f"nothing ordered: {names} failed the preflight")
            for i, s in enumerate(slots)
        ]
    if ctx.dry_run:
        first = plan_order(ctx, slots[0].profile, state, slots[0].session, kind)
        also = "then install the same certificate on {}:"
        return [first, *(_install_plan(ctx, state, s, kind, also.format(s.node)) for s in slots[1:])]
    lead = slots[0]
    step = ordering.order(ctx, lead.profile, state, lead.session, kind, why=why)  # preflight: asked already
    return step if isinstance(step, Deferred) else [step for _ in slots]


def _preflight_all(slots: list[Slot], action: Action) -> dict[int, Done]:
    failures: dict[int, Done] = {}
    for i, slot in enumerate(slots):
        try:
            slot.session.preflight(slot.profile.vservers)
        except CitrixAgentError as exc:
            failures[i] = _failed(slot, action, exc)
    return failures


def _collect_step(
    ctx: Context, profile: Profile, state: ProfileState, slots: list[Slot], why: str = ""
) -> MultiStep:
    if not ctx.dry_run:
        return Deferred("collect", why)
    pending = state.pending
    assert pending is not None
    collect = f"collect SCM order {pending.order_id} ({pending.kind}), then install it on {{}}:"
    return [_install_plan(ctx, state, s, "collect", collect.format(s.node)) for s in slots]


def _install_plan(ctx: Context, state: ProfileState, slot: Slot, action: Action, first: str) -> Done:
    """A dry run's plan for a certificate not issued yet on one target (from deploy's read-only pass)."""
    steps = (
        first,
        *deploy_plan_for_new(slot.profile, slot.session, state.pending),
        f"save the configuration of {slot.node}",
    )
    facts = RowFacts.of(state, None, ctx.clock(), target=slot.label)
    return Done(action, "planned", "dry run: nothing ordered, nothing written", facts, plan=steps)


def deploy(
    ctx: Context,
    profile: Profile,
    state: ProfileState,
    slots: list[Slot],
    *,
    action: Action,
    why: str = "",
    nothing: str = "",
    fresh: bool = False,
) -> list[Done]:
    """The journal's certificate onto each target that lacks it, in the profile's rollout.
    ``fresh``: it was just issued (no target has it: nothing is read first)."""
    decisions: list[Decision | Done] = []
    seen: dict[int, InstalledState | None] = {}  # what each target serves, as read (its row shows it)
    for i, slot in enumerate(slots):
        if fresh:
            decisions.append(Decision("redeploy", why))
            continue
        try:
            seen[i] = slot.session.installed(slot.profile)
        except CitrixAgentError as exc:
            decisions.append(_failed(slot, action, exc, state, ctx.clock()))
            continue
        decisions.append(decide_target(slot.profile, state, slot.label, seen[i]))
    rows: dict[int, Done] = {}
    todo: list[int] = []
    for i, decision in enumerate(decisions):
        if isinstance(decision, Done):
            rows[i] = decision
        elif decision.action == "nothing":
            rows[i] = _row(
                ctx, state, slots[i], "nothing", "nothing", nothing or decision.reason, seen=seen.get(i)
            )
            canary = profile.rollout == "canary" and i == 0  # the canary's own check is below
            if not ctx.dry_run and not canary and verification.last_check_failed(state, slots[i].label):
                # installed and saved there, but its check after the save failed: check it again
                rows[i] = verification.recheck(
                    ctx, slots[i].profile, slots[i].session, rows[i], state=state, target=slots[i].label
                )
        else:
            todo.append(i)
    lead = slots[0]
    if profile.rollout == "canary" and not ctx.dry_run:
        unchecked = 0 in rows and rows[0].result == "nothing" and not _verified(state, lead.label)
        if 0 in todo or unchecked:
            first = decisions[0]
            assert isinstance(first, Decision)
            rows[0] = _canary(ctx, state, lead, first, action, why)
            todo = [i for i in todo if i != 0]
        if rows[0].result == "failed":
            for i in todo:
                rows[i] = _row(
                    ctx,
                    state,
                    slots[i],
                    action,
                    "nothing",
                    f"not deployed: the canary {lead.node} failed (the next run tries it again first)",
                    seen=seen.get(i),
                )
            return [rows[i] for i in range(len(slots))]
    for i in todo:
        decision = decisions[i]
        assert isinstance(decision, Decision)
        rows[i] = _deploy_one(ctx, state, slots[i], decision, action, why)
    return [rows[i] for i in range(len(slots))]


def _deploy_one(
    ctx: Context, state: ProfileState, slot: Slot, decision: Decision, action: Action, why: str
) -> Done:
    """One target (its failure is its own row: the other targets go on)."""
    try:
        if decision.save_only:
            slot.session.unsaved_profiles.append((slot.profile, state, slot.label))
            serial = state.current.serial if state.current else "?"
            what = (
                f"the configuration a previous run left unsaved on {slot.node} (serial {serial} installed)"
            )
            result = "planned" if ctx.dry_run else "ok"
            message = f"would save {what}" if ctx.dry_run else f"saved {what}"
            return _row(ctx, state, slot, "redeploy", result, message)
        return install.deploy_current(
            ctx,
            slot.profile,
            state,
            slot.session,
            action=action,
            why=why or decision.reason,
            target=slot.label,
        )
    except CitrixAgentError as exc:
        log.debug("%s on %s failed", slot.profile.name, slot.label, exc_info=True)
        return _failed(slot, action, exc, state, ctx.clock())  # the old certificate may still serve
    except Exception as exc:  # a bug on one target must not stop the others
        log.exception("%s on %s: internal error", slot.profile.name, slot.label)
        return Done.failed(action, f"{slot.node}: internal error: {type(exc).__name__}: {exc}")


def _canary(
    ctx: Context, state: ProfileState, slot: Slot, decision: Decision, action: Action, why: str
) -> Done:
    """Install on the first target (if it lacks the certificate), save its appliance, check it."""
    done: Done | None = None
    if decision.action == "redeploy":
        done = _deploy_one(ctx, state, slot, decision, action, why)
        if done.result == "failed":
            return done
        error = install.save_appliance(ctx, slot.session)
        if error is not None:
            return Done.failed(
                action, f"{slot.node}: deployed, but saving the configuration failed: {error}"
            )
    proof: verification.TargetVerification | None = None
    try:
        problem = verify_target(ctx, state, slot)
        if problem is None:  # then the proof: the HA secondary in sync, every VIP serving it
            proof = verification.check_session(ctx, slot.profile, slot.session, state)
            problem = "; ".join(proof.failures) or None
    except CitrixAgentError as exc:
        problem = str(exc)
    if problem is not None:
        return _row(
            ctx,
            state,
            slot,
            action,
            "failed",
            f"canary {slot.label}: the check after deploying failed: {problem}",
            EXIT_FAILURE,
        )
    record = state.deployment(slot.label)
    assert record is not None
    record.verified_at = iso(ctx.clock())
    state.add_event("verified", appliance=slot.label, serial=record.serial)
    ctx.store.save(state)
    if done is None:
        done = _row(
            ctx, state, slot, "nothing", "ok", f"canary {slot.label} checked: it serves the certificate"
        )
    else:
        done = replace(done, message=f"{done.message}; canary checked" if done.message else "canary checked")
    return verification.fold_into(done, proof) if proof is not None else done


def verify_target(ctx: Context, state: ProfileState, slot: Slot) -> str | None:
    """The check of a target after its save: what it serves, read back (None when it is right)."""
    slot.session.forget_view()
    installed = slot.session.installed(slot.profile)
    if serving_current(slot.profile, state, installed):
        return None
    current = state.current
    assert current is not None
    bound = ", ".join(installed.bound_vservers) if installed else ""
    serial = installed.serial if installed else None
    return (
        f"{slot.label} serves serial {serial or 'none'} on {bound or 'no vserver'}, "
        f"expected {current.serial} on every vserver"
    )


def _verified(state: ProfileState, label: str) -> bool:
    record = state.deployment(label)
    return (
        record is not None
        and record.verified_at is not None
        and state.current is not None
        and record.serial == state.current.serial
    )


# -------------------------------------------------------------------------------------- helpers


def _load(ctx: Context, profile: Profile, slots: list[Slot], *, recover: bool = True) -> ProfileState:
    """The profile's journal; a deployment recorded while the profile had one appliance becomes that
    target's record (so turning ``appliance:`` into ``appliances:`` rewrites nothing there)."""
    state = ordering.load(ctx, profile, recover=recover)
    single = state.deployed
    if single is not None and not state.targets and any(s.label == single.appliance for s in slots):
        state.targets = [single]
        state.deployed = None
        state.stale_files, single.stale_files = [], state.stale_files
    return state


def _row(
    ctx: Context,
    state: ProfileState,
    slot: Slot,
    action: Action,
    result: Any,
    message: str,
    exit_code: int = 0,
    *,
    seen: InstalledState | None = None,
) -> Done:
    """A target's row: SERIAL, EXPIRES and VSERVERS say what it serves (``seen``: as read; else its
    deployment record), not the journal's newest certificate."""
    facts = RowFacts.served(state, ctx.clock(), target=slot.label, installed=seen)
    return Done(action, result, message, facts, exit_code=exit_code)


def _failed(
    slot: Slot,
    action: Action,
    error: CitrixAgentError,
    state: ProfileState | None = None,
    now: datetime | None = None,
) -> Done:
    """A target's failed row; its message names the appliance (once). With ``state``, its facts say
    what the target still serves (from its deployment record) and the order the row is about."""
    text = str(error)
    host = slot.node.split("[", 1)[0]
    done = replace(Done.failed(action, error), message=text if host in text else f"{slot.node}: {text}")
    if state is None or now is None:
        return done
    return replace(done, facts=RowFacts.served(state, now, target=slot.label))
