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
