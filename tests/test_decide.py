"""`decide(profile, state, installed, now)` as a table: what `run` does for every kind of journal and
appliance, at an injected moment. Pure: no network, no clock, nothing changed in its inputs."""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import yaml

from citrix_connector.config import Profile, load_profile
from citrix_connector.lifecycle import decide
from citrix_connector.nitro.deploy import InstalledState
from citrix_connector.state import DeploymentRecord, IssuedRecord, OrderRecord, ProfileState

ISSUED = datetime(2026, 1, 1, tzinfo=timezone.utc)
EXPIRES = ISSUED + timedelta(days=365)
SERIAL = "4F2A9C"
VS = ("vs_a", "vs_b")


def _profile(tmp: Path, name: str, **overrides: Any) -> Profile:
    data: dict[str, Any] = {
        "name": name,
        "appliance": {"url": "https://127.0.0.1:9", "username": "u", "password": "p"},
        "vservers": [{"name": VS[0], "type": "lb"}, {"name": VS[1], "type": "cs", "sni": True}],
        "certificate": {
            "common_name": "shop.example.test",
            "subject_alt_names": ["shop.example.test", "www.shop.example.test"],
            "key_type": "RSA",
            "key_size": 2048,
        },
        "sectigo": {"org_id": 1, "cert_type": 2, "term": 365},
    }
    for key, value in overrides.items():
        data[key] = {**data.get(key, {}), **value} if isinstance(value, dict) else value
    path = tmp / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data))
    return load_profile(path)


@pytest.fixture(scope="module")
def profiles(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Profile]:
    tmp = tmp_path_factory.mktemp("decide")
    return {
        "plain": _profile(tmp, "plain"),
        "percent": _profile(tmp, "percent", renewal={"percent_of_lifetime": 50}),
        "names": _profile(
            tmp,
            "names",
            certificate={
                "subject_alt_names": ["shop.example.test", "www.shop.example.test", "m.example.test"]
            },
        ),
        "upper": _profile(
            tmp,
            "upper",
            certificate={
                "common_name": "SHOP.example.test",
                "subject_alt_names": ["WWW.shop.example.test", "shop.example.test", "www.shop.example.test"],
            },
        ),
        "ec": _profile(tmp, "ec", certificate={"key_type": "ECDSA", "curve": "P-256", "key_size": None}),
        "onbox": _profile(
            tmp,
            "onbox",
            certificate={
                "key_location": "appliance",
                "subject": {"country": "DE", "state": "Berlin", "organization": "Shop"},
            },
        ),
    }


def _order(kind: str = "renew", order_id: str = "77") -> OrderRecord:
    return OrderRecord(
        order_id=order_id,
        kind=kind,  # type: ignore[arg-type]
        api="admin",
        placed_at=ISSUED.isoformat(),
        key_location="local",
        key_ref="/k",
        csr_pem="",
        common_name="shop.example.test",
        sans=["shop.example.test", "www.shop.example.test"],
        key_desc="RSA 2048",
    )


def _current(**changes: Any) -> IssuedRecord:
    record = IssuedRecord(
        order_id="42",
        serial=SERIAL,
        not_before=ISSUED.isoformat(),
        not_after=EXPIRES.isoformat(),
        fingerprint_sha256="ab",
        common_name="shop.example.test",
        sans=["shop.example.test", "www.shop.example.test"],
        key_desc="RSA 2048",
        key_location="local",
        key_ref="/k",
        cert_pem="",
        chain_pem=[],
        issued_at=ISSUED.isoformat(),
    )
    return replace(record, **changes)


def _deployed(serial: str = SERIAL, saved: bool = True) -> DeploymentRecord:
    return DeploymentRecord(
        appliance="127.0.0.1:9",
        partition=None,
        certkey="plain",
        serial=serial,
        vservers=list(VS),
        deployed_at=ISSUED.isoformat(),
        cert_file="/nsconfig/ssl/plain.crt",
        key_file="/nsconfig/ssl/plain.key",
        saved=saved,
    )


def _state(**changes: Any) -> ProfileState:
    """A healthy journal: issued, deployed and saved; ``changes`` replace its fields."""
    base = ProfileState(profile="p", current=_current(), deployed=_deployed())
    return replace(base, **changes)


def _serving(serial: str | None = SERIAL, bound: tuple[str, ...] = VS) -> InstalledState:
    return InstalledState(serial=serial, not_after=EXPIRES, names=(), bound_vservers=list(bound))


def at(days: float) -> datetime:
    return ISSUED + timedelta(days=days)


@dataclass(frozen=True)
class Case:
    id: str
    state: Callable[[], ProfileState]
    installed: InstalledState | None
    now: datetime
    action: str
    reason: str  # a fragment of the reason
    profile: str = "plain"


CASES = [
    # nothing issued yet
    Case(
        "first run", lambda: ProfileState(profile="p"), None, at(0), "enroll", "no certificate enrolled yet"
    ),
    Case(
        "after a revoke",
        lambda: ProfileState(profile="p", revoked=[{"order_id": "42"}]),
        None,
        at(0),
        "enroll",
        "order 42) was revoked",
    ),
    # orders in flight come first, whatever else is true
    Case("pending", lambda: _state(pending=_order()), None, at(364), "collect", "SCM order 77 is pending"),
    Case(
        "pending beats declined",
        lambda: _state(pending=_order(), declined={"order_id": "9", "kind": "renew"}),
        None,
        at(0),
        "collect",
        "order 77 is pending",
    ),
    Case(
        "interrupted order",
        lambda: _state(ordering=_order("enroll", "")),
        None,
        at(0),
        "collect",
        "interrupted while placing an enroll order",
    ),
    Case(
        "declined blocks even a due renewal",
        lambda: _state(declined={"order_id": "9", "kind": "renew"}),
        _serving(),
        at(364),
        "blocked",
        "SCM declined or revoked renew order 9",
    ),
    # the profile changed
    Case("names changed", _state, _serving(), at(1), "replace", "names differ", profile="names"),
    Case(
        "names differ only in case",
        _state,
        _serving(),
        at(1),
        "nothing",
        "valid and installed",
        profile="upper",
    ),
    Case(
        "key type changed", _state, _serving(), at(1), "replace", "(ECDSA P-256, local) differs", profile="ec"
    ),
    Case(
        "key location changed", _state, _serving(), at(1), "replace", "(RSA 2048, appliance)", profile="onbox"
    ),
    Case(
        "a changed profile beats a missing deployment",
        lambda: _state(deployed=None),
        None,
        at(1),
        "replace",
        "names differ",
        profile="names",
    ),
    # an order an interrupted run was placing that SCM did not confirm: placed again
    Case("reorder a renew", lambda: _state(reorder="renew"), _serving(), at(1), "renew", "did not confirm"),
    Case("reorder a replace", lambda: _state(reorder="replace"), _serving(), at(1), "replace", "interrupted"),
    Case(
        "replaced by an order that cannot be found",
        lambda: _state(reorder="enroll"),
        _serving(),
        at(1),
        "enroll",
        "order 42 was replaced by an order that cannot be found",
    ),
    Case(
        "a changed profile beats a reorder of a renew",
        lambda: _state(reorder="renew"),
        _serving(),
        at(1),
        "replace",
        "names differ",
        profile="names",
    ),
    Case(
        "a lost replacement beats a changed profile",
        lambda: _state(reorder="enroll"),
        _serving(),
        at(1),
        "enroll",
        "cannot be found",
        profile="names",
    ),
    Case(
        "a pending order beats a reorder",
        lambda: _state(reorder="renew", pending=_order()),
        None,
        at(1),
        "collect",
        "pending",
    ),
    # renewal window (30 days before expiry by default)
    Case("31 days left", _state, _serving(), at(334), "nothing", "valid and installed"),
    Case("exactly 30 days left", _state, _serving(), at(335), "renew", "expires in 30 days"),
    Case("25 days left", _state, _serving(), at(340), "renew", "(renewal window 30 days)"),
    Case("expired", _state, _serving(), at(400), "renew", "expired 35 days ago"),
    Case("renewal beats redeploy", _state, None, at(340), "renew", "expires in 25 days"),
    # renewal by percent of lifetime (50 %)
    Case("49% of lifetime", _state, _serving(), at(178), "nothing", "valid", profile="percent"),
    Case(
        "51% of lifetime",
        _state,
        _serving(),
        at(187),
        "renew",
        "50% of the certificate's lifetime",
        "percent",
    ),
    Case("percent ignores the days window", _state, _serving(), at(340), "renew", "50%", profile="percent"),
    # what the appliance serves
    Case("appliance not read", _state, None, at(1), "redeploy", "the appliance was not read"),
    Case(
        "certkey missing on the appliance",
        _state,
        _serving(serial=None),
        at(1),
        "redeploy",
        "the journal's certificate (order 42, serial 4F2A9C) is not on the appliance "
        "(it has no certkey plain)",
    ),
    Case(
        "another certificate installed",
        _state,
        _serving(serial="99"),
        at(1),
        "redeploy",
        "the appliance serves serial 99 under certkey plain, not the journal's certificate",
    ),
    Case(
        "one vserver not bound",
        _state,
        _serving(bound=VS[:1]),
        at(1),
        "redeploy",
        f"is installed but not bound to {VS[1]}",
    ),
    Case("bound to more is fine", _state, _serving(bound=(*VS, "vs_c")), at(1), "nothing", "valid"),
    # what the journal says about the deployment
    Case(
        "installed but never journalled",
        lambda: _state(deployed=None),
        _serving(),
        at(1),
        "redeploy",
        "no saved deployment",
    ),
    Case(
        "journal deployed an older serial",
        lambda: _state(deployed=_deployed(serial="1")),
        _serving(),
        at(1),
        "redeploy",
        "no saved deployment",
    ),
    Case(
        "deployed, save lost",
        lambda: _state(deployed=_deployed(saved=False)),
        _serving(),
        at(1),
        "redeploy",
        "was not saved",
    ),
    Case("all well", _state, _serving(), at(1), "nothing", "certificate valid and installed"),
    # adopted certificates (installed by someone else; the key is on the appliance only)
    Case(
        "adopted, valid",
        lambda: _state(current=_current(key_ref="adopted:/nsconfig/ssl/x.key")),
        _serving(),
        at(1),
        "nothing",
        "valid and installed",
    ),
    Case(
        "adopted with an SCM order: renewed",
        lambda: _state(current=_current(key_ref="adopted:/nsconfig/ssl/x.key")),
        _serving(),
        at(340),
        "renew",
        "expires in 25 days",
    ),
    Case(
        "adopted from another CA: a new order",
        lambda: _state(current=_current(order_id="", key_ref="adopted:/nsconfig/ssl/x.key")),
        _serving(),
        at(340),
        "enroll",
        "no SCM order to renew (adopted)",
    ),
    Case(
        "adopted from another CA, profile changed: a new order",
        lambda: _state(current=_current(order_id="", key_ref="adopted:/k")),
        _serving(),
        at(1),
        "enroll",
        "no SCM order to replace",
        profile="ec",
    ),
    Case(
        "adopted, unbound: never installed again, ordered anew",
        lambda: _state(current=_current(key_ref="adopted:/k")),
        _serving(bound=VS[:1]),
        at(1),
        "renew",
        "an adopted certificate",
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_decide(case: Case, profiles: dict[str, Profile]) -> None:
    state = case.state()
    before = copy.deepcopy(state)
    decision = decide(profiles[case.profile], state, case.installed, case.now)
    assert (decision.action, case.reason in decision.reason) == (case.action, True), decision.reason
    assert state == before, "decide changed the journal"
    assert decide(profiles[case.profile], state, case.installed, case.now) == decision  # no hidden input
