"""``status --format nagios``: one line with the worst state, exit 0/1/2/3 (the Nagios plugin convention,
also read by Icinga, Naemon and NetScaler-side monitors).

Per profile:

* CRITICAL: the certificate expired or expires within ``critical_days``; SCM declined its order
  (blocked); or the last ``run`` failed;
* UNKNOWN: the profile file is invalid, or the appliance or SCM could not be asked;
* WARNING: expires within ``warning_days``; an order is pending; anything else ``run`` would still do
  (enroll, renew, redeploy);
* OK otherwise.

The worst wins, ranked CRITICAL > UNKNOWN > WARNING > OK. Performance data after ``|``: counts and the
fewest days left.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from .lifecycle import Outcome
from .notify.memory import LastRun

__all__ = ["NAGIOS_CODES", "Check", "nagios_check"]

OK, WARNING, CRITICAL, UNKNOWN = 0, 1, 2, 3
NAGIOS_CODES = {OK: "OK", WARNING: "WARNING", CRITICAL: "CRITICAL", UNKNOWN: "UNKNOWN"}
_RANK = {OK: 0, WARNING: 1, UNKNOWN: 2, CRITICAL: 3}


@dataclass(frozen=True)
class Check:
    code: int
    line: str


def _profile_state(
    outcome: Outcome, last: LastRun | None, warning_days: int, critical_days: int
) -> tuple[int, str]:
    name = outcome.profile
    if outcome.details.get("config_problems"):
        return UNKNOWN, f"{name}: invalid profile: {outcome.message}"
    days = outcome.days_left
    nxt = str(outcome.details.get("next") or "")
    if days is not None and days < 0:
        return CRITICAL, f"{name}: certificate expired {-days}d ago"
    if nxt == "blocked":
        return CRITICAL, f"{name}: blocked (SCM declined the order)"
    if last is not None and last.result == "failed":
        return CRITICAL, f"{name}: last run failed ({last.at}): {last.message}"
    if days is not None and days <= critical_days:
        return CRITICAL, f"{name}: expires in {days}d"
    for key in ("appliance_error", "scm_error"):
        if outcome.details.get(key):
            return UNKNOWN, f"{name}: {outcome.details[key]}"
    if days is not None and days <= warning_days:
        return WARNING, f"{name}: expires in {days}d"
    if outcome.details.get("pending"):
        return WARNING, f"{name}: {outcome.details['pending']}"
    if outcome.result == "attention" or nxt not in ("", "nothing"):
        why = outcome.details.get("next_reason") or outcome.message
        return WARNING, f"{name}: next run will {nxt}: {why}"
    return OK, f"{name}: ok" + (f" ({days}d left)" if days is not None else "")


def nagios_check(
    outcomes: Sequence[Outcome],
    last_runs: Mapping[str, LastRun],
    *,
    warning_days: int = 14,
    critical_days: int = 7,
) -> Check:
    states = [_profile_state(o, last_runs.get(o.profile), warning_days, critical_days) for o in outcomes]
    if not states:
        return Check(UNKNOWN, "CITRIXAGENT UNKNOWN - no profile to check")
    worst = max((code for code, _ in states), key=_RANK.__getitem__)
    counts = {code: sum(1 for c, _ in states if c == code) for code in NAGIOS_CODES}
    problems = [text for code, text in sorted(states, key=lambda s: -_RANK[s[0]]) if code != OK]
    summary = "; ".join(problems) if problems else f"{len(states)} profile(s) ok"
    days = [o.days_left for o in outcomes if o.days_left is not None]
    perf = [
        f"profiles={len(states)}",
        f"critical={counts[CRITICAL]}",
        f"warning={counts[WARNING]}",
        f"unknown={counts[UNKNOWN]}",
    ]
    if days:
        perf.append(f"min_days_left={min(days)};{warning_days};{critical_days}")
    line = f"CITRIXAGENT {NAGIOS_CODES[worst]} - {summary} | {' '.join(perf)}"
    return Check(worst, " ".join(line.split()))  # one line, whatever the messages held
