"""A brownfield fleet for the sandbox: certkeys the agent never installed, from SCM orders placed "by
hand" (present in the simulated SCM's inventory) and from a foreign CA, covering every discovery
finding, in the default partition and in the admin partition ``web``, on lb/cs/vpn/aaa vservers with
default and SNI bindings.

What is seeded on the first appliance (``BROWNFIELD`` below lists the certkeys)::

    default partition
      bf_shop      lb    shop_2025 (SCM, valid)                       -> adoptable, nothing to do
      bf_portal    cs    portal (SCM, ECDSA, SNI)                     -> shares the certkey with bf_gateway
      bf_gateway   vpn   portal (SCM, default) + foreign_root (CA binding, client auth)
      bf_login     aaa   login_aaa (SCM, expires in 10 days)          -> expiring
      bf_legacy    lb    old_shop (SCM, expired 20 days ago)          -> expired
      bf_api       lb    api_revoked (SCM, revoked, SNI), foreign_www (foreign CA, SNI, unlinked)
      bf_intranet  lb    weak_1024 (foreign CA, RSA 1024)             -> key size
      bf_oldapp    lb    sha1_legacy (foreign CA, SHA-1 signature)    -> SHA-1
      (unbound)          unused_test (SCM, valid)                     -> unused
    partition web
      web_shop     lb    www_web (SCM, valid)
      web_cs       cs    shop_copy (the same certificate as default's shop_2025, SNI) -> duplicate

SCM also holds ``orphan.brownfield.test``: issued, on no appliance.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from ..crypto import KeySpec, build_csr, cert_to_pem, generate_private_key, private_key_to_pem

if TYPE_CHECKING:
    from .netscaler import NetScalerSimulator
    from .world import Sandbox

__all__ = ["BROWNFIELD_PARTITION", "BrownfieldSeed", "ForeignCA", "seed_brownfield"]

BROWNFIELD_PARTITION = "web"
DOMAIN = "brownfield.test"

# (vserver, kind, sni enabled, partition)
BROWNFIELD_VSERVERS: tuple[tuple[str, str, bool, str], ...] = (
    ("bf_shop", "lb", False, "default"),
    ("bf_portal", "cs", True, "default"),
    ("bf_gateway", "vpn", False, "default"),
    ("bf_login", "authentication", False, "default"),
    ("bf_legacy", "lb", False, "default"),
    ("bf_api", "lb", True, "default"),
    ("bf_intranet", "lb", False, "default"),
    ("bf_oldapp", "lb", False, "default"),
    ("web_shop", "lb", False, BROWNFIELD_PARTITION),
    ("web_cs", "cs", True, BROWNFIELD_PARTITION),
)

_SHA256_RSA = bytes.fromhex("06092a864886f70d01010b")
_SHA1_RSA = bytes.fromhex("06092a864886f70d010105")


def _name(cn: str, org: str | None = None) -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.COUNTRY_NAME, "US")]
    if org:
        attrs.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, org))
    attrs.append(x509.NameAttribute(NameOID.COMMON_NAME, cn))
    return x509.Name(attrs)


class ForeignCA:
    """Another CA than SCM's (root -> RSA intermediate), issuing leaves with any key and validity,
    and, unlike a modern library will, with a SHA-1 signature when asked."""

    def __init__(self, now: datetime) -> None:
        self.root_key = ec.generate_private_key(ec.SECP256R1())
        root_name = _name("Foreign Trust Root CA", "Foreign Trust Inc")
        self.root = (
            x509.CertificateBuilder()
            .subject_name(root_name)
            .issuer_name(root_name)
            .public_key(self.root_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(days=3650))
            .not_valid_after(now + timedelta(days=3650))
            .add_extension(x509.BasicConstraints(ca=True, path_length=1), critical=True)
            .sign(self.root_key, hashes.SHA256())
        )
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.intermediate = (
            x509.CertificateBuilder()
            .subject_name(_name("Foreign Trust RSA Issuing CA", "Foreign Trust Inc"))
            .issuer_name(root_name)
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(days=3000))
            .not_valid_after(now + timedelta(days=3000))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .sign(self.root_key, hashes.SHA256())
        )

    def issue(
        self,
        key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey,
        cn: str,
        *,
        not_before: datetime,
        days: int,
        sha1: bool = False,
    ) -> x509.Certificate:
        names = [x509.DNSName(cn), x509.DNSName(f"www.{cn}")]
        cert = (
            x509.CertificateBuilder()
            .subject_name(_name(cn))
            .issuer_name(self.intermediate.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(not_before)
            .not_valid_after(not_before + timedelta(days=days))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.SubjectAlternativeName(names), critical=False)
            .sign(self.key, hashes.SHA256())
        )
        if not sha1:
            return cert
        # The library refuses to sign with SHA-1: swap the algorithm identifier (same length) in the
        # TBS and the outer structure, then sign the new TBS with SHA-1 (same signature length).
        der = cert.public_bytes(serialization.Encoding.DER).replace(_SHA256_RSA, _SHA1_RSA)
        tbs = x509.load_der_x509_certificate(der).tbs_certificate_bytes
        signature = self.key.sign(tbs, padding.PKCS1v15(), hashes.SHA1())  # noqa: S303 - on purpose
        return x509.load_der_x509_certificate(der[: -len(signature)] + signature)


@dataclass(frozen=True)
class BrownfieldSeed:
    """What was seeded: certkey -> (partition, serial hex, SCM sslId or None)."""

    certkeys: dict[str, tuple[str, str, int | None]]
    orphan_ssl_id: int
    foreign: ForeignCA


def _pem(cert: x509.Certificate) -> bytes:
    return cert_to_pem(cert).encode("ascii")


def _seed_vservers(ns: NetScalerSimulator) -> None:
    with contextlib.suppress(ValueError):  # already there
        ns.add_partition(BROWNFIELD_PARTITION)
    for name, kind, sni, partition in BROWNFIELD_VSERVERS:
        ns.add_vserver(name, kind, snienable=sni, partition=partition)


def seed_brownfield(world: Sandbox, now: datetime | None = None) -> BrownfieldSeed:
    """Seed the first appliance and SCM of ``world`` (see the module docstring)."""
    from .world import SCM_CERT_TYPE, SCM_ORG_ID  # the world imports this module

    now = (now or datetime.now(timezone.utc)).replace(microsecond=0)
    ns = world.netscalers[0]
    scm = world.scm
    foreign = ForeignCA(now)
    _seed_vservers(ns)
    seeded: dict[str, tuple[str, str, int | None]] = {}
    rsa2048 = KeySpec("RSA", size=2048)
    p256 = KeySpec("ECDSA", curve="P-256")

    # the SCM issuing CA and root, linked, in both partitions
    inter, root = world.signing_ca.intermediate, world.signing_ca.root
    for partition in ("default", BROWNFIELD_PARTITION):
        ns.install_certkey("sandbox_root", _pem(root), partition=partition)
        ns.install_certkey("sandbox_issuing", _pem(inter), partition=partition, link="sandbox_root")
    ns.install_certkey("foreign_root", _pem(foreign.root))
    ns.install_certkey("foreign_ica", _pem(foreign.intermediate), link="foreign_root")

    def by_hand(
        certkey: str,
        cn: str,
        *,
        age_days: int,
        spec: KeySpec = rsa2048,
        partition: str = "default",
        term: int = 365,
        revoke: bool = False,
        install: bool = True,
    ) -> tuple[x509.Certificate, bytes, int]:
        key = generate_private_key(spec)
        order = scm.add_issued_order(
            build_csr(key, cn, [cn]),
            org_id=SCM_ORG_ID,
            cert_type=SCM_CERT_TYPE,
            term=term,
            not_before=now - timedelta(days=age_days),
            sans=[f"www.{cn}"] if not cn.startswith("*.") else [],
        )
        if revoke:
            scm.revoke(order.ssl_id, reason_code=1, reason="key compromise (brownfield sandbox)")
        assert order.cert is not None
        key_pem = private_key_to_pem(key)
        if install:
            ns.install_certkey(
                certkey, _pem(order.cert), key_pem, partition=partition, link="sandbox_issuing"
            )
            seeded[certkey] = (partition, f"{order.cert.serial_number:X}", order.ssl_id)
        return order.cert, key_pem, order.ssl_id

    shop_cert, shop_key, _ = by_hand("shop_2025", f"shop.{DOMAIN}", age_days=65)
    by_hand("portal", f"portal.{DOMAIN}", age_days=30, spec=p256)
    by_hand("login_aaa", f"login.{DOMAIN}", age_days=355)
    by_hand("old_shop", f"old-shop.{DOMAIN}", age_days=385, spec=p256)
    by_hand("api_revoked", f"api.{DOMAIN}", age_days=100, revoke=True)
    by_hand("unused_test", f"test.{DOMAIN}", age_days=10, spec=p256)
    by_hand("www_web", f"www-web.{DOMAIN}", age_days=40, partition=BROWNFIELD_PARTITION, spec=p256)
    _, _, orphan = by_hand("", f"orphan.{DOMAIN}", age_days=20, spec=p256, install=False)

    # the same certificate in the web partition (another certkey, another vserver)
    ns.install_certkey(
        "shop_copy", _pem(shop_cert), shop_key, partition=BROWNFIELD_PARTITION, link="sandbox_issuing"
    )
    seeded["shop_copy"] = (BROWNFIELD_PARTITION, f"{shop_cert.serial_number:X}", seeded["shop_2025"][2])

    def foreign_leaf(
        certkey: str,
        cn: str,
        key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey,
        *,
        sha1: bool = False,
        link: str | None = None,
    ) -> None:
        cert = foreign.issue(key, cn, not_before=now - timedelta(days=60), days=395, sha1=sha1)
        ns.install_certkey(certkey, _pem(cert), private_key_to_pem(key), link=link)
        seeded[certkey] = ("default", f"{cert.serial_number:X}", None)

    foreign_leaf("foreign_www", f"www.{DOMAIN}", generate_private_key(p256))
    foreign_leaf(
        "weak_1024",
        f"intranet.{DOMAIN}",
        rsa.generate_private_key(public_exponent=65537, key_size=1024),
        link="foreign_ica",
    )
    foreign_leaf("sha1_legacy", f"oldapp.{DOMAIN}", generate_private_key(p256), sha1=True)

    for vserver, certkey, sni, ca, partition in (
        ("bf_shop", "shop_2025", False, False, "default"),
        ("bf_portal", "portal", True, False, "default"),
        ("bf_gateway", "portal", False, False, "default"),
        ("bf_gateway", "foreign_root", False, True, "default"),
        ("bf_login", "login_aaa", False, False, "default"),
        ("bf_legacy", "old_shop", False, False, "default"),
        ("bf_api", "api_revoked", True, False, "default"),
        ("bf_api", "foreign_www", True, False, "default"),
        ("bf_intranet", "weak_1024", False, False, "default"),
        ("bf_oldapp", "sha1_legacy", False, False, "default"),
        ("web_shop", "www_web", False, False, BROWNFIELD_PARTITION),
        ("web_cs", "shop_copy", True, False, BROWNFIELD_PARTITION),
    ):
        ns.bind_certkey(vserver, certkey, snicert=sni, ca=ca, partition=partition)
    ns.clear_requests()  # the seeding is not part of what the agent did
    return BrownfieldSeed(seeded, orphan, foreign)
