"""Acceptance tests for issue 3 ("enroll end to end"), in-process through the real CLI entry point.

Every test talks HTTPS to the sandbox servers on 127.0.0.1 (nothing is mocked at the HTTP level) and
checks what a user would see: exit code, stdout/stderr, the state journal, and the appliance as read
back over NITRO.
"""

from __future__ import annotations

import base64
import io
import json
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml
from conftest import CliResult, scm_yaml_for
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from citrix_connector.cli import EXIT_CODES_HELP
from citrix_connector.sandbox.world import (
    ADC_PASSWORD,
    ADC_USER,
    ENROLL_CLIENT_SECRET,
    SCM_PASSWORD,
    Sandbox,
)
from citrix_connector.state import StateStore

Cli = Callable[..., CliResult]
REPO = Path(__file__).resolve().parent.parent

# ------------------------------------------------------------------------------------------ helpers


def fast_scm_yaml(world: Sandbox, api: str, **poll: float) -> Path:
    """A copy of the sandbox's scm.yaml for ``api`` that polls without the sandbox's pauses."""
    data = yaml.safe_load(scm_yaml_for(world, api).read_text(encoding="utf-8"))
    data["poll"] = {"first_wait": 0, "interval": 0.05, "timeout": 10, **poll}
    path = world.directory / f"scm-fast-{api}.yaml"  # scm*.yaml: never taken for a profile
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def nitro_get(world: Sandbox, resource: str) -> dict[str, Any]:
    """GET /nitro/v1/config/<resource> on the simulated appliance, as curl would."""
    response = requests.get(
        f"{world.netscaler.url}/nitro/v1/config/{resource}",
        headers={"X-NITRO-USER": ADC_USER, "X-NITRO-PASS": ADC_PASSWORD},
        verify=str(world.ca_bundle),
        timeout=10,
    )
    assert response.status_code == 200, response.text
    data: dict[str, Any] = response.json()
    return data


def bound_certkeys(world: Sandbox, vserver: str) -> list[str]:
    data = nitro_get(world, f"sslvserver_sslcertkey_binding/{vserver}")
    return [b["certkeyname"] for b in data.get("sslvserver_sslcertkey_binding", []) if not b.get("ca")]


def certkey(world: Sandbox, name: str) -> dict[str, Any]:
    entries = nitro_get(world, f"sslcertkey/{name}")["sslcertkey"]
    assert len(entries) == 1
    entry: dict[str, Any] = entries[0]
    return entry


def sim_for(world: Sandbox, api: str) -> Any:
    return world.enrollment if api == "enrollment" else world.scm


def write_profile(world: Sandbox, stem: str, **certificate: Any) -> Path:
    """A variant of lb-profile (same appliance and lb vserver) with ``certificate`` keys replaced."""
    data = yaml.safe_load(world.profile_path("lb-profile").read_text(encoding="utf-8"))
    data["name"] = stem
    cert = data["certificate"]
    for key, value in certificate.items():
        if value is None:
            cert.pop(key, None)
        else:
            cert[key] = value
    return world.write_profile(stem, data)


def no_traceback(res: CliResult) -> None:
    assert "Traceback" not in res.output, res.output


def error_lines(res: CliResult) -> list[str]:
    return [line for line in res.err.splitlines() if line.startswith("error: ")]


def assert_no_network(world: Sandbox) -> None:
    assert world.scm.requests == []
    assert world.enrollment.requests == []
    assert world.netscaler.requests == []


# ------------------------------------------------------------------------------- enroll end to end


def test_enroll_end_to_end(world: Sandbox, cli: Cli, scm_api: str, state_dir: Path) -> None:
    sim = sim_for(world, scm_api)
    res = cli("--scm-config", scm_yaml_for(world, scm_api), "enroll", world.profile_path("lb-profile"))
    assert res.code == 0, res.output
    no_traceback(res)

    # the journal holds the order and the issued certificate
    state = StateStore(state_dir).load("lb-profile")
    assert state.pending is None and state.current is not None
    order_id, serial = state.current.order_id, state.current.serial
    assert sim.order_count() == 1
    assert str(order_id) in res.out and serial in res.out  # the whole serial, as the GUI shows it
    assert res.out.isascii()  # a Windows console's code page can print it
    assert "lb-profile" in res.out and "vs_shop_https" in res.out
    # SCM said "not yet" at least once and the agent waited through it
    assert any(r.method == "GET" and r.status in (400, 404) for r in sim.requests)

    # the appliance: leaf installed with the issued serial, linked to its CA, bound, saved
    entry = certkey(world, "lb-profile")
    assert entry["serial"].upper() == serial.upper()
    assert entry.get("linkcertkeyname")
    assert bound_certkeys(world, "vs_shop_https") == ["lb-profile"]
    assert state.deployed is not None and state.deployed.saved
    assert any(
        r.method == "POST" and "nsconfig" in r.path and "save" in r.query for r in world.netscaler.requests
    )

    # enroll again: nothing to do, no second order
    again = cli("--scm-config", scm_yaml_for(world, scm_api), "enroll", world.profile_path("lb-profile"))
    assert again.code == 0, again.output
    assert "already enrolled" in again.out
    assert sim.order_count() == 1


def test_enroll_json_output_is_pure_json(world: Sandbox, cli: Cli) -> None:
    res = cli("--json", "-v", "--scm-config", world.scm_yaml, "enroll", world.profile_path("lb-profile"))
    assert res.code == 0, res.output
    rows = json.loads(res.out)  # logs went to stderr, not beside the JSON
    assert [r["result"] for r in rows] == ["ok"]
    assert rows[0]["serial"] and rows[0]["order_id"] and rows[0]["certkey"] == "lb-profile"
    assert "DEBUG" in res.err


KEY_VARIANTS = [
    pytest.param({"key_type": "RSA", "key_size": 2048}, "rsaEncryption", 2048, id="RSA-2048"),
    pytest.param({"key_type": "RSA", "key_size": 3072}, "rsaEncryption", 3072, id="RSA-3072"),
    pytest.param({"key_type": "RSA", "key_size": 4096}, "rsaEncryption", 4096, id="RSA-4096"),
    pytest.param(
        {"key_type": "ECDSA", "curve": "P-256", "key_size": None}, "id-ecPublicKey", 256, id="P-256"
    ),
    pytest.param(
        {"key_type": "ECDSA", "curve": "P-384", "key_size": None}, "id-ecPublicKey", 384, id="P-384"
    ),
]


@pytest.mark.parametrize(("certificate", "algorithm", "size"), KEY_VARIANTS)
def test_every_supported_key_type_enrolls(
    world: Sandbox, cli: Cli, certificate: dict[str, Any], algorithm: str, size: int
) -> None:
    profile = write_profile(world, "keytype", **certificate)
    val = cli("--scm-config", world.scm_yaml, "validate", profile)
    assert val.code == 0, val.output
    res = cli("--scm-config", fast_scm_yaml(world, "admin"), "enroll", profile)
    assert res.code == 0, res.output
    entry = certkey(world, "keytype")
    assert entry["publickey"] == algorithm
    assert int(entry["publickeysize"]) == size
    assert bound_certkeys(world, "vs_shop_https") == ["keytype"]


# ------------------------------------------------------------------------- unsupported key types

# (certificate keys, the field named in the error, its line in the written file)
BAD_KEYS = [
    pytest.param("key_type: RSA\n  key_size: 1024", "certificate.key_size", 13, id="RSA-1024"),
    pytest.param("key_type: RSA\n  key_size: 8192", "certificate.key_size", 13, id="RSA-8192"),
    pytest.param("key_type: ECDSA\n  curve: P-521", "certificate.curve", 13, id="P-521"),
    pytest.param("key_type: Ed25519", "certificate.key_type", 12, id="Ed25519"),
    pytest.param("key_type: RAS\n  key_size: 2048", "certificate.key_type", 12, id="typo"),
]

PROFILE_TEMPLATE = """\
# line 1
name: badkey
appliance:
  url: {url}
  username: nsroot
  password: sandbox-nsroot
  verify_tls: {ca}
vservers:
  - {{name: vs_shop_https, type: lb}}
certificate:
  common_name: shop.sandbox.test
  {key}
sectigo: {{org_id: 1234, cert_type: 567, term: 365}}
"""

EVERY_PROFILE_COMMAND = [
    ("validate",),
    ("enroll",),
    ("enroll", "--dry-run"),
    ("renew",),
    ("replace",),
    ("revoke", "--reason", "superseded"),  # rejected before it would ask for confirmation
    ("revoke", "--reason", "superseded", "--yes"),
    ("status",),
    ("run",),
    ("run", "--dry-run"),
]


@pytest.mark.parametrize(("key", "field", "line"), BAD_KEYS)
def test_unsupported_key_rejected_by_every_command(
    world: Sandbox, cli: Cli, key: str, field: str, line: int
) -> None:
    profile = world.directory / "badkey.yaml"
    profile.write_text(
        PROFILE_TEMPLATE.format(url=world.netscaler.url, ca=world.ca_bundle, key=key), encoding="utf-8"
    )
    assert profile.read_text().splitlines()[line - 1].strip().startswith(field.split(".")[1])
    for command in EVERY_PROFILE_COMMAND:
        res = cli("--scm-config", world.scm_yaml, command[0], profile, *command[1:])
        assert res.code == 2, (command, res.output)
        no_traceback(res)
        errors = error_lines(res)
        assert len(errors) == 1, (command, res.output)
        assert f"{profile}:{line}: {field}:" in errors[0], (command, errors)
        assert "supported: RSA 2048/3072/4096, ECDSA P-256/P-384" in errors[0]
    assert_no_network(world)


# -------------------------------------------------------------------------------------- validate


def test_validate_checks_profiles_and_scm_yaml_without_network(world: Sandbox, cli: Cli) -> None:
    for scm in (world.scm_yaml, world.scm_enrollment_yaml):
        res = cli("--scm-config", scm, "validate", world.directory)
        assert res.code == 0, res.output
        assert f"ok  {scm}" in res.out
        for stem in ("lb-profile", "cs-profile", "vpn-profile", "sni-profile", "appliance-key-profile"):
            assert f"ok  {world.profile_path(stem)}" in res.out
    # a bad scm.yaml is reported with file, line and a suggestion
    bad = world.directory / "scm-typo.yaml"
    bad.write_text(world.scm_yaml.read_text().replace("customer_uri:", "customer_url:"), encoding="utf-8")
    res = cli("--scm-config", bad, "validate", world.profile_path("lb-profile"))
    assert res.code == 2
    assert re.search(
        rf"{re.escape(str(bad))}:\d+: customer_url: unknown key; did you mean 'customer_uri'", res.err
    )
    assert_no_network(world)


# ------------------------------------------------------------------------------------- bad input

MALFORMED = "name: broken\nappliance: {url: https://127.0.0.1:1\nvservers: []\n"


@pytest.mark.parametrize("command", ["validate", "enroll"])
def test_malformed_yaml_one_line_exit_2(world: Sandbox, cli: Cli, command: str) -> None:
    profile = world.directory / "broken.yaml"
    profile.write_text(MALFORMED, encoding="utf-8")
    res = cli("--scm-config", world.scm_yaml, command, profile)
    assert res.code == 2, res.output
    no_traceback(res)
    [line] = error_lines(res)
    assert re.match(rf"error: {re.escape(str(profile))}:\d+: invalid YAML", line), line
    assert "broken" not in res.out  # no result row, no "ok" for it


def test_unknown_key_gets_did_you_mean(world: Sandbox, cli: Cli) -> None:
    data = yaml.safe_load(world.profile_path("lb-profile").read_text())
    data["certificate"]["subject_alt_name"] = data["certificate"].pop("subject_alt_names")
    profile = world.write_profile("typo", data)
    res = cli("--scm-config", world.scm_yaml, "enroll", profile)
    assert res.code == 2, res.output
    no_traceback(res)
    [line] = error_lines(res)
    assert re.match(
        rf"error: {re.escape(str(profile))}:\d+: certificate.subject_alt_name: unknown key; "
        r"did you mean 'subject_alt_names'\?",
        line,
    ), line
    assert_no_network(world)


def test_missing_field_named(world: Sandbox, cli: Cli) -> None:
    data = yaml.safe_load(world.profile_path("lb-profile").read_text())
    del data["appliance"]["url"]
    profile = world.write_profile("nourl", data)
    res = cli("--scm-config", world.scm_yaml, "enroll", profile)
    assert res.code == 2, res.output
    no_traceback(res)
    [line] = error_lines(res)
    assert re.match(rf"error: {re.escape(str(profile))}:\d+: appliance.url: required field is missing", line)
    assert_no_network(world)


def test_bad_profile_does_not_stop_the_good_one(world: Sandbox, cli: Cli) -> None:
    broken = world.directory / "broken.yaml"
    broken.write_text(MALFORMED, encoding="utf-8")
    res = cli(
        "--scm-config", fast_scm_yaml(world, "admin"), "enroll", broken, world.profile_path("lb-profile")
    )
    assert res.code == 2, res.output  # the worst outcome wins
    assert len(error_lines(res)) == 1
    assert re.search(r"^lb-profile\s+enroll\s+ok\b", res.out, re.M), res.out
    assert bound_certkeys(world, "vs_shop_https") == ["lb-profile"]


def _failure_line(res: CliResult, profile: str) -> str:
    lines = [line for line in res.out.splitlines() if line.startswith(f"{profile}: ")]
    assert len(lines) == 1, res.output
    return lines[0]


def test_wrong_scm_password_shows_scm_code(world: Sandbox, cli: Cli) -> None:
    scm = world.directory / "scm-wrong.yaml"
    scm.write_text(world.scm_yaml.read_text().replace(SCM_PASSWORD, "not-the-password"), encoding="utf-8")
    res = cli("--scm-config", scm, "enroll", world.profile_path("lb-profile"))
    assert res.code == 1, res.output
    no_traceback(res)
    line = _failure_line(res, "lb-profile")
    assert "code -16" in line and "Unknown user" in line
    assert world.scm.order_count() == 0


def test_wrong_enrollment_client_secret_shows_scm_answer(world: Sandbox, cli: Cli) -> None:
    scm = world.directory / "scm-wrong.yaml"
    text = world.scm_enrollment_yaml.read_text().replace(ENROLL_CLIENT_SECRET, "not-the-secret")
    scm.write_text(text, encoding="utf-8")
    res = cli("--scm-config", scm, "enroll", world.profile_path("lb-profile"))
    assert res.code == 1, res.output
    no_traceback(res)
    line = _failure_line(res, "lb-profile")
    assert "invalid_client" in line or "401" in line, line
    assert "not-the-secret" not in res.output
    assert world.enrollment.order_count() == 0


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        pytest.param({"password": "not-the-password"}, "errorcode 354", id="wrong-nitro-password"),
        pytest.param({"url": "https://127.0.0.1:1"}, "cannot connect to 127.0.0.1:1", id="unreachable"),
        pytest.param({"verify_tls": True}, "TLS verification failed", id="tls-untrusted"),
    ],
)
def test_appliance_problems_one_line_exit_1(
    world: Sandbox, cli: Cli, change: dict[str, Any], expected: str
) -> None:
    data = yaml.safe_load(world.profile_path("lb-profile").read_text())
    data["appliance"].update(change)
    profile = world.write_profile("lb-profile", data)
    res = cli("--scm-config", world.scm_yaml, "enroll", profile)
    assert res.code == 1, res.output
    no_traceback(res)
    assert expected in _failure_line(res, "lb-profile")
    assert world.scm.order_count() == 0  # the appliance is checked before anything is ordered


def test_scm_tls_verification_failure(world: Sandbox, cli: Cli) -> None:
    data = yaml.safe_load(world.scm_yaml.read_text())
    data["verify_tls"] = True
    scm = world.directory / "scm-verify.yaml"
    scm.write_text(yaml.safe_dump(data), encoding="utf-8")
    res = cli("--scm-config", scm, "enroll", world.profile_path("lb-profile"))
    assert res.code == 1, res.output
    no_traceback(res)
    assert "TLS verification failed" in _failure_line(res, "lb-profile")
    assert world.scm.order_count() == 0


def test_traceback_only_with_verbose(world: Sandbox, cli: Cli) -> None:
    data = yaml.safe_load(world.profile_path("lb-profile").read_text())
    data["appliance"]["password"] = "not-the-password"
    profile = world.write_profile("lb-profile", data)
    quiet = cli("--scm-config", world.scm_yaml, "enroll", profile)
    loud = cli("-v", "--scm-config", world.scm_yaml, "enroll", profile)
    assert quiet.code == loud.code == 1
    assert "Traceback" not in quiet.output
    assert "Traceback" in loud.err


def test_missing_files_and_usage_errors(world: Sandbox, cli: Cli, tmp_path: Path) -> None:
    res = cli("--scm-config", tmp_path / "nope.yaml", "enroll", world.profile_path("lb-profile"))
    assert res.code == 2 and error_lines(res) == [f"error: {tmp_path / 'nope.yaml'}: no such file"]
    res = cli("--scm-config", world.scm_yaml, "enroll", tmp_path / "nope.yaml")
    assert res.code == 2 and len(error_lines(res)) == 1 and "nope.yaml" in res.err
    res = cli("--scm-config", world.scm_yaml, "enroll")
    assert res.code == 2 and len(error_lines(res)) == 1
    res = cli("no-such-command")
    assert res.code == 2 and "No such command" in res.err
    no_traceback(res)


# ---------------------------------------------------------------------------- pending and resume


def test_collect_timeout_exits_4_and_enroll_resumes(
    world: Sandbox, cli: Cli, scm_api: str, state_dir: Path
) -> None:
    sim = sim_for(world, scm_api)
    sim.set_defaults(mode="needs_approval")  # SCM keeps answering "being processed"
    scm = fast_scm_yaml(world, scm_api, timeout=0.4)
    profile = world.profile_path("lb-profile")

    res = cli("--scm-config", scm, "enroll", profile)
    assert res.code == 4, res.output
    no_traceback(res)
    assert sim.order_count() == 1
    [order_id] = [str(k) for k in sim.orders]
    line = _failure_line(res, "lb-profile")
    assert "pending" in line and order_id in line and "` to resume" in line
    pending = StateStore(state_dir).load("lb-profile").pending
    assert pending is not None and str(pending.order_id) == order_id  # saved before polling ended
    assert bound_certkeys(world, "vs_shop_https") == []

    # still not approved: enroll again resumes the same order (exit 4 again), no second order
    res = cli("--scm-config", scm, "enroll", profile)
    assert res.code == 4, res.output
    assert sim.order_count() == 1

    sim.approve(int(order_id) if scm_api == "admin" else order_id)  # an SCM admin approves it
    # issued after a few more polls: a deadline that a loaded machine cannot miss (it is not waited
    # out when the certificate comes, so the test is no slower)
    scm = fast_scm_yaml(world, scm_api, timeout=30)
    res = cli("--scm-config", scm, "enroll", profile)
    assert res.code == 0, res.output
    assert sim.order_count() == 1
    state = StateStore(state_dir).load("lb-profile")
    assert state.pending is None and state.current is not None
    assert str(state.current.order_id) == order_id
    assert order_id in res.out
    assert bound_certkeys(world, "vs_shop_https") == ["lb-profile"]


# ------------------------------------------------------------------------------------- secrets


def private_key_fragments(key_pem: str) -> dict[str, str]:
    """Strings that only a leaked private key would put in a log: its whole base64 body, each body line
    that holds private material, the PEM file as NITRO's systemfile upload encodes it (base64 of the
    PEM), and the prime p in hex and decimal.

    Body lines holding the public modulus are left out on purpose: the CSR (logged in SCM request
    bodies, public information) contains the same bytes and may line up in base64."""
    key = serialization.load_pem_private_key(key_pem.encode(), password=None)
    assert isinstance(key, rsa.RSAPrivateKey), "the sandbox's lb-profile uses an RSA key"
    numbers = key.private_numbers()
    lines = [ln for ln in key_pem.splitlines() if ln and not ln.startswith("-----")]
    der = base64.b64decode("".join(lines))
    n = numbers.public_numbers.n.to_bytes((numbers.public_numbers.n.bit_length() + 7) // 8, "big")
    public_end = der.index(n) + len(n) + 8  # modulus, then the public exponent
    fragments = {"key body": "".join(lines)}
    for i, line in enumerate(lines):
        if i * 48 >= public_end and len(line) >= 32:  # 64 base64 characters = 48 bytes per line
            fragments[f"key body line {i}"] = line
    assert len(fragments) > 10
    upload = base64.b64encode(key_pem.encode()).decode()
    fragments["key PEM as base64 (middle)"] = upload[len(upload) // 2 : len(upload) // 2 + 64]
    fragments["prime p (hex)"] = format(numbers.p, "x")
    fragments["prime p (HEX)"] = format(numbers.p, "X")
    fragments["prime p (decimal)"] = str(numbers.p)
    return fragments


@pytest.mark.parametrize("api", ["admin", "enrollment"])
def test_no_secret_in_output_or_log(
    world: Sandbox, cli: Cli, api: str, state_dir: Path, tmp_path: Path
) -> None:
    log_file = tmp_path / "logs" / "citrixagent.log"
    profile = world.profile_path("lb-profile")
    res = cli("-v", "--log-file", log_file, "--scm-config", scm_yaml_for(world, api), "enroll", profile)
    assert res.code == 0, res.output
    # a second, failing run: the wrong password must not be echoed either
    wrong_profile = world.directory / "wrong-nitro.yaml"
    data = yaml.safe_load(profile.read_text())
    data["name"] = "wrong-nitro"
    data["appliance"]["password"] = "wrong-nitro-password-123"
    wrong_profile.write_text(yaml.safe_dump(data), encoding="utf-8")
    bad = cli("-v", "--log-file", log_file, "--scm-config", scm_yaml_for(world, api), "enroll", wrong_profile)
    assert bad.code == 1
    # and a wrong SCM password / client secret
    scm_secret = SCM_PASSWORD if api == "admin" else ENROLL_CLIENT_SECRET
    wrong_scm = world.directory / "scm-wrong.yaml"
    wrong_scm.write_text(scm_yaml_for(world, api).read_text().replace(scm_secret, "wrong-scm-secret-456"))
    bad_scm = cli(
        "-v", "--log-file", log_file, "--scm-config", wrong_scm, "enroll", world.profile_path("cs-profile")
    )
    assert bad_scm.code == 1

    log_text = log_file.read_text(encoding="utf-8")
    assert "POST" in log_text and "nitro" in log_text  # the log really traces the requests
    key_files = list((state_dir / "keys").rglob("*.pem")) + list((state_dir / "keys").rglob("*.key"))
    assert key_files, "the local private key should be in the state directory"
    key_pem = key_files[0].read_text()
    secrets = {
        "SCM secret": SCM_PASSWORD if api == "admin" else ENROLL_CLIENT_SECRET,
        "NITRO password": ADC_PASSWORD,
        "wrong NITRO password": "wrong-nitro-password-123",
        "wrong SCM secret": "wrong-scm-secret-456",
        "PEM marker": "PRIVATE KEY",
        **private_key_fragments(key_pem),
    }
    runs = (res, bad, bad_scm)
    outputs = (
        ("stdout", "".join(r.out for r in runs)),
        ("stderr", "".join(r.err for r in runs)),
        ("log file", log_text),
    )
    for where, text in outputs:
        for what, secret in secrets.items():
            assert secret not in text, f"{what} appears in {where}"


# ----------------------------------------------------------------------------------------- demo


def test_demo_json(cli: Cli, tmp_path: Path) -> None:
    res = cli("--json", "demo", "--dir", tmp_path / "demo")
    assert res.code == 0, res.output
    data = json.loads(res.out)
    assert data["result"] == "ok" and data["order_id"] and data["certkey"] == "lb-profile"
    assert data["appliance_readback"] == {
        "vserver": "vs_shop_https",
        "bound_certkeys": ["lb-profile"],
        "serial": data["serial"],
    }
    assert (tmp_path / "demo" / "lb-profile.yaml").is_file()  # it wrote the profile it enrolled
    [vip] = data["tls_probe"]
    assert (vip["vserver"], vip["status"], vip["served_serial"]) == ("vs_shop_https", "ok", data["serial"])


def test_demo_narrates_without_verbose(cli: Cli, tmp_path: Path) -> None:
    """The narration is INFO; the CLI's own handlers take WARNING only, and the demo still narrates."""
    res = cli("demo", "--dir", tmp_path / "demo")
    assert res.code == 0, res.output
    narrated = [line for line in res.err.splitlines() if line.startswith("  - ")]
    placed = [line for line in narrated if "order 1001 placed" in line]
    assert len(placed) == 1, res.err


def test_demo_verbose_narrates_once(cli: Cli, tmp_path: Path) -> None:
    res = cli("-v", "demo", "--dir", tmp_path / "demo")
    assert res.code == 0, res.output
    placed = [line for line in res.err.splitlines() if "order 1001 placed" in line]
    assert len(placed) == 1, placed


# ------------------------------------------------------------------------------------- licence


@pytest.fixture
def no_license(monkeypatch: pytest.MonkeyPatch, state_dir: Path) -> Path:
    monkeypatch.delenv("CITRIXAGENT_ACCEPT_LICENSE", raising=False)
    return state_dir


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize(
    "args", [("enroll", "x.yaml"), ("run", "x.yaml"), ("status", "x.yaml"), ("demo",)], ids=lambda a: a[0]
)
def test_license_required_non_interactive(cli: Cli, no_license: Path, args: tuple[str, ...]) -> None:
    res = cli(*args)
    assert res.code == 2, res.output
    no_traceback(res)
    [line] = error_lines(res)
    assert "--accept-license" in line and "CITRIXAGENT_ACCEPT_LICENSE=yes" in line
    assert not StateStore(no_license).license_accepted()


def test_license_accepted_by_flag_is_remembered(world: Sandbox, cli: Cli, no_license: Path) -> None:
    profile = world.profile_path("lb-profile")
    res = cli("--accept-license", "--scm-config", world.scm_yaml, "validate", profile)
    assert res.code == 0
    first = cli("--accept-license", "--scm-config", world.scm_yaml, "status", profile)
    assert first.code in (0, 5), first.output
    assert StateStore(no_license).license_accepted()
    later = cli("--scm-config", world.scm_yaml, "status", profile)
    assert later.code in (0, 5), later.output
    assert "licence" not in later.err


def test_license_accepted_by_environment(
    world: Sandbox, cli: Cli, no_license: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CITRIXAGENT_ACCEPT_LICENSE", "yes")
    res = cli("--scm-config", world.scm_yaml, "status", world.profile_path("lb-profile"))
    assert res.code in (0, 5), res.output
    assert StateStore(no_license).license_accepted()


@pytest.mark.parametrize(("answer", "accepted"), [("y\n", True), ("n\n", False), ("", False)])
def test_license_interactive_prompt(
    world: Sandbox, cli: Cli, no_license: Path, monkeypatch: pytest.MonkeyPatch, answer: str, accepted: bool
) -> None:
    monkeypatch.setattr(sys, "stdin", _Tty(answer))
    res = cli("--scm-config", world.scm_yaml, "status", world.profile_path("lb-profile"))
    licence = (REPO / "LICENSE.txt").read_text(encoding="utf-8").strip().splitlines()[0]
    assert licence in res.err  # the terms are shown before the question
    assert "accept" in res.err.lower()
    assert StateStore(no_license).license_accepted() is accepted
    assert res.code in ((0, 5) if accepted else (2,)), res.output


# ------------------------------------------------------------------------------------ exit codes


def test_exit_codes_documented_in_help_and_readme(cli: Cli) -> None:
    res = cli("--help")
    assert res.code == 0
    help_codes = dict(re.findall(r"^\s+(\d+)\s+(\S.*)$", EXIT_CODES_HELP, re.M))
    assert set(help_codes) == {"0", "1", "2", "3", "4", "5", "130", "143"}
    for code, meaning in help_codes.items():
        assert re.search(rf"^\s+{code}\s+{re.escape(meaning)}", res.out, re.M), (code, res.out)
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Exit codes", 1)[1].split("\n## ", 1)[0]
    readme_codes = set(re.findall(r"^\| (\d+) \|", section, re.M))
    assert readme_codes == set(help_codes)


def test_exit_3_when_another_run_holds_the_lock(world: Sandbox, cli: Cli, state_dir: Path) -> None:
    import subprocess

    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from pathlib import Path; from citrix_connector.state import StateStore\n"
            "with StateStore(Path(sys.argv[1])).lock():\n"
            "    print('locked', flush=True); time.sleep(30)",
            str(state_dir),
        ],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        res = cli("--scm-config", world.scm_yaml, "enroll", world.profile_path("lb-profile"))
        assert res.code == 3, res.output
        no_traceback(res)
        [line] = error_lines(res)
        assert "another citrixagent run holds the lock" in line
        assert world.scm.order_count() == 0
    finally:
        holder.kill()
        holder.wait(timeout=10)


def test_status_without_profiles_covers_every_profile_the_state_knows(world: Sandbox, cli: Cli) -> None:
    assert cli("--scm-config", world.scm_yaml, "status").code == 2  # nothing recorded yet
    lb, vpn = world.profile_path("lb-profile"), world.profile_path("vpn-profile")
    assert cli("--scm-config", world.scm_yaml, "run", lb, vpn).code == 0
    result = cli("--scm-config", world.scm_yaml, "--json", "status")
    assert result.code == 0, result.output
    rows = json.loads(result.out)
    assert sorted(r["profile"] for r in rows) == ["lb-profile", "vpn-profile"]
    assert all(r["details"]["next"] == "nothing" for r in rows)
    lb.unlink()  # a profile file that is gone is no longer reported
    rows = json.loads(cli("--scm-config", world.scm_yaml, "--json", "status").out)
    assert [r["profile"] for r in rows] == ["vpn-profile"]
