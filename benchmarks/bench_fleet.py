"""Whole-process timings of ``citrixagent run`` against the sandbox running in a separate process.

Only the agent process is timed: wall clock around its start and exit, user/sys CPU and peak RSS
from ``os.wait4`` (the kernel's accounting of that child). Sandbox start-up, profile writing, fresh
state directories and reading the simulators' request logs all happen outside the timed region.

    # 1. fleet enrollment: fresh state dir per run, workers 1 and 4 interleaved (A B A B ...)
    python benchmarks/bench_fleet.py enroll --appliances 4 --profiles-per-appliance 5 \
        --latency-ms 30 --issue-after-polls 1 --workers 1 4 --runs 5
    # 2. steady state (the cron path): enroll once, then time runs that have nothing to do
    python benchmarks/bench_fleet.py steady --appliances 4 --profiles-per-appliance 5 --latency-ms 30
    # 3. scale
    python benchmarks/bench_fleet.py steady --appliances 10 --profiles-per-appliance 10 --latency-ms 30

Every run's traffic is read back from the simulators' ``GET /_sim/requests`` logs: SCM orders, and
per appliance NITRO logins, config saves and config writes.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from fleet import REPO, Fleet, Traffic, agent_env  # noqa: E402


@dataclass
class Sample:
    wall: float
    user: float
    sys: float
    maxrss_mib: float
    exit_code: int

    @property
    def cpu(self) -> float:
        return self.user + self.sys


def time_process(cmd: list[str], env: dict[str, str], log_path: Path) -> Sample:
    """Start ``cmd``, wait for it, and return the kernel's accounting of that one child."""
    with open(log_path, "ab") as log:
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=log, stderr=log, stdin=subprocess.DEVNULL)
        _pid, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    return Sample(wall, usage.ru_utime, usage.ru_stime, usage.ru_maxrss / 1024, proc.returncode)


def spread(values: list[float], fmt: str = "{:.3f}") -> str:
    return f"{fmt.format(statistics.median(values))} ({fmt.format(min(values))}–{fmt.format(max(values))})"


def report(label: str, samples: list[Sample]) -> None:
    codes = sorted({s.exit_code for s in samples})
    print(
        f"{label:<12} n={len(samples)}  wall s {spread([s.wall for s in samples])}  "
        f"cpu s {spread([s.cpu for s in samples])}  user s {spread([s.user for s in samples])}  "
        f"sys s {spread([s.sys for s in samples])}  "
        f"peak MiB {spread([s.maxrss_mib for s in samples], '{:.1f}')}"
        f"  exit codes {codes}"
    )


def verb_line(traffic: Traffic, runs: int) -> str:
    verbs: Counter[str] = Counter()
    for appliance in traffic.appliances:
        verbs.update(appliance.verbs)
    return ", ".join(f"{v} x{n / runs:g}" for v, n in sorted(verbs.items()))


def fresh_dir(root: Path, prefix: str) -> Path:
    return Path(tempfile.mkdtemp(prefix=prefix, dir=root))


def enroll(fleet: Fleet, workers: list[int], runs: int, warmup: int) -> None:
    samples: dict[int, list[Sample]] = {w: [] for w in workers}
    traffic: dict[int, list[Traffic]] = {w: [] for w in workers}
    log = fleet.directory / "agent.log"
    states = fleet.directory / "states"
    states.mkdir(exist_ok=True)
    for k in range(warmup + runs):
        for w in workers:  # interleaved, so drift of the machine hits every setting alike
            fleet.clear_logs()
            state = fresh_dir(states, f"w{w}-")
            sample = time_process(fleet.agent_command(w), agent_env(state), log)
            if k >= warmup:
                samples[w].append(sample)
                traffic[w].append(fleet.traffic())
    issuance = (
        f"{fleet.issue_after_seconds} s" if fleet.issue_after_seconds is not None
        else f"{fleet.issue_after_polls} poll(s)"
    )  # fmt: skip
    print(
        f"fleet enrollment: {fleet.appliances} appliances x {fleet.profiles_per_appliance} profiles "
        f"({fleet.key}), latency {fleet.latency_ms} ms, issue after {issuance}, "
        f"{warmup} warm-up + {runs} counted runs per setting, fresh state dir per run"
    )
    for w in workers:
        report(f"workers={w}", samples[w])
        print(f"             traffic of the last run: {traffic[w][-1].line()}")
        orders = {t.scm_orders for t in traffic[w]}
        print(f"             SCM orders per run: {sorted(orders)} (profiles: {fleet.profile_count})")
        print(f"             NITRO calls of the last run (all appliances): {verb_line(traffic[w][-1], 1)}")
    if len(workers) == 2:
        a, b = workers
        ratios = [x.wall / y.wall for x, y in zip(samples[a], samples[b], strict=True)]
        print(f"wall ratio workers={a} / workers={b}, pair by pair: {spread(ratios, '{:.2f}')}")


def steady(fleet: Fleet, workers: list[int], runs: int, warmup: int) -> None:
    log = fleet.directory / "agent.log"
    state = fleet.directory / "state"
    first = time_process(fleet.agent_command(4), agent_env(state), log)
    print(
        f"steady state: {fleet.appliances} appliances x {fleet.profiles_per_appliance} profiles "
        f"= {fleet.profile_count}, latency {fleet.latency_ms} ms; initial enrollment (workers=4, untimed "
        f"setup) took {first.wall:.2f} s, exit {first.exit_code}"
    )
    if first.exit_code != 0:
        raise SystemExit(f"enrollment failed (exit {first.exit_code}); see {log}")
    for w in workers:
        for _ in range(warmup):
            time_process(fleet.agent_command(w), agent_env(state), log)
        fleet.clear_logs()
        samples = [time_process(fleet.agent_command(w), agent_env(state), log) for _ in range(runs)]
        traffic = fleet.traffic()
        report(f"workers={w}", samples)
        print(f"             {traffic.line(runs)}")
        writes = sum(a.writes for a in traffic.appliances)
        verdict = (
            "OK" if traffic.scm_orders == 0 and writes == 0 and traffic.scm_requests == 0 else "NOT IDLE"
        )
        print(f"             zero SCM orders and zero NetScaler config writes: {verdict}")
        print(f"             NITRO calls per run (all appliances): {verb_line(traffic, runs)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("mode", choices=["enroll", "steady"])
    parser.add_argument("--appliances", type=int, default=4)
    parser.add_argument("--profiles-per-appliance", type=int, default=5)
    parser.add_argument("--latency-ms", type=int, default=30)
    parser.add_argument("--issue-after-polls", type=int, default=1)
    parser.add_argument(
        "--issue-after-seconds", type=float, default=None,
        help="SCM issues this long after each order (time-based, like the real SCM) instead of after polls",
    )
    parser.add_argument("--workers", type=int, nargs="+", default=None)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--dir", type=Path, default=None, help="work directory (default: a temporary one)")
    args = parser.parse_args()
    workers = args.workers or ([1, 4] if args.mode == "enroll" else [4])
    with tempfile.TemporaryDirectory(prefix="citrixagent-bench-") as tmp:
        directory = args.dir or Path(tmp) / "fleet"
        fleet = Fleet(
            directory, args.appliances, args.profiles_per_appliance, args.latency_ms, args.issue_after_polls,
            issue_after_seconds=args.issue_after_seconds,
        )  # fmt: skip
        with fleet:
            if args.mode == "enroll":
                enroll(fleet, workers, args.runs, args.warmup)
            else:
                steady(fleet, workers, args.runs, args.warmup)


if __name__ == "__main__":
    main()
