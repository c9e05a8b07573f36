"""The built wheel holds every package: installed into a fresh venv, `citrixagent --version` and `demo` run.

The wheel is built from the checkout and installed (without dependencies) into a new virtual
environment; the dependencies come from this test environment's site-packages on PYTHONPATH, so the
test needs no download. The editable install of the checkout is not visible there (its .pth hooks only
run from a site directory) and the commands run outside the checkout, so only the wheel's files count.
"""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def _run(args: list[str], **kw: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, timeout=600, **kw)  # type: ignore[call-overload]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    build = [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out), str(REPO)]
    done = _run([*build, "--no-build-isolation"])
    if done.returncode != 0:  # no setuptools in this environment: let pip fetch the build backend
        done = _run(build)
    assert done.returncode == 0, done.stderr
    (path,) = out.glob("citrixagent-*.whl")
    return path


def test_wheel_holds_every_package(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    packages = {
        str(p.parent.relative_to(REPO)).replace(os.sep, "/")
        for p in (REPO / "citrix_connector").rglob("__init__.py")
    }
    for package in packages:
        assert f"{package}/__init__.py" in names, f"{package} is missing from the wheel"
    for module in (REPO / "citrix_connector").rglob("*.py"):
        assert str(module.relative_to(REPO)).replace(os.sep, "/") in names
    assert "citrixagent.py" in names
    assert any(n.endswith("/LICENSE.txt") or n == "LICENSE.txt" for n in names)


def test_installed_wheel_runs_version_and_demo(wheel: Path, tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    assert _run([sys.executable, "-m", "venv", "--without-pip", str(venv)]).returncode == 0
    bindir = venv / ("Scripts" if sys.platform == "win32" else "bin")
    python = bindir / ("python.exe" if sys.platform == "win32" else "python")
    pip = [sys.executable, "-m", "pip", "--python", str(python)]
    done = _run([*pip, "install", "--no-deps", "-q", str(wheel)])
    assert done.returncode == 0, done.stderr
    script = bindir / ("citrixagent.exe" if sys.platform == "win32" else "citrixagent")
    env = {k: v for k, v in os.environ.items() if not k.startswith("CITRIXAGENT_")}
    env["PYTHONPATH"] = sysconfig.get_paths()["purelib"]  # the dependencies, not the checkout
    env["CITRIXAGENT_STATE_DIR"] = str(tmp_path / "state")
    work = tmp_path / "elsewhere"
    work.mkdir()

    version = _run([str(script), "--version"], env=env, cwd=work)
    assert version.returncode == 0, version.stderr
    assert "citrixagent, version" in version.stdout
    where = _run(
        [str(python), "-c", "import citrix_connector; print(citrix_connector.__file__)"], env=env, cwd=work
    )
    assert str(venv) in where.stdout, where.stdout + where.stderr  # the wheel's copy, not the checkout

    demo = _run([str(script), "--accept-license", "demo"], env=env, cwd=work)
    assert demo.returncode == 0, demo.stdout + demo.stderr
    assert "Traceback" not in demo.stderr
