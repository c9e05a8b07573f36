"""Issue 13, "output that tells the truth" and "hints runnable as printed", end to end on the sandbox:
each row's detail describes the state after the action; a failed row names the action attempted;
revoke shows where the certificate is still bound; status on a fresh appliance shows what it serves;
a printed hint, typed into a shell, works; superseded local keys are removed after a saved deployment."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml
from conftest import AgentKit, CliResult

from citrix_connector.sandbox.world import Sandbox
from citrix_connector.state import StateStore

Cli = Any


def _fast_scm(world: Sandbox, api: str = "admin", **poll: float) -> Path:
    source = world.scm_enrollment_yaml if api == "enrollment" else world.scm_yaml
    data = yaml.safe_load(source.read_text(encoding="utf-8"))
    data["poll"] = {"first_wait": 0, "interval": 0.05, "timeout": 10, **poll}
    path = world.directory / f"scm-truth-{api}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def _ec_profile(world: Sandbox, stem: str = "lb-profile") -> Path:
    """The sandbox's profile with an ECDSA key (RSA key generation would dominate the time)."""
    data = yaml.safe_load(world.profile_path(stem).read_text(encoding="utf-8"))
    data["certificate"].update(key_type="ECDSA", curve="P-256")
    data["certificate"].pop("key_size", None)
    return world.write_profile(stem, data)


def _row(res: CliResult) -> dict[str, Any]:
    rows = json.loads(res.out)
    assert len(rows) == 1, rows
    row: dict[str, Any] = rows[0]
    return row


def _hint(text: str) -> str:
    """The first `citrixagent ...` command line quoted in ``text``."""
    found = re.search(r"`(citrixagent [^`]+)`", text)
    assert found, text
    return found.group(1)


def _type_into_a_shell(hint: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run ``hint`` as a person would: a shell, another directory, no CITRIXAGENT_* environment."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CITRIXAGENT_")}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    cwd.mkdir(parents=True, exist_ok=True)
    return subprocess.run(
        hint, shell=True, cwd=cwd, env=env, capture_output=True, text=True, timeout=120, check=False
    )


def test_rows_describe_the_state_after_each_action(world: Sandbox, cli: Cli) -> None:
    scm = _fast_scm(world)
    profile = _ec_profile(world)

    enrolled = _row(cli("--json", "--scm-config", scm, "run", profile))
    assert (enrolled["action"], enrolled["result"]) == ("enroll", "ok")
    message = enrolled["message"]
    order, serial = enrolled["order_id"], enrolled["serial"]
    assert message.startswith(f"enrolled and installed: order {order}, serial {serial}")
    assert "bound to vs_shop_https" in message and message.endswith("(because no certificate enrolled yet)")
    assert enrolled["details"]["reason"] == "no certificate enrolled yet"

    renewed = _row(cli("--json", "--scm-config", scm, "renew", profile))
    assert (renewed["action"], renewed["result"]) == ("renew", "ok")
    assert renewed["message"].startswith(f"renewed and installed: order {renewed['order_id']}")
    assert renewed["order_id"] != enrolled["order_id"]

    replaced = _row(cli("--json", "--scm-config", scm, "replace", profile))
    assert (replaced["action"], replaced["result"]) == ("replace", "ok")
    assert replaced["message"].startswith("replaced and installed: order ")

    # an order SCM holds back: the pending row, then the collect that installs it
    world.scm.set_defaults(mode="needs_approval")
    slow = _fast_scm(world, timeout=0.3)
    pending = _row(cli("--json", "--scm-config", slow, "enroll", "--force", profile))
    assert (pending["action"], pending["result"]) == ("enroll", "pending"), pending
    world.scm.approve(int(pending["order_id"]))
    collected = _row(cli("--json", "--scm-config", scm, "run", profile))
    assert (collected["action"], collected["result"]) == ("collect", "ok"), collected
    assert collected["message"].startswith(f"collected and installed: order {pending['order_id']}")
    assert "is pending" not in collected["message"]

    nothing = _row(cli("--json", "--scm-config", scm, "run", profile))
    assert (nothing["action"], nothing["result"], nothing["message"]) == (
        "nothing",
        "nothing",
        "certificate valid and installed",
    )


def test_a_failed_row_names_the_action_attempted(world: Sandbox, cli: Cli, state_dir: Path) -> None:
    scm = _fast_scm(world)
    profile = _ec_profile(world)

    res = cli("--json", "--scm-config", scm, "renew", profile)
    assert res.code == 2, res.output
    row = _row(res)
    assert (row["action"], row["result"]) == ("renew", "failed")
    assert not row["message"].startswith("lb-profile: ")  # the row names the profile already
    table = cli("--scm-config", scm, "renew", profile)
    assert re.search(r"^lb-profile\s+renew\s+failed", table.out, re.M), table.out
    assert "lb-profile: nothing to renew" in table.out and "lb-profile: lb-profile:" not in table.out

    world.netscaler.set_ha("Secondary")  # the only node given refuses writes: run fails before deciding
    failed = _row(cli("--json", "--scm-config", scm, "run", profile))
    assert (failed["action"], failed["result"]) == ("run", "failed"), failed
    world.netscaler.set_ha("Primary")
    assert _row(cli("--json", "--scm-config", scm, "enroll", profile))["result"] == "ok"
    world.netscaler.set_ha("Secondary")
    failed = _row(cli("--json", "--scm-config", scm, "enroll", profile, "--force"))
    assert (failed["action"], failed["result"]) == ("enroll", "failed"), failed


def test_printed_hints_work_when_typed(world: Sandbox, cli: Cli, state_dir: Path, tmp_path: Path) -> None:
    scm = _fast_scm(world)
    profile = _ec_profile(world)
    args = ["--scm-config", scm, "--state-dir", state_dir]

    refused = cli(*args, "--json", "renew", profile)
    hint = _hint(_row(refused)["message"])
    assert shlex.split(hint)[1:5] == ["--scm-config", str(scm), "--state-dir", str(state_dir)]
    typed = _type_into_a_shell(hint, tmp_path / "elsewhere")
    assert typed.returncode == 0, typed.stdout + typed.stderr
    assert re.search(r"^lb-profile\s+enroll\s+ok", typed.stdout, re.M), typed.stdout

    revoked = cli(*args, "revoke", profile, "--reason", "superseded", "--yes")
    assert revoked.code == 0, revoked.output
    hint = _hint(revoked.out)
    typed = _type_into_a_shell(hint, tmp_path / "elsewhere")
    assert typed.returncode == 0, typed.stdout + typed.stderr
    assert re.search(r"^lb-profile\s+enroll\s+ok", typed.stdout, re.M), typed.stdout


def test_revoke_shows_where_the_certificate_is_still_bound(world: Sandbox, cli: Cli) -> None:
    scm = _fast_scm(world)
    profile = _ec_profile(world)
    enrolled = _row(cli("--json", "--scm-config", scm, "enroll", profile))
    row = _row(cli("--json", "--scm-config", scm, "revoke", profile, "--reason", "superseded", "--yes"))
    assert (row["action"], row["result"], row["vservers"]) == ("revoke", "ok", ["vs_shop_https"])
    assert row["serial"] == enrolled["serial"]
    assert "still installed as lb-profile and bound to vs_shop_https" in row["message"]


def test_status_on_a_fresh_appliance_shows_what_it_serves(
    world: Sandbox, cli: Cli, state_dir: Path, tmp_path: Path
) -> None:
    scm = _fast_scm(world)
    enrolled = _row(cli("--json", "--scm-config", scm, "enroll", _ec_profile(world)))
    assert enrolled["serial"]
    # the sandbox restarted: a fresh appliance, same profile name and certkey, the journal kept
    with Sandbox(tmp_path / "fresh") as fresh:
        res = cli("--json", "--scm-config", scm, "status", _ec_profile(fresh))
        assert res.code == 5, res.output
        row = _row(res)
        assert (row["serial"], row["expires"], row["days_left"], row["vservers"]) == (None, None, None, [])
        assert row["details"]["issued_serial"] == enrolled["serial"]
        assert row["details"]["next"] == "redeploy"
        assert row["message"] == (
            f"the journal's certificate (order {enrolled['order_id']}, serial {enrolled['serial']}) is not "
            "on the appliance (it has no certkey lb-profile)"
        )
        table = cli("--scm-config", scm, "status", fresh.profile_path("lb-profile"))
        line = r"^lb-profile\s+status\s+attention\s+\S+\s+-\s+-\s+lb-profile\s+-\s*$"
        assert re.search(line, table.out, re.M), table.out
        assert f"issued serial: {enrolled['serial']}" in table.out


def test_superseded_keys_are_removed_after_a_saved_deployment(kit: AgentKit) -> None:
    data = yaml.safe_load(kit.world.profile_path("lb-profile").read_text(encoding="utf-8"))
    ecdsa = {**data["certificate"], "key_type": "ECDSA", "curve": "P-256", "key_size": None}
    profile = kit.profile(certificate=ecdsa)
    keys_dir = kit.store.root / "keys" / profile.name
    agent = kit.agent
    assert [o.result for o in agent().enroll([profile])] == ["ok"]
    first = kit.store.load(profile.name).current
    assert first is not None
    issued = [first]
    for _ in range(4):
        assert [o.result for o in agent().renew([profile])] == ["ok"]
        state = kit.store.load(profile.name)
        assert state.current is not None and state.deployed is not None and state.deployed.saved
        issued.append(state.current)
        on_disk = sorted(str(p) for p in keys_dir.glob("*.key.pem"))
        # the current key and the previous certificate's (for a rollback), nothing older
        assert on_disk == sorted([issued[-1].key_ref, issued[-2].key_ref]), on_disk
        assert state.previous_key_ref == issued[-2].key_ref
    assert len(kit.sim.orders) == 5
    events = [e for e in kit.store.load(profile.name).history if e["event"] == "removed-keys"]
    assert [len(e["files"]) for e in events] == [1, 1, 1]  # from the second renewal on, one key each time


def test_the_key_of_a_declined_order_is_removed_at_once(
    world: Sandbox, cli: Cli, state_dir: Path, tmp_path: Path
) -> None:
    profile = _ec_profile(world)
    scm = _fast_scm(world)
    world.scm.set_defaults(mode="declined")
    res = cli("--scm-config", scm, "enroll", profile)
    assert res.code == 1, res.output
    state = StateStore(state_dir).load("lb-profile")
    assert state.declined is not None and state.pending is None
    assert list((state_dir / "keys" / "lb-profile").glob("*.key.pem")) == []

    # run waits for a person, and says what to type once SCM is fixed; typed, it works
    blocked = _row(cli("--json", "--scm-config", scm, "run", profile))
    assert (blocked["action"], blocked["result"]) == ("blocked", "failed"), blocked
    hint = _hint(blocked["message"])
    assert shlex.split(hint)[-2:] == ["enroll", str(profile.absolute())]
    world.scm.set_defaults(mode="auto")
    typed = _type_into_a_shell(hint, tmp_path / "elsewhere")
    assert typed.returncode == 0, typed.stdout + typed.stderr
    assert re.search(r"^lb-profile\s+enroll\s+ok", typed.stdout, re.M), typed.stdout


def _csr_subject(kit: AgentKit) -> dict[str, str]:
    from cryptography.x509.oid import NameOID

    [order] = list(kit.sim.orders.values())
    names = {
        "C": NameOID.COUNTRY_NAME,
        "ST": NameOID.STATE_OR_PROVINCE_NAME,
        "O": NameOID.ORGANIZATION_NAME,
        "CN": NameOID.COMMON_NAME,
    }
    return {k: str(order.csr.subject.get_attributes_for_oid(oid)[0].value) for k, oid in names.items()}


def test_a_key_made_on_the_appliance_needs_no_subject_in_the_profile(kit: AgentKit) -> None:
    profile = kit.profile("appliance-key-profile")
    assert profile.certificate.key_location == "appliance" and profile.certificate.subject.country is None
    [outcome] = kit.agent().enroll([profile])
    assert (outcome.action, outcome.result) == ("enroll", "ok"), outcome.message
    lookups = [r for r in kit.world.scm.requests if "/organization/v1/" in r.path]
    if kit.api == "admin":  # from the SCM organization the order goes to (org_id 1234 in scm.yaml)
        assert _csr_subject(kit) == {"C": "US", "ST": "NJ", "O": "Sandbox Org", "CN": "onbox.sandbox.test"}
        assert [f"{r.method} {r.path}" for r in lookups] == ["GET /api/organization/v1/1234"]
    else:  # the REST Enrollment API cannot read organizations: the documented placeholders
        subject = _csr_subject(kit)
        assert subject == {
            "C": "XX",
            "ST": "Unspecified",
            "O": "onbox.sandbox.test",
            "CN": "onbox.sandbox.test",
        }
        assert lookups == []


def test_a_subject_the_profile_gives_is_used_as_given(kit: AgentKit) -> None:
    data = yaml.safe_load(kit.world.profile_path("appliance-key-profile").read_text(encoding="utf-8"))
    subject = {"organization": "Example Ltd", "state": "Lancashire", "country": "GB"}
    profile = kit.profile("appliance-key-profile", certificate={**data["certificate"], "subject": subject})
    [outcome] = kit.agent().enroll([profile])
    assert outcome.result == "ok", outcome.message
    assert _csr_subject(kit)["O"] == "Example Ltd" and _csr_subject(kit)["C"] == "GB"
    assert not [r for r in kit.world.scm.requests if "/organization/v1/" in r.path]


def test_verbose_ha_wording_says_what_the_node_answered(tmp_path: Path, cli: Cli) -> None:
    with Sandbox(tmp_path / "ha", ha_pairs=1, issue_after_polls=0) as world:
        scm = _fast_scm(world)
        alone = cli("-v", "--scm-config", scm, "status", world.profile_path("lb-profile"))
        assert "HA state Primary, no HA peer (a standalone node); writing to it" in alone.err, alone.err
        assert "HA state Standalone" not in alone.err
        pair = cli("-v", "--scm-config", scm, "status", world.profile_path(world.ha_profile_stem(0)))
        wording = r"HA state Primary, the primary node of an HA pair \(peer [0-9.]+\)"
        assert re.search(wording, pair.err), pair.err


def test_a_hint_starts_the_agent_the_way_it_was_started(
    world: Sandbox, state_dir: Path, tmp_path: Path
) -> None:
    """Started as ``python -m citrix_connector``, the hint does the same (a checkout or venv whose
    ``citrixagent`` is not on PATH): typed into a shell without it, it works."""
    scm = _fast_scm(world)
    profile = _ec_profile(world)
    env = {k: v for k, v in os.environ.items() if not k.startswith("CITRIXAGENT_")}
    env["PATH"] = "/usr/bin:/bin"  # no citrixagent here
    args = ["--accept-license", "--scm-config", str(scm), "--state-dir", str(state_dir), "--json"]
    started = subprocess.run(
        [sys.executable, "-m", "citrix_connector", *args, "renew", str(profile)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert started.returncode == 2, started.stdout + started.stderr
    message = json.loads(started.stdout)[0]["message"]
    found = re.search(r"`([^`]+ --state-dir [^`]+)`", message)
    assert found, message
    hint = found.group(1)
    assert shlex.split(hint)[:3] == [sys.executable, "-m", "citrix_connector"], hint
    typed = subprocess.run(
        hint, shell=True, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert typed.returncode == 0, typed.stdout + typed.stderr
    assert re.search(r"^lb-profile\s+enroll\s+ok", typed.stdout, re.M), typed.stdout


def test_invoked_program_forms(tmp_path: Path) -> None:
    from citrix_connector.hints import CommandHint, invoked_program

    script = tmp_path / "checkout" / "citrixagent.py"
    assert invoked_program(str(script)) == (sys.executable, str(script))
    main = tmp_path / "site" / "citrix_connector" / "__main__.py"
    assert invoked_program(str(main)) == (sys.executable, "-m", "citrix_connector")
    assert invoked_program("/usr/local/bin/citrixagent") == ("citrixagent",)
    assert invoked_program(str(tmp_path / "pytest" / "__main__.py")) == ("citrixagent",)
    hint = CommandHint(Path("scm.yaml"), tmp_path / "my state", (sys.executable, str(script)))
    parts = shlex.split(hint("run", "p.yaml"))
    assert parts == [
        sys.executable,
        str(script),
        "--scm-config",
        str(Path("scm.yaml").absolute()),
        "--state-dir",
        str(tmp_path / "my state"),
        "run",
        str(Path("p.yaml").absolute()),
    ]
