"""The per-run caches that keep a fleet deployment's CPU down (issue 12) answer exactly what the
uncached code answered: certificate facts, issuer checks, the environment's proxies."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import requests

from citrix_connector import crypto
from citrix_connector.proxy import ProxyChoice, ProxySession


def test_certificate_facts_and_issuer_checks_are_computed_once(local_ca, keys) -> None:
    leaf = local_ca.issue_from_csr(
        crypto.build_csr(keys["RSA 2048"], "cache.example.com", ["cache.example.com"])
    )
    chain = local_ca.chain_for(leaf)
    info = crypto.cert_info(leaf)
    assert crypto.cert_info(leaf) is info  # the same answer, not computed again
    assert info.fingerprint_sha256 == crypto.fingerprint_sha256(leaf)
    assert info.serial_hex == crypto.normalize_serial(leaf.serial_number)
    issuer = chain[0]
    for _ in range(2):  # the second answer comes from the cache and is the same
        assert crypto.is_issuer(issuer, leaf)
        assert not crypto.is_issuer(leaf, issuer)
        assert not crypto.is_self_signed(leaf)
    other = local_ca.issue_from_csr(
        crypto.build_csr(keys["RSA 2048"], "other.example.com", ["other.example.com"])
    )
    assert crypto.cert_info(other).serial_hex != info.serial_hex


URLS = ("https://scm.example.test/api/x", "https://adc.example.test/nitro", "http://plain.example.test/")


@pytest.mark.parametrize("url", URLS)
@pytest.mark.parametrize("no_proxy", ["", "scm.example.test", "*"])
def test_the_environments_proxies_are_read_once_and_as_requests_reads_them(
    monkeypatch: pytest.MonkeyPatch, url: str, no_proxy: str
) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.example.test:3128")
    monkeypatch.setenv("HTTP_PROXY", "http://proxy.example.test:3129")
    monkeypatch.setenv("NO_PROXY", no_proxy)
    monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)
    plain = requests.Session()
    ours = ProxySession(ProxyChoice())
    expected = plain.merge_environment_settings(url, {}, None, True, None)
    assert ours.merge_environment_settings(url, {}, None, True, None) == expected
    choice = ProxyChoice()
    first = choice.for_url(url)
    assert first == requests.utils.select_proxy(url, requests.utils.get_environ_proxies(url))
    # within one session (a run) the environment is read once per scheme://host
    monkeypatch.setenv("HTTPS_PROXY", "http://changed.example.test:1")
    assert ours.merge_environment_settings(url, {}, None, True, None) == expected
    assert choice.for_url(url) == first
    # explicit choices never read it
    assert ProxyChoice(disabled=True).for_url(url) is None
    assert ProxyChoice(url="http://p.example.test:8080").for_url(url) == "http://p.example.test:8080"


def test_a_ca_bundle_from_the_environment_still_applies(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/etc/ssl/bundle.pem")
    ours = ProxySession(ProxyChoice())
    assert ours.merge_environment_settings("https://a.example.test/", {}, None, True, None)["verify"] == (
        "/etc/ssl/bundle.pem"
    )
    assert ours.merge_environment_settings("https://a.example.test/", {}, None, "/mine.pem", None)[
        "verify"
    ] == ("/mine.pem")


def test_the_journals_fast_reader_answers_like_the_checking_one(tmp_path) -> None:
    import json

    from citrix_connector.errors import StateError
    from citrix_connector.state import (
        DeploymentRecord,
        IssuedRecord,
        OrderRecord,
        ProfileState,
        StateStore,
    )
    from citrix_connector.state_codec import _fast, _from_dict

    store = StateStore(tmp_path)
    state = ProfileState(profile="p1", source="/x/p1.yaml", reorder="renew", stale_files=["/nsconfig/ssl/a"])
    state.pending = OrderRecord(
        "7", "renew", "admin", "2026-01-01T00:00:00+00:00", "local", "/k", "CSR", "a", ["a"], "ECDSA P-256"
    )
    state.current = IssuedRecord(
        "6", "AB", "n", "n", "f", "a", ["a"], "ECDSA P-256", "local", "/k", "PEM", ["C"], "t"
    )
    state.deployed = DeploymentRecord("h:1", None, "p1", "AB", ["vs"], "t", "/c", "/k", saved=False)
    state.add_event("ordered", order_id="7")
    store.save(state)
    data = json.loads(store.path_for("p1").read_text())
    assert _fast(data, ProfileState) == _from_dict(ProfileState, data, "") == store.load("p1")

    # decoders built by several threads at once (fleet workers): every one sees whole records
    import threading

    from citrix_connector import state_codec

    state_codec._decoder.cache_clear()
    expected = _from_dict(ProfileState, data, "")
    results: list[object] = []
    start = threading.Barrier(8)

    def decode() -> None:
        start.wait()
        results.extend(_fast(data, ProfileState) for _ in range(20))

    threads = [threading.Thread(target=decode) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 160 and all(r == expected for r in results)
    data["current"]["sans"] = ["a", 3]  # refused by both; the message comes from the checking reader
    store.path_for("p1").write_text(json.dumps(data))
    with pytest.raises(StateError, match=r"current\.sans\[1\]: expected a string, got int"):
        store.load("p1")


def test_resolved_path_is_path_resolve(tmp_path: Path, monkeypatch: Any) -> None:
    from citrix_connector.config.crosscheck import resolved_path

    real = tmp_path / "real"
    real.mkdir()
    (real / "a.yaml").write_text("x")
    (tmp_path / "link").symlink_to(real, target_is_directory=True)
    (real / "b.yaml").symlink_to(real / "a.yaml")
    for given in (real / "a.yaml", tmp_path / "link" / "a.yaml", real / "b.yaml", real / ".." / "real"):
        assert resolved_path(given) == given.resolve()
    for cwd in (real, tmp_path):  # a relative path follows the current directory, cached or not
        monkeypatch.chdir(cwd)
        assert resolved_path(Path("a.yaml")) == Path("a.yaml").resolve()
