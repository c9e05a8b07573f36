"""The real entry points, as separate processes: ``python citrixagent.py``, ``python -m
citrix_connector``, the ``citrixagent`` console script, ``demo`` and ``sandbox serve``.

Every child process has a timeout and is killed in ``finally``, so a hang fails the test instead of CI.
"""

from __future__ import annotations

import os
import queue
import re
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
import requests
import yaml

REPO = Path(__file__).resolve().parent.parent
TIMEOUT = 90  # seconds for any one child process


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    """The environment of a fresh user: no citrixagent variables, an empty state directory."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("CITRIXAGENT_")}
    clean["CITRIXAGENT_STATE_DIR"] = str(tmp_path / "state")
    clean["PYTHONIOENCODING"] = "utf-8"
    return clean


def run(
    args: Sequence[str | Path], env: dict[str, str], cwd: Path = REPO
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(a) for a in args],
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,  # never interactive
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=TIMEOUT,
        check=False,
    )


def agent(*args: str | Path) -> list[str | Path]:
    """``python citrixagent.py ARGS`` from the checkout."""
    return [sys.executable, REPO / "citrixagent.py", *args]


# ------------------------------------------------------------------------------------- --help


def test_citrixagent_py_help_from_checkout(env: dict[str, str], tmp_path: Path) -> None:
    env.pop("PYTHONPATH", None)
    res = run(agent("--help"), env, cwd=tmp_path)  # from anywhere, no install needed
    assert res.returncode == 0, res.stderr
    assert "Usage: citrixagent" in res.stdout
    for command in ("enroll", "renew", "replace", "revoke", "status", "run", "validate", "demo", "sandbox"):
        assert re.search(rf"^\s+{command}\s", res.stdout, re.M), command
    assert "Exit codes:" in res.stdout and "4  a certificate is still pending" in res.stdout
    assert res.stderr == ""


def test_python_m_citrix_connector(env: dict[str, str]) -> None:
    res = run([sys.executable, "-m", "citrix_connector", "--version"], env)
    assert res.returncode == 0, res.stderr
    assert res.stdout.startswith("citrixagent, version ")


def test_console_script_if_installed(env: dict[str, str]) -> None:
    exe = shutil.which("citrixagent")
    if exe is None:
        pytest.skip("the citrixagent console script is not installed on PATH")
    res = run([exe, "--help"], env)
    assert res.returncode == 0, res.stderr
    assert "Exit codes:" in res.stdout


# ------------------------------------------------------------------------------------- licence


def test_licence_not_accepted_non_interactive_exits_2(env: dict[str, str], tmp_path: Path) -> None:
    res = run(agent("demo"), env)
    assert res.returncode == 2, res.stdout + res.stderr
    assert "Traceback" not in res.stderr
    assert res.stderr.count("\n") == 1, res.stderr
    assert "--accept-license" in res.stderr and "CITRIXAGENT_ACCEPT_LICENSE=yes" in res.stderr
    assert res.stdout == ""
    assert not (tmp_path / "state" / "license-accepted").exists()


# ---------------------------------------------------------------------------------------- demo


@pytest.mark.parametrize("api", ["admin", "enrollment"])
def test_demo(env: dict[str, str], api: str) -> None:
    res = run(agent("--accept-license", "demo", "--api", api), env)
    assert res.returncode == 0, res.stdout + res.stderr
    out = res.stdout
    order = re.search(r"^\s+SCM order id\s+(\d+)\s", out, re.M)
    serial = re.search(r"^\s+serial\s+([0-9A-F]{16,})$", out, re.M)
    expires = re.search(r"^\s+expires\s+(\d{4}-\d\d-\d\d) \((\d+) days\)$", out, re.M)
    certkey = re.search(r"^\s+certkey\s+(\S+) on https://127\.0\.0\.1:\d+$", out, re.M)
    vserver = re.search(r"^\s+vserver\s+(\S+) \(load balancing\)$", out, re.M)
    assert order and serial and expires and certkey and vserver, out
    assert certkey.group(1) == "lb-profile" and vserver.group(1) == "vs_shop_https"
    assert 300 < int(expires.group(2)) <= 366
    # it waited through SCM's "still being processed" answers
    waited = re.search(r"still being processed' (\d+) time", out)
    assert waited and int(waited.group(1)) >= 1, out
    # the read-back over NITRO shows the certificate bound with the issued serial, and saved
    assert f"sslvserver_sslcertkey_binding/vs_shop_https -> {certkey.group(1)}" in out
    assert f"certkey serial {serial.group(1)}; configuration saved" in out
    # a real TLS handshake to the vserver's loopback VIP saw the new certificate
    probe = re.search(
        r"^\s+TLS probe\s+127\.0\.0\.1:\d+ \(SNI shop\.sandbox\.test\): "
        r"ok, serves serial (\S+) over TLSv1\.[23]$",
        out,
        re.M,
    )
    assert probe and probe.group(1) == serial.group(1), out
    assert "WARNING" not in out and "Traceback" not in res.stderr
    assert out.isascii() and res.stderr.isascii()  # a Windows console's code page can print it


# ------------------------------------------------------------------------------- sandbox serve


class Child:
    """A long-running child process whose output is read line by line without blocking the test."""

    def __init__(self, args: Sequence[str | Path], env: dict[str, str], cwd: Path) -> None:
        self.proc = subprocess.Popen(
            [str(a) for a in args],
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            encoding="utf-8",
        )
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.seen: list[str] = []
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line.rstrip("\n"))
        self.lines.put(None)

    def wait_for(self, pattern: str, timeout: float = 30) -> re.Match[str]:
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"no line matching {pattern!r} within {timeout}s: {self.seen}")
            try:
                line = self.lines.get(timeout=remaining)
            except queue.Empty:
                continue
            if line is None:
                raise AssertionError(f"exited ({self.proc.wait()}) before {pattern!r}: {self.seen}")
            self.seen.append(line)
            match = re.search(pattern, line)
            if match:
                return match

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)


@pytest.fixture
def sandbox_serve(env: dict[str, str], tmp_path: Path) -> Iterator[tuple[Child, Path]]:
    """``citrixagent sandbox serve --dir sandbox`` started in tmp_path, as the README shows it."""
    directory = tmp_path / "sandbox"
    child = Child(agent("sandbox", "serve", "--dir", "sandbox"), env, cwd=tmp_path)
    try:
        yield child, directory
    finally:
        child.stop()


def test_sandbox_serve_then_enroll_from_another_shell(
    sandbox_serve: tuple[Child, Path], env: dict[str, str]
) -> None:
    child, directory = sandbox_serve
    scm = child.wait_for(r"^SCM admin API\s+(https://127\.0\.0\.1:\d+)\s+\(login (\S+), password (\S+),")
    ns = child.wait_for(r"^NetScaler #1\s+(https://127\.0\.0\.1:\d+)\s+\(user (\S+), password (\S+)\)")
    child.wait_for(r"^Try: citrixagent --accept-license --scm-config .*scm\.yaml enroll .*lb-profile\.yaml")
    assert child.proc.poll() is None
    url, user, password = ns.groups()

    # the files it wrote
    ca_bundle = directory / "sandbox-ca.pem"
    assert "BEGIN CERTIFICATE" in ca_bundle.read_text()
    scm_yaml = yaml.safe_load((directory / "scm.yaml").read_text())
    assert scm_yaml["url"] == scm.group(1) and scm_yaml["password"] == scm.group(3)
    profile = yaml.safe_load((directory / "lb-profile.yaml").read_text())
    assert profile["certificate"]["key_type"] == "RSA" and profile["certificate"]["key_size"] == 2048
    assert [v["type"] for v in profile["vservers"]] == ["lb"]
    vserver = profile["vservers"][0]["name"]

    def nitro(resource: str) -> requests.Response:
        return requests.get(
            f"{url}/nitro/v1/config/{resource}",
            headers={"X-NITRO-USER": user, "X-NITRO-PASS": password},
            verify=str(ca_bundle),
            timeout=10,
        )

    assert nitro(f"lbvserver/{vserver}").status_code == 200  # the vserver exists
    assert (
        nitro(f"sslvserver_sslcertkey_binding/{vserver}").json().get("sslvserver_sslcertkey_binding", [])
        == []
    )

    # "from another shell", in the same directory, with the README's relative paths
    res = run(
        agent("--accept-license", "--scm-config", "sandbox/scm.yaml", "enroll", "sandbox/lb-profile.yaml"),
        env,
        cwd=directory.parent,
    )
    assert res.returncode == 0, res.stdout + res.stderr
    assert re.search(r"^lb-profile\s+enroll\s+ok\s+\d+\s", res.stdout, re.M), res.stdout

    bindings = nitro(f"sslvserver_sslcertkey_binding/{vserver}").json()["sslvserver_sslcertkey_binding"]
    assert [b["certkeyname"] for b in bindings if not b.get("ca")] == ["lb-profile"]

    # validate and status work against the same files, from inside the directory too
    res = run(agent("--scm-config", "scm.yaml", "validate", "."), env, cwd=directory)
    assert res.returncode == 0, res.stdout + res.stderr
    res = run(agent("--scm-config", "scm.yaml", "status", "lb-profile.yaml"), env, cwd=directory)
    assert res.returncode == 0, res.stdout + res.stderr
    assert child.proc.poll() is None  # still serving until stopped

    if sys.platform != "win32":  # Ctrl-C: a clean stop (Windows has no SIGINT to send to a child)
        import signal

        child.proc.send_signal(signal.SIGINT)
        child.wait_for(r"^stopping$", timeout=15)
        assert child.proc.wait(timeout=15) == 0


def test_readme_and_ci_use_the_documented_commands() -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert "python -m pip install . && citrixagent --accept-license demo" in readme
    assert "python -m pip install -e '.[test]' && python -m pytest" in readme
    ci = (REPO / ".ci" / "run").read_text(encoding="utf-8")
    assert "python -m pip install -e '.[test]' && python -m pytest" in ci
    assert "ruff check ." in ci and "mypy" in ci
    # `pip install -r requirements.txt` gives citrixagent.py exactly the package dependencies
    requirements = {
        line.split("#")[0].strip()
        for line in (REPO / "requirements.txt").read_text(encoding="utf-8").splitlines()
        if line.split("#")[0].strip()
    }
    pyproject = (REPO / "pyproject.toml").read_text(encoding="utf-8")
    block = pyproject.split("\ndependencies = [", 1)[1].split("\n]", 1)[0]
    dependencies = set(re.findall(r'^\s*"([^"]+)"', block, re.M))
    assert requirements == dependencies
