"""One message per run, for every channel: a subject, a plain text body, a JSON payload.

The payload is generic (``problems``, ``resolved``, ``done`` lists with every field) and also carries a
``text`` field in Markdown-light, which is what Teams and Slack incoming webhooks display. Every text
that leaves the agent goes through a scrubber first, so a secret that slipped into an error message
never reaches a mailbox or a chat.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from .. import __version__
from .conditions import Event

__all__ = ["Message", "RunContext", "render", "render_test"]

Scrub = Callable[[str], str]


@dataclass(frozen=True)
class RunContext:
    run_id: str
    host: str
    at: str  # ISO time of the run


@dataclass(frozen=True)
class Message:
    subject: str
    text: str
    payload: dict[str, Any]


_LABEL = {"failed": "FAILED", "blocked": "BLOCKED", "pending": "PENDING", "expiry": "EXPIRY"}


def _subject(problems: Sequence[Event], resolved: Sequence[Event], done: Sequence[Event]) -> str:
    parts = []
    if problems:
        parts.append(f"{len(problems)} problem{'s' if len(problems) != 1 else ''}")
    if resolved:
        parts.append(f"{len(resolved)} resolved")
    if done:
        parts.append(f"{len(done)} done")
    first = (problems or resolved or done)[0].title if (problems or resolved or done) else ""
    more = " ..." if len(problems) + len(resolved) + len(done) > 1 else ""
    return f"{', '.join(parts)}: {first}{more}"


def _problem_dict(event: Event) -> dict[str, Any]:
    c = event.condition
    assert c is not None
    return {
        "kind": c.kind,
        "level": c.level,
        "profile": c.profile,
        "appliance": c.appliance,
        "vservers": list(c.vservers),
        "title": c.title,
        "what": c.what,
        "next": c.next,
        "command": c.command,
        **{k: v for k, v in c.data.items() if v is not None},
    }


def render(events: Sequence[Event], context: RunContext, scrub: Scrub, prefix: str = "") -> Message:
    problems = [e for e in events if e.status == "problem"]
    resolved = [e for e in events if e.status == "resolved"]
    done = [e for e in events if e.status == "info"]
    lines = [f"citrixagent run {context.run_id} on {context.host} at {context.at}", ""]
    chat = [f"**citrixagent** on {context.host}: {_subject(problems, resolved, done)}"]
    for event in problems:
        c = event.condition
        assert c is not None
        label = _LABEL[c.kind]
        vservers = ", ".join(c.vservers) or "-"
        lines += [
            f"{label}: {c.title}",
            f"  appliance: {c.appliance or '-'}   vservers: {vservers}",
            f"  what:      {c.what}",
            f"  next:      {c.next}",
            f"  by hand:   {c.command}",
            "",
        ]
        chat += [
            "",
            f"**{label}** {c.title}",
            f"- appliance {c.appliance or '-'}, vservers {vservers}",
            f"- {c.what}",
            f"- next: {c.next}",
            f"- by hand: `{c.command}`",
        ]
    for event in resolved:
        lines += [f"RESOLVED: {event.title}", f"  {event.detail}", ""]
        chat += ["", f"**RESOLVED** {event.title}: {event.detail}"]
    if done:
        lines.append("Done in this run:")
        chat += ["", "**Done in this run:**"]
        for event in done:
            lines.append(f"  {event.title}: {event.detail}")
            chat.append(f"- {event.title}: {event.detail}")
        lines.append("")
    lines.append(f"-- citrixagent {__version__}")
    subject = _subject(problems, resolved, done)
    payload: dict[str, Any] = {
        "source": "citrixagent",
        "version": __version__,
        "run_id": context.run_id,
        "host": context.host,
        "at": context.at,
        "summary": subject,
        "problems": [_problem_dict(e) for e in problems],
        "resolved": [
            {"profile": e.profile, "title": e.title, "how": e.detail, **dict(e.data)} for e in resolved
        ],
        "done": [{"profile": e.profile, "title": e.title, "detail": e.detail, **dict(e.data)} for e in done],
    }
    payload = _scrub_json(payload, scrub)
    payload["text"] = scrub("\n".join(chat))
    return Message(scrub(f"{prefix} {subject}".strip()), scrub("\n".join(lines)), payload)


def render_test(context: RunContext, channel: str, prefix: str = "") -> Message:
    text = (
        f"This is a test message from citrixagent on {context.host} ({context.at}), sent by "
        f"`citrixagent notify test` through the channel {channel}. If you read it, the channel works."
    )
    payload = {
        "source": "citrixagent",
        "version": __version__,
        "run_id": context.run_id,
        "host": context.host,
        "at": context.at,
        "summary": "test message",
        "test": True,
        "problems": [],
        "resolved": [],
        "done": [],
        "text": text,
    }
    return Message(f"{prefix} test message".strip(), text + f"\n\n-- citrixagent {__version__}\n", payload)


def _scrub_json(value: Any, scrub: Scrub) -> Any:
    if isinstance(value, str):
        return scrub(value)
    if isinstance(value, dict):
        return {k: _scrub_json(v, scrub) for k, v in value.items()}
    if isinstance(value, list):
        return [_scrub_json(v, scrub) for v in value]
    return value
