"""Discovery of a large fleet: N simulated appliances x M certkeys each, with network latency.

The sandbox (SCM + N NetScalers, each seeded with M leaf certkeys, half of them bound to lb vservers)
runs in a child process; only ``citrixagent discover`` is timed, as a process of its own (wall clock,
CPU and peak RSS from ``os.wait4``), after one untimed warm-up. The simulators' request logs give the
NITRO requests per appliance and the writes (always 0).

    python benchmarks/bench_discover.py --appliances 50 --certkeys 200 --latency-ms 20 --workers 8 --runs 3
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from citrix_connector.crypto import (  # noqa: E402
    KeySpec,
    build_csr,
    cert_to_pem,
    generate_private_key,
    private_key_to_pem,
)
from citrix_connector.sandbox.world import ADC_PASSWORD, ADC_PASSWORD_ENV, Sandbox  # noqa: E402


def serve(directory: str, appliances: int, certkeys: int, latency: float, conn: object) -> None:
    """Child process: build and seed the fleet, report, answer 'counts' until 'stop'."""
    world = Sandbox(Path(directory), appliances=appliances, vservers=(), latency=latency)
    spec = KeySpec("ECDSA", curve="P-256")
    material = []
    for i in range(certkeys):
        key = generate_private_key(spec)
        cn = f"host{i:04d}.bench.test"
        cert = world.signing_ca.issue_from_csr(build_csr(key, cn, [cn]), days=365)
        material.append((f"ck{i:04d}", cert_to_pem(cert).encode(), private_key_to_pem(key)))
    ca = cert_to_pem(world.signing_ca.intermediate).encode()
    for ns in world.netscalers:
        ns.install_certkey("bench_issuing", ca)
        for i, (name, cert_pem, key_pem) in enumerate(material):
            ns.install_certkey(name, cert_pem, key_pem, link="bench_issuing")
            if i % 2 == 0:
                ns.add_vserver(f"vs{i:04d}", "lb")
                ns.bind_certkey(f"vs{i:04d}", name)
    world.start()
    for ns in world.netscalers:
        ns.clear_requests()
    world.scm.clear_requests()
    conn.send(str(world.appliances_yaml))  # type: ignore[attr-defined]
    while True:
        msg = conn.recv()  # type: ignore[attr-defined]
        if msg == "counts":
            conn.send(  # type: ignore[attr-defined]
                (
                    [len(ns.requests) for ns in world.netscalers],
                    sum(ns.count_writes() for ns in world.netscalers),
                    len(world.scm.requests),
                )
            )
            for ns in world.netscalers:
                ns.clear_requests()
            world.scm.clear_requests()
        else:
            world.stop()
            return


def time_discover(
    appliances_yaml: str, scm_yaml: str, workers: int, state: str
) -> tuple[float, float, float, int]:
    env = {**os.environ, ADC_PASSWORD_ENV: ADC_PASSWORD, "CITRIXAGENT_ACCEPT_LICENSE": "yes"}
    cmd = [
        sys.executable, "-m", "citrix_connector", "--state-dir", state, "--json", "--scm-config", scm_yaml,
        "discover", appliances_yaml, "--workers", str(workers),
    ]  # fmt: skip
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _pid, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024, os.waitstatus_to_exitcode(status)


def time_in_process(appliances_yaml: str, scm_yaml: str, workers: int) -> tuple[float, int]:
    """discover() called in this process (imports already paid): (wall, certkeys found)."""
    from datetime import datetime, timezone

    from citrix_connector.config import load_scm_config
    from citrix_connector.discovery.runner import discover
    from citrix_connector.discovery.targets import load_targets

    os.environ[ADC_PASSWORD_ENV] = ADC_PASSWORD
    targets, _ = load_targets([Path(appliances_yaml)])
    scm = load_scm_config(Path(scm_yaml))
    start = time.perf_counter()
    inventory = discover(targets, scm=scm, now=datetime.now(timezone.utc), workers=workers)
    wall = time.perf_counter() - start
    assert not inventory.failed, [t.error for t in inventory.targets if not t.ok]
    return wall, len(inventory.certkeys)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--appliances", type=int, default=50)
    parser.add_argument("--certkeys", type=int, default=200)
    parser.add_argument("--latency-ms", type=int, default=20)
    parser.add_argument("--workers", type=int, nargs="+", default=[8])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-discover-") as tmp:
        parent, child = mp.Pipe()
        ctx = mp.get_context("spawn")
        proc = ctx.Process(
            target=serve, args=(tmp, args.appliances, args.certkeys, args.latency_ms / 1000, child)
        )
        t0 = time.perf_counter()
        proc.start()
        appliances_yaml = parent.recv()
        print(f"fleet ready in {time.perf_counter() - t0:.1f} s: {args.appliances} appliances x "
              f"{args.certkeys} certkeys, {args.latency_ms} ms latency")  # fmt: skip
        scm_yaml = str(Path(tmp) / "scm.yaml")
        try:
            for workers in args.workers:
                time_discover(appliances_yaml, scm_yaml, workers, str(Path(tmp) / "state"))  # warm-up
                parent.send("counts")
                parent.recv()
                samples = []
                for _ in range(args.runs):
                    state = str(Path(tmp) / "state")
                    samples.append(time_discover(appliances_yaml, scm_yaml, workers, state))
                    parent.send("counts")
                    per_appliance, writes, scm_requests = parent.recv()
                inproc = []
                for _ in range(args.runs):
                    inproc.append(time_in_process(appliances_yaml, scm_yaml, workers))
                    parent.send("counts")
                    parent.recv()
                iw = [w for w, _ in inproc]
                print(
                    f"workers={workers}: in-process discover() {statistics.median(iw):.2f} s "
                    f"({min(iw):.2f}-{max(iw):.2f}), {inproc[-1][1]} certkeys"
                )
                walls = [s[0] for s in samples]
                print(
                    f"workers={workers}: whole process {statistics.median(walls):.2f} s "
                    f"({min(walls):.2f}-{max(walls):.2f}), "
                    f"CPU {statistics.median(s[1] for s in samples):.2f} s, "
                    f"peak RSS {statistics.median(s[2] for s in samples):.0f} MiB, exit {samples[-1][3]}; "
                    f"NITRO requests per appliance {min(per_appliance)}-{max(per_appliance)}, "
                    f"writes {writes}, SCM requests {scm_requests}"
                )  # fmt: skip
        finally:
            parent.send("stop")
            proc.join(timeout=30)


if __name__ == "__main__":
    main()
