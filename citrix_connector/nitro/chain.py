"""The issuing chain on the appliance: each CA certificate installed once (found by serial, whatever its
name) and linked to its issuer's certkey (``nitro-api.md`` §3 step 2)."""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import re

from cryptography import x509

from ..crypto import cert_info, cert_to_pem, is_self_signed
from ..errors import ApplianceStateError, NitroError
from . import codes
from .models import CertKey
from .naming import ca_certkey_name
from .plan import Run

__all__ = ["install_chain"]

log = logging.getLogger("citrixagent.nitro.deploy")

_CONTENTS_RE = re.compile(r"Contents\s*,\s*([^\]]+)\]")


def install_chain(run: Run) -> str | None:
    """Install each CA certificate once, linked upwards; the certkey name of the leaf's issuer."""
    chain = run.plan.chain
    if not run.plan.issued:
        run.later(
            "install the issuing CA certificate(s) unless installed already (found by serial), and link"
        )
        return None
    names: list[str] = [""] * len(chain)
    for index in range(len(chain) - 1, -1, -1):  # top of the chain first, so links can be made
        names[index], ck = _install_ca(run, chain[index])
        _link_ca(run, ck, chain[index], names, index)
    return names[0] if names else None


def _install_ca(run: Run, ca: x509.Certificate) -> tuple[str, CertKey]:
    """The certkey holding ``ca`` (found by serial and CN, or added now): its name and what it holds."""
    info = cert_info(ca)
    cn = info.common_name or info.subject
    existing = [
        ck
        for ck in run.certkeys_by_serial(info.serial_hex)
        if not ck.subject or not info.common_name or ck.common_name == info.common_name
    ]
    if existing:
        run.act(f"CA certificate {cn!r} is installed as certkey {existing[0].name!r}")
        return existing[0].name, existing[0]
    name = _add_ca(run, ca_certkey_name(ca), ca, cn)
    ck = (run.certkey(name) if run.dry_run else _read_back(run, name)) or CertKey(
        name=name,
        cert="",
        key=None,
        serial=info.serial_hex,
        linkcertkeyname=None,
        subject="",
        issuer="",
        not_after=None,
        status="",
        days_to_expiration=None,
    )
    return name, ck


def _read_back(run: Run, name: str) -> CertKey | None:
    """The CA certkey as the appliance holds it now (recorded in the session's view)."""
    ck = run.nitro.get_certkey(name)
    if ck is not None and run.view is not None:
        run.view.record_certkey(ck)
    return ck


def _add_ca(run: Run, name: str, ca: x509.Certificate, cn: str) -> str:
    nitro = run.nitro
    current = run.certkey(name)
    serial = cert_info(ca).serial_hex
    if current is not None:
        if current.serial == serial:
            run.act(f"CA certificate {cn!r} is installed as certkey {name!r}")
            return name
        raise ApplianceStateError(
            f"certkey {name!r} exists but holds another certificate (serial {current.serial}, not {serial})"
        )
    stem = run.upload(name, [(".crt", cert_to_pem(ca).encode("ascii"), f"CA certificate {cn!r} as")])
    try:
        cert_file = run.path(f"{stem}.crt")
        run.files_ready()
        run.write(f"add CA certkey {name!r} ({cn})", lambda: nitro.add_certkey(name, cert_file, None))
    except NitroError as exc:
        match = _CONTENTS_RE.search(exc.nitro_message or str(exc))
        if not (codes.duplicate_content(exc) and match):
            raise
        other = match.group(1).strip()
        run.act(f"CA certificate {cn!r} is already installed as certkey {other!r}; using it")
        with contextlib.suppress(NitroError):
            nitro.delete_file(f"{stem}.crt")
        return other
    return name


def _link_target(run: Run, ck: CertKey, ca: x509.Certificate, names: list[str], index: int) -> str | None:
    """The certkey ``ck`` (holding ``ca``) should be linked to; None when its link is right already.

    When the chain names the issuer, that one (re-linked when it points at another certkey, e.g. a
    superseded cross-certificate). At the top of the chain an installed certkey named like the issuer,
    and only when the CA has no link yet.
    """
    if index + 1 < len(names):
        target = names[index + 1]
        return None if ck.linkcertkeyname == target else target
    if ck.linkcertkeyname:
        return None
    issuer_cn = cert_info(ca).issuer_cn
    for other in run.all_certkeys():
        if other.name != ck.name and issuer_cn and other.common_name == issuer_cn:
            return other.name
    return None


def _link_ca(run: Run, ck: CertKey, ca: x509.Certificate, names: list[str], index: int) -> None:
    """Link a CA certkey to its issuer's certkey (see :func:`_link_target`); the old link is put back
    when linking fails."""
    if is_self_signed(ca):
        return
    target = _link_target(run, ck, ca, names, index)
    if not target:
        return
    nitro = run.nitro
    old = ck.linkcertkeyname
    if old:
        run.write(
            f"unlink CA certkey {ck.name!r} from {old!r} (its issuer is {target!r})",
            lambda: nitro.unlink_certkey(ck.name),
        )
    try:
        run.write(
            f"link CA certkey {ck.name!r} to its issuer {target!r}",
            lambda: nitro.link_certkey(ck.name, target),
        )
        if run.view is not None and not run.dry_run:
            run.view.record_certkey(dataclasses.replace(ck, linkcertkeyname=target))
    except NitroError as exc:
        if run.view is not None:
            run.view.invalidate()  # the link may be gone: read again when next asked
        if old:
            with contextlib.suppress(NitroError):
                nitro.link_certkey(ck.name, old)
        if codes.issuer_mismatch(exc) and index + 1 >= len(names):
            log.info("NetScaler %s: %s is not the issuer of %s; not linked", nitro.host, target, ck.name)
            return
        raise
