"""Notifications, metrics, the Nagios check and the JSON log, end to end through the CLI against the
sandbox: a real SMTP server (STARTTLS, sandbox CA, login) and a real HTTPS webhook receiver."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from citrix_connector.sandbox.notifysinks import SMTP_PASSWORD, WEBHOOK_TOKEN, NotifySinks
from citrix_connector.sandbox.world import ADC_PASSWORD, SCM_PASSWORD, Sandbox


@pytest.fixture
def sinks(world: Sandbox) -> Iterator[NotifySinks]:
    with NotifySinks(world) as s:
        yield s


def broken_profile(world: Sandbox, name: str = "broken") -> Path:
    data = world.profile_dict(name, [("vs_sni_https", "lb", True)], "broken.sandbox.test")
    # another user: profiles of one appliance user share its session, this one gets its own (refused)
    data["appliance"]["username"] = "nobody"
    data["appliance"]["password"] = "not-the-password"
    return world.write_profile(name, data)


def fixed_profile(world: Sandbox, name: str = "broken") -> Path:
    return world.write_profile(
        name, world.profile_dict(name, [("vs_sni_https", "lb", True)], "broken.sandbox.test")
    )


def run(cli: Any, world: Sandbox, sinks: NotifySinks, *profiles: Path, extra: tuple[str, ...] = ()) -> Any:
    return cli("--scm-config", world.scm_yaml, "--settings", sinks.settings_path, *extra, "run", *profiles)


def test_failure_mail_and_webhook_once_then_resolved(world: Sandbox, sinks: NotifySinks, cli: Any) -> None:
    profile = broken_profile(world)
    first = run(cli, world, sinks, profile)
    assert first.code == 1, first.output
    (mail,) = sinks.mail.messages
    assert mail.recipients == ("pki-team@sandbox.test", "oncall@sandbox.test")
    assert mail.tls and mail.login == "citrixagent-smtp"
    assert mail.subject.startswith("[citrixagent] 1 problem: broken: failed")
    assert "NITRO code 354, HTTP 401" in mail.text
    assert "vservers: vs_sni_https" in mail.text
    assert "--state-dir " in mail.text and f"run {profile}" in mail.text
    (payload,) = sinks.webhook.payloads
    (problem,) = payload["problems"]
    assert (problem["kind"], problem["profile"], problem["remote_code"]) == (
        "failed",
        "broken",
        "NITRO code 354, HTTP 401",
    )
    assert "**FAILED**" in payload["text"]

    for _ in range(3):  # cron keeps running while it stays broken: nothing is sent twice
        assert run(cli, world, sinks, profile).code == 1
    assert len(sinks.mail.messages) == 1 and len(sinks.webhook.payloads) == 1

    fixed_profile(world)
    assert run(cli, world, sinks, profile).code == 0
    assert len(sinks.mail.messages) == 2
    resolved = sinks.mail.messages[1]
    assert "RESOLVED: broken: failed" in resolved.text and "enroll ok" in resolved.text
    assert sinks.webhook.payloads[1]["resolved"][0]["profile"] == "broken"
    assert run(cli, world, sinks, profile).code == 0
    assert len(sinks.mail.messages) == 2

    for message in sinks.mail.messages:
        for secret in ("not-the-password", ADC_PASSWORD, SCM_PASSWORD, SMTP_PASSWORD, WEBHOOK_TOKEN):
            assert secret.encode() not in message.raw
    assert all(WEBHOOK_TOKEN not in json.dumps(p) for p in sinks.webhook.payloads)


def test_wrong_smtp_password_is_logged_and_the_exit_code_is_unchanged(
    world: Sandbox, sinks: NotifySinks, cli: Any
) -> None:
    settings = yaml.safe_load(sinks.settings_path.read_text())
    settings["notify"]["email"]["password"] = "${WRONG_SMTP_PASSWORD}"
    settings["notify"]["summary"] = True
    del settings["notify"]["webhooks"]
    sinks.settings_path.write_text(yaml.safe_dump(settings))
    import os

    os.environ["WRONG_SMTP_PASSWORD"] = "definitely-wrong-9"
    try:
        res = run(cli, world, sinks, world.profile_path("lb-profile"))
    finally:
        del os.environ["WRONG_SMTP_PASSWORD"]
    assert res.code == 0, res.output  # the enrollment worked; the mail did not
    assert "notification through email failed" in res.err
    assert "refused the login of citrixagent-smtp: 535" in res.err
    assert "definitely-wrong-9" not in res.output
    assert sinks.mail.messages == [] and sinks.mail.failed_logins >= 1
    assert json.loads((Path(os.environ["CITRIXAGENT_STATE_DIR"]) / "notify.json").read_text())["channels"][
        "email"
    ]["queued_info"], "the summary waits for the next run"


def test_webhook_answering_500_is_retried_on_the_next_run(
    world: Sandbox, sinks: NotifySinks, cli: Any
) -> None:
    sinks.webhook.add_fault("/hooks/", status=500, times=1)
    profile = broken_profile(world)
    res = run(cli, world, sinks, profile)
    assert res.code == 1
    assert "notification through webhook:chat failed" in res.err and "HTTP 500" in res.err
    assert sinks.webhook.payloads == [] and len(sinks.mail.messages) == 1
    assert run(cli, world, sinks, profile).code == 1
    (payload,) = sinks.webhook.payloads
    assert payload["problems"][0]["profile"] == "broken"
    assert len(sinks.mail.messages) == 1  # e-mail had it already
    assert [r.status for r in sinks.webhook.requests] == [500, 200]


def test_notify_test_reports_each_channel(world: Sandbox, sinks: NotifySinks, cli: Any) -> None:
    res = cli("--settings", sinks.settings_path, "notify", "test")
    assert res.code == 0, res.output
    assert "ok      email: sent to pki-team@sandbox.test, oncall@sandbox.test" in res.out
    assert "ok      webhook:chat" in res.out
    assert sinks.mail.messages[0].subject == "[citrixagent] test message"
    assert sinks.webhook.payloads[0]["test"] is True
    sinks.webhook.add_fault("/hooks/", status=503, times=1)
    res = cli("--settings", sinks.settings_path, "--json", "notify", "test")
    assert res.code == 1
    reports = {r["channel"]: r for r in json.loads(res.out)}
    assert reports["email"]["ok"] and not reports["webhook:chat"]["ok"]
    assert "HTTP 503" in reports["webhook:chat"]["detail"]


def test_notify_test_without_channels_is_a_usage_error(cli: Any, tmp_path: Path) -> None:
    empty = tmp_path / "citrixagent.yaml"
    empty.write_text("notify: {}\n")
    res = cli("--settings", empty, "notify", "test")
    assert res.code == 2 and "no notification channel configured" in res.err


def test_bad_settings_file_stops_the_run_before_any_network_call(
    world: Sandbox, cli: Any, tmp_path: Path
) -> None:
    bad = tmp_path / "citrixagent.yaml"
    bad.write_text("notify:\n  emial:\n    host: x\n  failed_after_runs: 0\n")
    res = cli("--scm-config", world.scm_yaml, "--settings", bad, "run", world.profile_path("lb-profile"))
    assert res.code == 2
    assert f"{bad}:2: notify.emial: unknown key; did you mean 'email'?" in res.err
    assert f"{bad}:4: notify.failed_after_runs:" in res.err
    assert world.scm.requests == [] and world.netscaler.requests == []


# ----------------------------------------------------------------------------------------- metrics


def _samples(path: Path) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(path.read_text()):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def test_metrics_file_parses_and_holds_each_profile(world: Sandbox, cli: Any, tmp_path: Path) -> None:
    metrics = tmp_path / "textfile" / "citrixagent.prom"
    good, bad = world.profile_path("lb-profile"), broken_profile(world)
    res = cli("--scm-config", world.scm_yaml, "--metrics-file", metrics, "run", good, bad)
    assert res.code == 1
    assert oct(metrics.stat().st_mode & 0o777) == "0o644"  # the collector runs as another user
    assert [p.name for p in metrics.parent.iterdir()] == ["citrixagent.prom"]  # no temp file left
    s = _samples(metrics)
    lb = (("appliance", world.netscaler.url.split("://")[1]), ("profile", "lb-profile"))
    br = (("appliance", world.netscaler.url.split("://")[1]), ("profile", "broken"))
    assert 363 <= s[("citrixagent_certificate_days_left", lb)] <= 366
    assert s[("citrixagent_certificate_not_after_timestamp_seconds", lb)] > 1.7e9
    assert ("citrixagent_certificate_days_left", br) not in s
    assert s[("citrixagent_profile_last_run_result", (*lb, ("result", "ok")))] == 1
    assert s[("citrixagent_profile_last_run_result", (*br, ("result", "failed")))] == 1
    assert s[("citrixagent_profile_last_run_result", (*br, ("result", "ok")))] == 0
    assert s[("citrixagent_profile_pending_orders", lb)] == 0
    assert s[("citrixagent_profile_failed_runs", br)] == 1
    assert s[("citrixagent_run_profiles", (("result", "ok"),))] == 1
    assert s[("citrixagent_run_profiles", (("result", "failed"),))] == 1
    assert s[("citrixagent_run_exit_code", ())] == 1
    assert s[("citrixagent_run_duration_seconds", ())] > 0
    res = cli("--scm-config", world.scm_yaml, "--metrics-file", metrics, "run", good, bad)
    assert _samples(metrics)[("citrixagent_profile_failed_runs", br)] == 2


def test_metrics_for_a_pending_order(world: Sandbox, cli: Any, tmp_path: Path) -> None:
    metrics = tmp_path / "m.prom"
    world.scm.set_defaults(issue_after_polls=10_000)
    scm = yaml.safe_load(world.scm_yaml.read_text())
    scm["poll"] = {"first_wait": 0, "interval": 0.01, "timeout": 0.05}
    quick = tmp_path / "scm.yaml"
    quick.write_text(yaml.safe_dump(scm))
    res = cli("--scm-config", quick, "--metrics-file", metrics, "run", world.profile_path("lb-profile"))
    assert res.code == 4, res.output
    s = _samples(metrics)
    key = (("appliance", world.netscaler.url.split("://")[1]), ("profile", "lb-profile"))
    assert s[("citrixagent_profile_pending_orders", key)] == 1
    assert s[("citrixagent_profile_last_run_result", (*key, ("result", "pending")))] == 1


# ------------------------------------------------------------------------------------------ nagios


def test_nagios_check_exit_codes(world: Sandbox, cli: Any, tmp_path: Path) -> None:
    good = world.profile_path("lb-profile")
    assert cli("--scm-config", world.scm_yaml, "run", good).code == 0
    res = cli("--scm-config", world.scm_yaml, "status", "--format", "nagios", good)
    assert res.code == 0, res.output
    assert res.out.startswith("CITRIXAGENT OK - 1 profile(s) ok | profiles=1 critical=0")
    assert len(res.out.strip().splitlines()) == 1

    res = cli("--scm-config", world.scm_yaml, "status", "--format", "nagios", "--warning-days", "400", good)
    assert res.code == 1 and res.out.startswith("CITRIXAGENT WARNING - lb-profile: expires in 36")

    res = cli("--scm-config", world.scm_yaml, "status", "--format", "nagios", "--critical-days", "400", good)
    assert res.code == 2 and "CRITICAL" in res.out

    bad = broken_profile(world)
    assert cli("--scm-config", world.scm_yaml, "run", bad).code == 1
    res = cli("--scm-config", world.scm_yaml, "status", "--format", "nagios", good, bad)
    assert res.code == 2, res.output
    assert res.out.startswith("CITRIXAGENT CRITICAL - broken: last run failed")

    invalid = tmp_path / "invalid.yaml"
    invalid.write_text("name: [\n")
    res = cli("--scm-config", world.scm_yaml, "status", "--format", "nagios", good, invalid)
    assert res.code == 3 and res.out.startswith("CITRIXAGENT UNKNOWN - invalid: invalid profile")

    res = cli("--scm-config", world.scm_yaml, "status", "--format", "nagios", "--critical-days", "1")
    # no PROFILES: every profile the journal knows (`broken` never got that far)
    assert res.code == 0 and res.out.startswith("CITRIXAGENT OK - 1 profile(s) ok")
    empty = cli("--state-dir", tmp_path / "nothing-here", "status", "--format", "nagios")
    assert empty.code == 3 and empty.out.startswith("CITRIXAGENT UNKNOWN - no profile given")


# ------------------------------------------------------------------------------------- json log


def test_json_log_lines_parse_and_hold_no_secret(
    world: Sandbox, sinks: NotifySinks, cli: Any, tmp_path: Path
) -> None:
    log_file = tmp_path / "agent.log"
    good, bad = world.profile_path("lb-profile"), broken_profile(world)
    res = run(cli, world, sinks, good, bad, extra=("--log-format", "json", "--log-file", str(log_file), "-v"))
    assert res.code == 1
    lines = log_file.read_text().splitlines()
    events = [json.loads(line) for line in lines]
    assert len({e["run_id"] for e in events}) == 1
    results = {e["profile"]: e for e in events if e.get("event") == "result"}
    assert results["lb-profile"]["action"] == "enroll" and results["lb-profile"]["result"] == "ok"
    assert results["lb-profile"]["order_id"] and results["lb-profile"]["serials"]["issued"]
    assert results["lb-profile"]["appliance"] == world.netscaler.url.split("://")[1]
    assert results["broken"]["result"] == "failed"
    assert results["broken"]["remote_code"] == "NITRO code 354, HTTP 401"
    assert results["broken"]["error"]["remote"] == "NITRO"
    assert any("notification sent through email" in e["message"] for e in events)
    stderr_events = [json.loads(line) for line in res.err.splitlines() if line.startswith("{")]
    assert stderr_events and len(stderr_events) == len([ln for ln in res.err.splitlines() if ln.strip()])
    text = log_file.read_text() + res.err
    for secret in (ADC_PASSWORD, SCM_PASSWORD, SMTP_PASSWORD, WEBHOOK_TOKEN, "not-the-password"):
        assert secret not in text


def test_pending_streak_then_declined_order_is_blocked(
    world: Sandbox, sinks: NotifySinks, cli: Any, tmp_path: Path
) -> None:
    world.scm.set_defaults(issue_after_polls=10_000)
    scm = yaml.safe_load(world.scm_yaml.read_text())
    scm["poll"] = {"first_wait": 0, "interval": 0.01, "timeout": 0.05}
    quick = tmp_path / "scm.yaml"
    quick.write_text(yaml.safe_dump(scm))
    profile = world.profile_path("lb-profile")
    args = ("--scm-config", quick, "--settings", sinks.settings_path, "run", profile)
    assert [cli(*args).code for _ in range(2)] == [4, 4]
    assert sinks.mail.messages == []  # pending on 2 runs: not yet (3 in a row by default)
    assert cli(*args).code == 4
    (mail,) = sinks.mail.messages
    assert "PENDING: lb-profile: SCM order" in mail.text
    assert "still pending after 3 runs in a row" in mail.text
    order_id = sinks.webhook.payloads[0]["problems"][0]["order_id"]

    world.scm.decline(int(order_id))
    assert cli(*args).code == 1  # SCM declined it while collecting
    assert len(sinks.mail.messages) == 2
    blocked = sinks.mail.messages[1].text
    assert f"BLOCKED: lb-profile: blocked: SCM declined enroll order {order_id}" in blocked
    assert "RESOLVED" not in blocked
    assert f"by hand:   citrixagent --scm-config {quick} --state-dir" in blocked
    assert f"enroll {profile}" in blocked
    assert cli(*args).code == 1  # `run` reports it blocked again: nothing new to send
    assert len(sinks.mail.messages) == 2


def test_settings_from_the_environment_and_options_after_the_command(
    world: Sandbox, sinks: NotifySinks, cli: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("CITRIXAGENT_SETTINGS", str(sinks.settings_path))
    log_file = tmp_path / "run.log"
    res = cli(
        "run",
        broken_profile(world),
        "--scm-config",
        world.scm_yaml,
        "--log-format",
        "json",
        "--log-file",
        log_file,
    )
    assert res.code == 1
    assert len(sinks.mail.messages) == 1
    assert all(json.loads(line)["run_id"] for line in log_file.read_text().splitlines())
