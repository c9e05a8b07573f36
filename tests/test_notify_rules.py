"""When a notification is sent, and how often: every trigger, dedupe across runs, resolved, channel
failures, secrets. The notifier runs for real over a state directory with an injected clock; only the
channel's transport is a recorder here (the real SMTP and HTTPS channels: test_notify_channels.py)."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from citrix_connector.errors import NotifyError
from citrix_connector.notify.conditions import ProfileView, Streaks, Thresholds, conditions_for, days_left
from citrix_connector.notify.memory import load_memory, memory_path
from citrix_connector.notify.render import Message, RunContext
from citrix_connector.notify.service import Notifier
from citrix_connector.notify.settings import NotifySettings, Settings
from citrix_connector.redaction import Scrubber

T0 = datetime(2027, 3, 1, 6, 0, tzinfo=timezone.utc)
SECRET = "hunter2-smtp-secret"


class Recorder:
    """Stands in for the network transport; can be told to fail like a refused SMTP login."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, Message]] = []
        self.fail: set[str] = set()

    def __call__(self, channel: Any, message: Message, run_id: str) -> None:
        if channel.channel_id in self.fail:
            raise NotifyError(f"{channel.channel_id}: 535 authentication failed")
        self.sent.append((channel.channel_id, message))

    def texts(self, channel: str = "email") -> list[str]:
        return [m.text for c, m in self.sent if c == channel]


def settings(**notify: Any) -> NotifySettings:
    data: dict[str, Any] = {
        "email": {
            "host": "127.0.0.1",
            "sender": "agent@example.test",
            "recipients": ["a@example.test"],
            "username": "agent",
            "password": SECRET,
        },
        "webhooks": [{"name": "chat", "url": "https://127.0.0.1:9/hooks/x"}],
    }
    data.update(notify)
    return Settings.model_validate({"notify": data}).notify


def view(name: str = "shop", result: str = "nothing", **kw: Any) -> ProfileView:
    base = ProfileView(
        profile=name,
        source=f"/etc/citrixagent/{name}.yaml",
        appliance="adc1.example.test",
        vservers=("vs_shop",),
        action="nothing",
        result=result,
        message="certificate valid and installed",
        serial="0A1B",
        not_after=T0 + timedelta(days=200),
        renew_at=T0 + timedelta(days=170),
    )
    return replace(base, **kw)


class Harness:
    def __init__(self, state: Path, notify: NotifySettings) -> None:
        self.state = state
        self.recorder = Recorder()
        self.notify = notify
        self.now = T0
        self.runs = 0
        scrub = Scrubber()
        scrub.add([SECRET])
        self.scrub = scrub

    def run(self, *views: ProfileView) -> list[Any]:
        self.runs += 1
        notifier = Notifier(
            self.notify,
            self.state,
            context=RunContext(f"run{self.runs}", "host1", self.now.isoformat()),
            scrub=self.scrub,
            command_for=lambda sub, src: f"citrixagent {sub} {src}",
            sender=self.recorder,
        )
        reports = notifier.after_run(list(views), self.now)
        self.now += timedelta(minutes=15)  # cron every 15 minutes
        return reports


@pytest.fixture
def h(tmp_path: Path) -> Harness:
    return Harness(tmp_path / "state", settings())


# ------------------------------------------------------------------------------------ triggers


def test_nothing_to_say_sends_nothing(h: Harness) -> None:
    for _ in range(3):
        h.run(view())
    assert h.recorder.sent == []
    assert memory_path(h.state).is_file()  # the streaks are remembered all the same


def test_failure_is_sent_once_per_streak_then_resolved(h: Harness) -> None:
    failed = view(
        result="failed", message="SCM refused the order: invalid term", remote_code="SCM code -62, HTTP 400"
    )
    for _ in range(96):  # a day of a 15-minute cron job
        h.run(failed)
    mails = h.recorder.texts()
    assert len(mails) == 1 and len(h.recorder.texts("webhook:chat")) == 1
    text = mails[0]
    assert "FAILED: shop: failed" in text
    assert "SCM code -62, HTTP 400" in text and "adc1.example.test" in text and "vs_shop" in text
    assert "next:      the next scheduled run tries again" in text
    assert "by hand:   citrixagent run /etc/citrixagent/shop.yaml" in text
    h.run(view(action="renew", result="ok", message="renewed"))
    assert len(h.recorder.texts()) == 2
    assert "RESOLVED: shop: failed" in h.recorder.texts()[1]
    assert "renew ok" in h.recorder.texts()[1]
    h.run(view())
    assert len(h.recorder.texts()) == 2
    h.run(failed)  # a new streak: sent again
    assert len(h.recorder.texts()) == 3


def test_failed_after_runs_waits_for_the_streak(tmp_path: Path) -> None:
    h = Harness(tmp_path, settings(failed_after_runs=3))
    failed = view(result="failed", message="appliance unreachable")
    h.run(failed)
    h.run(failed)
    assert h.recorder.sent == []
    h.run(failed)
    assert len(h.recorder.texts()) == 1
    assert "failed on 3 runs in a row" in h.recorder.texts()[0]
    h.run(view())  # one good run clears the streak
    assert "RESOLVED" in h.recorder.texts()[-1]
    h.run(failed)
    assert len(h.recorder.texts()) == 2  # streak 1 of 3 again: quiet


def test_blocked_is_sent_with_the_command_for_the_declined_kind(h: Harness) -> None:
    declined = {"order_id": "4711", "kind": "renew", "at": "2027-03-01T05:00:00+00:00", "message": "declined"}
    blocked = view(action="blocked", result="failed", message="SCM declined", declined=declined)
    h.run(blocked)
    h.run(blocked)
    (text,) = h.recorder.texts()
    assert "BLOCKED: shop: blocked: SCM declined renew order 4711" in text
    assert "by hand:   citrixagent renew /etc/citrixagent/shop.yaml" in text
    assert "scheduled runs do not order again" in text


def test_failure_turning_into_blocked_is_one_new_message_not_a_resolve(h: Harness) -> None:
    h.run(view(result="failed", message="SCM: order declined"))
    declined = {"order_id": "9", "kind": "enroll", "message": "declined"}
    h.run(view(action="blocked", result="failed", declined=declined))
    texts = h.recorder.texts()
    assert len(texts) == 2 and "BLOCKED" in texts[1] and "RESOLVED" not in texts[1]


def test_pending_past_the_deadline_on_several_runs(h: Harness) -> None:
    pending = view(
        action="collect", result="pending", message="not issued yet", pending_order="777", order_id="777"
    )
    h.run(pending)
    h.run(pending)
    assert h.recorder.sent == []  # default: 3 runs in a row
    h.run(pending)
    h.run(pending)
    (text,) = h.recorder.texts()
    assert "PENDING: shop: SCM order 777 still pending after 3 runs in a row" in text
    assert "nothing is ordered again" in text
    h.run(view(action="collect", result="ok", message="issued and installed"))
    assert "RESOLVED: shop: SCM order 777" in h.recorder.texts()[1]


@pytest.mark.parametrize(
    ("days", "level"),
    [(31, None), (30, "30"), (20, "30"), (14, "14"), (8, "14"), (7, "7"), (1, "1"), (0, "1")],
)
def test_each_expiry_threshold_level(days: int, level: str | None) -> None:
    v = view(not_after=T0 + timedelta(days=days, hours=1), renew_at=T0 - timedelta(days=1))
    found = conditions_for(v, Streaks(), T0, Thresholds(), lambda s, p: "")
    assert [c.level for c in found] == ([level] if level else [])


def test_expiry_warns_once_per_threshold_across_runs_with_an_injected_clock(h: Harness) -> None:
    not_after = T0 + timedelta(days=31)
    stuck = view(not_after=not_after, renew_at=not_after - timedelta(days=40))
    sent_days: list[int] = []
    for _ in range(33 * 4):  # a month of runs every 6 hours; the certificate is never renewed
        before = len(h.recorder.texts())
        h.run(stuck)
        if len(h.recorder.texts()) > before:
            sent_days.append(days_left(not_after, h.now - timedelta(minutes=15)))
        h.now += timedelta(hours=6) - timedelta(minutes=15)
    assert sent_days == [30, 14, 7, 1, -1]  # the last one: EXPIRED
    texts = h.recorder.texts()
    assert "expires in 30 days" in texts[0] and "renewal window is open" in texts[0]
    assert "certificate EXPIRED" in texts[-1]


def test_expiry_is_quiet_while_an_order_is_pending_and_resolves_after_renewal(h: Harness) -> None:
    soon = view(not_after=T0 + timedelta(days=10), renew_at=T0 - timedelta(days=20))
    h.run(soon)
    assert "expires in 10 days" in h.recorder.texts()[0]
    h.run(replace(soon, action="renew", result="pending", pending_order="55"))
    assert "RESOLVED" in h.recorder.texts()[-1]  # a renewal is under way
    h.run(view(action="collect", result="ok", not_after=T0 + timedelta(days=365)))
    assert len(h.recorder.texts()) == 2


def test_expiry_before_the_renewal_window_says_when_the_agent_renews(h: Harness) -> None:
    v = view(not_after=T0 + timedelta(days=29), renew_at=T0 + timedelta(days=15))
    h.run(v)
    assert "the agent renews it from 2027-03-16" in h.recorder.texts()[0]


def test_configured_thresholds(tmp_path: Path) -> None:
    h = Harness(tmp_path, settings(expiry_warning_days=[3, 60]))
    h.run(view(not_after=T0 + timedelta(days=45)))
    h.run(view(not_after=T0 + timedelta(days=20)))
    h.run(view(not_after=T0 + timedelta(days=2)))
    assert len(h.recorder.texts()) == 2


def test_one_message_per_run_aggregates_all_profiles(h: Harness) -> None:
    h.run(
        view("a", result="failed", message="boom"),
        view("b", not_after=T0 + timedelta(days=5)),
        view("c"),
    )
    (text,) = h.recorder.texts()
    assert "FAILED: a: failed" in text and "EXPIRY: b: certificate expires in 5 days" in text
    assert "c:" not in text
    (_, message), *_ = h.recorder.sent
    assert message.subject.startswith("[citrixagent] 2 problems")
    webhook = [m for c, m in h.recorder.sent if c == "webhook:chat"][0]
    assert [p["profile"] for p in webhook.payload["problems"]] == ["a", "b"]
    assert "**FAILED**" in webhook.payload["text"]


def test_profile_left_out_of_a_run_keeps_its_conditions(h: Harness) -> None:
    h.run(view("a", result="failed", message="x"), view("b"))
    h.run(view("b"))  # `a` not in this run: not resolved
    assert len(h.recorder.texts()) == 1
    h.run(view("a"))
    assert "RESOLVED: a" in h.recorder.texts()[-1]


def test_resolved_messages_can_be_switched_off(tmp_path: Path) -> None:
    h = Harness(tmp_path, settings(resolved=False))
    h.run(view(result="failed", message="x"))
    h.run(view())
    assert len(h.recorder.texts()) == 1


def test_summary_of_what_was_done(tmp_path: Path) -> None:
    h = Harness(tmp_path, settings(summary=True))
    h.run(view(action="renew", result="ok", serial="BEEF"), view("other"))
    (text,) = h.recorder.texts()
    assert "Done in this run:" in text and "shop: renew ok: serial BEEF" in text
    h.run(view())
    assert len(h.recorder.texts()) == 1  # nothing done, nothing sent


# ------------------------------------------------------------------------------ channel failures


def test_a_failed_channel_is_retried_next_run_and_the_other_is_not_repeated(h: Harness) -> None:
    h.recorder.fail.add("email")
    failed = view(result="failed", message="boom")
    reports = h.run(failed)
    assert [(r.channel, r.ok) for r in reports] == [("email", False), ("webhook:chat", True)]
    assert "535" in reports[0].detail
    assert h.recorder.texts() == [] and len(h.recorder.texts("webhook:chat")) == 1
    memory = load_memory(h.state)
    assert memory.channels["email"].last_error and memory.channels["webhook:chat"].last_error is None
    h.recorder.fail.clear()
    h.run(failed)
    assert len(h.recorder.texts()) == 1 and "FAILED: shop" in h.recorder.texts()[0]
    assert len(h.recorder.texts("webhook:chat")) == 1  # told once already
    h.run(failed)
    assert len(h.recorder.texts()) == 1


def test_summary_items_wait_for_a_failed_channel(tmp_path: Path) -> None:
    h = Harness(tmp_path, settings(summary=True))
    h.recorder.fail.add("email")
    h.run(view(action="enroll", result="ok"))
    h.recorder.fail.clear()
    h.run(view())
    assert len(h.recorder.texts()) == 1 and "shop: enroll ok" in h.recorder.texts()[0]


def test_a_condition_that_cleared_before_the_channel_recovered_is_not_sent(h: Harness) -> None:
    h.recorder.fail.add("email")
    h.run(view(result="failed", message="boom"))
    h.recorder.fail.clear()
    h.run(view())
    assert h.recorder.texts() == []  # never told, so no "resolved" either
    assert "RESOLVED" in h.recorder.texts("webhook:chat")[-1]


def test_a_broken_sender_never_raises(h: Harness) -> None:
    def explode(channel: Any, message: Message, run_id: str) -> None:
        raise RuntimeError("bug")

    h.recorder = explode  # type: ignore[assignment]
    reports = h.run(view(result="failed", message="x"))
    assert all(not r.ok and "internal error" in r.detail for r in reports)


def test_unreadable_memory_starts_over(h: Harness) -> None:
    h.run(view(result="failed", message="x"))
    memory_path(h.state).write_text("{not json", encoding="utf-8")
    h.run(view(result="failed", message="x"))
    assert len(h.recorder.texts()) == 2  # worst case: one repeated message, never a failed run


def test_removed_channel_is_forgotten_and_a_new_one_hears_current_conditions(tmp_path: Path) -> None:
    h = Harness(tmp_path, settings())
    h.run(view(result="failed", message="x"))
    h.notify = settings(webhooks=[{"name": "pager", "url": "https://127.0.0.1:9/p"}])
    h.run(view(result="failed", message="x"))
    assert len(h.recorder.texts("webhook:pager")) == 1
    assert set(load_memory(tmp_path).channels) == {"email", "webhook:pager"}


# ------------------------------------------------------------------------------------- secrets


def test_secrets_never_reach_a_message(h: Harness) -> None:
    leaky = view(result="failed", message=f"login failed with password {SECRET}")
    h.run(leaky)
    for _, message in h.recorder.sent:
        blob = message.subject + message.text + repr(message.payload)
        assert SECRET not in blob
        assert "***" in blob


def test_settings_repr_hides_secrets() -> None:
    s = settings()
    assert SECRET not in repr(s) and SECRET not in str(s.model_dump())
    assert SECRET in Settings(notify=s).secrets()
