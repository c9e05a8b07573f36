"""Findings: pure functions from inventory entries to what needs attention, each with a severity and
one line of advice. ``all_findings`` runs every check."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from .build import issuer_certkey
from .model import CertkeyEntry, Finding

__all__ = [
    "DEFAULT_EXPIRING_DAYS",
    "all_findings",
    "duplicates",
    "expired",
    "expiring",
    "key_size",
    "no_intermediate",
    "revoked_but_bound",
    "sha1_signature",
    "unused",
]

DEFAULT_EXPIRING_DAYS = 30
RSA_MIN = 2048
RSA_MAX = 4096  # larger RSA keys are refused by Citrix clients (and by NetScaler itself on add)


def _served(entry: CertkeyEntry) -> str:
    names = ", ".join(f"{b.vserver}{' (SNI)' if b.sni else ''}" for b in entry.served_by)
    return f"served by {names}" if names else "bound to no vserver"


def expired(entry: CertkeyEntry) -> Finding | None:
    if entry.days_left is None or entry.days_left >= 0 or entry.not_after is None:
        return None
    used = bool(entry.served_by) or bool(entry.linked_by)
    when = entry.not_after.date().isoformat()
    return Finding(
        "expired",
        "critical" if used else "warning",
        entry.where,
        f"expired on {when} ({-entry.days_left} days ago), {_served(entry)}",
        "renew it now: TLS clients refuse an expired certificate"
        if used
        else "remove it, or renew it if something still needs it",
    )


def expiring(entry: CertkeyEntry, days: int = DEFAULT_EXPIRING_DAYS) -> Finding | None:
    if entry.days_left is None or entry.not_after is None or not 0 <= entry.days_left < days:
        return None
    return Finding(
        "expiring",
        "warning",
        entry.where,
        f"expires on {entry.not_after.date().isoformat()} (in {entry.days_left} days), {_served(entry)}",
        "renew it before then (citrixagent run renews a managed certificate inside its renewal window)",
    )


def no_intermediate(entry: CertkeyEntry, entries: Sequence[CertkeyEntry] = ()) -> Finding | None:
    if entry.is_ca or not entry.served_by or entry.chain_problem is None:
        return None
    installed = issuer_certkey(entry, entries)
    if installed is not None:
        advice = f"link it to its issuer: link ssl certkey {entry.certkey} {installed}"
    else:
        advice = "install the issuing CA certificate and link it (clients without it cannot build the chain)"
    return Finding(
        "no-intermediate",
        "warning",
        entry.where,
        f"served without its intermediate ({entry.chain_problem}; issuer {entry.issuer})",
        advice,
    )


def unused(entry: CertkeyEntry) -> Finding | None:
    if entry.bindings or entry.linked_by:
        return None
    what = (
        "a CA certificate no certkey links to, bound to no vserver" if entry.is_ca else "bound to no vserver"
    )
    return Finding(
        "unused",
        "info",
        entry.where,
        f"unused: {what}",
        "remove it if nothing needs it (fewer certificates to track and renew)",
    )


def key_size(entry: CertkeyEntry) -> Finding | None:
    if entry.key_type != "RSA" or entry.key_size is None or entry.is_ca:
        return None
    if entry.key_size < RSA_MIN:
        return Finding(
            "key-size",
            "critical" if entry.served_by else "warning",
            entry.where,
            f"RSA key of {entry.key_size} bits (below {RSA_MIN}), {_served(entry)}",
            f"replace it with an RSA {RSA_MIN}+ or ECDSA certificate: browsers refuse keys this short",
        )
    if entry.key_size > RSA_MAX:
        return Finding(
            "key-size",
            "warning",
            entry.where,
            f"RSA key of {entry.key_size} bits (above {RSA_MAX}), {_served(entry)}",
            f"replace it with an RSA {RSA_MAX} or smaller key: Citrix clients refuse larger ones",
        )
    return None


def sha1_signature(entry: CertkeyEntry) -> Finding | None:
    if "sha1" not in entry.signature.lower().replace("-", "") or entry.self_signed:
        return None  # a root's own signature is never checked by clients
    return Finding(
        "sha1",
        "warning" if entry.served_by or entry.linked_by else "info",
        entry.where,
        f"signed with SHA-1 ({entry.signature}), {_served(entry)}",
        "re-issue it with a SHA-256 signature: clients no longer trust SHA-1 signatures",
    )


def duplicates(entries: Sequence[CertkeyEntry]) -> list[Finding]:
    """The same certificate (issuer + serial) on several certkeys, across partitions and appliances
    (the two nodes of an HA pair are one target, so a pair never counts twice)."""
    groups: dict[tuple[str, str], list[CertkeyEntry]] = {}
    for e in entries:
        if e.serial and not e.is_ca:
            groups.setdefault((e.issuer.strip().lower(), e.serial), []).append(e)
    out: list[Finding] = []
    for group in groups.values():
        if len(group) < 2:
            continue
        places = ", ".join(e.where for e in group)
        for e in group:
            out.append(
                Finding(
                    "duplicate",
                    "info",
                    e.where,
                    f"the same certificate (serial {e.serial}) is on {len(group)} certkeys: {places}",
                    "renew them together (one profile per certkey), or keep a single copy",
                )
            )
    return out


def revoked_but_bound(entry: CertkeyEntry) -> Finding | None:
    if entry.scm is None or entry.scm.status.lower() != "revoked" or not entry.served_by:
        return None
    return Finding(
        "revoked",
        "critical",
        entry.where,
        f"revoked at SCM (sslId {entry.scm.ssl_id}) but still {_served(entry)}",
        "install a new certificate now: clients checking revocation refuse this one",
    )


_ORDER = {"critical": 0, "warning": 1, "info": 2}


def all_findings(
    entries: Sequence[CertkeyEntry], *, expiring_days: int = DEFAULT_EXPIRING_DAYS
) -> list[Finding]:
    """Every finding for ``entries``, most severe first."""
    checks: list[Callable[[CertkeyEntry], Finding | None]] = [
        expired,
        lambda e: expiring(e, expiring_days),
        lambda e: no_intermediate(e, entries),
        key_size,
        sha1_signature,
        revoked_but_bound,
        unused,
    ]
    out: list[Finding] = []
    for entry in entries:
        for check in checks:
            found = check(entry)
            if found is not None:
                out.append(found)
    out.extend(duplicates(entries))
    return sorted(out, key=lambda f: (_ORDER[f.severity], f.where, f.code))
