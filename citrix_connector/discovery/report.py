"""The inventory as text for a terminal (the CLI prints these lines; ``--json`` uses ``to_dict``)."""

from __future__ import annotations

from collections.abc import Sequence

from .model import CertkeyEntry, Inventory
from .profiles import WrittenProfile

__all__ = ["inventory_lines", "written_lines"]


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    widths = [max(len(str(r[i])) for r in [headers, *rows]) for i in range(len(headers))]
    return [
        "  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
        for row in [headers, *rows]
    ]


def _key(e: CertkeyEntry) -> str:
    if e.key_type == "ECDSA" and e.curve:
        return f"EC {e.curve}"
    return f"{e.key_type or '?'} {e.key_size or '?'}"


def _expires(e: CertkeyEntry) -> str:
    if e.not_after is None:
        return "-"
    return f"{e.not_after.date().isoformat()} ({e.days_left}d)"


def _bindings(e: CertkeyEntry) -> str:
    parts = []
    for b in e.bindings:
        flag = "/sni" if b.sni else ("/ca" if b.ca else "")
        parts.append(f"{b.vserver}({b.kind or '?'}{flag})")
    return ",".join(parts) or "-"


def _chain(e: CertkeyEntry) -> str:
    if e.is_ca:
        return "root" if e.self_signed else (e.link or "-")
    if e.chain_problem:
        return "MISSING"
    return "complete" if e.chain_complete else (e.link or "-")


def _scm(e: CertkeyEntry) -> str:
    if e.scm is not None:
        return f"{e.scm.ssl_id} {e.scm.status}"
    return {"other": "other CA", "scm": "-", "unknown": "-"}[e.source] if not e.is_ca else "-"


def inventory_lines(inv: Inventory, *, show_ca: bool = True) -> list[str]:
    lines: list[str] = []
    rows = []
    for e in inv.certkeys:
        if e.is_ca and not show_ca:
            continue
        rows.append(
            [
                e.target,
                e.partition,
                e.certkey + (" (CA)" if e.is_ca else ""),
                e.common_name or "-",
                _expires(e),
                _key(e),
                "box" if e.key_on_box else "-",
                _chain(e),
                _scm(e),
                _bindings(e),
                e.managed_by or "-",
            ]
        )
    if rows:
        lines += _table(
            [
                "TARGET",
                "PARTITION",
                "CERTKEY",
                "CN",
                "EXPIRES",
                "KEY",
                "KEYFILE",
                "CHAIN",
                "SCM",
                "BINDINGS",
                "PROFILE",
            ],
            rows,
        )
    failed = [t for t in inv.targets if not t.ok]
    ok = [t for t in inv.targets if t.ok]
    lines.append("")
    lines.append(
        f"{len(ok)} target(s) read ({sum(t.certkeys for t in ok)} certkeys, "
        f"{sum(t.requests for t in ok)} NITRO requests), {len(failed)} failed"
    )
    for t in failed:
        lines.append(f"  FAILED {t.name}: {t.error}")
    if inv.scm_checked:
        lines.append(
            f"SCM: {sum(1 for e in inv.certkeys if e.scm)} certkey(s) matched by serial "
            f"({inv.scm_requests} SCM requests); {sum(1 for e in inv.certkeys if e.source == 'other')} "
            "from other CAs"
        )
        for s in inv.scm_only:
            lines.append(f"  in SCM, on no appliance: sslId {s.ssl_id} {s.common_name} (serial {s.serial})")
    if inv.scm_note:
        lines.append(f"SCM: {inv.scm_note}")
    if inv.findings:
        lines.append("")
        lines.append(f"{len(inv.findings)} finding(s):")
        for f in inv.findings:
            lines.append(f"  {f.severity.upper():8} {f.code:15} {f.where}: {f.message}")
            lines.append(f"  {'':8} {'':15} advice: {f.advice}")
    else:
        lines.append("no findings")
    return lines


def written_lines(written: Sequence[WrittenProfile]) -> list[str]:
    lines = []
    for w in written:
        state = "wrote" if w.written else "kept "
        lines.append(f"{state} {w.path} ({w.where})")
        for note in w.notes:
            lines.append(f"      {note}")
    if not written:
        lines.append("no profile written: no unmanaged certkey is bound to an SSL vserver")
    return lines
