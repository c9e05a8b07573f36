"""Pure: what a VIP served, held against what it should serve, is one :class:`VipReport`.

Checks, in this order (the first failing one is the status, all are listed): the leaf has the new
serial (else ``wrong-certificate``, naming the one served: serial and subject); every expected CA
certificate follows it (``chain-incomplete``); the protocol is TLS 1.2 or newer (``old-protocol``);
the name sent as SNI is one the leaf covers (``name-mismatch``). A VIP that did not complete a
handshake is ``unreachable`` with the reason.
"""

from __future__ import annotations

from cryptography import x509
from cryptography.x509.oid import NameOID

from ..crypto import normalize_serial
from .models import Expectation, NoHandshake, Served, VipReport, VipStatus, VipTarget

__all__ = ["MODERN_PROTOCOLS", "judge", "leaf_names", "name_matches", "subject_text"]

#: protocol versions Citrix's guidance accepts (``ssl.SSLSocket.version()`` spellings)
MODERN_PROTOCOLS = frozenset({"TLSv1.2", "TLSv1.3"})


def subject_text(cert: x509.Certificate) -> str:
    return cert.subject.rfc4514_string() or "(empty subject)"


def leaf_names(cert: x509.Certificate) -> tuple[str, ...]:
    """The DNS names a certificate covers: its DNS SANs, else its CN (as clients fall back)."""
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        names = tuple(str(n) for n in san.get_values_for_type(x509.DNSName))
    except x509.ExtensionNotFound:
        names = ()
    if names:
        return names
    cns = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return tuple(str(a.value) for a in cns[:1])


def name_matches(pattern: str, name: str) -> bool:
    """RFC 6125 matching: exact (case-insensitive), or one leftmost ``*`` label for one label."""
    pattern, name = pattern.lower().rstrip("."), name.lower().rstrip(".")
    if pattern == name:
        return True
    if not pattern.startswith("*."):
        return False
    head, _, rest = name.partition(".")
    return bool(head) and rest == pattern[2:]


def judge(target: VipTarget, got: Served | NoHandshake, expect: Expectation) -> VipReport:
    if isinstance(got, NoHandshake):
        return VipReport(
            target.vserver,
            target.address,
            target.server_name,
            "unreachable",
            f"unreachable: {got.reason}",
            ("unreachable",),
        )
    served_serial = normalize_serial(got.leaf.serial_number)
    subject = subject_text(got.leaf)
    problems: list[tuple[VipStatus, str]] = []
    if served_serial != expect.serial:
        problems.append(
            (
                "wrong-certificate",
                f"wrong certificate: serves serial {served_serial} ({subject}), "
                f"expected serial {expect.serial}",
            )
        )
    missing = _missing_intermediates(got, expect)
    if missing:
        problems.append(("chain-incomplete", f"chain incomplete: {missing} not sent after the leaf"))
    if got.protocol not in MODERN_PROTOCOLS:
        problems.append(("old-protocol", f"old protocol: {got.protocol} (TLS 1.2 or newer expected)"))
    if target.server_name and not any(name_matches(p, target.server_name) for p in leaf_names(got.leaf)):
        problems.append(
            (
                "name-mismatch",
                f"name mismatch: the certificate served does not cover {target.server_name} "
                f"(it covers {', '.join(leaf_names(got.leaf)) or 'no name'})",
            )
        )
    if problems:
        status = problems[0][0]
        detail = "; ".join(text for _, text in problems)
    else:
        status = "ok"
        chain = f"chain of {len(got.chain)} sent" if got.chain_known else "chain not readable here"
        detail = f"ok: serial {served_serial}, {got.protocol}, {chain}"
    return VipReport(
        target.vserver,
        target.address,
        target.server_name,
        status,
        detail,
        tuple(s for s, _ in problems),
        served_serial=served_serial,
        served_subject=subject,
        protocol=got.protocol,
    )


def _missing_intermediates(got: Served, expect: Expectation) -> str:
    if not got.chain_known:
        return ""  # this Python cannot read the chain: nothing can be said (the report's detail says 0)
    sent = {normalize_serial(c.serial_number) for c in got.chain}
    missing = [
        f"CA {subject} (serial {serial})" for serial, subject in expect.intermediates if serial not in sent
    ]
    return ", ".join(missing)
