"""The decisions and the steps: enroll, collect, renew, replace, revoke, redeploy, status, run.

No Click and no HTTP here: the SCM client and the NetScaler sessions are made by injected factories,
time comes from injected clocks, so tests drive every path against the sandbox without waiting.

Guarantees kept here (see design.md):

* the intent to order is journalled before the order is sent, and the SCM order id as soon as SCM
  answers, so a crash never leads to a second order; a pending order is always resumed, never
  re-placed; an order SCM declines stops unattended re-ordering until a person acts;
* one NITRO session per appliance per run, one config save per appliance per run (and a deployment
  whose save did not happen is saved by the next run);
* profiles on different appliances run concurrently (bounded); profiles on the same appliance run
  one after the other in their session, all placing their orders before any is collected;
* one failing profile does not stop the others; its outcome carries the exit code.
"""

from __future__ import annotations

import dataclasses
import logging
import secrets
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Literal

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from . import crypto
from .config import ApplianceConfig, Profile, ScmConfig
from .errors import (
    EXIT_CONFIG,
    EXIT_FAILURE,
    EXIT_OK,
    EXIT_PENDING,
    CitrixAgentError,
    CryptoError,
    PendingError,
    ScmDeclinedError,
    ScmError,
    ScmUnsupportedError,
    StateError,
    UsageError,
)
from .nitro.client import NitroClient
from .nitro.deploy import (
    DeployPlan,
    InstalledState,
    deploy,
    make_csr_on_appliance,
    make_key_on_appliance,
    open_appliance,
    preflight,
    read_installed,
    remove_unreferenced_files,
    save,
)
from .scm import EnrollRequest, ScmClient, make_scm_client
from .scm.polling import wait_for_certificate
from .state import DeploymentRecord, IssuedRecord, OrderRecord, ProfileState, StateStore

log = logging.getLogger("citrixagent")

Action = Literal[
    "enroll", "collect", "renew", "replace", "redeploy", "revoke", "nothing", "status", "blocked"
]
# "deferred" is internal: an order was placed (or is pending) and its collection waits until every
# profile of the appliance has placed its order, so SCM's issuance delays overlap.
Result = Literal["ok", "nothing", "pending", "failed", "planned", "attention", "deferred"]

EXIT_ATTENTION = 5  # `status`: at least one profile needs work (documented in the CLI help and README)


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


def _iso(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).isoformat(timespec="seconds")


def _parse_iso(text: str) -> datetime:
    moment = datetime.fromisoformat(text)
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


@dataclass
class Outcome:
    """What happened to one profile: one row of the result table, one object of ``--json``."""

    profile: str
    action: Action
    result: Result
    message: str = ""
    appliance: str = ""
    order_id: str | None = None
    serial: str | None = None
    expires: str | None = None  # ISO date
    days_left: int | None = None
    certkey: str | None = None
    vservers: list[str] = field(default_factory=list)
    plan: list[str] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)
    exit_code: int = EXIT_OK

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class Decision:
    action: Action
    reason: str


def worst_exit_code(outcomes: Iterable[Outcome]) -> int:
    """The exit code of a whole command: config errors beat failures beat pending beat attention."""
    codes = {o.exit_code for o in outcomes}
    for code in (EXIT_CONFIG, EXIT_FAILURE, EXIT_PENDING, EXIT_ATTENTION):
        if code in codes:
            return code
    return EXIT_OK


# ------------------------------------------------------------------------------ appliance sessions


class ApplianceSession:
    """The one NITRO session a run holds for an appliance (opened on first use)."""

    def __init__(self, config: ApplianceConfig, opener: Callable[[ApplianceConfig], NitroClient]) -> None:
        self.config = config
        self._opener = opener
        self._client: NitroClient | None = None
        self.changed = False  # something was written that needs a config save
        self.unsaved_profiles: list[tuple[Profile, ProfileState]] = []

    @property
    def label(self) -> str:
        host = self.config.url.split("://", 1)[-1]
        return f"{host}[{self.config.partition}]" if self.config.partition else host

    @property
    def nitro(self) -> NitroClient:
        if self._client is None:
            self._client = self._opener(self.config)
        return self._client

    def close(self) -> None:
        if self._client is not None:
            try:
                self._client.close()  # logs out and releases the HTTP session
            except CitrixAgentError as exc:
                log.warning("logout from %s failed: %s", self.label, exc)
            self._client = None


def appliance_key(config: ApplianceConfig) -> tuple[Any, ...]:
    return (tuple(config.urls), config.partition, config.username)


def default_nitro_opener(
    config: ApplianceConfig, *, sleep: Callable[[float], None] = time.sleep
) -> NitroClient:
    return open_appliance(
        config.urls,
        username=config.username,
        password=config.password.reveal(),
        verify=config.verify_tls,
        timeout=config.timeout,
        partition=config.partition,
        sleep=sleep,
    )


# ------------------------------------------------------------------------------------------ agent


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
        workers: int = 4,
        dry_run: bool = False,
        force: bool = False,
    ) -> None:
        self.scm_config = scm_config
        self.store = store
        # The default clients back off between retries with this Agent's ``sleep`` (tests: a no-op).
        self.scm_factory: Callable[[ScmConfig], ScmClient] = scm_factory or (
            lambda config: make_scm_client(config, sleep=self.sleep)
        )
        self.nitro_opener: Callable[[ApplianceConfig], NitroClient] = nitro_opener or (
            lambda config: default_nitro_opener(config, sleep=self.sleep)
        )
        self.clock = clock
        self.monotonic = monotonic
        self.sleep = sleep
        self.workers = max(1, workers)
        self.dry_run = dry_run
        self.force = force
        self._local = threading.local()
        self._scm_clients: list[ScmClient] = []
        self._scm_lock = threading.Lock()

    # -- public commands -------------------------------------------------------------------------
    def enroll(self, profiles: Sequence[Profile]) -> list[Outcome]:
        return self._for_each(profiles, self._enroll_one)

    def renew(self, profiles: Sequence[Profile]) -> list[Outcome]:
        return self._for_each(profiles, lambda p, s: self._order_command(p, s, "renew"))

    def replace(self, profiles: Sequence[Profile]) -> list[Outcome]:
        return self._for_each(profiles, lambda p, s: self._order_command(p, s, "replace"))

    def run(self, profiles: Sequence[Profile]) -> list[Outcome]:
        return self._for_each(profiles, self._run_one)

    def status(self, profiles: Sequence[Profile]) -> list[Outcome]:
        return self._for_each(profiles, self._status_one, save_config=False)

    def revoke(self, profiles: Sequence[Profile], *, reason: str, reason_code: int) -> list[Outcome]:
        return self._for_each(
            profiles, lambda p, s: self._revoke_one(p, s, reason, reason_code), save_config=False
        )

    # -- orchestration ---------------------------------------------------------------------------
    def _collect_step(
        self, profile: Profile, state: ProfileState, session: ApplianceSession, action: Action
    ) -> Outcome:
        """Collect + install a pending order now, or (in a real run) after the appliance's other
        profiles have placed their orders."""
        if self.dry_run:
            return self._collect_and_deploy(profile, state, session)
        return Outcome(profile.name, action, "deferred")

    def _collect_pending(self, profile: Profile, session: ApplianceSession) -> Outcome:
        state = self._load(profile)
        if state.pending is None:  # cannot happen: the first pass journalled it
            raise StateError(f"{profile.name}: no pending order to collect")
        return self._collect_and_deploy(profile, state, session)

    def _for_each(
        self,
        profiles: Sequence[Profile],
        work: Callable[[Profile, ApplianceSession], Outcome],
        *,
        save_config: bool = True,
    ) -> list[Outcome]:
        groups: dict[tuple[Any, ...], list[Profile]] = {}
        for profile in profiles:
            groups.setdefault(appliance_key(profile.appliance), []).append(profile)

        def run_group(group: list[Profile]) -> list[Outcome]:
            session = ApplianceSession(group[0].appliance, self.nitro_opener)
            outcomes: list[Outcome] = []
            try:
                for profile in group:
                    outcomes.append(self._guard(profile, session, work))
                # Second pass: collect and install what the first pass ordered (or found pending).
                for index, (profile, first) in enumerate(zip(group, outcomes, strict=True)):
                    if first.result == "deferred":
                        final = self._guard(profile, session, self._collect_pending)
                        final.action = first.action
                        final.message = final.message or first.message
                        outcomes[index] = final
                if save_config and not self.dry_run:
                    self._save_appliance(session, outcomes)
            finally:
                session.close()
            return outcomes

        try:
            if len(groups) == 1:
                results = [run_group(next(iter(groups.values())))]
            else:
                with ThreadPoolExecutor(max_workers=min(self.workers, len(groups))) as pool:
                    results = list(pool.map(run_group, groups.values()))
        finally:
            self._close_scm_clients()
        order = {p.name: i for i, p in enumerate(profiles)}
        flat = [o for group in results for o in group]
        return sorted(flat, key=lambda o: order.get(o.profile, len(order)))

    def _guard(
        self,
        profile: Profile,
        session: ApplianceSession,
        work: Callable[[Profile, ApplianceSession], Outcome],
    ) -> Outcome:
        try:
            outcome = work(profile, session)
        except PendingError as exc:
            outcome = Outcome(
                profile.name,
                "collect",
                "pending",
                str(exc),
                order_id=exc.order_id or None,
                exit_code=exc.exit_code,
            )
        except CitrixAgentError as exc:
            log.debug("profile %s failed", profile.name, exc_info=True)
            outcome = Outcome(profile.name, "nothing", "failed", str(exc), exit_code=exc.exit_code)
        except Exception as exc:  # a bug must not stop the other profiles of an unattended run
            log.exception("profile %s: internal error", profile.name)
            outcome = Outcome(
                profile.name,
                "nothing",
                "failed",
                f"internal error: {type(exc).__name__}: {exc}",
                exit_code=EXIT_FAILURE,
            )
        if not outcome.appliance:
            outcome.appliance = session.label
        if outcome.certkey is None:
            outcome.certkey = profile.certificate.certkey_name
        log.info(
            "%s: %s %s%s",
            profile.name,
            outcome.action,
            outcome.result,
            f" ({outcome.message})" if outcome.message else "",
        )
        return outcome

    def _save_appliance(self, session: ApplianceSession, outcomes: list[Outcome]) -> None:
        if not session.changed and not session.unsaved_profiles:
            return
        try:
            save(session.nitro)
        except CitrixAgentError as exc:
            for outcome in outcomes:
                if outcome.result == "ok":
                    outcome.result = "failed"
                    outcome.exit_code = exc.exit_code
                    outcome.message = f"deployed, but saving the configuration failed: {exc}"
            return
        for profile, state in session.unsaved_profiles:
            if state.deployed is not None:
                state.deployed.saved = True
                state.add_event("saved", appliance=session.label)
            if state.stale_files:
                # Only now (saved) may the superseded files go; a failure here is housekeeping only.
                try:
                    removed = remove_unreferenced_files(session.nitro, state.stale_files)
                except CitrixAgentError as exc:
                    log.warning(
                        "%s: could not remove superseded files on %s: %s", profile.name, session.label, exc
                    )
                else:
                    if removed:
                        state.add_event("removed-files", files=removed)
                        log.info("%s: removed superseded files %s", profile.name, ", ".join(removed))
                    state.stale_files = []
            self.store.save(state)
        session.unsaved_profiles.clear()
        session.changed = False

    # -- SCM client per worker thread ------------------------------------------------------------
    @property
    def scm(self) -> ScmClient:
        client: ScmClient | None = getattr(self._local, "scm", None)
        if client is None:
            if self.scm_config is None:
                raise UsageError("no scm.yaml given: use --scm-config PATH (needed to talk to SCM)")
            client = self.scm_factory(self.scm_config)
            self._local.scm = client
            with self._scm_lock:
                self._scm_clients.append(client)
        return client

    def _close_scm_clients(self) -> None:
        with self._scm_lock:
            for client in self._scm_clients:
                client.close()
            self._scm_clients.clear()
        self._local = threading.local()

    def _load(self, profile: Profile, *, recover: bool = True) -> ProfileState:
        state = self.store.load(profile.name)
        state.source = str(profile.source.resolve())
        if recover and state.ordering is not None:
            self._recover_interrupted_order(profile, state)
        return state

    # -- enroll ----------------------------------------------------------------------------------
    def _enroll_one(self, profile: Profile, session: ApplianceSession) -> Outcome:
        state = self._load(profile)
        if state.pending is not None:
            return self._collect_step(profile, state, session, "collect")
        if state.current is not None and not self.force:
            installed = self._installed(profile, session)
            if self._serving_current(profile, state, installed):
                return self._row(
                    profile,
                    state,
                    "nothing",
                    "nothing",
                    "already enrolled and installed; use renew or replace, or --force for a new order",
                    installed,
                )
            return self._redeploy(profile, state, session, "enrolled before; installing that certificate")
        return self._order(profile, state, session, "enroll")

    def _order_command(
        self, profile: Profile, session: ApplianceSession, kind: Literal["renew", "replace"]
    ) -> Outcome:
        state = self._load(profile)
        if state.pending is not None:
            return self._collect_step(profile, state, session, "collect")
        if state.current is None:
            raise UsageError(
                f"{profile.name}: nothing to {kind}: no certificate was enrolled for this profile "
                "yet (run enroll or run)"
            )
        return self._order(profile, state, session, kind)

    def _order(
        self,
        profile: Profile,
        state: ProfileState,
        session: ApplianceSession,
        kind: Literal["enroll", "renew", "replace"],
    ) -> Outcome:
        cert = profile.certificate
        if (
            kind == "renew"
            and self.scm_config is not None
            and self.scm_config.api == "enrollment"
            and profile.sectigo.profile_id is None
            and self.scm_config.profile_id is None
        ):
            # say so before a key is made (on the appliance, that would be a write for nothing)
            raise UsageError(
                f"{profile.name}: renew needs profile_id in {self.scm_config.source} or the profile's "
                "sectigo.profile_id (the SCM REST Enrollment API requires the certificate profile id to "
                "renew); or use replace"
            )
        vservers = [(v.name, v.type, v.sni) for v in profile.vservers]
        preflight(session.nitro, vservers)
        if self.dry_run:
            return self._plan_order(profile, state, session, kind)

        reuse = kind == "renew" and profile.renewal.reuse_key and state.current is not None
        known_orders = self._listed_orders(cert.common_name)  # before a key exists: nothing to clean up
        stamp = self.clock().strftime("%Y%m%d%H%M%S")
        key_ref: str
        if reuse and state.current is not None:
            key_ref = state.current.key_ref
            csr_pem = self._csr_for_existing_key(profile, session, key_ref, stamp)
        elif cert.key_location == "local":
            key = crypto.generate_private_key(cert.key)
            # a random suffix: two orders in the same second (or under a fixed clock) never collide
            key_path = self.store.new_key_path(profile.name, f"{stamp}-{kind}-{secrets.token_hex(4)}")
            crypto.write_private_key_file(key_path, crypto.private_key_to_pem(key))
            key_ref = str(key_path)
            csr_pem = crypto.csr_to_pem(
                crypto.build_csr(key, cert.common_name, cert.subject_alt_names, cert.subject)
            )
        else:
            key_ref, csr_pem = make_key_on_appliance(
                session.nitro,
                base=f"{cert.certkey_name}-{stamp}",
                key=cert.key,
                common_name=cert.common_name,
                sans=cert.subject_alt_names,
                subject=cert.subject,
            )
            session.changed = True

        previous = state.current.order_id if state.current is not None else None
        # Write-ahead: the intent is journalled before the order is sent, so a run that dies while
        # SCM takes the order finds that order on the next run instead of placing a second one.
        intent = OrderRecord(
            order_id="",
            kind=kind,
            api=self.scm.api_name,
            placed_at=_iso(self.clock()),
            key_location=cert.key_location,
            key_ref=key_ref,
            csr_pem=csr_pem,
            common_name=cert.common_name,
            sans=list(cert.subject_alt_names),
            key_desc=cert.key.describe(),
            previous_order_id=previous,
            known_orders=known_orders,
        )
        state.ordering = intent
        self.store.save(state)
        try:
            order_id = self._send_order(profile, kind, csr_pem, previous)
        except ScmError as exc:
            # SCM answered 4xx, refusing it: no order exists (a 2xx it answered oddly did place one)
            if exc.status is not None and 400 <= exc.status < 500:
                state.ordering = None
                self.store.save(state)
                if cert.key_location == "local" and not reuse:
                    Path(key_ref).unlink(missing_ok=True)  # a private key for nothing: do not keep it
            raise
        # The order id goes to the journal before anything else: a crash from here on resumes it.
        intent.order_id = order_id
        intent.known_orders = None
        state.pending = intent
        state.ordering = None
        state.declined = None
        state.add_event("ordered", kind=kind, order_id=order_id, api=self.scm.api_name)
        self.store.save(state)
        log.info("%s: %s order %s placed at SCM", profile.name, kind, order_id)
        return self._collect_step(profile, state, session, kind)

    def _send_order(
        self,
        profile: Profile,
        kind: Literal["enroll", "renew", "replace"],
        csr_pem: str,
        previous: str | None,
    ) -> str:
        cert = profile.certificate
        if kind == "enroll":
            sectigo = profile.sectigo
            return self.scm.enroll(
                EnrollRequest(
                    csr_pem=csr_pem,
                    common_name=cert.common_name,
                    sans=tuple(cert.subject_alt_names),
                    org_id=sectigo.org_id,
                    cert_type=sectigo.cert_type,
                    term=sectigo.term,
                    comments=sectigo.comments,
                    external_requester=sectigo.external_requester,
                    custom_fields=dict(sectigo.custom_fields),
                )
            )
        assert previous is not None
        if kind == "renew":
            return self.scm.renew(
                previous,
                csr_pem=csr_pem,
                sans=cert.subject_alt_names,
                profile_id=profile.sectigo.profile_id,
                term=profile.sectigo.term,
                custom_fields=dict(profile.sectigo.custom_fields),
            )
        return self.scm.replace(
            previous,
            csr_pem=csr_pem,
            common_name=cert.common_name,
            sans=cert.subject_alt_names,
            reason="certificate profile changed (names or key type); replaced by citrixagent",
        )

    def _listed_orders(self, common_name: str) -> list[str] | None:
        """The orders SCM lists for this name now, or None where they cannot be listed (then an
        interrupted order can only be reported, not found). Never stands in the way of ordering."""
        try:
            return self.scm.find_orders(common_name=common_name)
        except ScmUnsupportedError:
            return None
        except ScmError as exc:  # e.g. an API admin without the privilege to list certificates
            log.warning(
                "cannot list SCM orders for %s (%s): an interrupted order could not be found later",
                common_name,
                exc,
            )
            return None

    def _recover_interrupted_order(self, profile: Profile, state: ProfileState) -> None:
        """A previous run died while SCM was taking an order: adopt that order if SCM has it."""
        intent = state.ordering
        if intent is None or self.dry_run:
            return
        if state.pending is not None:  # cannot happen through this code; keep the known order
            state.ordering = None
            self.store.save(state)
            return
        if intent.api != self.scm.api_name:
            raise UsageError(
                f"{profile.name}: a run was interrupted while placing an order through the SCM {intent.api} "
                f"API, but scm.yaml now configures the {self.scm.api_name} API; run once with the "
                f"{intent.api} configuration so the order can be found"
            )
        adopted: str | None = None
        if intent.kind == "replace" and intent.api == "admin" and intent.previous_order_id:
            # the admin API replaces in place: the order went back to pending, or carries a new serial
            found = self.scm.status(intent.previous_order_id)
            before = state.current.serial if state.current is not None else ""
            if found.state == "pending" or (
                found.state == "issued"
                and found.serial
                and crypto.normalize_serial(found.serial) != crypto.normalize_serial(before or "0")
            ):
                adopted = intent.previous_order_id
        elif intent.known_orders is not None:
            listed = self.scm.find_orders(common_name=intent.common_name)
            new = [i for i in listed if i not in intent.known_orders]
            if new:
                adopted = max(new, key=lambda i: (len(i), i))  # the newest id
                others = [i for i in new if i != adopted]
                if others:
                    log.warning(
                        "%s: SCM also lists order(s) %s for %s, placed since the interrupted run: "
                        "check them in SCM and revoke what is not needed",
                        profile.name,
                        ", ".join(others),
                        intent.common_name,
                    )
        else:
            log.warning(
                "%s: a previous run was interrupted while placing a %s order through the SCM %s API, "
                "which cannot list orders; if SCM received it, an extra order for %s placed around %s "
                "exists: check it in SCM",
                profile.name,
                intent.kind,
                intent.api,
                intent.common_name,
                intent.placed_at,
            )
        state.ordering = None
        if adopted is not None:
            intent.order_id = adopted
            intent.known_orders = None
            state.pending = intent
            state.add_event("order-recovered", kind=intent.kind, order_id=adopted)
            log.warning(
                "%s: recovered %s order %s, which SCM received before a previous run was interrupted",
                profile.name,
                intent.kind,
                adopted,
            )
        else:
            state.add_event("order-not-received", kind=intent.kind)
        self.store.save(state)

    @staticmethod
    def _read_local_key(profile: Profile, key_ref: str) -> bytes:
        try:
            return Path(key_ref).read_bytes()
        except OSError as exc:
            raise StateError(
                f"{profile.name}: cannot read the private key file {key_ref} of the issued certificate "
                f"({exc.strerror or exc}); restore it, or run `citrixagent replace {profile.source}` "
                "for a new key and certificate"
            ) from exc

    def _csr_for_existing_key(
        self, profile: Profile, session: ApplianceSession, key_ref: str, stamp: str
    ) -> str:
        """A fresh CSR for the key already in use (renewal with ``reuse_key``)."""
        cert = profile.certificate
        if cert.key_location == "local":
            key = crypto.load_private_key(self._read_local_key(profile, key_ref))
            return crypto.csr_to_pem(
                crypto.build_csr(key, cert.common_name, cert.subject_alt_names, cert.subject)
            )
        session.changed = True
        return make_csr_on_appliance(
            session.nitro,
            keyfile=key_ref,
            reqfile_base=f"{cert.certkey_name}-{stamp}",
            common_name=cert.common_name,
            sans=cert.subject_alt_names,
            subject=cert.subject,
        )

    def _plan_order(
        self,
        profile: Profile,
        state: ProfileState,
        session: ApplianceSession,
        kind: Literal["enroll", "renew", "replace"],
    ) -> Outcome:
        cert = profile.certificate
        plan = []
        if kind == "renew" and profile.renewal.reuse_key:
            plan.append("reuse the current key and make a new CSR")
        elif cert.key_location == "local":
            plan.append(
                f"generate a {cert.key.describe()} key locally and a CSR for "
                f"{', '.join(cert.subject_alt_names)}"
            )
        else:
            plan.append(
                f"create a {cert.key.describe()} key and a CSR on {session.label} "
                f"for {', '.join(cert.subject_alt_names)}"
            )
        api = self.scm_config.api if self.scm_config else "?"
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
        plan.extend(self._deploy_plan_for_new(profile, session))
        plan.append(f"save the configuration of {session.label}")
        return self._row(
            profile, state, kind, "planned", "dry run: nothing ordered, nothing written", None, plan=plan
        )

    def _deploy_plan_for_new(self, profile: Profile, session: ApplianceSession) -> list[str]:
        cert = profile.certificate
        installed = self._installed(profile, session)
        steps = [
            "  install the issuing CA certificate(s) unless already installed (found by serial), and link"
        ]
        if installed is not None and installed.serial:
            steps.append(
                f"  upload the new certificate{' and key' if cert.key_location == 'local' else ''} "
                f"and update certkey {cert.certkey_name} in place (bindings kept)"
            )
        else:
            steps.append(
                f"  upload the certificate{' and key' if cert.key_location == 'local' else ''} "
                f"and add certkey {cert.certkey_name}"
            )
        bound = set(installed.bound_vservers) if installed is not None else set()
        for vs in profile.vservers:
            if vs.name not in bound:
                steps.append(
                    f"  bind {cert.certkey_name} to {vs.type} vserver {vs.name}"
                    f"{' as SNI certificate' if vs.sni else ''}"
                )
        return steps

    # -- collect + deploy ------------------------------------------------------------------------
    def _collect_and_deploy(
        self, profile: Profile, state: ProfileState, session: ApplianceSession
    ) -> Outcome:
        pending = state.pending
        assert pending is not None
        if self.dry_run:
            return self._row(
                profile,
                state,
                "collect",
                "planned",
                f"dry run: would collect SCM order {pending.order_id} and install it",
                None,
                plan=[
                    f"collect SCM order {pending.order_id} ({pending.kind})",
                    *self._deploy_plan_for_new(profile, session),
                ],
            )
        if self.scm_config is None:
            raise UsageError("no scm.yaml given: use --scm-config PATH (needed to talk to SCM)")
        if pending.api and pending.api != self.scm.api_name:
            raise UsageError(
                f"{profile.name}: order {pending.order_id} was placed through the SCM {pending.api} API but "
                f"scm.yaml now configures the {self.scm.api_name} API; collect it with that configuration"
            )
        try:
            certs = wait_for_certificate(
                self.scm, pending.order_id, self.scm_config.poll, clock=self.monotonic, sleep=self.sleep
            )
        except ScmDeclinedError as exc:
            # Terminal at SCM: stop collecting it; unattended runs wait for a person (see decide()).
            state.declined = {
                "order_id": pending.order_id,
                "kind": pending.kind,
                "at": _iso(self.clock()),
                "message": str(exc),
            }
            state.pending = None
            state.add_event("declined", order_id=pending.order_id, kind=pending.kind)
            self.store.save(state)
            raise
        csr_key = crypto.load_csr(pending.csr_pem).public_key()
        if not isinstance(csr_key, (rsa.RSAPublicKey, ec.EllipticCurvePublicKey)):
            raise CryptoError(f"{profile.name}: the pending order's CSR has an unsupported key type")
        try:
            leaf, chain = crypto.split_leaf_and_chain(certs, csr_key)
        except CryptoError:
            if (
                pending.kind == "replace"
                and state.current is not None
                and any(
                    crypto.normalize_serial(crypto.cert_info(c).serial_hex)
                    == crypto.normalize_serial(state.current.serial)
                    for c in certs
                )
            ):
                # The admin API replaces in place: SCM may still hand out the old certificate.
                raise PendingError(
                    f"{profile.name}: SCM still returns the certificate from before replace order "
                    f"{pending.order_id}; run again to collect the new one",
                    order_id=pending.order_id,
                ) from None
            raise
        info = crypto.cert_info(leaf)
        state.current = IssuedRecord(
            order_id=pending.order_id,
            serial=info.serial_hex,
            not_before=_iso(info.not_before),
            not_after=_iso(info.not_after),
            fingerprint_sha256=info.fingerprint_sha256,
            common_name=pending.common_name,
            sans=list(pending.sans),
            key_desc=pending.key_desc,
            key_location=pending.key_location,
            key_ref=pending.key_ref,
            cert_pem=crypto.cert_to_pem(leaf),
            chain_pem=[crypto.cert_to_pem(c) for c in chain],
            issued_at=_iso(self.clock()),
        )
        state.pending = None
        state.add_event(
            "issued", order_id=pending.order_id, serial=info.serial_hex, not_after=_iso(info.not_after)
        )
        self.store.save(state)
        log.info("%s: order %s issued, serial %s", profile.name, pending.order_id, info.serial_hex)
        outcome = self._deploy_current(profile, state, session)
        outcome.action = "collect"
        return outcome

    def _redeploy(
        self, profile: Profile, state: ProfileState, session: ApplianceSession, why: str
    ) -> Outcome:
        outcome = self._deploy_current(profile, state, session)
        outcome.action = "redeploy"
        if outcome.result == "ok":
            outcome.message = why
        return outcome

    def _deploy_current(self, profile: Profile, state: ProfileState, session: ApplianceSession) -> Outcome:
        current = state.current
        assert current is not None
        leaf = x509.load_pem_x509_certificate(current.cert_pem.encode())
        chain = [x509.load_pem_x509_certificate(p.encode()) for p in current.chain_pem]
        key_pem: bytes | None = None
        appliance_keyfile: str | None = None
        if current.key_location == "local":
            key_pem = self._read_local_key(profile, current.key_ref)
        else:
            appliance_keyfile = current.key_ref
        cert = profile.certificate
        plan = DeployPlan(
            certkey=cert.certkey_name,
            leaf=leaf,
            chain=chain,
            key_pem=key_pem,
            appliance_keyfile=appliance_keyfile,
            vservers=[(v.name, v.type, v.sni) for v in profile.vservers],
            file_base=cert.certkey_name,
        )
        if not self.dry_run:
            preflight(session.nitro, plan.vservers)
        result = deploy(session.nitro, plan, dry_run=self.dry_run)
        if self.dry_run:
            return self._row(
                profile,
                state,
                "redeploy",
                "planned",
                "dry run: nothing written",
                None,
                plan=[*result.actions, f"save the configuration of {session.label}"],
            )
        session.changed = session.changed or result.changed
        previous = state.deployed
        if previous is not None and previous.appliance == session.label:  # files of this appliance only
            for old in (previous.cert_file, previous.key_file):
                if old and old not in (result.cert_file, result.key_file) and old not in state.stale_files:
                    state.stale_files.append(old)
        state.deployed = DeploymentRecord(
            appliance=session.label,
            partition=profile.appliance.partition,
            certkey=result.certkey,
            serial=result.serial,
            vservers=list(result.vservers_bound),  # what the read-back after deploying saw bound
            deployed_at=_iso(self.clock()),
            cert_file=result.cert_file,
            key_file=result.key_file,
            saved=False,
        )
        state.add_event("deployed", appliance=session.label, certkey=result.certkey, serial=result.serial)
        self.store.save(state)
        session.unsaved_profiles.append((profile, state))
        return self._row(profile, state, "redeploy", "ok", "", None, plan=result.actions)

    # -- run -------------------------------------------------------------------------------------
    def decide(self, profile: Profile, state: ProfileState, installed: InstalledState | None) -> Decision:
        """The one right thing ``run`` does for this profile now."""
        if state.pending is not None:
            return Decision("collect", f"SCM order {state.pending.order_id} is pending")
        if state.ordering is not None:
            return Decision(
                "collect",
                f"a run was interrupted while placing a {state.ordering.kind} order at SCM: the next run "
                "looks for that order there before ordering anything",
            )
        if state.declined is not None:
            declined = state.declined
            return Decision(
                "blocked",
                f"SCM declined or revoked {declined.get('kind')} order {declined.get('order_id')} before it "
                "could be collected; fix the cause in SCM, then run enroll, renew or replace by hand "
                "(scheduled runs do not order again on their own)",
            )
        current = state.current
        if current is None:
            if state.revoked:
                last = state.revoked[-1]
                return Decision("enroll", f"the last certificate (order {last.get('order_id')}) was revoked")
            return Decision("enroll", "no certificate enrolled yet")
        cert = profile.certificate
        wanted = [n.lower() for n in cert.subject_alt_names]
        have = [n.lower() for n in current.sans]
        if current.common_name.lower() != cert.common_name.lower() or sorted(set(wanted)) != sorted(
            set(have)
        ):
            return Decision("replace", "the profile's names differ from the issued certificate")
        if current.key_desc != cert.key.describe() or current.key_location != cert.key_location:
            return Decision(
                "replace",
                f"the profile's key ({cert.key.describe()}, {cert.key_location}) differs "
                f"from the issued certificate's ({current.key_desc}, {current.key_location})",
            )
        now = self.clock()
        not_after = _parse_iso(current.not_after)
        not_before = _parse_iso(current.not_before)
        renewal = profile.renewal
        if renewal.percent_of_lifetime is not None:
            lifetime = (not_after - not_before).total_seconds()
            threshold = not_before + timedelta(seconds=lifetime * renewal.percent_of_lifetime / 100)
            if now >= threshold:
                return Decision(
                    "renew",
                    f"{renewal.percent_of_lifetime:g}% of the certificate's lifetime has "
                    f"passed (expires {not_after.date()})",
                )
        elif not_after - now <= timedelta(days=renewal.days_before_expiry):
            days = (not_after - now).days
            return Decision(
                "renew", f"expires in {days} days (renewal window {renewal.days_before_expiry} days)"
            )
        if not self._serving_current(profile, state, installed):
            return Decision(
                "redeploy", "the appliance does not serve the last issued certificate on every vserver"
            )
        if state.deployed is None or crypto.normalize_serial(
            state.deployed.serial
        ) != crypto.normalize_serial(current.serial):
            # e.g. an update the appliance applied but whose answer was lost: installed, never saved
            return Decision("redeploy", "the journal has no saved deployment of the last issued certificate")
        if not state.deployed.saved:
            return Decision("redeploy", "the last deployment was not saved on the appliance")
        return Decision("nothing", "certificate valid and installed")

    def _serving_current(
        self, profile: Profile, state: ProfileState, installed: InstalledState | None
    ) -> bool:
        if installed is None or state.current is None or not installed.serial:
            return False
        if crypto.normalize_serial(installed.serial) != crypto.normalize_serial(state.current.serial):
            return False
        return all(v.name in installed.bound_vservers for v in profile.vservers)

    def _installed(self, profile: Profile, session: ApplianceSession) -> InstalledState | None:
        return read_installed(
            session.nitro,
            profile.certificate.certkey_name,
            [(v.name, v.type, v.sni) for v in profile.vservers],
        )

    def _run_one(self, profile: Profile, session: ApplianceSession) -> Outcome:
        state = self._load(profile)
        installed = None if state.pending is not None else self._installed(profile, session)
        decision = self.decide(profile, state, installed)
        log.info("%s: run decides %s: %s", profile.name, decision.action, decision.reason)
        if decision.action == "blocked":
            outcome = self._row(profile, state, "blocked", "failed", decision.reason, installed)
            outcome.exit_code = EXIT_FAILURE
            return outcome
        if decision.action == "collect" and state.pending is None:  # an interrupted order, in a dry run
            return self._row(profile, state, "collect", "planned", decision.reason, installed)
        if decision.action == "collect":
            outcome = self._collect_step(profile, state, session, "collect")
        elif decision.action in ("enroll", "renew", "replace"):
            kind: Literal["enroll", "renew", "replace"] = decision.action
            outcome = self._order(profile, state, session, kind)
        elif decision.action == "redeploy":
            if (
                state.deployed is not None
                and not state.deployed.saved
                and self._serving_current(profile, state, installed)
            ):
                # Installed but the save never happened: only the save is missing.
                session.unsaved_profiles.append((profile, state))
                return self._row(
                    profile,
                    state,
                    "redeploy",
                    "planned" if self.dry_run else "ok",
                    "saving the configuration that a previous run left unsaved",
                    installed,
                )
            outcome = self._redeploy(profile, state, session, decision.reason)
        else:
            return self._row(profile, state, "nothing", "nothing", decision.reason, installed)
        if outcome.result in ("ok", "planned", "deferred") and not outcome.message:
            outcome.message = decision.reason
        return outcome

    # -- status ----------------------------------------------------------------------------------
    def _status_one(self, profile: Profile, session: ApplianceSession) -> Outcome:
        state = self._load(profile, recover=False)
        details: dict[str, Any] = {}
        installed: InstalledState | None = None
        try:
            installed = self._installed(profile, session)
        except CitrixAgentError as exc:
            details["appliance_error"] = str(exc)
        order_id = (
            state.pending.order_id if state.pending else state.current.order_id if state.current else None
        )
        if order_id and self.scm_config is not None:
            try:
                scm_status = self.scm.status(order_id)
                details["scm_status"] = scm_status.status
                details["scm_state"] = scm_status.state
            except CitrixAgentError as exc:
                details["scm_error"] = str(exc)
        decision = self.decide(profile, state, installed)
        details["next"] = decision.action
        details["next_reason"] = decision.reason
        details["pending"] = (
            f"{state.pending.kind} order {state.pending.order_id} placed {state.pending.placed_at}"
            if state.pending
            else None
        )
        details["link"] = installed.link if installed else None
        attention = decision.action != "nothing" or "appliance_error" in details or "scm_error" in details
        outcome = self._row(
            profile, state, "status", "attention" if attention else "ok", decision.reason, installed
        )
        outcome.details.update(details)
        if installed is not None and installed.serial:
            # the row shows what the appliance serves; the journal's view stays in the details
            outcome.details["issued_serial"] = outcome.serial
            outcome.serial = installed.serial
            if installed.not_after is not None:
                outcome.expires = installed.not_after.date().isoformat()
        outcome.exit_code = EXIT_ATTENTION if attention else EXIT_OK
        return outcome

    # -- revoke ----------------------------------------------------------------------------------
    def _revoke_one(
        self, profile: Profile, session: ApplianceSession, reason: str, reason_code: int
    ) -> Outcome:
        state = self._load(profile)
        current = state.current
        if current is None:
            raise UsageError(f"{profile.name}: nothing to revoke: no issued certificate is recorded for it")
        if self.dry_run:
            return self._row(
                profile,
                state,
                "revoke",
                "planned",
                f"dry run: would revoke order "
                f"{current.order_id} (serial {current.serial}) with reason {reason}",
                None,
            )
        already = False
        try:
            self.scm.revoke(
                current.order_id,
                reason_code=reason_code,
                reason=f"{reason} (revoked by citrixagent for profile {profile.name})",
            )
        except ScmError as exc:
            if exc.code != -159:  # "already revoked": the end state we want (e.g. a lost first answer)
                raise
            already = True
        state.revoked.append(
            {
                "order_id": current.order_id,
                "serial": current.serial,
                "reason": reason,
                "at": _iso(self.clock()),
            }
        )
        state.current = None
        state.add_event("revoked", order_id=current.order_id, serial=current.serial, reason=reason)
        self.store.save(state)
        message = (
            f"order {current.order_id} {'was already revoked at SCM' if already else 'revoked'} ({reason})"
        )
        try:
            installed = self._installed(profile, session)
        except CitrixAgentError as exc:
            installed = None
            message += f"; could not check the appliance: {exc}"
        if (
            installed is not None
            and installed.serial
            and crypto.normalize_serial(installed.serial) == crypto.normalize_serial(current.serial)
        ):
            bound = ", ".join(installed.bound_vservers) or "no vserver"
            message += (
                f"; WARNING: the revoked certificate is still installed as {profile.certificate.certkey_name}"
                f" and bound to {bound}: run `citrixagent run {profile.source}` to enroll and install a "
                "new one"
            )
        outcome = Outcome(
            profile.name,
            "revoke",
            "ok",
            message,
            order_id=current.order_id,
            serial=current.serial,
            expires=current.not_after[:10],
        )
        return outcome

    # -- rows ------------------------------------------------------------------------------------
    def _row(
        self,
        profile: Profile,
        state: ProfileState,
        action: Action,
        result: Result,
        message: str,
        installed: InstalledState | None,
        *,
        plan: list[str] | None = None,
    ) -> Outcome:
        current = state.current
        outcome = Outcome(profile.name, action, result, message, plan=list(plan or []))
        outcome.certkey = profile.certificate.certkey_name
        if current is not None:
            outcome.order_id = current.order_id
            outcome.serial = current.serial
            not_after = _parse_iso(current.not_after)
            outcome.expires = not_after.date().isoformat()
            outcome.days_left = (not_after - self.clock()).days
        if state.pending is not None:
            outcome.order_id = state.pending.order_id
        if installed is not None:
            outcome.vservers = list(installed.bound_vservers)
            if installed.serial:
                outcome.details["installed_serial"] = installed.serial
            if installed.not_after is not None:
                outcome.details["installed_expires"] = installed.not_after.date().isoformat()
                if current is None or crypto.normalize_serial(
                    installed.serial or "0"
                ) != crypto.normalize_serial(current.serial):
                    outcome.days_left = (installed.not_after - self.clock()).days
        elif state.deployed is not None:
            outcome.vservers = list(state.deployed.vservers)
        return outcome
