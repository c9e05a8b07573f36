"""Tests for citrix_connector.state: the journal, atomic saves, the run lock, the licence marker."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from citrix_connector.errors import LockHeldError, StateError
from citrix_connector.state import (
    HISTORY_LIMIT,
    DeploymentRecord,
    IssuedRecord,
    OrderRecord,
    ProfileState,
    StateStore,
    default_state_dir,
)

REPO = Path(__file__).resolve().parent.parent


def full_state() -> ProfileState:
    st = ProfileState(profile="web")
    st.pending = OrderRecord(
        order_id="1234",
        kind="renew",
        api="admin",
        placed_at="2025-01-02T03:04:05Z",
        key_location="local",
        key_ref="/state/keys/web/20250102.key.pem",
        csr_pem="-----BEGIN CERTIFICATE REQUEST-----\nMII...\n-----END CERTIFICATE REQUEST-----\n",
        common_name="www.example.com",
        sans=["www.example.com", "example.com"],
        key_desc="RSA 2048",
        previous_order_id="1000",
    )
    st.current = IssuedRecord(
        order_id="1000",
        serial="0a1b",
        not_before="2024-01-01T00:00:00Z",
        not_after="2025-01-01T00:00:00Z",
        fingerprint_sha256="ab" * 32,
        common_name="www.example.com",
        sans=["www.example.com"],
        key_desc="ECDSA P-256",
        key_location="appliance",
        key_ref="web-2024.key",
        cert_pem="-----BEGIN CERTIFICATE-----\nMII...\n-----END CERTIFICATE-----\n",
        chain_pem=["-----BEGIN CERTIFICATE-----\nint\n-----END CERTIFICATE-----\n"],
        issued_at="2024-01-01T00:00:05Z",
    )
    st.deployed = DeploymentRecord(
        appliance="https://adc.example.com",
        partition=None,
        certkey="web",
        serial="0a1b",
        vservers=["vs_web", "cs_web"],
        deployed_at="2024-01-01T00:01:00Z",
        cert_file="web-0a1b.crt",
        key_file="web-0a1b.key",
        saved=False,
    )
    st.revoked.append({"order_id": "999", "at": "2023-06-01T00:00:00Z", "reason": "superseded"})
    st.add_event("renew-ordered", order_id="1234")
    return st


def test_default_state_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("CITRIXAGENT_STATE_DIR", str(tmp_path / "st"))
    assert default_state_dir() == tmp_path / "st"
    monkeypatch.delenv("CITRIXAGENT_STATE_DIR")
    path = default_state_dir()
    assert path.is_absolute() and "citrixagent" in str(path)


def test_absent_profile_gives_fresh_state_and_creates_nothing(tmp_path: Path) -> None:
    store = StateStore(tmp_path / "root")
    st = store.load("web")
    assert st == ProfileState(profile="web")
    assert st.pending is None and st.current is None and st.history == []
    assert not (tmp_path / "root").exists()
    assert store.profiles() == []


def test_round_trip(tmp_path: Path) -> None:
    store = StateStore(tmp_path / "root")
    st = full_state()
    store.save(st)
    path = store.path_for("web")
    assert path == tmp_path / "root" / "profiles" / "web.json"
    loaded = store.load("web")
    assert loaded == st
    assert isinstance(loaded.pending, OrderRecord) and isinstance(loaded.current, IssuedRecord)
    assert isinstance(loaded.deployed, DeploymentRecord)
    # human readable: indented, sorted keys
    text = path.read_text()
    assert text.startswith("{\n  ")
    data = json.loads(text)
    assert list(data) == sorted(data)
    assert data["pending"]["order_id"] == "1234"
    assert store.profiles() == ["web"]


def test_save_is_atomic_and_leaves_no_temp_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = StateStore(tmp_path)
    st = full_state()
    store.save(st)
    before = store.path_for("web").read_text()
    st.add_event("second")
    store.save(st)
    assert sorted(p.name for p in (tmp_path / "profiles").iterdir()) == ["web.json"]

    # a crash during the replace leaves the old file intact and no temp file behind
    def boom(src: str, dst: object) -> None:
        raise OSError(28, "No space left on device")

    st.add_event("third")
    store.save(st)
    good = store.path_for("web").read_text()
    monkeypatch.setattr(os, "replace", boom)
    st.add_event("fourth")
    with pytest.raises(StateError, match="cannot write state file"):
        store.save(st)
    assert store.path_for("web").read_text() == good != before
    assert sorted(p.name for p in (tmp_path / "profiles").iterdir()) == ["web.json"]


def test_save_fsyncs_before_replace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd: int) -> None:
        calls.append("fsync")
        real_fsync(fd)

    def replace(src: str, dst: Path) -> None:
        calls.append("replace")
        real_replace(src, dst)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    StateStore(tmp_path).save(ProfileState(profile="web"))
    assert calls[:2] == ["fsync", "replace"]


def test_corrupt_file_is_state_error_not_reset(tmp_path: Path) -> None:
    store = StateStore(tmp_path)
    store.save(full_state())
    path = store.path_for("web")
    path.write_text('{"profile": "web", "pending": {"order_id": ')
    with pytest.raises(StateError) as info:
        store.load("web")
    assert str(path) in str(info.value)
    assert path.read_text().startswith('{"profile"')  # untouched


@pytest.mark.parametrize(
    "content",
    [
        "[]",
        '{"profile": "web", "pending": {"kind": "enroll"}}',
        '{"profile": "web", "history": "nope"}',
        '{"profile": "web", "current": {"order_id": 5}}',
        '{"profile": "other"}',
        '{"profile": "web", "version": 99}',
        '{"profile": "web", "deployed": {"appliance": "a", "partition": null, "certkey": "c", "serial": "1",'
        ' "vservers": [], "deployed_at": "t", "cert_file": "f", "key_file": "k", "saved": "no"}}',
    ],
)
def test_invalid_content_is_state_error(tmp_path: Path, content: str) -> None:
    store = StateStore(tmp_path)
    (tmp_path / "profiles").mkdir()
    store.path_for("web").write_text(content)
    with pytest.raises(StateError, match=str(store.path_for("web")).replace("\\", "\\\\")):
        store.load("web")


def test_a_newer_version_is_reported_as_newer_even_when_its_fields_changed_shape(tmp_path: Path) -> None:
    store = StateStore(tmp_path)
    (tmp_path / "profiles").mkdir()
    # a later format may change a known field (here: pending grew into a list); this agent must say
    # "written by a newer citrixagent", not "invalid" (which invites deleting a pending order's id)
    newer = {"profile": "web", "version": 2, "pending": [{"order_id": "7"}]}
    store.path_for("web").write_text(json.dumps(newer))
    with pytest.raises(StateError, match="version 2, written by a newer citrixagent"):
        store.load("web")


def test_forward_compatible_loading(tmp_path: Path) -> None:
    store = StateStore(tmp_path)
    (tmp_path / "profiles").mkdir()
    data = {
        "profile": "web",
        "some_future_field": {"x": 1},
        "pending": {
            "order_id": "77",
            "kind": "enroll",
            "api": "enrollment",
            "placed_at": "2025-01-01T00:00:00Z",
            "key_location": "local",
            "key_ref": "k",
            "csr_pem": "csr",
            "common_name": "a.example.com",
            "sans": ["a.example.com"],
            "key_desc": "RSA 2048",
            "future": True,
        },
    }
    store.path_for("web").write_text(json.dumps(data))
    st = store.load("web")
    assert st.version == 1 and st.history == [] and st.revoked == []
    assert st.pending is not None and st.pending.order_id == "77" and st.pending.previous_order_id is None
    data["deployed"] = {
        "appliance": "a",
        "partition": None,
        "certkey": "c",
        "serial": "1",
        "vservers": ["vs"],
        "deployed_at": "t",
        "cert_file": "f",
        "key_file": "k",
    }
    store.path_for("web").write_text(json.dumps(data))
    deployed = store.load("web").deployed
    assert deployed is not None and deployed.saved is True  # records from before the field existed


def test_history_is_capped(tmp_path: Path) -> None:
    st = ProfileState(profile="web")
    for i in range(HISTORY_LIMIT + 25):
        st.add_event("tick", n=i)
    assert len(st.history) == HISTORY_LIMIT
    assert st.history[0]["n"] == 25 and st.history[-1]["n"] == HISTORY_LIMIT + 24
    assert st.history[-1]["event"] == "tick" and st.history[-1]["at"].endswith("Z")
    st.history.extend({"at": "x", "event": "raw"} for _ in range(10))
    store = StateStore(tmp_path)
    store.save(st)
    assert len(store.load("web").history) == HISTORY_LIMIT


def test_paths_and_name_guard(tmp_path: Path) -> None:
    store = StateStore(tmp_path)
    expected = tmp_path / "keys" / "web" / "20250101T000000Z.key.pem"
    assert store.new_key_path("web", "20250101T000000Z") == expected
    assert not (tmp_path / "keys").exists()
    for bad in ("../evil", "a/b", "", "a\\b"):
        with pytest.raises(StateError):
            store.path_for(bad)
    with pytest.raises(StateError):
        store.new_key_path("web", "../x")


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX permissions")
def test_state_dir_is_private(tmp_path: Path) -> None:
    root = tmp_path / "root"
    StateStore(root).save(ProfileState(profile="web"))
    assert (root.stat().st_mode & 0o077) == 0
    assert (StateStore(root).path_for("web").stat().st_mode & 0o077) == 0


def test_no_private_key_material_in_state(tmp_path: Path) -> None:
    store = StateStore(tmp_path)
    store.save(full_state())
    assert "PRIVATE KEY" not in store.path_for("web").read_text()


# --------------------------------------------------------------------------------------------- lock

_HOLDER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from citrix_connector.state import StateStore
    with StateStore(Path(sys.argv[1])).lock():
        print("locked", flush=True)
        sys.stdin.readline()
    print("released", flush=True)
    """
)


def _start_holder(root: Path) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-c", _HOLDER, str(root)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "locked"
    return proc


def test_lock_contention_with_another_process(tmp_path: Path) -> None:
    root = tmp_path / "root"
    holder = _start_holder(root)
    try:
        store = StateStore(root)
        with pytest.raises(LockHeldError) as info, store.lock():
            pytest.fail("acquired a lock another process holds")
        assert str(root / "citrixagent.lock") in str(info.value)
        assert info.value.exit_code == 3
    finally:
        assert holder.stdin is not None
        holder.stdin.write("\n")
        holder.stdin.flush()
        holder.wait(timeout=30)
    # once the other process is gone the lock is free again
    with StateStore(root).lock():
        pass


def test_lock_released_when_holder_dies(tmp_path: Path) -> None:
    root = tmp_path / "root"
    holder = _start_holder(root)
    holder.kill()
    holder.wait(timeout=30)
    with StateStore(root).lock():
        pass


def test_lock_released_after_exception(tmp_path: Path) -> None:
    store = StateStore(tmp_path)
    with pytest.raises(RuntimeError), store.lock():
        raise RuntimeError("boom")
    with store.lock():
        pass


# ----------------------------------------------------------------------------------------- licence


def test_license_marker(tmp_path: Path) -> None:
    store = StateStore(tmp_path / "root")
    assert store.license_accepted() is False
    store.record_license_acceptance()
    assert store.license_accepted() is True
    assert (tmp_path / "root" / "license-accepted").is_file()
    assert StateStore(tmp_path / "root").license_accepted() is True


def test_a_journal_directory_removed_during_the_run_is_made_again(tmp_path: Path) -> None:
    """Directories are checked once per store; one that disappears is created again (0700)."""
    import shutil

    store = StateStore(tmp_path / "state")
    state = store.load("web")
    store.save(state)
    shutil.rmtree(tmp_path / "state")
    state.add_event("again")
    store.save(state)
    assert store.load("web").history[-1]["event"] == "again"
    if sys.platform != "win32":
        assert ((tmp_path / "state" / "profiles").stat().st_mode & 0o777) == 0o700
