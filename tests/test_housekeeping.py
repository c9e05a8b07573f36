"""Superseded certificate and key files are removed from the appliance after the next saved
deployment: only files the journal recorded, only after the save, and never a file a certkey still
refers to (that rule is tested directly in test_deploy.py)."""

from __future__ import annotations

from conftest import AgentKit


def _name(path: str) -> str:
    return path.rsplit("/", 1)[-1]


def test_renewal_removes_the_superseded_files_after_the_save(kit: AgentKit) -> None:
    profile = kit.profile("lb-profile")
    ns = kit.world.netscaler
    assert kit.agent().run([profile])[0].result == "ok"
    first = kit.store.load(profile.name).deployed
    assert first is not None
    assert kit.agent().run([profile])[0].result == "nothing"
    assert not [r for r in ns.requests if r.method == "DELETE"]

    renewed = kit.agent().renew([profile])[0]
    assert renewed.result == "ok", renewed.message
    state = kit.store.load(profile.name)
    assert state.deployed is not None and state.stale_files == []
    log = ns.requests
    deletes = [i for i, r in enumerate(log) if r.method == "DELETE" and "systemfile" in r.path]
    assert sorted(_name(log[i].path) for i in deletes) == sorted(
        _name(f) for f in (first.cert_file, first.key_file)
    )
    last_save = max(i for i, r in enumerate(log) if "action=save" in r.query)
    assert min(deletes) > last_save
    assert any(e["event"] == "removed-files" for e in state.history)
    remaining = set(ns.state()["files"])
    names = {_name(str(f)) for f in remaining}
    assert _name(first.cert_file) not in names and _name(state.deployed.cert_file) in names


_MISMATCH = {"errorcode": 1538, "message": "Certificate and private key do not match", "severity": "ERROR"}


def _files(kit: AgentKit) -> set[str]:
    return {_name(str(f)) for f in kit.world.netscaler.state()["files"]}


def test_a_failed_install_attempt_leaves_no_file_behind(kit: AgentKit) -> None:
    """The update refused (599/1538 once): the files uploaded for it are referenced by no certkey and
    are deleted at once; the journal lists nothing stale (review defect 6)."""
    profile = kit.profile("lb-profile")
    ns = kit.world.netscaler
    assert kit.agent().run([profile])[0].result == "ok"
    installed = kit.store.load(profile.name).deployed
    assert installed is not None
    before = _files(kit)
    ns.add_fault(r"/config/sslcertkey$", method="POST", status=599, json_body=_MISMATCH)
    failed = kit.agent().renew([profile])[0]
    assert failed.result == "failed" and "1538" in failed.message, failed.message
    state = kit.store.load(profile.name)
    [removed] = [e for e in state.history if e["event"] == "removed-files"]
    assert removed["why"] == "failed install attempt" and len(removed["files"]) == 2
    assert all(_name(f) not in _files(kit) for f in removed["files"])
    assert _files(kit) == before and state.stale_files == []
    # the old certificate still serves; the next renewal installs cleanly
    assert state.deployed is not None and state.deployed.serial == installed.serial
    renewed = kit.agent().renew([profile])[0]
    assert renewed.result == "ok", renewed.message
    assert kit.store.load(profile.name).stale_files == []


def test_files_a_failed_attempt_could_not_delete_are_removed_after_the_next_saved_deployment(
    kit: AgentKit,
) -> None:
    profile = kit.profile("lb-profile")
    ns = kit.world.netscaler
    assert kit.agent().run([profile])[0].result == "ok"
    first = kit.store.load(profile.name).deployed
    assert first is not None
    ns.add_fault(r"/config/sslcertkey$", method="POST", status=599, json_body=_MISMATCH)
    ns.add_fault(r"/config/systemfile/", method="DELETE", status=503, times=None)
    assert kit.agent().renew([profile])[0].result == "failed"
    stale = kit.store.load(profile.name).stale_files
    assert len(stale) == 2 and all(_name(f) in _files(kit) for f in stale)  # journalled, still there
    ns.clear_faults()
    renewed = kit.agent().renew([profile])[0]
    assert renewed.result == "ok", renewed.message
    state = kit.store.load(profile.name)
    assert state.stale_files == [] and state.deployed is not None
    names = _files(kit)
    assert not any(_name(f) in names for f in stale)  # the failed attempt's files
    assert _name(first.cert_file) not in names  # and the superseded ones
    assert _name(state.deployed.cert_file) in names
