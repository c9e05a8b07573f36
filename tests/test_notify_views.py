"""The views notifications and metrics are built from (issue 12): each row carries what its step saw
in the journal, so a run does not read every journal again after the rows; a row whose step ended
before reading the journal gets it read."""

from __future__ import annotations

from pathlib import Path

from citrix_connector.config import load_profile, load_scm_config
from citrix_connector.lifecycle import Agent
from citrix_connector.notify.views import build_views, parse_time
from citrix_connector.sandbox.world import Sandbox
from citrix_connector.state import ProfileState, StateStore


class _NoReads(StateStore):
    def load(self, profile: str) -> ProfileState:
        raise AssertionError(f"the journal of {profile} was read again")


def test_views_come_from_the_rows_without_reading_the_journals_again(world: Sandbox, tmp_path: Path) -> None:
    store = StateStore(tmp_path / "state")
    agent = Agent(load_scm_config(world.scm_yaml), store, sleep=lambda _s: None)
    profile = load_profile(world.profile_path("lb-profile"))
    (outcome,) = agent.run([profile])
    assert outcome.result == "ok", outcome.message
    assert "journal" not in outcome.to_dict()  # not part of the public row (--json)
    current = store.load("lb-profile").current
    assert current is not None

    (view,) = build_views([outcome], {"lb-profile": profile}, _NoReads(tmp_path / "state"))
    assert view.serial == current.serial
    assert view.not_after == parse_time(current.not_after)
    assert view.renew_at is not None and view.renew_at < view.not_after
    assert view.pending_order is None and view.declined is None

    # a row without journal facts (a step that ended before reading it): read from the journal
    bare = type(outcome)(outcome.profile, outcome.action, outcome.result, appliance=outcome.appliance)
    (read,) = build_views([bare], {"lb-profile": profile}, store)
    assert read.serial == current.serial and read.not_after == view.not_after
