"""Progress of SCM waits: lines for schedulers, a live line for terminals, nothing on stdout."""

from __future__ import annotations

import io
import json
import os
import pty
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import CliResult, scm_yaml_for
from test_scm_polling import PENDING, FakeClock, ScriptedClient
from test_scm_polling import certs as certs  # the fixture

from citrix_connector.config import PollSettings
from citrix_connector.errors import PendingError
from citrix_connector.progress import WaitEvent, WaitRenderer, subscribed
from citrix_connector.scm.base import CollectResult
from citrix_connector.scm.polling import wait_for_certificate


def _wait(
    clock: FakeClock, renderer: WaitRenderer, collects: list[CollectResult], poll: PollSettings
) -> None:
    with subscribed(renderer):
        wait_for_certificate(ScriptedClient(collects), "1007", poll, clock=clock, sleep=clock.sleep)


def test_line_mode_start_still_waiting_done(certs) -> None:
    clock, out = FakeClock(), io.StringIO()
    renderer = WaitRenderer(out, live=False, interval=30, clock=clock)
    ready = CollectResult(ready=True, certificates=certs)
    _wait(clock, renderer, [PENDING] * 8 + [ready], PollSettings(first_wait=5, interval=10, timeout=300))
    lines = out.getvalue().splitlines()
    assert lines[0] == "waiting for SCM to issue order 1007 (gives up after 5m00s)"
    # polls at 5, 15, ..., 75 s: a line at 35 s and 65 s of waiting (every 30 s), not one per poll
    assert lines[1:3] == [
        "still waiting for order 1007: 35s of 5m00s: code 0: Being processed by Sectigo",
        "still waiting for order 1007: 1m05s of 5m00s: code 0: Being processed by Sectigo",
    ]
    assert lines[3] == "order 1007 issued after 1m25s"
    assert len(lines) == 4


def test_line_mode_gives_up_with_the_order_kept() -> None:
    clock, out = FakeClock(), io.StringIO()
    renderer = WaitRenderer(out, live=False, interval=60, clock=clock)
    with pytest.raises(PendingError):
        _wait(clock, renderer, [PENDING], PollSettings(first_wait=0, interval=10, timeout=30))
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("waiting for SCM to issue order 1007")
    assert lines[-1] == (
        "order 1007 still not issued after 30s; the order is kept and the next run resumes it"
    )


def test_live_line_redrawn_and_cleared() -> None:
    clock, out = FakeClock(), io.StringIO()
    renderer = WaitRenderer(out, live=True, clock=clock, environ={}, refresh=3600)
    renderer(WaitEvent("start", "1007", 0, 300))
    renderer(WaitEvent("start", "1008", 0, 300))
    clock.now += 12
    renderer(WaitEvent("poll", "1007", 12, 300, "code 0: Being processed"))
    screen = out.getvalue()
    assert screen.endswith("waiting for SCM: order 1007 12s/5m00s, order 1008 12s/5m00s")
    assert "\r\x1b[K" in screen  # redrawn in place
    renderer(WaitEvent("done", "1007", 13, 300))
    assert out.getvalue().endswith("waiting for SCM: order 1008 12s/5m00s")
    renderer(WaitEvent("done", "1008", 14, 300))
    assert out.getvalue().endswith("\r\x1b[K")  # nothing left on the line
    assert "\n" not in out.getvalue()  # a finished wait leaves no line behind
    renderer.close()


def test_live_line_without_escapes_under_no_color() -> None:
    out = io.StringIO()
    renderer = WaitRenderer(out, live=True, clock=lambda: 0.0, environ={"NO_COLOR": "1"}, refresh=3600)
    renderer(WaitEvent("start", "7", 0, 60))
    renderer(WaitEvent("done", "7", 1, 60))
    assert "\x1b" not in out.getvalue()
    assert out.getvalue().endswith("\r")
    renderer.close()


def test_not_a_terminal_means_line_mode() -> None:
    assert WaitRenderer(io.StringIO(), environ={}).live is False


def test_verbose_log_collapses_identical_answers(certs, caplog: pytest.LogCaptureFixture) -> None:
    clock = FakeClock()
    ready = CollectResult(ready=True, certificates=certs)
    with caplog.at_level("INFO", logger="citrixagent.scm"):
        wait_for_certificate(
            ScriptedClient([PENDING] * 6 + [ready]),
            "9",
            PollSettings(0, 10, 300),
            clock=clock,
            sleep=clock.sleep,
            status_every=0,
        )
    not_yet = [r.getMessage() for r in caplog.records if "not issued yet" in r.getMessage()]
    assert not_yet == [
        "certificate 9 not issued yet (code 0: Being processed by Sectigo); "
        "0s of 300s, asking again every 10s"
    ]
    assert any("collected after 6 not-ready answer(s), 60s" in r.getMessage() for r in caplog.records)


def test_cli_json_stays_clean_and_progress_goes_to_stderr(world, cli, scm_api: str) -> None:
    profile = world.profile_path("lb-profile")
    res: CliResult = cli("--json", "--scm-config", scm_yaml_for(world, scm_api), "enroll", profile)
    assert res.code == 0, res.output
    rows = json.loads(res.out)  # nothing but JSON on stdout
    order = rows[0]["order_id"]
    assert f"waiting for SCM to issue order {order}" in res.err
    assert f"order {order} issued after" in res.err


@pytest.mark.skipif(sys.platform == "win32", reason="a pseudo-terminal needs POSIX")
def test_live_line_on_a_real_terminal(world, tmp_path: Path) -> None:
    """Through a pty, as a person at a terminal sees it: the live line, then the result table."""
    main_fd, child_fd = pty.openpty()
    env = {**os.environ, "CITRIXAGENT_ACCEPT_LICENSE": "yes", "TERM": "xterm"}
    env.pop("NO_COLOR", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "citrix_connector", "--state-dir", str(tmp_path / "state"),
         "--scm-config", str(world.scm_yaml), "enroll", str(world.profile_path("lb-profile"))],
        stdin=child_fd, stdout=child_fd, stderr=child_fd, env=env, close_fds=True,
    )
    os.close(child_fd)
    chunks = []
    while True:
        try:
            data = os.read(main_fd, 4096)
        except OSError:
            break
        if not data:
            break
        chunks.append(data)
    assert proc.wait(timeout=120) == 0
    os.close(main_fd)
    screen = b"".join(chunks).decode()
    assert "waiting for SCM: order " in screen
    assert "\x1b[K" in screen
    assert "lb-profile" in screen and "ok" in screen
