"""Everything the agent creates is private to its account from creation, under any umask.

Directories 0700, files 0600: the state directory, ``keys/`` and ``profiles/``, key files, journal
and temp files, the lock file, the ``--log-file`` and its rotations. POSIX modes do not exist on
Windows (files inherit their folder's ACL), so these checks are skipped there.

Also here: the log file keeps tracebacks only for unexpected errors.
"""

from __future__ import annotations

import contextlib
import logging
import os
import stat
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from citrix_connector.errors import ScmError
from citrix_connector.logfile import ExpectedErrorFormatter, PrivateRotatingFileHandler
from citrix_connector.private_files import make_private_dir, open_private
from citrix_connector.sandbox.world import Sandbox
from citrix_connector.state import StateStore

posix_only = pytest.mark.skipif(sys.platform == "win32", reason="POSIX file modes")


@contextlib.contextmanager
def umask(value: int) -> Iterator[None]:
    old = os.umask(value)
    try:
        yield
    finally:
        os.umask(old)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def modes_under(root: Path) -> dict[str, int]:
    """Relative path -> mode of ``root`` and everything below it."""
    found = {".": mode(root)}
    for path in sorted(root.rglob("*")):
        found[str(path.relative_to(root))] = mode(path)
    return found


def not_private(root: Path) -> dict[str, str]:
    """Everything under ``root`` (itself included) that is not 0700 (dirs) / 0600 (files)."""
    wrong: dict[str, str] = {}
    for rel, value in modes_under(root).items():
        want = 0o700 if (root / rel).is_dir() else 0o600
        if value != want:
            wrong[rel] = oct(value)
    return wrong


@posix_only
@pytest.mark.parametrize("mask", [0o000, 0o022, 0o277])
def test_private_dir_and_file_exactly_private_under_any_umask(tmp_path: Path, mask: int) -> None:
    with umask(mask):
        make_private_dir(tmp_path / "a" / "b" / "c")
        os.close(open_private(tmp_path / "a" / "b" / "c" / "f", os.O_WRONLY))
    assert not_private(tmp_path / "a") == {}


@posix_only
def test_existing_files_and_dirs_keep_their_mode(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir(mode=0o750)
    os.chmod(shared, 0o750)
    existing = shared / "agent.log"
    existing.write_text("")
    os.chmod(existing, 0o640)
    make_private_dir(shared)
    os.close(open_private(existing, os.O_WRONLY | os.O_APPEND))
    assert mode(shared) == 0o750 and mode(existing) == 0o640
    make_private_dir(shared / "new")
    assert mode(shared / "new") == 0o700


def test_make_private_dir_refuses_a_file(tmp_path: Path) -> None:
    (tmp_path / "f").write_text("")
    with pytest.raises(OSError):
        make_private_dir(tmp_path / "f")


@posix_only
def test_log_file_and_its_rotations_are_private(tmp_path: Path) -> None:
    path = tmp_path / "agent.log"
    with umask(0):
        handler = PrivateRotatingFileHandler(path, maxBytes=200, backupCount=2, encoding="utf-8")
        try:
            record = logging.LogRecord("citrixagent", logging.INFO, __file__, 1, "x" * 150, None, None)
            for _ in range(4):
                handler.emit(record)
        finally:
            handler.close()
    rotated = sorted(p.name for p in tmp_path.iterdir())
    assert rotated == ["agent.log", "agent.log.1", "agent.log.2"]
    assert not_private(tmp_path) == {}


@posix_only
def test_state_store_lock_journal_and_licence_are_private_under_umask_000(tmp_path: Path) -> None:
    root = tmp_path / "deep" / "state"
    store = StateStore(root)
    with umask(0), store.lock():
        state = store.load("p1")
        state.add_event("x")
        store.save(state)
        store.save(state)  # replaces through a temp file
        store.record_license_acceptance()
    assert {"citrixagent.lock", "license-accepted", "profiles/p1.json"} <= set(modes_under(root))
    assert not_private(tmp_path / "deep") == {}


@posix_only
def test_a_real_run_creates_only_private_files_under_umask_000(
    world: Sandbox, cli: Any, state_dir: Path, tmp_path: Path
) -> None:
    """enroll (local key) + install, and a failing profile, through the CLI with --log-file."""
    log_dir = tmp_path / "logs" / "agent"
    log_file = log_dir / "citrixagent.log"
    profile = world.profile_path("lb-profile")
    wrong = world.directory / "wrong-nitro.yaml"
    data = yaml.safe_load(profile.read_text())
    data["name"] = "wrong-nitro"
    data["appliance"]["password"] = "wrong-nitro-password"
    wrong.write_text(yaml.safe_dump(data), encoding="utf-8")
    with umask(0):
        ok = cli("--scm-config", world.scm_yaml, "--log-file", log_file, "run", profile)
        bad = cli("--scm-config", world.scm_yaml, "--log-file", log_file, "run", wrong)
    assert ok.code == 0, ok.output
    assert bad.code == 1, bad.output
    created = modes_under(state_dir)
    assert any(rel.startswith("keys/") and rel.endswith(".pem") for rel in created), created
    assert {"keys", "profiles", "citrixagent.lock"} <= set(created)
    assert not_private(state_dir) == {}
    assert not_private(tmp_path / "logs") == {}
    # the refused login is logged as one line, without a stack trace
    text = log_file.read_text(encoding="utf-8")
    assert "wrong-nitro" in text and "failed" in text
    assert "Traceback" not in text


def _format(exc: BaseException) -> str:
    try:
        raise exc
    except BaseException:
        record = logging.LogRecord("citrixagent", logging.DEBUG, __file__, 1, "profile p failed", None, None)
        record.exc_info = sys.exc_info()
    return ExpectedErrorFormatter("%(message)s").format(record)


def test_log_file_keeps_tracebacks_only_for_unexpected_errors() -> None:
    expected = _format(ScmError("SCM refused enroll (HTTP 400, code -9)"))
    assert expected == "profile p failed"
    unexpected = _format(KeyError("bug"))
    assert "Traceback" in unexpected and "KeyError: 'bug'" in unexpected


def test_expected_error_formatting_leaves_the_shared_record_alone() -> None:
    try:
        raise ScmError("refused")
    except ScmError:
        record = logging.LogRecord("citrixagent", logging.DEBUG, __file__, 1, "failed", None, None)
        record.exc_info = sys.exc_info()
    assert ExpectedErrorFormatter("%(message)s").format(record) == "failed"
    assert "Traceback" in logging.Formatter("%(message)s").format(record)  # e.g. stderr with -v
