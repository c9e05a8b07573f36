"""Round trips per deployed profile, counted from the simulators' request logs (issue 12).

A deployment asks the appliance only what the session's bulk reads do not already answer: per
profile the writes (one bulk upload of certificate and key, add or update, link, one bind per
vserver), one read of the certkey after an in-place update, and the verification read-back (the
certkey and its bindings, one read each whatever the number of vservers). Everything else (login,
HA role, the bulk reads, the vservers' preflight, the SSL directory listing, the issuing CA, the
save, logout) is paid once per appliance.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pytest

from citrix_connector.config import load_profile, load_scm_config
from citrix_connector.lifecycle import Agent
from citrix_connector.sandbox.httpserver import RecordedRequest
from citrix_connector.sandbox.world import Sandbox
from citrix_connector.state import StateStore

SINGLE = ("rt0", "rt1", "rt2", "rt3")  # one lb vserver each
DOUBLE = "rt4"  # an lb vserver and an SNI one
NAMES = (*SINGLE, DOUBLE)
_FILTER = re.compile(r"certkeyname:([^,&]+)")


@pytest.fixture
def fleet(tmp_path: Path) -> Iterator[tuple[Sandbox, list[Path]]]:
    with Sandbox(tmp_path / "sandbox", issue_after_polls=0) as world:
        ns = world.netscaler
        paths = []
        for name in NAMES:
            vservers: list[tuple[str, str, bool]] = [(f"vs_{name}", "lb", False)]
            ns.add_vserver(f"vs_{name}", "lb")
            if name == DOUBLE:
                ns.add_vserver(f"vs_{name}_sni", "lb", snienable=True)
                vservers.append((f"vs_{name}_sni", "lb", True))
            data = world.profile_dict(
                name, vservers, f"{name}.example.com", certificate={"key_type": "ECDSA"}
            )
            paths.append(world.write_profile(name, data))
        yield world, paths


def _owner(r: RecordedRequest) -> str | None:
    """The profile a NITRO request is about (its certkey, files or filter), None when shared."""
    body = r.json() if r.body else None
    resource = r.path.split("/nitro/v1/config/", 1)[-1].split("/", 1)[0]
    obj: Any = body.get(resource, {}) if isinstance(body, dict) else {}
    obj = obj[0] if isinstance(obj, list) and obj else obj  # a bulk upload: the files share a stem
    obj = obj if isinstance(obj, dict) else {}
    found = _FILTER.search(unquote(r.query))
    candidates = [
        r.path.rsplit("/", 1)[-1].split("-", 1)[0],
        str(obj.get("certkey") or ""),
        str(obj.get("certkeyname") or ""),
        str(obj.get("filename") or "").split("-", 1)[0],
        found.group(1) if found else "",
    ]
    owners = {c for c in candidates if c in NAMES}
    assert len(owners) <= 1, (r.method, r.path, owners)
    return owners.pop() if owners else None


def _kind(r: RecordedRequest) -> str:
    resource = r.path.split("/nitro/v1/config/", 1)[-1].split("/", 1)[0]
    action = re.search(r"action=(\w+)", r.query)
    return f"{r.method} {resource}" + (f"?{action.group(1)}" if action else "")


def _split(requests: list[RecordedRequest]) -> tuple[dict[str, Counter[str]], Counter[str]]:
    per: dict[str, Counter[str]] = {name: Counter() for name in NAMES}
    shared: Counter[str] = Counter()
    for r in requests:
        if not r.path.startswith("/nitro/"):
            continue
        owner = _owner(r)
        (per[owner] if owner else shared)[_kind(r)] += 1
    return per, shared


def _scm_kind(r: RecordedRequest) -> str:
    return r.path.removeprefix("/api/ssl/v1").strip("/").split("/", 1)[0] or "list"


def test_round_trips_per_deployed_profile(fleet: tuple[Sandbox, list[Path]], tmp_path: Path) -> None:
    world, paths = fleet
    agent = Agent(load_scm_config(world.scm_yaml), StateStore(tmp_path / "state"), sleep=lambda _s: None)
    profiles = [load_profile(p) for p in paths]
    scm_seen = len(world.scm.requests)
    outcomes = agent.run(profiles)
    assert {o.result for o in outcomes} == {"ok"}, [o.message for o in outcomes]
    per, shared = _split(world.netscaler.requests)

    first_install = Counter(
        {
            "POST systemfile": 1,  # certificate and key under fresh names, one bulk upload
            "POST sslcertkey": 1,  # add
            "POST sslcertkey?link": 1,  # to the issuing CA's certkey
            "PUT sslvserver_sslcertkey_binding": 1,
            "GET sslcertkey": 1,  # verification: serial and link
            "GET sslvserver_sslcertkey_binding": 1,  # verification: its bindings, SNI flags included
        }
    )
    for name in SINGLE:
        assert per[name] == first_install, (name, per[name])
    assert per[DOUBLE] == first_install + Counter({"PUT sslvserver_sslcertkey_binding": 1})
    # once per appliance, whatever the number of profiles: no per-profile preflight, no second
    # preflight before the install, no per-profile GET of the certkey, its CA or its vservers' bindings
    assert shared == Counter(
        {
            "POST login": 1,
            "GET hanode": 1,
            "GET sslcertkey": 2,  # the bulk read; the CA certkey read back after adding it
            "GET sslvserver_sslcertkey_binding": 1,  # bulk
            "GET lbvserver": 1,  # every vserver's preflight
            "GET sslvserver": 1,  # SNI flags (one profile binds as SNI)
            "GET systemfile": 1,  # the SSL directory, for fresh file names
            "POST systemfile": 1,  # the issuing CA
            "POST sslcertkey": 1,
            "POST nsconfig?save": 1,
            "POST logout": 1,
        }
    ), shared
    scm = world.scm.requests[scm_seen:]
    # the order and its collection: a new order is found by its tag after a crash, so no list first
    assert Counter(_scm_kind(r) for r in scm) == Counter(enroll=len(NAMES), collect=len(NAMES)), [
        r.path for r in scm
    ]
    # the issue's budget: <= 10 round trips per deployed profile, +1 per extra vserver
    for name in NAMES:
        extra = 1 if name == DOUBLE else 0
        assert sum(per[name].values()) + 2 <= 10 + extra

    # a renewal updates in place: bindings survive (no bind), one read after the update (it may
    # drop the link) serves as the verification's certkey read while the link held
    seen, scm_seen = len(world.netscaler.requests), len(world.scm.requests)
    renewed = agent.replace(profiles)
    assert {o.result for o in renewed} == {"ok"}, [o.message for o in renewed]
    per, shared = _split(world.netscaler.requests[seen:])
    in_place = Counter(
        {
            "POST systemfile": 1,
            "POST sslcertkey?update": 1,
            "GET sslcertkey": 1,
            "GET sslvserver_sslcertkey_binding": 1,
            "DELETE systemfile": 2,  # the superseded files, after the save
        }
    )
    for name in NAMES:
        assert per[name] == in_place, (name, per[name])
    assert shared == Counter(
        {
            "POST login": 1,
            "GET hanode": 1,
            "GET sslcertkey": 2,  # the bulk read; after the save, what still refers to old files
            "GET sslvserver_sslcertkey_binding": 1,
            "GET lbvserver": 1,
            "GET sslvserver": 1,
            "GET systemfile": 1,
            "POST nsconfig?save": 1,
            "POST logout": 1,
        }
    ), shared
    assert len(world.scm.requests[scm_seen:]) <= 4 * len(NAMES)


def test_a_failed_deployment_reads_the_appliance_again(
    fleet: tuple[Sandbox, list[Path]], tmp_path: Path
) -> None:
    """After a deployment failed half-way the session's view is not trusted: the next profile's
    questions are read from the appliance again, and that profile still deploys."""
    world, paths = fleet
    ns = world.netscaler
    agent = Agent(load_scm_config(world.scm_yaml), StateStore(tmp_path / "state"), sleep=lambda _s: None)
    profiles = [load_profile(p) for p in paths[:3]]
    ns.add_fault(
        r"/nitro/v1/config/sslvserver_sslcertkey_binding$",
        method="PUT",
        status=599,
        json_body={"errorcode": 1097, "message": "Invalid argument value [vservername]", "severity": "ERROR"},
        times=1,
    )
    outcomes = agent.run(profiles)
    results = [o.result for o in outcomes]
    assert results.count("failed") == 1 and results.count("ok") == 2, [o.message for o in outcomes]
    bulk = [r for r in ns.requests if r.method == "GET" and r.path.endswith("/config/sslcertkey")]
    assert len(bulk) == 2  # the first read, and again after the failure
