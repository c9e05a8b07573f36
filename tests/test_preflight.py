"""validate as a true preflight: over a corpus of directory cases, validate refuses exactly what run
refuses before its first request, with the same error lines and exit code; --json gives the typed
problems; the sandbox's own files are clean with each of its scm configs; revoke --dry-run sends and
writes nothing."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import CliResult

from citrix_connector.sandbox.world import Sandbox

Cli = Callable[..., CliResult]
Case = Callable[[Sandbox, Path], tuple[list[str], list[str]]]  # -> (global options, profile args)


def _errors(res: CliResult) -> list[str]:
    return sorted(line for line in res.err.splitlines() if line.startswith("error: "))


def _profile(world: Sandbox, stem: str = "lb-profile") -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(world.profile_path(stem).read_text(encoding="utf-8"))
    return data


def _write(directory: Path, name: str, data: dict[str, Any] | str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_text(data if isinstance(data, str) else yaml.safe_dump(data), encoding="utf-8")
    path.chmod(0o600)
    return path


def empty_directory(world: Sandbox, tmp: Path) -> tuple[list[str], list[str]]:
    (tmp / "empty").mkdir()
    return [], [str(tmp / "empty")]


def only_scm_and_settings_files(world: Sandbox, tmp: Path) -> tuple[list[str], list[str]]:
    _write(tmp / "d", "scm-other.yaml", "url: https://127.0.0.1:1\n")
    _write(tmp / "d", "citrixagent.yaml", "notify: {}\n")
    return [], [str(tmp / "d")]


def two_profiles_one_name(world: Sandbox, tmp: Path) -> tuple[list[str], list[str]]:
    data = _profile(world)
    _write(tmp / "d", "a.yaml", data)
    _write(tmp / "d", "b.yaml", data)  # the same `name: lb-profile`
    return [], [str(tmp / "d")]


def one_name_in_two_directories(world: Sandbox, tmp: Path) -> tuple[list[str], list[str]]:
    data = {k: v for k, v in _profile(world).items() if k != "name"}
    _write(tmp / "one", "web.yaml", data)
    _write(tmp / "two", "web.yaml", data)  # the name comes from the file name: web twice
    return [], [str(tmp / "one"), str(tmp / "two")]


def missing_path(world: Sandbox, tmp: Path) -> tuple[list[str], list[str]]:
    return [], [str(tmp / "nowhere.yaml")]


def unknown_key_and_bad_yaml(world: Sandbox, tmp: Path) -> tuple[list[str], list[str]]:
    data = _profile(world)
    data["certificate"]["subject_alt_name"] = data["certificate"].pop("subject_alt_names")
    _write(tmp / "d", "typo.yaml", data)
    _write(tmp / "d", "broken.yaml", "name: broken\nappliance: {url: https://127.0.0.1:1\n")
    return [], [str(tmp / "d")]


def admin_fields_nowhere(world: Sandbox, tmp: Path) -> tuple[list[str], list[str]]:
    scm = yaml.safe_load(world.scm_yaml.read_text(encoding="utf-8"))
    for key in ("org_id", "cert_type", "term"):
        del scm[key]
    bare = _write(tmp, "scm-bare.yaml", scm)
    _write(tmp / "d", "p.yaml", _profile(world))  # no sectigo: block either
    return ["--scm-config", str(bare)], [str(tmp / "d")]


def scm_yaml_with_a_typo(world: Sandbox, tmp: Path) -> tuple[list[str], list[str]]:
    text = world.scm_yaml.read_text(encoding="utf-8").replace("customer_uri:", "customer_url:")
    return ["--scm-config", str(_write(tmp, "scm-typo.yaml", text))], [str(world.profile_path("lb-profile"))]


def state_dir_is_a_file(world: Sandbox, tmp: Path) -> tuple[list[str], list[str]]:
    _write(tmp, "state-file", "not a directory\n")
    return ["--state-dir", str(tmp / "state-file")], [str(world.profile_path("lb-profile"))]


def bad_settings_file(world: Sandbox, tmp: Path) -> tuple[list[str], list[str]]:
    settings = _write(tmp, "citrixagent-bad.yaml", "notify:\n  channels:\n    - {type: pigeon}\n")
    return ["--settings", str(settings)], [str(world.profile_path("lb-profile"))]


CASES: list[Case] = [
    empty_directory,
    only_scm_and_settings_files,
    two_profiles_one_name,
    one_name_in_two_directories,
    missing_path,
    unknown_key_and_bad_yaml,
    admin_fields_nowhere,
    scm_yaml_with_a_typo,
    state_dir_is_a_file,
    bad_settings_file,
]


@pytest.mark.parametrize("case", CASES, ids=[c.__name__ for c in CASES])
def test_validate_refuses_what_run_refuses(world: Sandbox, cli: Cli, tmp_path: Path, case: Case) -> None:
    options, args = case(world, tmp_path)
    if "--scm-config" not in options:
        options = ["--scm-config", str(world.scm_yaml), *options]
    validated = cli(*options, "validate", *args)
    assert world.scm.requests == [] and world.netscaler.requests == []  # validate: no network
    ran = cli(*options, "run", *args)
    assert ran.code == 2, ran.output
    assert validated.code == ran.code, (validated.output, ran.output)
    assert _errors(validated) and _errors(validated) == _errors(ran), (validated.err, ran.err)
    assert "Traceback" not in validated.output

    as_json = cli(*options, "--json", "validate", *args)
    assert as_json.code == 2 and as_json.err == ""
    body = json.loads(as_json.out)
    assert body["ok"] is False
    errors = [p for p in body["problems"] if p["severity"] == "error"]
    assert len(errors) == len(_errors(validated))
    for problem in body["problems"]:
        assert set(problem) == {"file", "line", "field", "message", "severity"}
        assert isinstance(problem["line"], int) and problem["message"]


def test_validate_json_names_file_line_and_field(world: Sandbox, cli: Cli, tmp_path: Path) -> None:
    data = _profile(world)
    data["certificate"]["key_size"] = 1024
    path = _write(tmp_path / "d", "weak.yaml", data)
    res = cli("--scm-config", world.scm_yaml, "--json", "validate", path, world.profile_path("cs-profile"))
    assert res.code == 2
    body = json.loads(res.out)
    [problem] = body["problems"]
    assert problem["file"] == str(path) and problem["field"] == "certificate.key_size"
    assert problem["line"] == yaml.safe_dump(data).splitlines().index("  key_size: 1024") + 1
    assert problem["severity"] == "error" and "2048" in problem["message"]
    kinds = {(f["kind"], Path(f["file"]).name) for f in body["files"]}
    assert kinds == {("scm", "scm.yaml"), ("profile", "cs-profile.yaml")}


@pytest.mark.parametrize(
    "config", ["scm.yaml", "scm-enrollment.yaml", "scm-clientcert.yaml", "scm-oauth.yaml"]
)
def test_the_sandbox_files_are_clean_with_each_of_its_configs(world: Sandbox, cli: Cli, config: str) -> None:
    scm = world.directory / config
    res = cli("--scm-config", scm, "validate", world.directory)
    assert res.code == 0, res.output
    assert res.err == "", res.err  # not one warning
    for stem in ("lb-profile", "cs-profile", "vpn-profile", "authentication-profile", "sni-profile"):
        assert f"ok  {world.profile_path(stem)}" in res.out
    body = json.loads(cli("--scm-config", scm, "--json", "validate", world.directory).out)
    assert body["ok"] is True and body["problems"] == []


def test_scm_yaml_gives_the_admin_fields_a_profile_leaves_out(world: Sandbox, cli: Cli) -> None:
    assert "sectigo" not in _profile(world)
    res = cli("--scm-config", world.scm_yaml, "enroll", world.profile_path("cs-profile"))
    assert res.code == 0, res.output
    [order] = [r for r in world.scm.requests if r.method == "POST" and r.path.endswith("/ssl/v1/enroll")]
    body = json.loads(order.body)
    assert (body["orgId"], body["certType"], body["term"]) == (1234, 567, 365)


def test_revoke_dry_run_sends_and_writes_nothing(world: Sandbox, cli: Cli, state_dir: Path) -> None:
    profile = world.profile_path("lb-profile")
    enrolled = json.loads(cli("--scm-config", world.scm_yaml, "--json", "enroll", profile).out)[0]
    journal = state_dir / "profiles" / "lb-profile.json"
    before = journal.read_bytes()
    scm_seen, writes = len(world.scm.requests), world.netscaler.count_writes()
    nitro_seen = len(world.netscaler.requests)
    res = cli(
        "--scm-config", world.scm_yaml, "--json", "revoke", "--dry-run", profile, "--reason", "superseded"
    )
    assert res.code == 0, res.output  # no --yes needed: nothing is revoked
    [row] = json.loads(res.out)
    assert (row["action"], row["result"], row["vservers"]) == ("revoke", "planned", ["vs_shop_https"])
    assert f"would revoke order {enrolled['order_id']} (serial {enrolled['serial']})" in row["message"]
    assert "bound to vs_shop_https" in row["message"]
    assert len(world.scm.requests) == scm_seen  # not one request to SCM
    assert world.netscaler.count_writes() == writes
    reads = world.netscaler.requests[nitro_seen:]
    assert reads and all(r.method == "GET" or r.path.endswith(("/login", "/logout")) for r in reads), [
        f"{r.method} {r.path}" for r in reads
    ]
    assert journal.read_bytes() == before
    order = world.scm.orders[int(enrolled["order_id"])]
    assert order.status == "Issued"


def test_validate_json_lists_warnings_without_failing(world: Sandbox, cli: Cli, tmp_path: Path) -> None:
    data = _profile(world)
    data["sectigo"] = {"org_id": 1234}
    path = _write(tmp_path / "d", "with-org.yaml", data)
    res = cli("--scm-config", world.scm_enrollment_yaml, "--json", "validate", path)
    assert res.code == 0, res.output
    body = json.loads(res.out)
    assert body["ok"] is True
    [warning] = body["problems"]
    assert (warning["file"], warning["field"], warning["severity"]) == (
        str(path),
        "sectigo.org_id",
        "warning",
    )
    assert warning["line"] > 0 and "ignored with api: enrollment" in warning["message"]
    text = cli("--scm-config", world.scm_enrollment_yaml, "validate", path)
    assert text.code == 0 and f"warning: {path}:{warning['line']}: sectigo.org_id: ignored" in text.err
