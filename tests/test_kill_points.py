"""A run killed (SIGKILL) at every remote call of enroll, renew and replace, on both SCM APIs: the
next `run` converges, with no extra SCM order where the API can tell.

The kill is real: the command runs in a forked child process (cheap: nothing to import again); the
simulator carries the request out and holds its answer back, and the child is killed while it waits,
so every call is also "killed right after the server acted on it". A kill point is every SCM request
of the command (both APIs) and every NetScaler write (on one API: the NITRO side does not depend on
the SCM API; a kill at a NITRO read is the same as one after the write before it).
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import sys
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from conftest import CliResult, scm_yaml_for
from lifecycle_helpers import same_serial, scm_writes

from citrix_connector.cli import main as cli_main
from citrix_connector.sandbox.httpserver import SimServer
from citrix_connector.sandbox.world import Sandbox
from citrix_connector.state import StateStore

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="kills a forked child (POSIX only)")

VS = "vs_shop_https"
PROFILE = "lb-profile"
ORDER_CALLS = {
    "admin": re.compile(r"^/api/ssl/v1/(enroll|renewById/\d+|replace/\d+)$"),
    "enrollment": re.compile(r"^/api/v1/certificates(/\d+/(renew|replace))?$"),
}
Cli = Callable[..., CliResult]


@dataclass(frozen=True)
class Point:
    server: str  # "scm" or "nitro"
    index: int  # the index-th request of the command on that server
    method: str
    path: str

    def __str__(self) -> str:
        return f"{self.server} #{self.index} {self.method} {self.path}"


def _sim(world: Sandbox, api: str) -> SimServer:
    return world.enrollment if api == "enrollment" else world.scm


def _order_effects(world: Sandbox, api: str, since: int = 0) -> int:
    """Order calls (enroll, renew, replace) SCM carried out since request ``since``."""
    return sum(
        1
        for r in _sim(world, api).requests[since:]
        if r.method == "POST" and ORDER_CALLS[api].match(r.path) and 200 <= r.status < 300
    )


def _quick_scm_yaml(world: Sandbox, api: str) -> Path:
    """The sandbox's scm.yaml for ``api``, polling every 10 ms (the suite never waits)."""
    data = yaml.safe_load(scm_yaml_for(world, api).read_text())
    data["poll"] = {"first_wait": 0.01, "interval": 0.01, "timeout": 10}
    path = world.directory / f"scm-{api}-quick.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def _ec_profile(world: Sandbox) -> Path:
    """The sandbox's lb-profile with an ECDSA P-256 key (RSA key generation would dominate the time)."""
    data = yaml.safe_load(world.profile_path(PROFILE).read_text())
    data["certificate"].update(key_type="ECDSA", curve="P-256")
    data["certificate"].pop("key_size", None)
    return world.write_profile(PROFILE, data)


def _keys(state_dir: Path) -> set[str]:
    directory = state_dir / "keys" / PROFILE
    return {str(p) for p in directory.glob("*.key.pem")} if directory.is_dir() else set()


def _fork_command(args: list[str]) -> int:
    """Start ``citrixagent ARGS`` in a forked child; returns its pid."""
    sys.stdout.flush()
    sys.stderr.flush()
    with warnings.catch_warnings():
        warnings.simplefilter(
            "ignore", DeprecationWarning
        )  # fork of a threaded process: the child only talks HTTP
        pid = os.fork()
    if pid == 0:  # the child: run the command, never return into pytest
        code = 1
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, 1)
            os.dup2(devnull, 2)
            cli_main(args)
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
        finally:
            os._exit(code)
    return pid


def _kill_at(server: SimServer, index: int, args: list[str], *, method: str | None = None) -> bool:
    """Run the command in a child; SIGKILL it while the server holds back the answer to its
    ``index``-th request (counted from now; only ``method`` requests if given). False if the
    command finished before making that request."""
    start = len(server.requests)
    fault = server.add_fault(r".*", method=method, status=0, hold_answer=15, times=1, after=index)
    pid = _fork_command(args)
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if fault.hits and len(server.requests) > start + (0 if method else index):
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                return True
            done, _ = os.waitpid(pid, os.WNOHANG)
            if done:
                return False
            time.sleep(0.005)
        pytest.fail("the child neither reached the kill point nor finished")
    finally:
        server.clear_faults()
        with contextlib.suppress(ChildProcessError, ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
    return False  # pragma: no cover


def _flow(world: Sandbox, api: str, cli: Cli, command: str, scm_yaml: Path, profile: Path) -> list[Point]:
    """The requests ``command`` makes when nothing goes wrong (the kill points)."""
    sim, ns = _sim(world, api), world.netscaler
    scm_start, ns_start = len(sim.requests), len(ns.requests)
    res = cli("--scm-config", scm_yaml, command, profile)
    assert res.code == 0, res.output
    points = [Point("scm", i, r.method, r.path) for i, r in enumerate(sim.requests[scm_start:])]
    writes = [r for r in ns.requests[ns_start:] if r.method != "GET"]
    points += [Point("nitro", i, r.method, r.path) for i, r in enumerate(writes)]
    return points


def _converged(
    world: Sandbox, api: str, cli: Cli, scm_yaml: Path, profile: Path, state_dir: Path
) -> list[str]:
    """What is wrong after the next run (empty: converged)."""
    problems: list[str] = []
    res = cli("--scm-config", scm_yaml, "run", profile)
    if res.code != 0:
        return [f"the next run exited {res.code}: {res.output.strip()[-400:]}"]
    state = StateStore(state_dir).load(PROFILE)
    if state.ordering is not None or state.pending is not None:
        problems.append("an order is still in flight in the journal")
    if state.current is None or state.deployed is None or not state.deployed.saved:
        return [*problems, "no saved deployment of an issued certificate"]
    ns = world.netscaler
    if not same_serial(ns.serving_certificate(VS), state.current.serial):
        problems.append("the appliance does not serve the journal's certificate")
    if not ns.state()["saved"] or ns.gaps():
        problems.append(f"appliance unsaved or with gaps: {ns.gaps()}")
    sim = _sim(world, api)
    seen, writes = len(sim.requests), ns.count_writes()
    again = cli("--scm-config", scm_yaml, "--json", "run", profile)
    if again.code != 0 or '"action": "nothing"' not in again.out:
        problems.append(f"a further run still works: {again.output.strip()[-300:]}")
    if scm_writes(sim, seen) or ns.count_writes() != writes:
        problems.append("a further run wrote to SCM or the appliance")
    return problems


def _check_points(
    world_factory: Callable[[], Sandbox],
    api: str,
    command: str,
    cli: Cli,
    state_dir: Path,
    servers: tuple[str, ...],
) -> None:
    failures: list[str] = []
    kills = 0

    def prepared() -> tuple[Sandbox, Path, Path]:
        """A fresh sandbox and journal (renew and replace: with a certificate enrolled)."""
        world = world_factory()
        scm_yaml, profile = _quick_scm_yaml(world, api), _ec_profile(world)
        for path in state_dir.glob("**/*"):
            if path.is_file():
                path.unlink()
        if command != "enroll":
            assert cli("--scm-config", scm_yaml, "enroll", profile).code == 0
        return world, scm_yaml, profile

    world, scm_yaml, profile = prepared()
    points = [p for p in _flow(world, api, cli, command, scm_yaml, profile) if p.server in servers]
    assert points
    for point in points:
        if command == "enroll":  # each kill point from nothing enrolled
            world, scm_yaml, profile = prepared()
        # renew/replace: the converged state of the previous point is an enrolled, installed profile
        sim = _sim(world, api)
        store = StateStore(state_dir)
        before = store.load(PROFILE).current
        keys_before = _keys(state_dir)
        scm_mark = len(sim.requests)
        server = sim if point.server == "scm" else world.netscaler
        method = None if point.server == "scm" else point.method
        index = point.index if point.server == "scm" else _nth_of_method(point, points)
        args = ["--scm-config", str(scm_yaml), command, str(profile)]
        if not _kill_at(server, index, args, method=method):
            failures.append(f"{point}: the command never made that request")
            continue
        kills += 1
        took = _order_effects(world, api, scm_mark)  # order calls SCM carried out before the kill
        problems = _converged(world, api, cli, scm_yaml, profile, state_dir)
        effects = _order_effects(world, api, scm_mark)
        after = store.load(PROFILE).current
        lost_at_the_order = took and point.server == "scm" and ORDER_CALLS[api].match(point.path)
        allowed = 2 if api == "enrollment" and lost_at_the_order else 1  # cannot list: may order again
        if effects > allowed:
            problems.append(f"{effects} order calls carried out (at most {allowed})")
        renewed = after is not None and before is not None and not same_serial(after.serial, before.serial)
        if command != "enroll" and took and not renewed:
            problems.append(f"the {command} SCM carried out was never collected")
        if after is not None:
            stray = _keys(state_dir) - keys_before - {after.key_ref}
            if stray:
                problems.append(f"private keys of orders never collected are left: {sorted(stray)}")
        failures.extend(f"{point}: {p}" for p in problems)
    assert kills == len(points)
    assert not failures, "\n".join(failures)


def _nth_of_method(point: Point, points: list[Point]) -> int:
    """The index among the command's NITRO requests of the same method."""
    same = [p for p in points if p.server == "nitro" and p.method == point.method]
    return same.index(point)


@pytest.fixture
def worlds(tmp_path: Path) -> Iterator[Callable[[], Sandbox]]:
    started: list[Sandbox] = []

    def make() -> Sandbox:
        if started:
            started.pop().stop()
        world = Sandbox(tmp_path / f"sandbox-{time.monotonic_ns()}", issue_after_polls=1)
        started.append(world.start())
        return world

    yield make
    for world in started:
        world.stop()


@pytest.mark.parametrize("command", ["enroll", "renew", "replace"])
@pytest.mark.parametrize("api", ["admin", "enrollment"])
def test_kill_at_every_scm_call_converges(
    worlds: Callable[[], Sandbox], cli: Cli, state_dir: Path, api: str, command: str
) -> None:
    _check_points(worlds, api, command, cli, state_dir, servers=("scm",))


@pytest.mark.parametrize("command", ["enroll", "renew"])  # replace installs as renew does
def test_kill_at_every_netscaler_write_converges(
    worlds: Callable[[], Sandbox], cli: Cli, state_dir: Path, command: str
) -> None:
    _check_points(worlds, "admin", command, cli, state_dir, servers=("nitro",))
