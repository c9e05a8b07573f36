"""Ready profiles from an inventory: one per certkey bound to at least one SSL vserver (vservers
sharing a certkey share its profile), which ``validate`` accepts as written and whose first ``run``
adopts the installed certificate in place.

Never a literal secret: the appliance password is the ``${ENV}`` reference the target was given, or
``${CITRIXAGENT_ADC_PASSWORD}`` to be set. Existing files are kept unless ``force``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml

from ..state import atomic_write_text
from .model import CertkeyEntry, Inventory
from .targets import Target

__all__ = ["DEFAULT_PASSWORD_ENV", "SectigoDefaults", "WrittenProfile", "profile_for", "write_profiles"]

DEFAULT_PASSWORD_ENV = "CITRIXAGENT_ADC_PASSWORD"
_RSA_SIZES = (2048, 3072, 4096)
_NAME_BAD = re.compile(r"[^A-Za-z0-9_#.@=-]+")


@dataclass(frozen=True)
class SectigoDefaults:
    """``--org-id/--cert-type/--term``: for certificates SCM did not issue (or was not asked about)."""

    org_id: int | None = None
    cert_type: int | str | None = None
    term: int | None = None


@dataclass
class WrittenProfile:
    path: Path
    name: str
    where: str
    written: bool
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "profile": self.name,
            "certkey": self.where,
            "written": self.written,
            "notes": list(self.notes),
        }


def _profile_name(entry: CertkeyEntry, taken: set[str]) -> str:
    base = _NAME_BAD.sub("-", entry.certkey).strip("-") or "certkey"
    if not re.match(r"[A-Za-z0-9_]", base):
        base = f"ck-{base}"
    candidates = [base]
    if entry.partition != "default":
        candidates.append(f"{base}-{entry.partition}")
    host = _NAME_BAD.sub("-", entry.target).strip("-")
    candidates.append(f"{candidates[-1]}-{host}")
    for candidate in candidates:
        candidate = candidate[:63]
        if candidate.lower() not in taken:
            taken.add(candidate.lower())
            return candidate
    n = 2
    while f"{candidates[-1][:58]}-{n}".lower() in taken:
        n += 1
    name = f"{candidates[-1][:58]}-{n}"
    taken.add(name.lower())
    return name


def _key(entry: CertkeyEntry, notes: list[str]) -> dict[str, Any]:
    if entry.key_type == "ECDSA":
        curve = entry.curve if entry.curve in ("P-256", "P-384") else "P-256"
        if curve != entry.curve:
            notes.append(f"ECDSA key of {entry.key_size} bits: the profile asks for {curve}")
        return {"key_type": "ECDSA", "curve": curve}
    size = entry.key_size if entry.key_type == "RSA" and entry.key_size in _RSA_SIZES else None
    if size is None:
        size = 4096 if entry.key_type == "RSA" and (entry.key_size or 0) > 4096 else 2048
        was = f"{entry.key_type or 'unknown'} {entry.key_size or '?'}"
        notes.append(f"the installed key is {was}: the profile asks for RSA {size}")
    return {"key_type": "RSA", "key_size": size}


def _sectigo(entry: CertkeyEntry, defaults: SectigoDefaults, notes: list[str]) -> dict[str, Any]:
    if entry.scm is not None and entry.scm.org_id is not None and entry.scm.cert_profile_id is not None:
        out: dict[str, Any] = {"org_id": entry.scm.org_id, "cert_type": entry.scm.cert_profile_id}
        if entry.scm.term is not None:
            out["term"] = entry.scm.term
        return out
    given = {"org_id": defaults.org_id, "cert_type": defaults.cert_type, "term": defaults.term}
    out = {k: v for k, v in given.items() if v is not None}
    missing = [k for k, v in given.items() if v is None]
    if missing:
        why = "not issued by SCM" if entry.source == "other" else "not matched to SCM"
        notes.append(
            f"{why} (issuer{' ' if entry.issuer else ''}{entry.issuer.strip()}): fill sectigo."
            + "/".join(missing)
            + " (or pass --org-id/--cert-type/--term) before the first renewal"
        )
    return out


def profile_for(
    entry: CertkeyEntry,
    target: Target,
    *,
    name: str,
    defaults: SectigoDefaults,
    discovered_at: datetime,
) -> tuple[str, list[str]]:
    """(YAML text, notes) of the profile for one certkey."""
    notes: list[str] = []
    password = target.password_ref
    if password is None:
        password = "${" + DEFAULT_PASSWORD_ENV + "}"
        notes.append(f"the appliance password was not given as ${{ENV}}: set {DEFAULT_PASSWORD_ENV}")
    appliance: dict[str, Any] = {
        "url": target.urls[0] if len(target.urls) == 1 else list(target.urls),
        "username": target.username,
        "password": password,
        "verify_tls": str(target.verify_tls) if isinstance(target.verify_tls, Path) else target.verify_tls,
    }
    if entry.partition != "default":
        appliance["partition"] = entry.partition
    if target.timeout != 60:
        appliance["timeout"] = target.timeout
    vservers: list[dict[str, Any]] = []
    for use in entry.served_by:
        if not use.kind:
            notes.append(f"vserver {use.vserver} was found in no vserver collection: left out")
            continue
        item: dict[str, Any] = {"name": use.vserver, "type": use.kind}
        if use.sni:
            item["sni"] = True
        if item not in vservers:
            vservers.append(item)
    cn = entry.common_name or (entry.sans[0] if entry.sans else "")
    certificate: dict[str, Any] = {"common_name": cn}
    sans = [s for s in entry.sans if s.lower() != cn.lower()]
    if sans:
        certificate["subject_alt_names"] = sans
    certificate.update(_key(entry, notes))
    certificate["certkey_name"] = entry.certkey
    sectigo = _sectigo(entry, defaults, notes)
    data: dict[str, Any] = {
        "name": name,
        "appliance": appliance,
        "vservers": vservers,
        "certificate": certificate,
    }
    if sectigo:
        data["sectigo"] = sectigo
    expires = entry.not_after.isoformat() if entry.not_after else "unknown"
    scm = (
        f"SCM sslId {entry.scm.ssl_id} ({entry.scm.cert_profile or entry.scm.cert_profile_id}, "
        f"{entry.scm.term} days, {entry.scm.status})"
        if entry.scm
        else ("not issued by SCM" if entry.source == "other" else "not matched to SCM")
    )
    header = [
        f"# Written by citrixagent discover on {discovered_at.isoformat(timespec='seconds')}",
        f"# from NetScaler {entry.host} ({', '.join(target.urls)}), partition {entry.partition}, "
        f"certkey {entry.certkey}",
        f"# installed certificate: serial {entry.serial or '?'}, expires {expires}",
        f"# issuer: {entry.issuer.strip()}",
        f"# {scm}",
        "# The first `citrixagent run` adopts this certkey (records it, changes nothing) while it is valid",
        "# and outside its renewal window; renewals then update the same certkey in place.",
    ]
    header += [f"# TODO: {n}" for n in notes]
    text = "\n".join(header) + "\n" + yaml.safe_dump(data, sort_keys=False, allow_unicode=True)
    return text, notes


def write_profiles(
    inventory: Inventory,
    targets: Sequence[Target],
    directory: Path,
    *,
    defaults: SectigoDefaults = SectigoDefaults(),
    force: bool = False,
    existing_names: Mapping[str, str] | None = None,
) -> list[WrittenProfile]:
    """Write the profiles for ``inventory`` into ``directory``; existing files are kept unless ``force``.
    Certkeys a loaded profile already manages get none."""
    by_name = {t.name: t for t in targets}
    directory.mkdir(parents=True, exist_ok=True)
    taken: set[str] = {n.lower() for n in (existing_names or {})}
    out: list[WrittenProfile] = []
    # One SCM order renewed from two profiles would become two renewals (two billable certificates):
    # a certificate on several certkeys gets one profile, the others are reported.
    order_profile: dict[str, str] = {
        e.scm.ssl_id: e.managed_by for e in inventory.certkeys if e.managed_by and e.scm is not None
    }
    for entry in inventory.certkeys:
        if entry.is_ca or not entry.served_by or entry.managed_by or entry.target not in by_name:
            continue
        ssl_id = entry.scm.ssl_id if entry.scm is not None else None
        if ssl_id is not None and ssl_id in order_profile:
            first = order_profile[ssl_id]
            natural = _NAME_BAD.sub("-", entry.certkey).strip("-") or "certkey"
            out.append(
                WrittenProfile(
                    directory / f"{natural}.yaml",
                    first,
                    entry.where,
                    False,
                    [
                        f"the same certificate (SCM sslId {ssl_id}) as profile {first}: not written, since "
                        "two profiles renewing one SCM order would place two renewals; manage this "
                        "certkey by hand or give it a profile of its own order"
                    ],
                )
            )
            continue
        name = _profile_name(entry, taken)
        if ssl_id is not None:
            order_profile[ssl_id] = name
        text, notes = profile_for(
            entry, by_name[entry.target], name=name, defaults=defaults, discovered_at=inventory.discovered_at
        )
        path = directory / f"{name}.yaml"
        if path.exists() and not force:
            out.append(WrittenProfile(path, name, entry.where, False, ["exists: kept (--force overwrites)"]))
            continue
        atomic_write_text(path, text)
        out.append(WrittenProfile(path, name, entry.where, True, notes))
    return out
