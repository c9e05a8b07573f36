"""Runs a command over profiles: appliances concurrently (bounded), one NITRO session and one config
save per appliance, orders of an appliance's profiles placed before any is collected, one failing
profile never stopping the others."""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any, TypeVar

from ..config import ApplianceConfig, Profile, ScmConfig
from ..cpuslot import computing, waiting
from ..errors import EXIT_FAILURE, CitrixAgentError, UsageError
from ..hints import CommandHint, invoked_program
from ..nitro.client import NitroClient
from ..nitro.deploy import InstalledState
from ..probe.guard import check_overrides
from ..scm import ScmClient, make_scm_client
from ..state import ProfileState, StateStore
from . import adopt, install, ordering, status, targets, verify
from .context import ApplianceSession, Context, appliance_key, default_nitro_opener, utc_now
from .decide import Decision, decide, decide_plain, serving_current
from .outcome import Action, Deferred, Done, OrderKind, Outcome, RowFacts, Step, build_outcome
from .prefetch import Collections

log = logging.getLogger("citrixagent")

Work = Callable[[Profile, ApplianceSession], Step]

#: Most appliances worked on at once. The worker threads wait on sockets (NITRO and SCM round trips),
#: they do not compute, so the default is one per appliance up to this cap.
MAX_WORKERS = 256
S = TypeVar("S", Done, Step)


def _giving_up_the_slot(sleep: Callable[[float], None]) -> Callable[[float], None]:
    def slept(seconds: float) -> None:
        with waiting():
            sleep(seconds)

    return slept


class Agent:
    """Runs commands over profiles. Construct once per CLI invocation."""

    def __init__(
        self,
        scm_config: ScmConfig | None,
        store: StateStore,
        *,
        scm_factory: Callable[[ScmConfig], ScmClient] | None = None,
        nitro_opener: Callable[[ApplianceConfig], NitroClient] | None = None,
        clock: Callable[[], datetime] = utc_now,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        workers: int | None = None,
        dry_run: bool = False,
        force: bool = False,
    ) -> None:
        # The default clients back off between retries with this Agent's ``sleep`` (tests: a no-op);
        # a fleet worker gives the compute slot up while it sleeps, whatever the sleep given.
        sleep = _giving_up_the_slot(sleep)
        self.ctx = Context(
            scm_config=scm_config,
            store=store,
            scm_factory=scm_factory or (lambda config: make_scm_client(config, sleep=sleep)),
            clock=clock,
            monotonic=monotonic,
            sleep=sleep,
            dry_run=dry_run,
            force=force,
            # hints in messages name the scm.yaml and state directory this command was given
            hint=CommandHint(
                scm_config.source if scm_config is not None else None, store.root, invoked_program()
            ),
        )
        self.nitro_opener: Callable[[ApplianceConfig], NitroClient] = nitro_opener or (
            lambda config: default_nitro_opener(config, sleep=sleep)
        )
        # None: one worker per appliance, up to MAX_WORKERS
        self.workers = None if workers is None else max(1, min(workers, MAX_WORKERS))
        # per profile, the action being attempted (a failed row names it: the command's, or what
        # `run` decided); profile names are unique within a command, each written by one worker
        self._attempted: dict[str, Action] = {}

    # -- public commands -------------------------------------------------------------------------
    def enroll(self, profiles: Sequence[Profile]) -> list[Outcome]:
        return self._for_each(
            profiles, self._enroll_one, lambda p, s: targets.enroll(self.ctx, p, s), attempt="enroll"
        )

    def renew(self, profiles: Sequence[Profile]) -> list[Outcome]:
        return self._for_each(
            profiles,
            lambda p, s: self._order_command(p, s, "renew"),
            lambda p, s: targets.order_command(self.ctx, p, s, "renew"),
            attempt="renew",
        )

    def replace(self, profiles: Sequence[Profile]) -> list[Outcome]:
        return self._for_each(
            profiles,
            lambda p, s: self._order_command(p, s, "replace"),
            lambda p, s: targets.order_command(self.ctx, p, s, "replace"),
            attempt="replace",
        )

    def run(self, profiles: Sequence[Profile]) -> list[Outcome]:
        return self._for_each(
            profiles, self._run_one, lambda p, s: targets.run(self.ctx, p, s), attempt="run"
        )

    def status(self, profiles: Sequence[Profile], *, probe: bool = False) -> list[Outcome]:
        """``probe``: also a TLS handshake to every VIP of each profile (read-only)."""
        return self._for_each(
            profiles,
            lambda p, s: status.status(self.ctx, p, s, probe=probe),
            lambda p, s: targets.status_rows(self.ctx, p, s, probe=probe),
            save_config=False,
            attempt="status",
        )

    def revoke(self, profiles: Sequence[Profile], *, reason: str, reason_code: int) -> list[Outcome]:
        return self._for_each(
            profiles,
            lambda p, s: status.revoke(self.ctx, p, s, reason, reason_code),
            lambda p, s: targets.revoke(self.ctx, p, s, reason, reason_code),
            save_config=False,
            attempt="revoke",
        )

    # -- what each command does for one profile --------------------------------------------------
    def _collect_step(
        self, profile: Profile, state: ProfileState, session: ApplianceSession, why: str = ""
    ) -> Step:
        """Collect + install a pending order now (a dry run's plan), or in a real run after the
        appliance's other profiles have placed their orders."""
        if self.ctx.dry_run:
            return install.collect_and_deploy(self.ctx, profile, state, session)
        return Deferred("collect", why)

    def _enroll_one(self, profile: Profile, session: ApplianceSession) -> Step:
        ctx = self.ctx
        state = ordering.load(ctx, profile)
        if state.pending is not None:
            return self._collect_step(profile, state, session)
        if state.current is not None and not ctx.force:
            installed = session.installed(profile)
            if serving_current(profile, state, installed):
                return Done(
                    "nothing",
                    "nothing",
                    "already enrolled and installed; for a new certificate run "
                    f"`{ctx.hint('renew', profile.source)}` (or replace, or enroll --force)",
                    RowFacts.of(state, installed, ctx.clock()),
                )
            return install.deploy_current(
                ctx, profile, state, session, why="it was enrolled before and the appliance does not serve it"
            )
        installed = session.installed(profile)
        if installed is not None and adopt.unrecorded(state, installed):
            note = adopt.note_for(profile, installed)  # the new certificate updates it in place
            return self._noted(ordering.order(ctx, profile, state, session, "enroll", why=note), note)
        return ordering.order(ctx, profile, state, session, "enroll")

    def _order_command(self, profile: Profile, session: ApplianceSession, kind: OrderKind) -> Step:
        state = ordering.load(self.ctx, profile)
        if state.pending is not None:
            return self._collect_step(profile, state, session)
        installed = session.installed(profile) if state.current is None else None
        if installed is not None and adopt.unrecorded(state, installed):
            # a certkey this journal never recorded: adopt it, then renew (or replace) its SCM order
            adoption = adopt.adopt(self.ctx, profile, state, session, installed)
            order_kind: OrderKind = kind if adoption.order_id else "enroll"
            why = (
                adoption.note if adoption.order_id else f"{adoption.note}: no SCM order to {kind}, a new one"
            )
            step = ordering.order(self.ctx, profile, state, session, order_kind, why=why)
            return self._noted(step, adoption.note)
        if state.current is None:
            raise UsageError(
                f"{profile.name}: nothing to {kind}: no certificate was enrolled for this profile "
                f"yet; run `{self.ctx.hint('run', profile.source)}` to enroll one"
            )
        return ordering.order(self.ctx, profile, state, session, kind)

    def _run_one(self, profile: Profile, session: ApplianceSession) -> Step:
        ctx = self.ctx
        state = ordering.load(ctx, profile)
        installed = None if state.pending is not None else session.installed(profile)
        now = ctx.clock()
        if installed is not None and adopt.unrecorded(state, installed):
            adoption = adopt.adopt(ctx, profile, state, session, installed)
            decision = adopt.first_decision(
                profile, state, adoption, decide_plain(profile, state, installed, now, hint=ctx.hint), now
            )
            why = f"{adoption.note}: {decision.reason}"
            facts = RowFacts.of(state, installed, now)
            if decision.action == "nothing":
                if ctx.dry_run:
                    return Done("adopt", "planned", why, facts, plan=(adoption.note,))
                # the row says what it did: "adopted certkey X, serial S (SCM order N): ..."
                done = "adopted" + why.removeprefix("adopting") if why.startswith("adopting") else why
                return Done("adopt", "adopted", done, facts, plan=(adoption.note,))
            return self._noted(self._act(profile, session, state, installed, decision, why), adoption.note)
        decision = decide(profile, state, installed, now, hint=ctx.hint)
        return self._act(profile, session, state, installed, decision, decision.reason)

    @staticmethod
    def _noted(step: Step, note: str) -> Step:
        """A dry run's plan starts with the adoption it would record."""
        if isinstance(step, Done) and step.result == "planned":
            return dataclasses.replace(step, plan=(note, *step.plan))
        return step

    def _act(
        self,
        profile: Profile,
        session: ApplianceSession,
        state: ProfileState,
        installed: InstalledState | None,
        decision: Decision,
        why: str,
    ) -> Step:
        ctx = self.ctx
        now = ctx.clock()
        log.info("%s: run decides %s: %s", profile.name, decision.action, why)
        self._attempted[profile.name] = decision.action
        facts = RowFacts.of(state, installed, now)
        if decision.action == "blocked":
            return Done("blocked", "failed", why, facts, exit_code=EXIT_FAILURE)
        if decision.action == "collect" and state.pending is None:  # an interrupted order, in a dry run
            return Done("collect", "planned", why, facts)
        if decision.action == "collect":
            return self._collect_step(profile, state, session, why)
        if decision.action in ("enroll", "renew", "replace"):
            kind: OrderKind = decision.action
            return ordering.order(ctx, profile, state, session, kind, why=why)
        if decision.action == "redeploy":
            if (
                state.deployed is not None
                and not state.deployed.saved
                and serving_current(profile, state, installed)
            ):
                # Installed but the save never happened: only the save is missing.
                session.unsaved_profiles.append((profile, state, None))
                serial = state.deployed.serial
                what = f"the configuration a previous run left unsaved (serial {serial} installed)"
                return Done(
                    "redeploy",
                    "planned" if ctx.dry_run else "ok",
                    f"would save {what}" if ctx.dry_run else f"saved {what}",
                    facts,
                )
            return install.deploy_current(ctx, profile, state, session, why=why)
        if not ctx.dry_run and verify.last_check_failed(state):
            # installed and saved, but its check after the save failed last time: check it again
            return verify.recheck(ctx, profile, session, Done("nothing", "nothing", why, facts), state=state)
        return Done("nothing", "nothing", why, facts)

    def _collect_deferred(
        self, deferred: Deferred, ahead: Collections
    ) -> Callable[[Profile, ApplianceSession], Done]:
        def collect(profile: Profile, session: ApplianceSession) -> Done:
            state = ahead.take(profile)
            if state is None:  # not collected ahead: in line
                state = install.collect_journalled(self.ctx, profile)
            return install.deploy_current(
                self.ctx, profile, state, session, action=deferred.action, why=deferred.why
            )

        return collect

    # -- orchestration ---------------------------------------------------------------------------
    def _for_each(
        self,
        profiles: Sequence[Profile],
        work: Work,
        multi: targets.MultiWork,
        *,
        attempt: Action,
        save_config: bool = True,
    ) -> list[Outcome]:
        """``work`` for each single-appliance profile, ``multi`` for each with several appliances;
        groups of profiles sharing no appliance run concurrently, one session per appliance."""
        groups = targets.group_profiles(profiles)

        def run_group(group: list[Profile]) -> list[Outcome]:
            sessions: dict[tuple[Any, ...], ApplianceSession] = {}

            def session_for(config: ApplianceConfig) -> ApplianceSession:
                key = appliance_key(config)
                if key not in sessions:
                    sessions[key] = ApplianceSession(config, self.nitro_opener)
                return sessions[key]

            try:
                units = [
                    (
                        p,
                        [
                            targets.Slot(t, p.for_target(t) if p.is_multi else p, session_for(t.appliance))
                            for t in p.targets
                        ],
                    )
                    for p in group
                ]
                steps = [self._first_pass(p, slots, work, multi, attempt) for p, slots in units]
                # Second pass: collect and install what the first pass ordered (or found pending),
                # the next collection fetched from SCM while the appliance installs (prefetch.py).
                ahead = Collections(self.ctx, _collected_ahead(units, steps))
                try:
                    done = [
                        self._second_pass(p, slots, step, ahead)
                        for (p, slots), step in zip(units, steps, strict=True)
                    ]
                finally:
                    ahead.close()
                # what each appliance's save is about to make permanent: verified once saved
                unsaved = {
                    key: [(p.name, t) for p, _, t in s.unsaved_profiles] for key, s in sessions.items()
                }
                save_errors = (
                    {key: install.save_appliance(self.ctx, s) for key, s in sessions.items()}
                    if save_config and not self.ctx.dry_run
                    else {}
                )
                if save_config and not self.ctx.dry_run:
                    done = self._verify_saved(units, done, unsaved, save_errors)
                return [
                    build_outcome(
                        p.name,
                        row,
                        appliance=slot.label,
                        certkey=p.certificate.certkey_name,
                        save_error=save_errors.get(appliance_key(slot.target.appliance)),
                        target=slot.target.index if p.is_multi else None,
                    )
                    for (p, slots), rows in zip(units, done, strict=True)
                    for slot, row in zip(slots, rows, strict=True)
                ]
            finally:
                for session in sessions.values():
                    session.close()

        try:
            if len(groups) == 1:
                results = [run_group(groups[0])]
            else:
                size = min(self.workers or MAX_WORKERS, len(groups))

                def pooled(group: list[Profile]) -> list[Outcome]:
                    with computing():  # given up while this worker waits (cpuslot.py)
                        return run_group(group)

                with ThreadPoolExecutor(max_workers=size) as pool:
                    results = list(pool.map(pooled, groups))
        finally:
            self.ctx.close_scm_clients()
        position = {p.name: i for i, p in enumerate(profiles)}
        flat = [o for group in results for o in group]
        return sorted(flat, key=lambda o: position.get(o.profile, len(position)))

    def _verify_saved(
        self,
        units: list[tuple[Profile, list[targets.Slot]]],
        done: list[list[Done]],
        unsaved: dict[tuple[Any, ...], list[tuple[str, str | None]]],
        save_errors: dict[tuple[Any, ...], CitrixAgentError | None],
    ) -> list[list[Done]]:
        """After the saves: every row that installed the certificate on an appliance saved without
        error, verified (the HA secondary in sync, every VIP serving it; ``lifecycle/verify.py``)."""
        picked: list[verify.Saved] = []
        where: dict[tuple[int, int], int] = {}
        for u, ((p, slots), rows) in enumerate(zip(units, done, strict=True)):
            for r, (slot, row) in enumerate(zip(slots, rows, strict=True)):
                key = appliance_key(slot.target.appliance)
                target = slot.label if p.is_multi else None
                if save_errors.get(key) is None and (p.name, target) in unsaved.get(key, ()):
                    where[(u, r)] = len(picked)
                    picked.append(verify.Saved(slot.profile, slot.session, target, row))
        if not picked:
            return done
        checked = verify.verify_saved(self.ctx, picked)
        return [
            [checked[where[(u, r)]] if (u, r) in where else row for r, row in enumerate(rows)]
            for u, rows in enumerate(done)
        ]

    def _first_pass(
        self,
        profile: Profile,
        slots: list[targets.Slot],
        work: Work,
        multi: targets.MultiWork,
        attempt: Action,
    ) -> Step | targets.MultiStep:
        if attempt not in ("status", "revoke"):  # before any network call: nothing ordered, nothing deployed
            work, multi = _overrides_first(work), _overrides_first_multi(multi)
        if profile.is_multi:
            return targets.guard(profile, slots, multi, failed_as=attempt, ctx=self.ctx)
        return self._guard(profile, slots[0].session, work, failed_as=attempt)

    def _second_pass(
        self, profile: Profile, slots: list[targets.Slot], step: Step | targets.MultiStep, ahead: Collections
    ) -> list[Done]:
        """One row per target: the first pass's, or the collection of what it deferred."""
        if isinstance(step, list):
            return step
        if isinstance(step, Done):
            return [step]
        deferred = step
        if profile.is_multi:
            result = targets.guard(
                profile,
                slots,
                lambda p, s: targets.collect(self.ctx, p, s, deferred),
                failed_as=deferred.action,
                ctx=self.ctx,
            )
            assert isinstance(result, list)  # a collection is never deferred again
            return result
        collect = self._collect_deferred(step, ahead)
        return [self._guard(profile, slots[0].session, collect, failed_as=step.action)]

    def _guard(
        self,
        profile: Profile,
        session: ApplianceSession,
        work: Callable[[Profile, ApplianceSession], S],
        *,
        failed_as: Action | None = None,
    ) -> S | Done:
        """``work``'s step, or the failure it raised as a step of its own (never an exception); the
        failed row names the action attempted (``failed_as``, or what ``run`` decided meanwhile)."""
        step: S | Done
        if failed_as is not None:
            self._attempted[profile.name] = failed_as
        try:
            step = work(profile, session)
        except Exception as exc:  # a failure, or a bug, must not stop the other profiles
            step = Done.of_exception(profile.name, exc, self._attempted.get(profile.name))
        if isinstance(step, Deferred):
            log.info("%s: %s deferred%s", profile.name, step.action, f" ({step.why})" if step.why else "")
            return step
        log.info(
            "%s: %s %s%s",
            profile.name,
            step.action,
            step.result,
            f" ({step.message})" if step.message else "",
        )
        return step


def _collected_ahead(
    units: list[tuple[Profile, list[targets.Slot]]], steps: list[Step | targets.MultiStep]
) -> list[Profile]:
    """The profiles whose collection the first pass deferred, when all of them are single-appliance
    ones (a multi-appliance collection runs in line, on the worker's SCM client: then all do)."""
    deferred = [p for (p, _), step in zip(units, steps, strict=True) if isinstance(step, Deferred)]
    return [] if any(p.is_multi for p in deferred) else deferred


def _overrides_first(work: Work) -> Work:
    """``work`` after the profile's ``probe:`` overrides passed the loopback guard (a refused one is
    the profile's fault, exit 2, before SCM or the appliance is asked anything)."""

    def checked(profile: Profile, session: ApplianceSession) -> Step:
        check_overrides(profile)
        return work(profile, session)

    return checked


def _overrides_first_multi(multi: targets.MultiWork) -> targets.MultiWork:
    """:func:`_overrides_first` for a profile with several appliances (each target's vservers)."""

    def checked(profile: Profile, slots: list[targets.Slot]) -> targets.MultiStep:
        for slot in slots:
            check_overrides(slot.profile)
        return multi(profile, slots)

    return checked
