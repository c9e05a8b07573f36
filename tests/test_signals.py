"""Ctrl-C and SIGTERM during SCM's issuance wait: a clean stop, the order kept, no second order."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from citrix_connector.sandbox.world import Sandbox
from citrix_connector.state import StateStore

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")


def _slow_scm_yaml(world: Sandbox) -> Path:
    data = yaml.safe_load(Path(world.scm_yaml).read_text(encoding="utf-8"))
    data["poll"] = {"first_wait": 0, "interval": 0.2, "timeout": 120}
    path = world.directory / "scm-slow.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


def _start(world: Sandbox, state: Path, scm_yaml: Path) -> subprocess.Popen[str]:
    env = {**os.environ, "CITRIXAGENT_ACCEPT_LICENSE": "yes"}
    return subprocess.Popen(
        [sys.executable, "-m", "citrix_connector", "--state-dir", str(state), "--scm-config", str(scm_yaml),
         "run", str(world.profile_path("lb-profile"))],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )


def _wait_for_line(proc: subprocess.Popen[str], text: str) -> None:
    assert proc.stderr is not None
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        if text in line:
            return
        if not line and proc.poll() is not None:
            break
    proc.kill()
    pytest.fail(f"never saw {text!r}")


@pytest.mark.parametrize(("signum", "status"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_signal_during_wait_stops_cleanly_and_keeps_the_order(
    tmp_path: Path, signum: int, status: int
) -> None:
    # SCM issues 5 s after the order: the first run is stopped long before, the second collects it
    with Sandbox(tmp_path / "sandbox", issue_after_seconds=5) as world:
        state, scm_yaml = tmp_path / "state", _slow_scm_yaml(world)
        proc = _start(world, state, scm_yaml)
        _wait_for_line(proc, "waiting for SCM to issue order")
        started = time.monotonic()
        proc.send_signal(signum)
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == status, err
        assert time.monotonic() - started < 40  # not the 120 s deadline (slack for a loaded CI machine)
        assert "Traceback" not in err
        pending = StateStore(state).load("lb-profile").pending
        assert pending is not None and pending.order_id  # the order is kept
        assert world.scm.order_count() == 1

        # the next run resumes the same order: no second one
        again = _start(world, state, scm_yaml)
        _, err = again.communicate(timeout=120)
        assert world.scm.order_count() == 1
        assert again.returncode == 0, err
        assert StateStore(state).load("lb-profile").current is not None


@pytest.mark.parametrize("command", ["run", "enroll", "status"])
def test_unusable_state_dir_is_a_configuration_error(
    world: Sandbox, cli, tmp_path: Path, command: str
) -> None:
    a_file = tmp_path / "not-a-dir"
    a_file.write_text("x")
    for state in (a_file, a_file / "below"):
        profile = world.profile_path("lb-profile")
        res = cli("--state-dir", state, "--scm-config", world.scm_yaml, command, profile)
        assert res.code == 2, res.output
        assert res.err.startswith("error: ") and str(a_file) in res.err and "--state-dir" in res.err
        assert len(res.err.strip().splitlines()) == 1
    assert world.scm.requests == [] and world.netscaler.requests == []
