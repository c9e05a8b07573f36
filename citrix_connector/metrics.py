"""``--metrics-file``: the Prometheus text exposition format, written atomically after a run.

The node_exporter textfile collector convention: the file is written to a temporary name in the same
directory (not ``*.prom``, so the collector never reads a half-written file) and renamed over the
target. Per profile: the certificate's not-after time and days left, the last run's time and result,
pending orders, the failure streak; per run: duration, time, counts by result, exit code; per
notification channel: whether its last delivery worked.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from .errors import StateError
from .notify.conditions import ProfileView, days_left
from .state import atomic_write_text

__all__ = ["RunFacts", "render_metrics", "write_metrics"]

RESULTS = ("ok", "nothing", "pending", "failed", "planned")


@dataclass(frozen=True)
class RunFacts:
    started: datetime
    finished: datetime
    duration_seconds: float
    exit_code: int
    failed_streaks: Mapping[str, int] = field(default_factory=dict)
    channels_up: Mapping[str, bool] = field(default_factory=dict)


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(**labels: str) -> str:
    inner = ",".join(f'{k}="{_escape(v)}"' for k, v in labels.items())
    return f"{{{inner}}}" if inner else ""


def _number(value: float) -> str:
    if float(value).is_integer():
        return str(int(value))
    return repr(float(value))


class _Families:
    def __init__(self) -> None:
        self._order: list[str] = []
        self._help: dict[str, tuple[str, str]] = {}
        self._samples: dict[str, list[str]] = {}

    def add(self, name: str, kind: str, help_text: str, value: float, **labels: str) -> None:
        if name not in self._help:
            self._order.append(name)
            self._help[name] = (kind, help_text)
            self._samples[name] = []
        self._samples[name].append(f"{name}{_labels(**labels)} {_number(value)}")

    def text(self) -> str:
        lines = []
        for name in self._order:
            kind, help_text = self._help[name]
            lines += [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}", *self._samples[name]]
        return "\n".join(lines) + "\n"


def render_metrics(views: Sequence[ProfileView], facts: RunFacts) -> str:
    f = _Families()
    for view in views:
        who = {"profile": view.profile, "appliance": view.appliance}
        if view.not_after is not None:
            f.add(
                "citrixagent_certificate_not_after_timestamp_seconds",
                "gauge",
                "Not-after time of the profile's current certificate (Unix seconds).",
                round(view.not_after.timestamp()),
                **who,
            )
            f.add(
                "citrixagent_certificate_days_left",
                "gauge",
                "Whole days until the profile's current certificate expires (negative once expired).",
                days_left(view.not_after, facts.finished),
                **who,
            )
        f.add(
            "citrixagent_profile_last_run_timestamp_seconds",
            "gauge",
            "When the profile was last processed by a run (Unix seconds).",
            round(facts.finished.timestamp()),
            **who,
        )
        for result in RESULTS:
            f.add(
                "citrixagent_profile_last_run_result",
                "gauge",
                "1 for the result of the profile's last run, 0 for the others.",
                1 if view.result == result else 0,
                **who,
                result=result,
            )
        f.add(
            "citrixagent_profile_pending_orders",
            "gauge",
            "SCM orders placed for the profile and not yet collected.",
            1 if view.pending_order else 0,
            **who,
        )
        f.add(
            "citrixagent_profile_failed_runs",
            "gauge",
            "Runs in a row in which the profile failed (0 after a run that did not fail).",
            facts.failed_streaks.get(view.profile, 0),
            **who,
        )
        f.add(
            "citrixagent_profile_blocked",
            "gauge",
            "1 while SCM declined the profile's order and unattended runs wait for a person.",
            1 if view.declined is not None else 0,
            **who,
        )
    f.add(
        "citrixagent_run_duration_seconds",
        "gauge",
        "How long the last run took.",
        round(facts.duration_seconds, 3),
    )
    f.add(
        "citrixagent_run_timestamp_seconds",
        "gauge",
        "When the last run finished (Unix seconds).",
        round(facts.finished.timestamp()),
    )
    f.add("citrixagent_run_exit_code", "gauge", "Exit code of the last run.", facts.exit_code)
    counts = {r: 0 for r in RESULTS}
    for view in views:
        counts[view.result] = counts.get(view.result, 0) + 1
    for result, count in counts.items():
        f.add(
            "citrixagent_run_profiles", "gauge", "Profiles of the last run, by result.", count, result=result
        )
    for channel, up in sorted(facts.channels_up.items()):
        f.add(
            "citrixagent_notification_channel_up",
            "gauge",
            "1 when the channel's last delivery worked (or had nothing to send), 0 when it failed.",
            1 if up else 0,
            channel=channel,
        )
    return f.text()


def write_metrics(path: Path, views: Sequence[ProfileView], facts: RunFacts) -> None:
    """Render and write atomically (readable by the collector: 0644); StateError when it cannot."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, render_metrics(views, facts), mode=0o644)
    except OSError as exc:
        raise StateError(f"cannot write the metrics file {path}: {exc.strerror or exc}") from exc
