"""Keys and CSRs made on the appliance: ``sslrsakey``/``sslecdsakey`` and ``sslcertreq`` ``create``
(reference §2.4, §2.5). Keys are real (``cryptography``), so later CSR and certificate checks work."""

from __future__ import annotations

import ipaddress
import re
from typing import TYPE_CHECKING, Any

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, rsa
from cryptography.x509.oid import NameOID

from ..httpserver import Response
from .certkeys import missing_input
from .errors import Fail
from .files import FILENAME_MAX
from .model import File, Partition, resolve
from .pki import load_key
from .protocol import Ctx, check_fields, flag, int_field, ok, opt_str, req_str

if TYPE_CHECKING:
    from .server import NetScalerSimulator


def new_output_file(part: Partition, value: str, field_name: str) -> str:
    if len(value) > FILENAME_MAX:
        raise Fail(400, 1106, f"{field_name}, {FILENAME_MAX}")
    path = resolve(part, value, output=True)
    if path in part.files:
        raise Fail(409, 1642, value)
    return path


def write_key(sim: NetScalerSimulator, part: Partition, path: str, key: Any, body: dict[str, Any]) -> None:
    keyform = (opt_str(body, "keyform") or "PEM").upper()
    if keyform not in ("PEM", "DER"):
        raise Fail(400, 1097, "keyform")
    encrypt = [name for name in ("des", "des3", "aes256") if flag(body, name)]
    if len(encrypt) > 1:
        raise Fail(400, 1092, ", ".join(encrypt))
    password = opt_str(body, "password")
    if encrypt and not password:
        raise Fail(400, 1095, "password")
    if password and not encrypt:
        raise Fail(400, 1093, "des | des3 | aes256")
    pkcs8 = flag(body, "pkcs8")
    encoding = serialization.Encoding.PEM if keyform == "PEM" else serialization.Encoding.DER
    fmt = serialization.PrivateFormat.TraditionalOpenSSL
    if pkcs8 or (encrypt and keyform == "DER"):
        fmt = serialization.PrivateFormat.PKCS8
    encryption: serialization.KeySerializationEncryption = serialization.NoEncryption()
    if encrypt and password:
        encryption = serialization.BestAvailableEncryption(password.encode("utf-8"))
    now = sim.clock()
    part.files[path] = File(key.private_bytes(encoding, fmt, encryption), now, now)


def sslrsakey(
    sim: NetScalerSimulator, ctx: Ctx, method: str, name: str | None, action: str | None, body: dict[str, Any]
) -> Response:
    if method != "POST":
        raise Fail(405, 1237)
    if action != "create":
        raise Fail(400, 1240, action or "add")
    check_fields(
        body, {"keyfile", "bits", "exponent", "keyform", "des", "des3", "aes256", "password", "pkcs8"}
    )
    keyfile = req_str(body, "keyfile")
    bits = int_field(body, "bits")
    if bits is None:
        raise Fail(400, 1095, "bits")
    if bits > 4096:
        raise Fail(599, 1654)
    if bits < 512:
        raise Fail(400, 1097, "bits")
    if bits < 1024:  # the appliance takes 512..1023; the crypto library will not make such a key
        raise Fail(
            400, 1097, "bits", message="Invalid argument value (keys under 1024 bits are not simulated)"
        )
    exponent = (opt_str(body, "exponent") or "F4").upper()
    if exponent not in ("3", "F4"):
        raise Fail(599, 1617)
    path = new_output_file(ctx.part, keyfile, "keyfile")
    check_key_options(body)
    key = rsa.generate_private_key(3 if exponent == "3" else 65537, bits)
    write_key(sim, ctx.part, path, key, body)
    return ok(ctx)


def sslecdsakey(
    sim: NetScalerSimulator, ctx: Ctx, method: str, name: str | None, action: str | None, body: dict[str, Any]
) -> Response:
    if method != "POST":
        raise Fail(405, 1237)
    if action != "create":
        raise Fail(400, 1240, action or "add")
    check_fields(body, {"keyfile", "curve", "keyform", "des", "des3", "aes256", "password", "pkcs8"})
    keyfile = req_str(body, "keyfile")
    curve_name = req_str(body, "curve").upper()
    curves: dict[str, ec.EllipticCurve] = {"P_256": ec.SECP256R1(), "P_384": ec.SECP384R1()}
    if curve_name not in curves:
        raise Fail(400, 1097, "curve")
    path = new_output_file(ctx.part, keyfile, "keyfile")
    check_key_options(body)
    write_key(sim, ctx.part, path, ec.generate_private_key(curves[curve_name]), body)
    return ok(ctx)


def sslcertreq(
    sim: NetScalerSimulator, ctx: Ctx, method: str, name: str | None, action: str | None, body: dict[str, Any]
) -> Response:
    if method != "POST":
        raise Fail(405, 1237)
    if action != "create":
        raise Fail(400, 1240, action or "add")
    check_fields(
        body,
        {
            "reqfile", "keyfile", "subjectaltname", "fipskeyname", "keyform", "pempassphrase",
            "countryname", "statename", "organizationname", "organizationunitname", "localityname",
            "commonname", "emailaddress", "challengepassword", "companyname", "digestmethod",
        },
    )  # fmt: skip
    part = ctx.part
    reqfile = req_str(body, "reqfile")
    if body.get("fipskeyname"):
        raise Fail(599, 257, message="Operation not permitted (no FIPS card in this appliance)")
    keyfile = req_str(body, "keyfile")
    country = req_str(body, "countryname")
    if not re.fullmatch(r"[A-Za-z]{2}", country):
        raise Fail(400, 1097, "countryname")
    state = req_str(body, "statename")
    org = req_str(body, "organizationname")
    challenge = opt_str(body, "challengepassword")
    if challenge is not None and len(challenge) < 4:
        raise Fail(400, 1097, "challengepassword")
    digest_name = (opt_str(body, "digestmethod") or "SHA256").upper()
    digests: dict[str, Any] = {
        "SHA256": hashes.SHA256(),
        "SHA384": hashes.SHA384(),
        "SHA512": hashes.SHA512(),
    }
    if digest_name == "SHA1":  # the crypto library refuses SHA-1 signatures; nobody should want one
        raise Fail(400, 1097, "digestmethod", message="Invalid argument value (SHA1 is not simulated)")
    if digest_name not in digests:
        raise Fail(400, 1097, "digestmethod")
    keyform = (opt_str(body, "keyform") or "PEM").upper()
    if keyform not in ("PEM", "DER"):
        raise Fail(400, 1097, "keyform")
    sans = parse_sans(opt_str(body, "subjectaltname"))
    key_path = resolve(part, keyfile, output=False)
    key_file = part.files.get(key_path)
    if key_file is None:
        raise missing_input(sim, "key", keyfile)
    key = load_key(key_file.data, keyform, opt_str(body, "pempassphrase"))
    if not isinstance(key, (rsa.RSAPrivateKey, ec.EllipticCurvePrivateKey, dsa.DSAPrivateKey)):
        raise Fail(599, 1537)
    req_path = new_output_file(part, reqfile, "reqfile")
    attrs = [
        x509.NameAttribute(NameOID.COUNTRY_NAME, country.upper()),
        x509.NameAttribute(NameOID.STATE_OR_PROVINCE_NAME, state),
    ]
    optional = (
        ("localityname", NameOID.LOCALITY_NAME),
        ("organizationname", NameOID.ORGANIZATION_NAME),
        ("organizationunitname", NameOID.ORGANIZATIONAL_UNIT_NAME),
        ("commonname", NameOID.COMMON_NAME),
        ("emailaddress", NameOID.EMAIL_ADDRESS),
    )
    for field_name, oid in optional:
        value = org if field_name == "organizationname" else opt_str(body, field_name)
        if value:
            attrs.append(x509.NameAttribute(oid, value))
    builder = x509.CertificateSigningRequestBuilder().subject_name(x509.Name(attrs))
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    if challenge:
        builder = builder.add_attribute(x509.oid.AttributeOID.CHALLENGE_PASSWORD, challenge.encode("utf-8"))
    company = opt_str(body, "companyname")
    if company:
        builder = builder.add_attribute(x509.oid.AttributeOID.UNSTRUCTURED_NAME, company.encode("utf-8"))
    try:
        csr = builder.sign(key, digests[digest_name])
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        raise Fail(599, 1537, str(exc)) from None
    now = sim.clock()
    part.files[req_path] = File(csr.public_bytes(serialization.Encoding.PEM), now, now)
    return ok(ctx)


DNS_RE = re.compile(
    r"^(\*\.)?[A-Za-z0-9_]([A-Za-z0-9_-]*[A-Za-z0-9_])?(\.[A-Za-z0-9_]([A-Za-z0-9_-]*[A-Za-z0-9_])?)*$"
)


def parse_sans(text: str | None) -> list[x509.GeneralName]:
    """``DNS:a DNS:b IP:1.2.3.4 email:x@y URI:https://z`` (space separated, as the NITRO docs show)."""
    out: list[x509.GeneralName] = []
    for token in (text or "").split():
        kind, sep, value = token.partition(":")
        kind = kind.upper()
        if not sep or not value:
            raise Fail(400, 1097, "subjectaltname")
        if kind == "DNS":
            if not DNS_RE.match(value) or len(value) > 253:
                raise Fail(400, 1097, "subjectaltname")
            out.append(x509.DNSName(value))
        elif kind == "IP":
            try:
                out.append(x509.IPAddress(ipaddress.ip_address(value)))
            except ValueError:
                raise Fail(400, 1097, "subjectaltname") from None
        elif kind == "EMAIL":
            out.append(x509.RFC822Name(value))
        elif kind == "URI":
            out.append(x509.UniformResourceIdentifier(value))
        else:
            raise Fail(400, 1097, "subjectaltname")
    return out


def check_key_options(body: dict[str, Any]) -> None:
    for name in ("des", "des3", "aes256", "pkcs8"):
        flag(body, name)
