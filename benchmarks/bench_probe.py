"""The TLS probe's cost: ``status`` with and without ``--probe`` over one profile bound to V vservers
(one loopback VIP each, real TLS on the simulated NetScaler), and the probe on its own with 1 or 8
handshakes in parallel. The sandbox runs in this process (so the loopback-only guard is on).

    python benchmarks/bench_probe.py --vservers 32 --runs 5 --latency-ms 0
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from citrix_connector.config import load_profile, load_scm_config  # noqa: E402
from citrix_connector.lifecycle import Agent  # noqa: E402
from citrix_connector.nitro.checks import ApplianceView  # noqa: E402
from citrix_connector.nitro.client import NitroClient  # noqa: E402
from citrix_connector.probe import Expectation, probe_vips  # noqa: E402
from citrix_connector.probe.run import MAX_PARALLEL  # noqa: E402
from citrix_connector.probe.targets import vip_targets  # noqa: E402
from citrix_connector.sandbox.world import ADC_PASSWORD, ADC_USER, Sandbox  # noqa: E402
from citrix_connector.state import StateStore  # noqa: E402


def timed(fn: object, runs: int) -> list[float]:
    out = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()  # type: ignore[operator]
        out.append(time.perf_counter() - start)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--vservers", type=int, default=32)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--latency-ms", type=float, default=0.0)
    args = parser.parse_args()
    names = [(f"vs_bench_{i:02d}", "lb", False) for i in range(args.vservers)]
    with (
        tempfile.TemporaryDirectory() as tmp,
        Sandbox(
            Path(tmp) / "sb", vservers=names, issue_after_polls=1, latency=args.latency_ms / 1000
        ) as world,
    ):
        data = world.profile_dict("bench", names, "bench.sandbox.test")
        profile = load_profile(world.write_profile("bench", data))
        agent = Agent(load_scm_config(world.scm_yaml), StateStore(Path(tmp) / "state"), sleep=lambda _s: None)
        [first] = agent.run([profile])
        assert first.result == "ok", first.message
        ns = world.netscaler
        seen = len(ns.requests)
        plain = timed(lambda: agent.status([profile]), args.runs)
        plain_requests = (len(ns.requests) - seen) / args.runs
        seen = len(ns.requests)
        probed = timed(lambda: agent.status([profile], probe=True), args.runs)
        probed_requests = (len(ns.requests) - seen) / args.runs
        [row] = agent.status([profile], probe=True)
        assert all(v["status"] == "ok" for v in row.details["probe"]), row.details["probe"]
        serial = str(first.serial)
        results = {}
        with NitroClient(ns.url, username=ADC_USER, password=ADC_PASSWORD, verify=world.ca_bundle) as nitro:
            view = ApplianceView.read(nitro)
            targets = vip_targets(view, nitro.host, profile.vservers, profile.certificate.subject_alt_names)
            for parallel in (1, MAX_PARALLEL):

                def once(p: int = parallel) -> None:
                    probe_vips(targets, Expectation(serial), parallel=p)

                results[parallel] = timed(once, args.runs)
    med = statistics.median
    print(f"machine: {platform.machine()} {platform.processor() or ''} python {platform.python_version()}")
    print(f"vservers (VIPs) {args.vservers}, runs {args.runs}, latency {args.latency_ms:g} ms")
    print(f"status          median {med(plain) * 1000:8.1f} ms  NITRO requests/run {plain_requests:g}")
    print(
        f"status --probe  median {med(probed) * 1000:8.1f} ms  NITRO requests/run {probed_requests:g}  "
        f"(+{(med(probed) - med(plain)) * 1000:.1f} ms for {args.vservers} handshakes)"
    )
    for parallel, times in results.items():
        rate = args.vservers / med(times)
        print(
            f"probe alone, {parallel} in parallel: median {med(times) * 1000:8.1f} ms  "
            f"({rate:.0f} handshakes/s)"
        )


if __name__ == "__main__":
    main()
