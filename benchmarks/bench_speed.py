"""Issue 12's side-by-side benchmark: the agent against the per-profile baseline and the limit.

One invocation starts the sandbox fleet (its own process, injected latency), enrolls it, then runs
interleaved rounds of

* the agent: ``status`` and idle ``run`` over the whole profile directory, one process each;
* the per-profile baseline: one agent process per profile, sequentially (the way single-certificate
  tools work), on a sample of profiles, extrapolated to the fleet (said so in the output);
* the limit: start-up + ``validate`` of the same directory (profile loading, no network) + 3 x RTT;

then a fleet deploy (fresh state dir: every profile ordered, issued after ``--issue-after-seconds``
and installed) against the slowest single-profile enroll on the same sandbox.

It prints medians and min–max of the ratios, requests per appliance and per profile, CPU and peak
RSS, and (with ``--write``) appends the figures to ``benchmarks/RESULTS.md`` with machine and date.

    python benchmarks/bench_speed.py --appliances 50 --profiles-per-appliance 20 --latency-ms 20 \
        --deploy-appliances 20 --deploy-profiles-per-appliance 10 --issue-after-seconds 2 --write
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_fleet import Sample, time_process  # noqa: E402
from fleet import PYTHON, REPO, Fleet, Traffic, agent_env  # noqa: E402


def med(values: list[float], fmt: str = "{:.3f}") -> str:
    return f"{fmt.format(statistics.median(values))} ({fmt.format(min(values))}–{fmt.format(max(values))})"


@dataclass
class Row:
    label: str
    samples: list[Sample]

    def line(self) -> str:
        return (
            f"| {self.label} | {med([s.wall for s in self.samples])} | {med([s.cpu for s in self.samples])} "
            f"| {med([s.maxrss_mib for s in self.samples], '{:.1f}')} "
            f"| {sorted({s.exit_code for s in self.samples})} |"
        )


def agent(fleet: Fleet, *args: str) -> list[str]:
    return [PYTHON, "-m", "citrixagent", "--scm-config", str(fleet.scm_yaml), *args]


def per_appliance(traffic: Traffic, runs: int) -> str:
    counts = [a.requests / runs for a in traffic.appliances]
    return f"{statistics.median(counts):g} (min {min(counts):g}, max {max(counts):g})"


LOAD = """
import sys, time
from pathlib import Path
from citrix_connector.config import load_profile
paths = sorted(Path(sys.argv[1]).glob("*.yaml"))
load_profile(paths[0])
start = time.perf_counter()
for path in paths:
    load_profile(path)
print((time.perf_counter() - start) / len(paths))
"""


def load_per_profile(directory: Path) -> float:
    """Seconds per profile of loading the directory in one process (imports excluded)."""
    done = subprocess.run(
        [PYTHON, "-c", LOAD, str(directory)],
        cwd=REPO,
        env=agent_env(),
        capture_output=True,
        text=True,
        check=True,
    )
    return float(done.stdout.strip())


def machine() -> str:
    model = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (
        f"{os.cpu_count()} CPUs ({model}), {platform.system()} {platform.release()}, "
        f"Python {platform.python_version()}"
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--appliances", type=int, default=50)
    p.add_argument("--profiles-per-appliance", type=int, default=20)
    p.add_argument("--latency-ms", type=int, default=20)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--baseline-sample", type=int, default=5, help="profiles timed one process each")
    p.add_argument("--deploy-appliances", type=int, default=20)
    p.add_argument("--deploy-profiles-per-appliance", type=int, default=10)
    p.add_argument("--issue-after-seconds", type=float, default=2.0)
    p.add_argument("--deploy-rounds", type=int, default=1)
    p.add_argument(
        "--deploy-key",
        choices=["RSA", "ECDSA"],
        default="RSA",
        help="key of the deployed profiles (RSA-2048 key generation alone costs ~40 ms CPU a key)",
    )
    p.add_argument("--write", action="store_true", help="append the figures to benchmarks/RESULTS.md")
    a = p.parse_args()
    out: list[str] = []

    def say(line: str = "") -> None:
        print(line, flush=True)
        out.append(line)

    started = time.monotonic()
    rtt = a.latency_ms / 1000
    with tempfile.TemporaryDirectory(prefix="citrixagent-speed-") as tmp:
        root = Path(tmp)
        log = root / "agent.log"
        # ---------------------------------------------------------------- status / idle run
        fleet = Fleet(root / "fleet", a.appliances, a.profiles_per_appliance, a.latency_ms, 0)
        with fleet:
            state = root / "state"
            t0 = time.monotonic()
            first = time_process(agent(fleet, "run", str(fleet.profile_dir)), agent_env(state), log)
            if first.exit_code != 0:
                raise SystemExit(f"enrollment failed (exit {first.exit_code}); see {log}")
            n = fleet.profile_count
            say(
                f"fleet: {a.appliances} appliances x {a.profiles_per_appliance} profiles = {n}, RSA-2048 "
                f"local keys, latency {a.latency_ms} ms; enrolled (untimed setup) in "
                f"{time.monotonic() - t0:.1f} s"
            )
            files = sorted(fleet.profile_dir.glob("*.yaml"))
            sample = files[:: max(1, len(files) // a.baseline_sample)][: a.baseline_sample]
            rows: dict[str, list[Sample]] = {k: [] for k in ("status", "run", "validate", "version")}
            base: dict[str, list[Sample]] = {"status": [], "run": []}
            traffic: dict[str, list[Traffic]] = {"status": [], "run": []}
            for _ in range(a.rounds):  # interleaved: drift of the shared machine hits every kind alike
                for cmd in ("status", "run"):
                    fleet.clear_logs()
                    rows[cmd].append(
                        time_process(agent(fleet, cmd, str(fleet.profile_dir)), agent_env(state), log)
                    )
                    traffic[cmd].append(fleet.traffic())
                rows["validate"].append(
                    time_process(agent(fleet, "validate", str(fleet.profile_dir)), agent_env(state), log)
                )
                rows["version"].append(
                    time_process([PYTHON, "-m", "citrixagent", "--version"], agent_env(state), log)
                )
                for cmd in ("status", "run"):
                    walls = [time_process(agent(fleet, cmd, str(f)), agent_env(state), log) for f in sample]
                    # one process per profile, extrapolated from the sample to the whole fleet
                    base[cmd].append(
                        Sample(
                            statistics.mean(s.wall for s in walls) * n,
                            statistics.mean(s.user for s in walls) * n,
                            statistics.mean(s.sys for s in walls) * n,
                            max(s.maxrss_mib for s in walls),
                            max(s.exit_code for s in walls),
                        )
                    )
            limit = [v.wall + rtt * 3 for v in rows["validate"]]
            say()
            say(
                f"| {n} profiles, {a.rounds} interleaved rounds "
                "| wall s | CPU s | peak RSS MiB | exit codes |"
            )
            say("| --- | --- | --- | --- | --- |")
            for key, label in (("status", "agent `status`"), ("run", "agent idle `run`"),
                               ("validate", "`validate` (profile loading, no network)"),
                               ("version", "`--version` (cold start)")):  # fmt: skip
                say(Row(label, rows[key]).line())
            for key in ("status", "run"):
                say(
                    Row(
                        f"baseline `{key}` (one process per profile; {len(sample)} timed, "
                        f"x{n / len(sample):g})",
                        base[key],
                    ).line()
                )
            say(f"| limit = start-up + validate + 3 x RTT | {med(limit)} | | | |")
            say()
            for key in ("status", "run"):
                vs_limit = [r.wall / lim for r, lim in zip(rows[key], limit, strict=True)]
                vs_base = [b.wall / r.wall for r, b in zip(rows[key], base[key], strict=True)]
                t = traffic[key]
                nitro = sum(sum(x.requests for x in tr.appliances) for tr in t) / len(t)
                say(
                    f"- `{key}`: {med(vs_limit, '{:.2f}')}x the limit (target <= 2x: "
                    f"{'met' if statistics.median(vs_limit) <= 2 else 'NOT met'}); "
                    f"{med(vs_base, '{:.0f}')}x faster than the per-profile baseline (target >= 100x: "
                    f"{'met' if statistics.median(vs_base) >= 100 else 'NOT met'}); NITRO requests per "
                    f"appliance {per_appliance(t[-1], 1)} (target <= 6), per profile {nitro / n:.3f}; "
                    f"SCM requests {t[-1].scm_requests + t[-1].enrollment_requests}; "
                    f"CPU per profile {statistics.median(r.cpu for r in rows[key]) / n * 1000:.2f} ms"
                )
            loads = [load_per_profile(fleet.profile_dir) * 1000 for _ in range(a.rounds)]
            say(
                f"- profile loading, in-process `load_profile` per profile: {med(loads)} ms "
                "(target <= 0.3 ms: "
                f"{'met' if statistics.median(loads) <= 0.3 else 'NOT met'})"
            )
            say(f"- `--version` cold: {med([s.wall for s in rows['version']])} s (target <= 0.1 s)")
        # ---------------------------------------------------------------- fleet deploy
        dfleet = Fleet(
            root / "deploy", a.deploy_appliances, a.deploy_profiles_per_appliance, a.latency_ms, 0,
            issue_after_seconds=a.issue_after_seconds,
            key={"key_type": "RSA", "key_size": 2048} if a.deploy_key == "RSA" else {"key_type": "ECDSA"},
        )  # fmt: skip
        with dfleet:
            dn = dfleet.profile_count
            files = sorted(dfleet.profile_dir.glob("*.yaml"))
            singles: list[Sample] = []
            deploys: list[Sample] = []
            dtraffic: list[Traffic] = []
            for k in range(a.deploy_rounds):
                for f in files[:: max(1, len(files) // 3)][:3]:  # the single-profile enroll, fresh state
                    singles.append(
                        time_process(
                            agent(dfleet, "run", str(f)), agent_env(root / f"single-{k}-{f.stem}"), log
                        )
                    )
                dfleet.clear_logs()
                deploys.append(
                    time_process(
                        agent(dfleet, "run", str(dfleet.profile_dir)), agent_env(root / f"deploy-{k}"), log
                    )
                )
                dtraffic.append(dfleet.traffic())
            slowest = max(s.wall for s in singles)
            t = dtraffic[-1]
            nitro = sum(x.requests for x in t.appliances)
            scm = t.scm_requests + t.enrollment_requests
            say()
            say(
                f"fleet deploy: {a.deploy_appliances} appliances x {a.deploy_profiles_per_appliance} = {dn} "
                f"profiles ({a.deploy_key} keys), fresh state dir (every profile ordered, issued "
                f"{a.issue_after_seconds} s after "
                f"its order, installed in place), {a.deploy_rounds} round(s)"
            )
            say("")
            say("| deploy | wall s | CPU s | peak RSS MiB | exit codes |")
            say("| --- | --- | --- | --- | --- |")
            say(Row(f"fleet deploy, {dn} profiles", deploys).line())
            say(Row("single-profile enroll (3 profiles, own process each)", singles).line())
            ratio = [d.wall / slowest for d in deploys]
            cpu = [d.cpu / dn * 1000 for d in deploys]
            say("")
            say(
                f"- wall / slowest single enroll ({slowest:.2f} s): {med(ratio, '{:.2f}')} (target <= 2: "
                f"{'met' if statistics.median(ratio) <= 2 else 'NOT met'})"
            )
            say(
                f"- CPU per deployed profile: {med(cpu, '{:.1f}')} ms (target <= 30 ms: "
                f"{'met' if statistics.median(cpu) <= 30 else 'NOT met'})"
            )
            say(
                f"- round trips per deployed profile: {(nitro + scm) / dn:.1f} ({nitro / dn:.1f} NITRO + "
                f"{scm / dn:.1f} SCM; target <= 10: {'met' if (nitro + scm) / dn <= 10 else 'NOT met'})"
            )
            verbs: dict[str, int] = {}
            for appl in t.appliances:
                for v, c in appl.verbs.items():
                    verbs[v] = verbs.get(v, 0) + c
            say(
                "- NITRO per deployed profile: "
                + ", ".join(f"{v} {c / dn:.2f}" for v, c in sorted(verbs.items()))
            )
    say()
    say(f"benchmark wall time {time.monotonic() - started:.0f} s")
    if a.write:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True
        ).stdout.strip()
        stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
        head = [
            "",
            f"## Issue 12, fleet speed: {stamp}, code of {commit}",
            "",
            f"Machine: {machine()}. Shared with other engineers' test runs (see the spreads). Command:",
            "",
            "```sh",
            "python benchmarks/bench_speed.py " + " ".join(sys.argv[1:]),
            "```",
            "",
        ]
        with open(REPO / "benchmarks" / "RESULTS.md", "a", encoding="utf-8") as fh:
            fh.write("\n".join(head + out) + "\n")


if __name__ == "__main__":
    main()
