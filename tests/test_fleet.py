"""Fleet speed: request counts per appliance whatever the number of profiles (from the sandbox's
request logs), and a CLI that imports nothing heavy before a command needs it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from citrix_connector.errors import CryptoError
from citrix_connector.lifecycle import Agent
from citrix_connector.sandbox.world import Sandbox
from citrix_connector.state import StateStore

PROFILES = 30
#: What `--help`, `--version` and `import citrix_connector.cli` must not import.
HEAVY = ("requests", "cryptography", "citrix_connector.lifecycle", "pydantic")


@pytest.fixture
def fleet(tmp_path: Path) -> Any:
    with Sandbox(tmp_path / "sandbox", issue_after_polls=0) as world:
        ns = world.netscaler
        paths = []
        for i in range(PROFILES):
            vs = f"vs_fleet{i:02d}"
            ns.add_vserver(vs, "lb")
            data = world.profile_dict(
                f"fleet{i:02d}",
                [(vs, "lb", False)],
                f"fleet{i:02d}.example.com",
                certificate={"key_type": "ECDSA"},
            )
            paths.append(world.write_profile(f"fleet{i:02d}", data))
        yield world, paths


def _nitro_requests(world: Sandbox, since: int) -> list[str]:
    return [f"{r.method} {r.path}" for r in world.netscaler.requests[since:]]


def _scm_requests(world: Sandbox) -> int:
    return len(world.scm.requests) + len(world.enrollment.requests)


def test_status_and_idle_run_read_each_appliance_in_bulk(fleet: Any, cli: Any, state_dir: Path) -> None:
    from citrix_connector.config import load_profile, load_scm_config

    world, paths = fleet
    agent = Agent(load_scm_config(world.scm_yaml), StateStore(state_dir), sleep=lambda _s: None)
    enrolled = agent.run([load_profile(p) for p in paths])
    assert {o.result for o in enrolled} == {"ok"}, [o.message for o in enrolled]

    # idle run: the HA node check and two bulk reads, without a session (no login, no logout: the
    # credentials ride on each read); SCM not asked at all
    seen, scm_seen = len(world.netscaler.requests), _scm_requests(world)
    res = cli("--json", "--scm-config", world.scm_yaml, "run", *paths)
    assert res.code == 0, res.output
    assert {r["action"] for r in json.loads(res.out)} == {"nothing"}
    idle = _nitro_requests(world, seen)
    assert idle == [
        "GET /nitro/v1/config/hanode",
        "GET /nitro/v1/config/sslcertkey",
        "GET /nitro/v1/config/sslvserver_sslcertkey_binding",
    ], idle
    assert all("x-nitro-user" in r.headers for r in world.netscaler.requests[seen:])
    assert sum("/config/sslcertkey" in p and p.startswith("GET") for p in idle) == 1, idle
    assert sum("sslvserver_sslcertkey_binding" in p for p in idle) == 1, idle
    assert _scm_requests(world) == scm_seen

    # status of the settled fleet: the same reads, and SCM only for orders in flight (none here)
    seen = len(world.netscaler.requests)
    res = cli("--json", "--scm-config", world.scm_yaml, "status", *paths)
    assert res.code == 0, res.output
    rows = json.loads(res.out)
    assert len(rows) == PROFILES and {r["result"] for r in rows} == {"ok"}
    assert all(r["serial"] and r["details"]["next"] == "nothing" for r in rows)
    assert _nitro_requests(world, seen) == idle
    assert _scm_requests(world) == scm_seen
    assert not world.netscaler.model.sessions  # nothing left open on the appliance
    # the bulk certkey read asks for the attributes the agent uses only
    (bulk,) = [r for r in world.netscaler.requests[seen:] if r.path == "/nitro/v1/config/sslcertkey"]
    assert "attrs=certkey,cert,key,serial,linkcertkeyname," in bulk.query, bulk.query


def test_reads_without_a_session_then_one_login_at_the_first_write(fleet: Any, cli: Any) -> None:
    """Reads carry the credentials (no session); the first write logs in, and that one session is
    logged out at the end: a deployment still makes one login and one logout per appliance."""
    world, paths = fleet
    res = cli("--json", "--scm-config", world.scm_yaml, "run", paths[0])
    assert res.code == 0, res.output
    sent = [(r.method, r.path, "x-nitro-user" in r.headers) for r in world.netscaler.requests]
    login = sent.index(("POST", "/nitro/v1/config/login", False))
    assert all(m == "GET" and user for m, _, user in sent[:login]), sent[:login]
    assert all(not user for _, _, user in sent[login:]), "one session after the login, no header auth"
    assert [p for _, p, _ in sent].count("/nitro/v1/config/login") == 1
    assert sent[-1][:2] == ("POST", "/nitro/v1/config/logout")
    assert not world.netscaler.model.sessions


def test_refused_credentials_on_a_read_say_so_in_one_line(fleet: Any, cli: Any, tmp_path: Path) -> None:
    import yaml

    world, paths = fleet
    data = yaml.safe_load(paths[0].read_text())
    data["appliance"]["password"] = "wrong-password-123"
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(data))
    res = cli("--json", "-v", "--scm-config", world.scm_yaml, "status", bad)
    row = json.loads(res.out)[0]
    assert "refused the login for user 'nsroot'" in row["details"]["appliance_error"], row
    assert "wrong-password-123" not in res.output + res.err


def test_status_asks_scm_about_orders_in_flight_only(tmp_path: Path) -> None:
    with Sandbox(tmp_path / "sandbox", issue_after_polls=50) as world:
        from citrix_connector.config import load_profile, load_scm_config

        store = StateStore(tmp_path / "state")
        agent = Agent(load_scm_config(world.scm_yaml), store, sleep=lambda _s: None, monotonic=_clock())
        profile = load_profile(world.profile_path("lb-profile"))
        agent.run([profile])  # placed, still being processed: pending
        assert store.load(profile.name).pending is not None
        seen = len(world.scm.requests)
        [row] = agent.status([profile])
        asked = [r.path for r in world.scm.requests[seen:]]
        assert len(asked) >= 1, asked
        assert row.details["scm_status"]


def _clock() -> Any:
    now = [0.0]

    def monotonic() -> float:
        now[0] += 1000.0  # every poll deadline has passed: the order stays pending
        return now[0]

    return monotonic


def test_cli_import_is_light() -> None:
    code = (
        "import sys, citrix_connector.cli; "
        f"heavy = [m for m in {HEAVY + ('urllib3', 'yaml')!r} if m in sys.modules]; print(heavy)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


@pytest.mark.parametrize("args", [["--help"], ["--version"], ["run", "--help"], ["status", "--help"]])
def test_help_and_version_import_nothing_heavy(args: list[str]) -> None:
    code = (
        "import sys\nfrom citrix_connector.cli import main\n"
        f"try:\n    main({args!r})\nexcept SystemExit:\n    pass\n"
        f"print([m for m in {HEAVY!r} if m in sys.modules], file=sys.stderr)"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert res.stderr.strip().splitlines()[-1] == "[]", res.stderr


def test_workers_cap_is_the_same_in_cli_and_lifecycle() -> None:
    from citrix_connector import cli
    from citrix_connector.lifecycle import runner

    assert cli.MAX_WORKERS == runner.MAX_WORKERS >= 256
    assert runner.Agent(None, StateStore(Path("unused")), workers=10_000).workers == runner.MAX_WORKERS
    assert runner.Agent(None, StateStore(Path("unused"))).workers is None  # one per appliance


def test_a_key_the_agent_made_is_parsed_at_most_once_per_run() -> None:
    from citrix_connector import crypto

    spec = crypto.KeySpec("RSA", size=2048)
    made = crypto.generate_private_key(spec)
    pem = crypto.private_key_to_pem(made)
    assert crypto.load_private_key(pem) is not made  # not ours yet: parsed (and validated)
    crypto.remember_own_key(pem, made)
    assert crypto.load_private_key(pem) is made and crypto.load_own_key(pem) is made
    other = crypto.private_key_to_pem(crypto.generate_private_key(spec))
    first = crypto.load_own_key(other)  # from the state dir: parsed once, without the RSA check
    assert crypto.load_private_key(other) is first
    assert crypto.key_spec_of(first) == spec
    with pytest.raises(CryptoError):
        crypto.load_own_key(b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n")


def test_version_alone_is_answered_before_click_is_imported() -> None:
    code = (
        "import sys\nfrom citrix_connector.cli import main\n"
        "try:\n    main(['--version'])\nexcept SystemExit as exc:\n    code = exc.code\n"
        "print(code, 'click' in sys.modules, file=sys.stderr)"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    from citrix_connector import __version__

    assert res.stdout == f"citrixagent, version {__version__}\n"
    assert res.stderr.strip().splitlines()[-1] == "0 False", res.stderr
    # what Click's own version option prints (combined with another option, Click answers)
    both = subprocess.run(
        [sys.executable, "-m", "citrix_connector", "--version", "--json"], capture_output=True, text=True
    )
    assert both.stdout == res.stdout


def test_an_appliance_that_wants_a_session_for_reads_gets_one(fleet: Any, cli: Any) -> None:
    """Header credentials refused with "login required" (352): one login, then the same reads."""
    world, paths = fleet
    ns = world.netscaler
    ns.header_auth_allowed = False
    seen = len(ns.requests)
    res = cli("--json", "--scm-config", world.scm_yaml, "status", paths[0])
    assert res.code == 5, res.output  # attention: nothing enrolled yet (and no appliance error)
    row = json.loads(res.out)[0]
    assert "appliance_error" not in row["details"], row
    sent = [(r.method, r.path, r.status) for r in ns.requests[seen:]]
    assert sent[:3] == [
        ("GET", "/nitro/v1/config/hanode", 401),
        ("POST", "/nitro/v1/config/login", 201),
        ("GET", "/nitro/v1/config/hanode", 200),
    ], sent
    assert [p for _, p, _ in sent].count("/nitro/v1/config/login") == 1
    assert sent[-1][:2] == ("POST", "/nitro/v1/config/logout")


def test_a_redirected_read_is_not_followed_with_the_credentials(fleet: Any, cli: Any) -> None:
    """Reads carry the password in headers: a redirect (to whatever host) is an error, not followed."""
    world, paths = fleet
    ns = world.netscaler
    ns.add_fault(
        r"/nitro/v1/config/hanode", method="GET", status=302, times=None,
        headers={"Location": f"{ns.url}/nitro/v1/config/nsversion"},
    )  # fmt: skip
    seen = len(ns.requests)
    res = cli("--json", "--scm-config", world.scm_yaml, "status", paths[0])
    row = json.loads(res.out)[0]
    assert "answered a redirect (HTTP 302" in row["details"]["appliance_error"], row
    assert all(r.path != "/nitro/v1/config/nsversion" for r in ns.requests[seen:]), "redirect followed"


@pytest.mark.parametrize("password", [" leading-space", "pass\u20acword"])
def test_credentials_unfit_for_a_header_log_in_instead(fleet: Any, password: str) -> None:
    from citrix_connector.nitro.client import NitroClient

    world, _ = fleet
    ns = world.netscaler
    ns.add_user("odd", password)
    client = NitroClient(ns.url, username="odd", password=password, verify=world.ca_bundle, lazy_login=True)
    assert not client.session.lazy_login
    with client:
        assert client.ha_info().state == "Standalone"
    assert [r.path for r in ns.requests if r.method == "POST"][-2:] == [
        "/nitro/v1/config/login",
        "/nitro/v1/config/logout",
    ]


def test_a_403_on_a_read_is_not_called_a_refused_login(fleet: Any) -> None:
    from citrix_connector.errors import NitroError
    from citrix_connector.nitro.client import NitroClient

    world, _ = fleet
    ns = world.netscaler
    ns.add_fault(
        r"/nitro/v1/config/hanode", method="GET", status=403, times=1,
        json_body={"errorcode": 2138, "message": "Not authorized to execute this command"},
    )  # fmt: skip
    client = NitroClient(
        ns.url, username="nsroot", password="sandbox-nsroot", verify=world.ca_bundle, lazy_login=True
    )
    with pytest.raises(NitroError) as raised:
        client.ha_info()
    assert "refused the login" not in str(raised.value) and "2138" in str(raised.value), raised.value
