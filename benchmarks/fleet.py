"""A benchmark fleet: the sandbox in its own process, extra vservers, one profile per vserver.

Used by ``bench_fleet.py``; also runnable on its own to keep a fleet up for an external timer::

    python benchmarks/fleet.py serve --dir /tmp/fleet --appliances 4 --profiles-per-appliance 5 \
        --latency-ms 30 --issue-after-polls 1 --enroll &
    # wait for "fleet ready", then e.g.
    /usr/bin/time -v benchmarks/run_agent.sh /tmp/fleet 4 fresh    # a fleet enrollment
    /usr/bin/time -v benchmarks/run_agent.sh /tmp/fleet 4 steady   # the cron path, nothing to do
    kill %1                                                         # stops the sandbox too

The sandbox (``citrixagent sandbox serve``) runs as a separate process, so a timed ``citrixagent run``
pays only for the agent. Requests to the simulators' ``/_sim/`` control API skip the injected latency.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests
import yaml

REPO = Path(__file__).resolve().parent.parent
PYTHON = sys.executable

# The sandbox's own credentials (citrix_connector/sandbox/world.py), sandbox-only values.
ADC_USER = "nsroot"
ADC_PASSWORD = "sandbox-nsroot"
SCM_ORG_ID = 1234
SCM_CERT_TYPE = 567

ORDER_RE = re.compile(r"/ssl/v1/(enroll|renewById/\d+|renew/[^/]+|replace/\d+)$")
NITRO_RE = re.compile(r"^/nitro/v1/config/([^/?]+)")


def agent_env(state_dir: Path | None = None) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO)
    env["CITRIXAGENT_ACCEPT_LICENSE"] = "yes"
    if state_dir is not None:
        env["CITRIXAGENT_STATE_DIR"] = str(state_dir)
    return env


@dataclass
class Fleet:
    """A running ``citrixagent sandbox serve`` process and the profiles written for it."""

    directory: Path
    appliances: int
    profiles_per_appliance: int
    latency_ms: int = 0
    issue_after_polls: int = 1
    issue_after_seconds: float | None = None  # time-based issuance (like the real SCM) instead of polls
    key: dict[str, Any] = field(default_factory=lambda: {"key_type": "RSA", "key_size": 2048})
    proc: subprocess.Popen[str] | None = None
    scm_url: str = ""
    enrollment_url: str = ""
    netscaler_urls: list[str] = field(default_factory=list)

    # -- paths -------------------------------------------------------------------------------
    @property
    def sandbox_dir(self) -> Path:
        return self.directory / "sandbox"

    @property
    def scm_yaml(self) -> Path:
        return self.sandbox_dir / "scm.yaml"

    @property
    def ca_bundle(self) -> Path:
        return self.sandbox_dir / "sandbox-ca.pem"

    @property
    def profile_dir(self) -> Path:
        return self.directory / "profiles"

    @property
    def profile_count(self) -> int:
        return self.appliances * self.profiles_per_appliance

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self, timeout: float = 60.0) -> Fleet:
        if self.directory.exists():
            shutil.rmtree(self.directory)
        self.directory.mkdir(parents=True)
        cmd = [
            PYTHON, "-m", "citrixagent", "sandbox", "serve", "--dir", str(self.sandbox_dir),
            "--appliances", str(self.appliances), "--latency-ms", str(self.latency_ms),
            "--issue-after-polls", str(self.issue_after_polls),
        ]  # fmt: skip
        if self.issue_after_seconds is not None:
            cmd += ["--issue-after-seconds", str(self.issue_after_seconds)]
        self.proc = subprocess.Popen(
            cmd, cwd=REPO, env=agent_env(self.directory / "sandbox-state"), stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, text=True, start_new_session=True,
        )  # fmt: skip
        assert self.proc.stdout is not None
        deadline = time.monotonic() + timeout
        lines: list[str] = []
        while True:
            line = self.proc.stdout.readline()
            if not line:
                raise RuntimeError("sandbox exited early:\n" + "".join(lines))
            lines.append(line)
            if m := re.match(r"SCM admin API\s+(https://\S+)", line):
                self.scm_url = m.group(1)
            elif m := re.match(r"SCM Enrollment API\s+(https://\S+?)/api/v1", line):
                self.enrollment_url = m.group(1)
            elif m := re.match(r"NetScaler #\d+\s+(https://\S+)", line):
                self.netscaler_urls.append(m.group(1))
            elif line.startswith("Try:"):
                break
            if time.monotonic() > deadline:
                raise RuntimeError("sandbox did not start in time")
        # keep draining its output so it can never block on a full pipe
        threading.Thread(target=self.proc.stdout.read, daemon=True).start()
        for path in (self.scm_yaml, self.ca_bundle):
            if not path.exists():
                raise RuntimeError(f"sandbox did not write {path}")
        self._write_profiles()
        return self

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        # SIGTERM, not SIGINT: a shell starting us in the background makes SIGINT ignored, and the
        # sandbox holds nothing that needs a clean shutdown.
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def __enter__(self) -> Fleet:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- profiles ----------------------------------------------------------------------------
    @staticmethod
    def vserver_name(j: int) -> str:
        return f"bench_vs_{j:02d}"

    def _write_profiles(self) -> None:
        self.profile_dir.mkdir(parents=True, exist_ok=True)
        for i, url in enumerate(self.netscaler_urls):
            for j in range(self.profiles_per_appliance):
                vs = self.vserver_name(j)
                self.sim(url, "POST", "/_sim/vservers", json={"name": vs, "kind": "lb"})
                name = f"a{i:02d}-p{j:02d}"
                cn = f"p{j:02d}.a{i:02d}.bench.test"
                profile = {
                    "name": name,
                    "appliance": {
                        "url": url,
                        "username": ADC_USER,
                        "password": ADC_PASSWORD,
                        "verify_tls": str(self.ca_bundle),
                    },
                    "vservers": [{"name": vs, "type": "lb"}],
                    "certificate": {
                        "common_name": cn,
                        "subject_alt_names": [cn, f"www.{cn}"],
                        **self.key,
                    },
                    "sectigo": {"org_id": SCM_ORG_ID, "cert_type": SCM_CERT_TYPE, "term": 365},
                }
                path = self.profile_dir / f"{name}.yaml"
                path.write_text(yaml.safe_dump(profile, sort_keys=False), encoding="utf-8")
                path.chmod(0o600)  # it holds the appliance password, as the agent asks

    # -- simulator control API ---------------------------------------------------------------
    def sim(self, base: str, method: str, route: str, **kwargs: Any) -> Any:
        response = requests.request(method, base + route, verify=str(self.ca_bundle), timeout=30, **kwargs)
        response.raise_for_status()
        return response.json() if response.content else None

    def all_sims(self) -> list[str]:
        return [self.scm_url, self.enrollment_url, *self.netscaler_urls]

    def clear_logs(self) -> None:
        for url in self.all_sims():
            self.sim(url, "DELETE", "/_sim/requests")

    def traffic(self) -> Traffic:
        """What the agent sent since the last :meth:`clear_logs`, read from every simulator's log."""
        scm = self.sim(self.scm_url, "GET", "/_sim/requests")
        enrollment = self.sim(self.enrollment_url, "GET", "/_sim/requests")
        per_appliance = [summarize_nitro(self.sim(u, "GET", "/_sim/requests")) for u in self.netscaler_urls]
        return Traffic(
            scm_requests=len(scm),
            scm_orders=sum(1 for r in scm if r["method"] == "POST" and ORDER_RE.search(r["path"])),
            enrollment_requests=len(enrollment),
            appliances=per_appliance,
        )

    # -- running the agent -------------------------------------------------------------------
    def agent_command(self, workers: int) -> list[str]:
        return [
            PYTHON, "-m", "citrixagent", "--scm-config", str(self.scm_yaml), "run",
            str(self.profile_dir), "--workers", str(workers),
        ]  # fmt: skip


@dataclass
class NitroSummary:
    requests: int
    logins: int
    saves: int
    writes: int  # non-GET /nitro calls other than login, logout and partition switches
    verbs: Counter[str]


def summarize_nitro(log: Iterable[dict[str, Any]]) -> NitroSummary:
    total = logins = saves = writes = 0
    verbs: Counter[str] = Counter()
    for r in log:
        m = NITRO_RE.match(r["path"])
        if not m:
            continue
        total += 1
        resource = m.group(1)
        verbs[f"{r['method']} {resource}"] += 1
        if resource == "login":
            logins += 1
        elif r["method"] != "GET" and resource not in ("logout", "nspartition"):
            writes += 1
            if resource == "nsconfig" and "action=save" in r["query"]:
                saves += 1
    return NitroSummary(total, logins, saves, writes, verbs)


@dataclass
class Traffic:
    scm_requests: int
    scm_orders: int
    enrollment_requests: int
    appliances: list[NitroSummary]

    def line(self, runs: int = 1) -> str:
        logins = [a.logins for a in self.appliances]
        saves = [a.saves for a in self.appliances]
        writes = [a.writes for a in self.appliances]
        nitro = [a.requests for a in self.appliances]
        return (
            f"over {runs} run(s): SCM requests {self.scm_requests}, SCM orders {self.scm_orders}, "
            f"Enrollment-API requests {self.enrollment_requests}; per appliance: NITRO requests {nitro}, "
            f"logins {logins}, saves {saves}, config writes {writes}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="start the sandbox, write the fleet, wait for Ctrl-C")
    serve.add_argument("--dir", type=Path, required=True)
    serve.add_argument("--appliances", type=int, default=4)
    serve.add_argument("--profiles-per-appliance", type=int, default=5)
    serve.add_argument("--latency-ms", type=int, default=30)
    serve.add_argument("--issue-after-polls", type=int, default=1)
    serve.add_argument(
        "--enroll", action="store_true", help="enroll everything once into DIR/state (for steady state)"
    )
    args = parser.parse_args()
    # Ctrl-C and `kill PID` both stop the sandbox (even when started with `&`, where SIGINT is ignored)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    fleet = Fleet(
        args.dir, args.appliances, args.profiles_per_appliance, args.latency_ms, args.issue_after_polls
    )
    with fleet:
        if args.enroll:
            state = args.dir / "state"
            rc = subprocess.run(fleet.agent_command(4), cwd=REPO, env=agent_env(state), capture_output=True)
            print(f"enrolled into {state} (exit {rc.returncode})")
            fleet.clear_logs()
        print(
            f"fleet ready: {fleet.profile_count} profiles in {fleet.profile_dir}; scm.yaml {fleet.scm_yaml}"
        )
        sys.stdout.flush()
        try:
            threading.Event().wait()
        except KeyboardInterrupt:
            print("stopping")


if __name__ == "__main__":
    main()
