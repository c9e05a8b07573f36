"""Issue 12's side-by-side benchmark: the agent against the per-profile baseline and the limit.

One invocation measures, each agent run as its own process (wall clock around it, user/sys CPU and
peak RSS from ``os.wait4``), the request counts from the simulators' logs:

1. ``status`` and idle ``run`` over a settled fleet (default 50 appliances x 20 = 1,000 profiles),
   built in seconds by :mod:`seeded` (the sandbox in this process, certificates signed by its CA,
   installed and journalled directly), in interleaved rounds with ``validate`` of the same directory,
   the cold start, and the per-profile baseline (one agent process per profile, sequentially, as
   single-certificate tools work; a sample, extrapolated to the fleet and said so); the limit is
   start-up + ``validate`` + 3 x RTT;
2. ``status`` and idle ``run`` at scale (default 200 appliances x 50 = 10,000 profiles);
3. ``--help`` and ``--version`` cold;
4. a fleet deploy (default 200 profiles on 20 appliances, SCM issuing 2 s after each order, a fresh
   sandbox in its own process per round and key type) against the slowest single-profile enroll on
   the same sandbox; CPU per deployed profile (and, for RSA, the key generation measured apart),
   round trips per deployed profile, and the sandbox's own CPU during the deploy.

It prints medians and min–max, met / not met per target, and with ``--write`` appends the figures to
``benchmarks/RESULTS.md`` with the machine and date. Nothing here is a test.

    python benchmarks/bench_speed.py --write
    python benchmarks/bench_speed.py --scale-appliances 0 --deploy-keys ECDSA   # a quicker run
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_fleet import Sample  # noqa: E402
from fleet import PYTHON, REPO, Fleet, Traffic, agent_env  # noqa: E402
from seeded import SeededFleet, check_settled  # noqa: E402

Say = Callable[[str], None]


def med(values: list[float], fmt: str = "{:.3f}") -> str:
    return f"{fmt.format(statistics.median(values))} ({fmt.format(min(values))}–{fmt.format(max(values))})"


def verdict(ok: bool) -> str:
    return "met" if ok else "NOT met"


def row(label: str, samples: list[Sample]) -> str:
    return (
        f"| {label} | {med([s.wall for s in samples])} | {med([s.cpu for s in samples])} "
        f"| {med([s.maxrss_mib for s in samples], '{:.1f}')} | {sorted({s.exit_code for s in samples})} |"
    )


#: Runs one command from a small, fresh interpreter and reports the kernel's accounting of it: forked
#: from this process (which serves a seeded sandbox of thousands of certkeys), the child's peak RSS
#: would count this process's pages until its exec.
LAUNCH = """
import json, os, sys, time
start = time.perf_counter()
pid = os.fork()
if pid == 0:
    os.execvp(sys.argv[2], sys.argv[2:])
_, status, usage = os.wait4(pid, 0)
wall = time.perf_counter() - start
with open(sys.argv[1], "w") as out:
    json.dump([wall, usage.ru_utime, usage.ru_stime, usage.ru_maxrss / 1024,
               os.waitstatus_to_exitcode(status)], out)
"""


def time_process(cmd: list[str], env: dict[str, str], log_path: Path) -> Sample:
    """``cmd`` as its own process: wall clock, user/sys CPU and peak RSS from ``os.wait4``."""
    result = log_path.with_name("launch.json")
    with open(log_path, "ab") as log:
        subprocess.run(
            [PYTHON, "-S", "-c", LAUNCH, str(result), *cmd],
            cwd=REPO, env=env, stdout=log, stderr=log, stdin=subprocess.DEVNULL, check=True,
        )  # fmt: skip
    wall, user, system, rss, code = json.loads(result.read_text())
    return Sample(wall, user, system, rss, code)


HEAD = "| {} | wall s | CPU s | peak RSS MiB | exit codes |\n| --- | --- | --- | --- | --- |"

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
        [PYTHON, "-c", LOAD, str(directory)], cwd=REPO, env=agent_env(), capture_output=True, text=True
    )
    if done.returncode:
        raise SystemExit(done.stderr)
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


# ------------------------------------------------------------------------------- status, idle run


def settled_fleet(a: argparse.Namespace, root: Path, say: Say, log: Path) -> None:
    n_app, per = a.appliances, a.profiles_per_appliance
    rtt = a.latency_ms / 1000
    with SeededFleet(root / "settled", n_app, per, a.latency_ms) as fleet:
        check_settled(fleet)
        n = fleet.profile_count
        env = agent_env(fleet.state_dir)
        say(
            f"settled fleet: {n_app} appliances x {per} = {n} profiles (ECDSA, one lb vserver each), "
            f"latency {a.latency_ms} ms, seeded (untimed set-up) in {fleet.seconds_to_seed:.1f} s"
        )

        def agent(*args: str) -> list[str]:
            return [PYTHON, "-m", "citrixagent", "--scm-config", str(fleet.scm_yaml), *args]

        files = sorted(fleet.profile_dir.glob("*.yaml"))
        sample = files[:: max(1, len(files) // a.baseline_sample)][: a.baseline_sample]
        rows: dict[str, list[Sample]] = {k: [] for k in ("status", "run", "validate")}
        base: dict[str, list[Sample]] = {"status": [], "run": []}
        nitro: dict[str, list[list[int]]] = {"status": [], "run": []}
        scm: dict[str, list[int]] = {"status": [], "run": []}
        for _ in range(a.rounds):  # interleaved: drift of the shared machine hits every kind alike
            for cmd in ("status", "run"):
                fleet.clear_logs()
                rows[cmd].append(time_process(agent(cmd, str(fleet.profile_dir)), env, log))
                nitro[cmd].append(fleet.nitro_requests())
                scm[cmd].append(fleet.scm_requests())
            rows["validate"].append(time_process(agent("validate", str(fleet.profile_dir)), env, log))
            for cmd in ("status", "run"):
                walls = [time_process(agent(cmd, str(f)), env, log) for f in sample]
                base[cmd].append(  # one process per profile, extrapolated from the sample
                    Sample(
                        statistics.mean(s.wall for s in walls) * n,
                        statistics.mean(s.user for s in walls) * n,
                        statistics.mean(s.sys for s in walls) * n,
                        max(s.maxrss_mib for s in walls),
                        max(s.exit_code for s in walls),
                    )
                )
        limit = [v.wall + 3 * rtt for v in rows["validate"]]
        say("")
        say(HEAD.format(f"{n} profiles, {a.rounds} interleaved rounds"))
        say(row("agent `status`", rows["status"]))
        say(row("agent idle `run`", rows["run"]))
        say(row("`validate` (profile loading, no network)", rows["validate"]))
        for cmd in ("status", "run"):
            label = f"baseline `{cmd}` (one process per profile; {len(sample)} timed, x{n / len(sample):g})"
            say(row(label, base[cmd]))
        say(f"| limit = start-up + validate + 3 x RTT | {med(limit)} | | | |")
        say("")
        for cmd in ("status", "run"):
            vs_limit = [r.wall / lim for r, lim in zip(rows[cmd], limit, strict=True)]
            vs_base = [b.wall / r.wall for r, b in zip(rows[cmd], base[cmd], strict=True)]
            per_app = nitro[cmd][-1]
            say(
                f"- `{cmd}`: {med(vs_limit, '{:.2f}')}x the limit (target <= 2x: "
                f"{verdict(statistics.median(vs_limit) <= 2)}); {med(vs_base, '{:.0f}')}x faster than "
                f"one process per profile (target >= 100x: {verdict(statistics.median(vs_base) >= 100)}); "
                f"NITRO requests per appliance {min(per_app)}–{max(per_app)} (target <= 6: "
                f"{verdict(max(per_app) <= 6)}); SCM requests {scm[cmd][-1]}; CPU per profile "
                f"{statistics.median(r.cpu for r in rows[cmd]) / n * 1000:.2f} ms"
            )
        loads = [load_per_profile(fleet.profile_dir) * 1000 for _ in range(a.rounds)]
        say(
            f"- profile loading, in-process `load_profile` per profile: {med(loads)} ms (target <= 0.3 ms: "
            f"{verdict(statistics.median(loads) <= 0.3)})"
        )


def scale_fleet(a: argparse.Namespace, root: Path, say: Say, log: Path) -> None:
    n_app, per = a.scale_appliances, a.scale_profiles_per_appliance
    with SeededFleet(root / "scale", n_app, per, a.latency_ms) as fleet:
        n = fleet.profile_count
        env = agent_env(fleet.state_dir)
        say("")
        say(
            f"at scale: {n_app} appliances x {per} = {n} profiles, latency {a.latency_ms} ms, seeded "
            f"(untimed) in {fleet.seconds_to_seed:.1f} s"
        )
        rows: dict[str, list[Sample]] = {"status": [], "run": [], "few": [], "validate": []}
        nitro: list[int] = []
        base = [PYTHON, "-m", "citrixagent", "--scm-config", str(fleet.scm_yaml)]
        for _ in range(a.scale_rounds):
            for cmd in ("status", "run"):
                fleet.clear_logs()
                rows[cmd].append(time_process([*base, cmd, str(fleet.profile_dir)], env, log))
                nitro = fleet.nitro_requests()
            few = [*base, "status", "--workers", str(a.scale_few_workers), str(fleet.profile_dir)]
            rows["few"].append(time_process(few, env, log))
            rows["validate"].append(time_process([*base, "validate", str(fleet.profile_dir)], env, log))
        say("")
        say(HEAD.format(f"{n} profiles, {a.scale_rounds} rounds"))
        say(row("agent `status`", rows["status"]))
        say(row("agent idle `run`", rows["run"]))
        say(row(f"agent `status --workers {a.scale_few_workers}`", rows["few"]))
        say(row("`validate` (profile loading, no network)", rows["validate"]))
        say("")
        wall = statistics.median(s.wall for s in rows["status"])
        rss = max(s.maxrss_mib for s in rows["status"])
        say(
            f"- `status` {wall:.2f} s (target <= 10 s: {verdict(wall <= 10)}), peak RSS {rss:.0f} MiB "
            f"(target <= 150 MiB: {verdict(rss <= 150)}); NITRO requests per appliance "
            f"{min(nitro)}–{max(nitro)}; CPU per profile "
            f"{statistics.median(s.cpu for s in rows['status']) / n * 1000:.2f} ms"
        )


def cold_start(a: argparse.Namespace, say: Say, log: Path) -> None:
    rows: dict[str, list[Sample]] = {"--version": [], "--help": [], "python -c pass": []}
    for _ in range(a.cold_rounds):
        for key, cmd in (
            ("--version", [PYTHON, "-m", "citrixagent", "--version"]),
            ("--help", [PYTHON, "-m", "citrixagent", "--help"]),
            ("python -c pass", [PYTHON, "-c", "pass"]),
        ):
            rows[key].append(time_process(cmd, agent_env(), log))
    say("")
    say(HEAD.format(f"cold start, {a.cold_rounds} interleaved rounds"))
    for key, samples in rows.items():
        say(row(f"`{key}`", samples))
    say("")
    for key in ("--version", "--help"):
        wall = statistics.median(s.wall for s in rows[key])
        say(f"- `{key}` {wall:.3f} s (target <= 0.1 s: {verdict(wall <= 0.1)})")


# ------------------------------------------------------------------------------------ fleet deploy


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a running process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def keygen_ms(key: str, count: int = 20) -> float:
    """CPU milliseconds per generated key of this type, in this process."""
    from citrix_connector import crypto

    spec = crypto.KeySpec("RSA", size=2048) if key == "RSA" else crypto.KeySpec("ECDSA", curve="P-256")
    start = resource.getrusage(resource.RUSAGE_SELF)
    for _ in range(count):
        crypto.generate_private_key(spec)
    end = resource.getrusage(resource.RUSAGE_SELF)
    return (end.ru_utime + end.ru_stime - start.ru_utime - start.ru_stime) / count * 1000


def deploy_round(
    a: argparse.Namespace, root: Path, key: str, k: int, log: Path
) -> tuple[Sample, list[Sample], Traffic, float]:
    n_app, per = a.deploy_appliances, a.deploy_profiles_per_appliance
    spec = {"key_type": "RSA", "key_size": 2048} if key == "RSA" else {"key_type": "ECDSA"}
    fleet = Fleet(root / f"deploy-{key}-{k}", n_app, per + 1, a.latency_ms, 0,
                  issue_after_seconds=a.issue_after_seconds, key=spec)  # fmt: skip
    with fleet:
        # the last profile of three appliances enrolls alone (its own process, fresh state); the
        # others' extra profiles are dropped: the fleet deploy is n_app x per profiles
        singles_dir = fleet.directory / "singles"
        singles_dir.mkdir()
        picked = {0, n_app // 2, n_app - 1}
        for i in range(n_app):
            extra = fleet.profile_dir / f"a{i:02d}-p{per:02d}.yaml"
            if i in picked:
                extra.rename(singles_dir / extra.name)
            else:
                extra.unlink()
        singles = [
            time_process(
                [PYTHON, "-m", "citrixagent", "--scm-config", str(fleet.scm_yaml), "run", str(f)],
                agent_env(root / f"single-{key}-{k}-{f.stem}"),
                log,
            )
            for f in sorted(singles_dir.glob("*.yaml"))
        ]
        fleet.clear_logs()
        assert fleet.proc is not None
        sandbox_before = cpu_seconds(fleet.proc.pid)
        deploy = time_process(
            [PYTHON, "-m", "citrixagent", "--scm-config", str(fleet.scm_yaml), "run", str(fleet.profile_dir)],
            agent_env(root / f"deploy-state-{key}-{k}"),
            log,
        )
        sandbox_cpu = cpu_seconds(fleet.proc.pid) - sandbox_before
        return deploy, singles, fleet.traffic(), sandbox_cpu


def fleet_deploy(a: argparse.Namespace, root: Path, say: Say, log: Path) -> None:
    dn = a.deploy_appliances * a.deploy_profiles_per_appliance
    for key in a.deploy_keys:
        deploys: list[Sample] = []
        singles: list[Sample] = []
        traffic: list[Traffic] = []
        sandbox: list[float] = []
        for k in range(a.deploy_rounds):
            d, s, t, sandbox_seconds = deploy_round(a, root, key, k, log)
            deploys.append(d)
            singles.extend(s)
            traffic.append(t)
            sandbox.append(sandbox_seconds)
        slowest = max(s.wall for s in singles)
        t = traffic[-1]
        nitro = sum(x.requests for x in t.appliances)
        scm = t.scm_requests + t.enrollment_requests
        say("")
        say(
            f"fleet deploy, {key} keys: {a.deploy_appliances} appliances x {a.deploy_profiles_per_appliance} "
            f"= {dn} profiles, fresh sandbox and state per round (every profile ordered, issued "
            f"{a.issue_after_seconds:g} s after its order, installed), {a.deploy_rounds} round(s), latency "
            f"{a.latency_ms} ms"
        )
        say("")
        say(HEAD.format("deploy"))
        say(row(f"fleet deploy, {dn} profiles", deploys))
        say(row(f"single-profile enroll ({len(singles)}, own process and state each)", singles))
        ratio = [d.wall / slowest for d in deploys]
        cpu = [d.cpu / dn * 1000 for d in deploys]
        keygen = keygen_ms(key)
        say("")
        say(
            f"- wall / slowest single enroll ({slowest:.2f} s): {med(ratio, '{:.2f}')} (target <= 2: "
            f"{verdict(statistics.median(ratio) <= 2)})"
        )
        say(
            f"- CPU per deployed profile: {med(cpu, '{:.1f}')} ms (target <= 30 ms: "
            f"{verdict(statistics.median(cpu) <= 30)}); of which key generation {keygen:.1f} ms "
            f"(measured apart), the rest {statistics.median(cpu) - keygen:.1f} ms"
        )
        say(
            f"- round trips per deployed profile: {(nitro + scm) / dn:.2f} ({nitro / dn:.2f} NITRO + "
            f"{scm / dn:.2f} SCM; target <= 10: {verdict((nitro + scm) / dn <= 10)})"
        )
        say(
            f"- the sandbox's own CPU during the deploy: {med(sandbox, '{:.1f}')} s over "
            f"{med([d.wall for d in deploys], '{:.1f}')} s (2 cores shared with the agent)"
        )
        verbs: dict[str, int] = {}
        for appl in t.appliances:
            for v, c in appl.verbs.items():
                verbs[v] = verbs.get(v, 0) + c
        per_verb = ", ".join(f"{v} {c / dn:.2f}" for v, c in sorted(verbs.items()))
        say(f"- NITRO per deployed profile: {per_verb}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--appliances", type=int, default=50)
    p.add_argument("--profiles-per-appliance", type=int, default=20)
    p.add_argument("--latency-ms", type=int, default=20)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--baseline-sample", type=int, default=5, help="profiles timed one process each")
    p.add_argument("--scale-appliances", type=int, default=200, help="0: skip the scale run")
    p.add_argument("--scale-profiles-per-appliance", type=int, default=50)
    p.add_argument("--scale-rounds", type=int, default=2)
    p.add_argument("--scale-few-workers", type=int, default=32, help="status at scale with fewer workers")
    p.add_argument("--cold-rounds", type=int, default=10)
    p.add_argument("--deploy-appliances", type=int, default=20)
    p.add_argument("--deploy-profiles-per-appliance", type=int, default=10)
    p.add_argument("--issue-after-seconds", type=float, default=2.0)
    p.add_argument("--deploy-rounds", type=int, default=1)
    p.add_argument("--deploy-keys", nargs="+", choices=["RSA", "ECDSA"], default=["RSA", "ECDSA"])
    p.add_argument("--write", action="store_true", help="append the figures to benchmarks/RESULTS.md")
    a = p.parse_args()
    out: list[str] = []

    def say(line: str = "") -> None:
        print(line, flush=True)
        out.append(line)

    started = time.monotonic()
    load_at_start = tuple(round(x, 2) for x in os.getloadavg())
    # bytecode first, as an installed agent has it (pip compiles on install; with
    # PYTHONDONTWRITEBYTECODE set, an editable checkout would compile every module in every process)
    subprocess.run([PYTHON, "-m", "compileall", "-q", str(REPO / "citrix_connector")], check=True)
    with tempfile.TemporaryDirectory(prefix="citrixagent-speed-") as tmp:
        root = Path(tmp)
        log = root / "agent.log"
        settled_fleet(a, root, say, log)
        if a.scale_appliances:
            scale_fleet(a, root, say, log)
        cold_start(a, say, log)
        if a.deploy_appliances:
            fleet_deploy(a, root, say, log)
    say("")
    say(f"benchmark wall time {time.monotonic() - started:.0f} s; load average at the end {os.getloadavg()}")
    if a.write:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True
        ).stdout.strip()
        stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
        head = [
            "",
            f"## Issue 12, fleet speed: {stamp}, code of {commit}",
            "",
            f"Machine: {machine()}; load average at the start {load_at_start}. Command:",
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
