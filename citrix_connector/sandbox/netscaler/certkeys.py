"""``sslcertkey``: add, update (in place), set/unset, delete and read certificate-key pairs
(reference §2.3), with the validations of add and update."""

from __future__ import annotations

import math
import re
from datetime import datetime
from typing import TYPE_CHECKING, Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from ..httpserver import Response
from .errors import Fail
from .links import certkey_for_ssl_op, link_certkey
from .model import Binding, CertKey, Partition, resolve
from .pki import Facts, asn1_time, load_cert, load_key, load_pfx, spki, verifies
from .protocol import Ctx, check_fields, expiry_fields, flag, listing, ok, opt_str, req_str

if TYPE_CHECKING:
    from .server import NetScalerSimulator

CERTKEY_NAME_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_#. :@=\-]*$")


CERTKEY_MAX = 31


def sslcertkey(
    sim: NetScalerSimulator, ctx: Ctx, method: str, name: str | None, action: str | None, body: dict[str, Any]
) -> Response:
    part = ctx.part
    if name is not None and method in ("POST", "PUT") and "certkey" not in body:
        body = {**body, "certkey": name}
    if method == "GET":
        if name is not None:
            ck = part.certkeys.get(name)
            if ck is None:
                raise Fail(404, 258, f"certkey, {name}")
            return listing(ctx, "sslcertkey", [certkey_view(ck, sim.clock())])
        return listing(ctx, "sslcertkey", [certkey_view(ck, sim.clock()) for ck in part.certkeys.values()])
    if method == "POST" and action is None:
        certkey_add(sim, part, body)
        part.mark_changed(sim.clock())
        return ok(ctx, 201, empty=True)
    if method == "POST" and action == "link":
        link_certkey(sim, part, body)
        part.mark_changed(sim.clock())
        return ok(ctx)
    if method == "POST" and action == "unlink":
        check_fields(body, {"certkey"})
        ck = certkey_for_ssl_op(part, body)
        if not ck.link:
            raise Fail(599, 1545, ck.name)
        ck.link = None
        part.mark_changed(sim.clock())
        return ok(ctx)
    if method == "POST" and action == "update":
        certkey_update(sim, ctx, part, body)
        part.mark_changed(sim.clock())
        return ok(ctx, 200, empty=True)
    if method == "POST" and action == "unset":
        check_fields(body, {"certkey", "expirymonitor", "notificationperiod"})
        ck = certkey_named(part, body)
        if flag(body, "expirymonitor"):
            ck.expirymonitor = None
        if flag(body, "notificationperiod"):
            ck.notificationperiod = None
        part.mark_changed(sim.clock())
        return ok(ctx)
    if method == "POST" and action == "clear":
        check_fields(body, {"certkey", "ocspstaplingcache"})
        certkey_named(part, body)
        return ok(ctx)
    if method == "PUT":
        certkey_set(part, body)
        part.mark_changed(sim.clock())
        return ok(ctx)
    if method == "DELETE":
        if name is None:
            raise Fail(400, 1095, "certkey")
        ck = part.certkeys.get(name)
        if ck is None:
            raise Fail(404, 258, f"certkey, {name}")
        if any(b.certkey == name for b in part.bindings) or any(
            other.link == name for other in part.certkeys.values()
        ):
            raise Fail(599, 1541, name)
        del part.certkeys[name]
        if ctx.args.get("deletefromdevice") == "true":
            for path in (ck.cert_path, ck.key_path):
                if path and not any(path in (o.cert_path, o.key_path) for o in part.certkeys.values()):
                    part.files.pop(path, None)
        part.mark_changed(sim.clock())
        return ok(ctx)
    if method == "POST":
        raise Fail(400, 1240, action)
    raise Fail(405, 1237)


def certkey_named(part: Partition, body: dict[str, Any]) -> CertKey:
    name = req_str(body, "certkey")
    ck = part.certkeys.get(name)
    if ck is None:
        raise Fail(404, 258, f"certkey, {name}")
    return ck


def certkey_view(ck: CertKey, now: datetime) -> dict[str, Any]:
    f = ck.facts
    if now < f.not_before:
        status = "Not yet valid"
    elif now > f.not_after:
        status = "Expired"
    else:
        status = "Valid"
    days = (f.not_after - now).total_seconds() / 86400
    view: dict[str, Any] = {
        "certkey": ck.name,
        "cert": ck.cert,
        "inform": ck.inform,
        "signaturealg": f.signaturealg,
        "certificatetype": list(f.certificatetype),
        "serial": f.serial,
        "issuer": f.issuer,
        "clientcertnotbefore": asn1_time(f.not_before),
        "clientcertnotafter": asn1_time(f.not_after),
        "daystoexpiration": math.floor(days),
        "subject": f.subject,
        "publickey": f.publickey,
        "publickeysize": f.publickeysize,
        "version": 3,
        "status": status,
        "passcrypt": "",
        "bundle": ck.bundle,
        "certkeydigest": f.sha256,
        "certificatesource": "Local",
        "certkeystatus": "Valid" if status == "Valid" else status,
    }
    if ck.key is not None:
        view["key"] = ck.key
    if ck.password:
        view["password"] = True
    if ck.expirymonitor is not None:
        view["expirymonitor"] = ck.expirymonitor
    if ck.notificationperiod is not None:
        view["notificationperiod"] = str(ck.notificationperiod)
    if ck.link:
        view["linkcertkeyname"] = ck.link
    if f.dns:
        view["sandns"] = ", ".join(f.dns)
    if f.ips:
        view["sanipadd"] = ", ".join(f.ips)
    if ck.deletecertkeyfilesonremoval is not None:
        view["deletecertkeyfilesonremoval"] = ck.deletecertkeyfilesonremoval
    return view


def missing_input(sim: NetScalerSimulator, what: str, value: str) -> Fail:
    if sim.legacy_missing_file_codes:
        return Fail(599, 1631 if what == "cert" else 1632, value)
    return Fail(599, 1647, value)


def load_material(
    sim: NetScalerSimulator, part: Partition, body: dict[str, Any], *, old: CertKey | None = None
) -> tuple[Facts, str, str, str | None, str | None, str, bool, str | None, bytes | None]:
    """Read and validate cert (+ key) files. Returns facts, cert, cert_path, key, key_path, inform,
    password flag, passplain, and the key as unencrypted PEM (what the appliance loads into memory and
    serves the VIPs with)."""
    inform = (opt_str(body, "inform") or (old.inform if old else "PEM")).upper()
    if inform not in ("PEM", "DER", "PFX"):
        raise Fail(400, 1097, "inform")
    cert_value = req_str(body, "cert")
    passplain = opt_str(body, "passplain")
    password_flag = flag(body, "password")
    cert_path = resolve(part, cert_value, output=False)
    cert_file = part.files.get(cert_path)
    if cert_file is None:
        raise missing_input(sim, "cert", cert_value)
    key_value = opt_str(body, "key")
    if key_value is None and old is not None and inform != "PFX":
        key_value = old.key
    key_path: str | None = None
    private_key: Any = None
    if inform == "PFX":
        cert, private_key = load_pfx(cert_file.data, passplain)
        if key_value is not None:
            key_path = resolve(part, key_value, output=False)
            if key_path not in part.files:
                raise missing_input(sim, "key", key_value)
        else:
            key_value, key_path = cert_value, cert_path
    else:
        cert = load_cert(cert_file.data, inform)
        if key_value is not None:
            key_path = resolve(part, key_value, output=False)
            key_file = part.files.get(key_path)
            if key_file is None:
                raise missing_input(sim, "key", key_value)
            private_key = load_key(key_file.data, inform, passplain)
    facts = Facts.parse(cert)
    if facts.publickey == "rsaEncryption" and facts.publickeysize > 4096:
        raise Fail(599, 1562)
    if private_key is not None:
        if isinstance(private_key, rsa.RSAPrivateKey) and private_key.key_size > 4096:
            raise Fail(599, 1562)
        if spki(private_key.public_key()) != facts.spki:
            raise Fail(599, 1538)
    key_pem = None
    if private_key is not None:
        key_pem = private_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    return facts, cert_value, cert_path, key_value, key_path, inform, password_flag, passplain, key_pem


def same_content(part: Partition, facts: Facts, exclude: str | None) -> str | None:
    for other in part.certkeys.values():
        if other.name == exclude:
            continue
        if other.facts.der == facts.der or (
            other.facts.serial == facts.serial and other.facts.issuer == facts.issuer
        ):
            return other.name
    return None


def certkey_add(sim: NetScalerSimulator, part: Partition, body: dict[str, Any]) -> None:
    check_fields(
        body,
        {
            "certkey",
            "cert",
            "key",
            "inform",
            "password",
            "passplain",
            "expirymonitor",
            "notificationperiod",
            "bundle",
            "fipskey",
            "hsmkey",
            "deletecertkeyfilesonremoval",
            "linkcertkeyname",
            "nodomaincheck",
            "ocspstaplingcache",
        },
    )
    name = req_str(body, "certkey")
    if len(name) > CERTKEY_MAX:
        raise Fail(400, 1106, f"certkey, {CERTKEY_MAX}")
    if not CERTKEY_NAME_RE.match(name):
        raise Fail(400, 1232, f"certkey, {name}")
    if name in part.certkeys:
        raise Fail(409, 273, f"certkey, {name}")
    expirymonitor, period = expiry_fields(body)
    bundle = (opt_str(body, "bundle") or "NO").upper()
    if bundle not in ("YES", "NO"):
        raise Fail(400, 1097, "bundle")
    facts, cert, cert_path, key, key_path, inform, pw, passplain, key_pem = load_material(sim, part, body)
    existing = same_content(part, facts, None)
    if existing is not None:
        raise Fail(409, 273, f"certkeyName Contents, {existing}")
    part.certkeys[name] = CertKey(
        name=name,
        cert=cert,
        key=key,
        cert_path=cert_path,
        key_path=key_path,
        inform=inform,
        password=pw,
        passplain=passplain,
        facts=facts,
        key_pem=key_pem,
        expirymonitor=expirymonitor,
        notificationperiod=period,
        bundle=bundle,
        deletecertkeyfilesonremoval=opt_str(body, "deletecertkeyfilesonremoval"),
    )


def certkey_set(part: Partition, body: dict[str, Any]) -> None:
    check_fields(body, {"certkey", "expirymonitor", "notificationperiod", "deletecertkeyfilesonremoval"})
    ck = certkey_named(part, body)
    expirymonitor, period = expiry_fields(body)
    if expirymonitor is not None:
        ck.expirymonitor = expirymonitor
    if period is not None:
        ck.notificationperiod = period
    delete_flag = opt_str(body, "deletecertkeyfilesonremoval")
    if delete_flag is not None:
        if delete_flag.upper() not in ("YES", "NO"):
            raise Fail(400, 1097, "deletecertkeyfilesonremoval")
        ck.deletecertkeyfilesonremoval = delete_flag.upper()


def certkey_update(sim: NetScalerSimulator, ctx: Ctx, part: Partition, body: dict[str, Any]) -> None:
    """``update ssl certKey``: swap cert (+key) behind the name; bindings and settings stay."""
    check_fields(
        body,
        {
            "certkey",
            "cert",
            "key",
            "inform",
            "password",
            "passplain",
            "nodomaincheck",
            "fipskey",
            "hsmkey",
        },
    )
    ck = certkey_named(part, body)
    nodomaincheck = flag(body, "nodomaincheck")
    facts, cert, cert_path, key, key_path, inform, pw, passplain, key_pem = load_material(
        sim, part, body, old=ck
    )
    existing = same_content(part, facts, ck.name)
    if existing is not None:
        raise Fail(409, 273, f"certkeyName Contents, {existing}")
    if not nodomaincheck:
        old_names, new_names = ck.facts.names(), facts.names()
        differs = old_names != new_names if sim.domain_check == "equal" else not (old_names & new_names)
        if differs:
            raise Fail(599, 3585)
    # CA links the new certificate breaks: its own link upwards, and certs linked to it (if it is a CA).
    broken_links: list[str] = []
    if ck.link:
        target = part.certkeys.get(ck.link)
        if target is None or not verifies(target.facts.cert, facts.cert):
            broken_links.append(ck.name)
    for other in part.certkeys.values():
        if other.link == ck.name and other is not ck and not verifies(facts.cert, other.facts.cert):
            broken_links.append(other.name)
    if broken_links and sim.link_break_mode == "error":
        raise Fail(599, 1587, ", ".join(broken_links))
    # SNI bindings the new certificate breaks: missing CN, or a CN another SNI cert there already has.
    broken_sni: list[tuple[Binding, int]] = []
    for b in part.bindings:
        if b.certkey != ck.name or not b.snicert:
            continue
        if not facts.cn:
            broken_sni.append((b, 3638))
            continue
        for other_b in part.bindings:
            other_ck = part.certkeys.get(other_b.certkey)
            if (
                other_b.vserver == b.vserver
                and other_b.snicert
                and other_b.certkey != ck.name
                and other_ck is not None
                and other_ck.facts.cn
                and other_ck.facts.cn.lower() == facts.cn.lower()
            ):
                broken_sni.append((b, 3637))
                break
    if broken_sni and sim.sni_break_mode == "error":
        raise Fail(599, broken_sni[0][1], broken_sni[0][0].vserver)
    ck.cert, ck.cert_path, ck.key, ck.key_path = cert, cert_path, key, key_path
    ck.inform, ck.password, ck.passplain, ck.facts = inform, pw, passplain, facts
    ck.key_pem = key_pem
    for name in broken_links:
        part.certkeys[name].link = None
    if broken_links:
        ctx.warn(1587, ", ".join(broken_links))
    for b, code in broken_sni:
        part.bindings.remove(b)
        ctx.warn(code, b.vserver)
