"""Tests for citrix_connector.crypto."""

from __future__ import annotations

import base64
import itertools
import os
import random
import stat
import sys
from datetime import datetime, timedelta, timezone

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.serialization import pkcs7
from cryptography.x509.oid import NameOID

from citrix_connector import crypto
from citrix_connector.crypto import CertInfo, KeySpec, Subject
from citrix_connector.errors import CitrixAgentError, CryptoError
from citrix_connector.sandbox.ca import LocalCA

SPEC_NAMES = ["RSA 2048", "RSA 3072", "RSA 4096", "ECDSA P-256", "ECDSA P-384"]


# ------------------------------------------------------------------------------------------ helpers


def _name(cn: str) -> x509.Name:
    return x509.Name(
        [x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Test"), x509.NameAttribute(NameOID.COMMON_NAME, cn)]
    )


def _cert(
    subject: str,
    key: crypto.PrivateKey,
    issuer: tuple[str, crypto.PrivateKey] | None = None,
    *,
    ca: bool,
    sans: tuple[str, ...] = (),
    serial: int | None = None,
    basic_constraints: bool = True,
) -> x509.Certificate:
    """A minimal certificate; self-signed when ``issuer`` is None."""
    issuer_name, issuer_key = issuer if issuer else (subject, key)
    now = datetime.now(timezone.utc)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(_name(issuer_name))
        .public_key(key.public_key())
        .serial_number(serial if serial is not None else x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=30))
    )
    if basic_constraints:
        builder = builder.add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    if sans:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.DNSName(s) for s in sans]), critical=False
        )
    return builder.sign(issuer_key, hashes.SHA256())


@pytest.fixture(scope="module")
def ec_keys() -> list[ec.EllipticCurvePrivateKey]:
    return [ec.generate_private_key(ec.SECP256R1()) for _ in range(6)]


@pytest.fixture(scope="module")
def deep_chain(ec_keys, keys):
    """root (self-signed) -> ca1 -> ca2 -> leaf (RSA 2048 leaf key); returns (leaf, ca2, ca1, root)."""
    root = _cert("Deep Root", ec_keys[0], ca=True)
    ca1 = _cert("Deep CA 1", ec_keys[1], ("Deep Root", ec_keys[0]), ca=True)
    ca2 = _cert("Deep CA 2", ec_keys[2], ("Deep CA 1", ec_keys[1]), ca=True)
    leaf = _cert(
        "www.deep.test", keys["RSA 2048"], ("Deep CA 2", ec_keys[2]), ca=False, sans=("www.deep.test",)
    )
    return leaf, ca2, ca1, root


def _pem(certs: list[x509.Certificate]) -> str:
    return "".join(crypto.cert_to_pem(c) for c in certs)


# ----------------------------------------------------------------------------------------- KeySpec


@pytest.mark.parametrize(
    ("algorithm", "size", "curve", "expected"),
    [
        ("RSA", 2048, None, "RSA 2048"),
        ("rsa", 3072, None, "RSA 3072"),
        ("Rsa", 4096, None, "RSA 4096"),
        ("ECDSA", None, "P-256", "ECDSA P-256"),
        ("ecdsa", None, "P256", "ECDSA P-256"),
        ("ECDSA", None, "prime256v1", "ECDSA P-256"),
        ("ECDSA", None, "secp256r1", "ECDSA P-256"),
        ("ECDSA", None, "P256r1", "ECDSA P-256"),
        ("EcDsA", None, "P-384", "ECDSA P-384"),
        ("ECDSA", None, "p384", "ECDSA P-384"),
        ("ECDSA", None, "secp384r1", "ECDSA P-384"),
        ("ECDSA", None, "P384r1", "ECDSA P-384"),
        ("ECDSA", 384, "P-384", "ECDSA P-384"),
        ("ECDSA", 256, None, "ECDSA P-256"),
    ],
)
def test_keyspec_parse_accepts(algorithm, size, curve, expected):
    spec = KeySpec.parse(algorithm, size, curve)
    assert spec.describe() == expected
    # canonical form: equal to the directly constructed spec
    if expected.startswith("RSA"):
        assert spec == KeySpec("RSA", size=int(expected.split()[1]))
    else:
        assert spec == KeySpec("ECDSA", curve=expected.split()[1])


@pytest.mark.parametrize(
    ("algorithm", "size", "curve", "fragment"),
    [
        ("RSA", 1024, None, "1024"),
        ("RSA", 8192, None, "8192"),
        ("RSA", None, None, "size"),
        ("RSA", 2048, "P-256", "curve"),
        ("ECDSA", None, "P-521", "P-521"),
        ("ECDSA", None, "secp521r1", "secp521r1"),
        ("ECDSA", None, None, "curve"),
        ("ECDSA", 521, None, "curve"),
        ("ECDSA", 256, "P-384", "does not match"),
        ("Ed25519", None, None, "Ed25519"),
        ("RSAA", 2048, None, "RSAA"),
        ("DSA", 2048, None, "DSA"),
        ("", 2048, None, "algorithm"),
        ("RSA", True, None, "integer"),
    ],
)
def test_keyspec_parse_rejects(algorithm, size, curve, fragment):
    with pytest.raises(ValueError) as info:
        KeySpec.parse(algorithm, size, curve)
    assert fragment in str(info.value)


def test_keyspec_constructor_validates():
    with pytest.raises(ValueError):
        KeySpec("RSA", size=1024)
    with pytest.raises(ValueError):
        KeySpec("ECDSA", curve="P-521")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        KeySpec("ECDSA", size=256, curve="P-256")
    assert crypto.RSA_SIZES == (2048, 3072, 4096)
    assert crypto.EC_CURVES == ("P-256", "P-384")


# ---------------------------------------------------------------------------------------- keys


@pytest.mark.parametrize("name", SPEC_NAMES)
def test_key_spec_roundtrip(keys, name):
    key = keys[name]
    spec = crypto.key_spec_of(key)
    assert spec.describe() == name
    assert crypto.key_spec_of(key.public_key()) == spec
    pem = crypto.private_key_to_pem(key)
    assert pem.startswith(b"-----BEGIN PRIVATE KEY-----")  # PKCS#8, unencrypted
    loaded = crypto.load_private_key(pem)
    assert crypto.private_key_to_pem(loaded) == pem
    assert crypto.key_spec_of(loaded) == spec


def test_generate_private_key_types():
    ec_key = crypto.generate_private_key(KeySpec("ECDSA", curve="P-384"))
    assert isinstance(ec_key, ec.EllipticCurvePrivateKey)
    assert ec_key.curve.name == "secp384r1"
    rsa_key = crypto.generate_private_key(KeySpec.parse("rsa", 2048, None))
    assert isinstance(rsa_key, rsa.RSAPrivateKey)
    assert rsa_key.key_size == 2048
    assert rsa_key.public_key().public_numbers().e == 65537


def test_load_private_key_rejects_bad_input(keys):
    with pytest.raises(CryptoError):
        crypto.load_private_key(b"not a key")
    pem = crypto.private_key_to_pem(keys["ECDSA P-256"])
    broken = pem.replace(pem.splitlines()[2], b"A" * 64)
    with pytest.raises(CryptoError) as info:
        crypto.load_private_key(broken)
    assert b"A" * 20 not in str(info.value).encode()  # key material never in the message
    ed = ed25519.Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    with pytest.raises(CryptoError):
        crypto.load_private_key(ed)
    # DER is accepted too
    der = keys["ECDSA P-256"].private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    assert crypto.key_spec_of(crypto.load_private_key(der)).describe() == "ECDSA P-256"


def test_key_spec_of_rejects_unsupported():
    with pytest.raises(CryptoError):
        crypto.key_spec_of(ec.generate_private_key(ec.SECP521R1()))
    with pytest.raises(CryptoError):
        crypto.key_spec_of(rsa.generate_private_key(65537, 1024))
    with pytest.raises(CryptoError):
        crypto.key_spec_of(ed25519.Ed25519PrivateKey.generate())  # type: ignore[arg-type]
    assert issubclass(CryptoError, CitrixAgentError)


# ---------------------------------------------------------------------------- full flow, every key


@pytest.mark.parametrize("name", SPEC_NAMES)
def test_generate_csr_issue_split_match(keys, local_ca: LocalCA, name):
    key = keys[name]
    csr = crypto.build_csr(key, "www.example.com", ["example.com", "192.0.2.5"])
    assert csr.is_signature_valid
    assert isinstance(csr.signature_hash_algorithm, hashes.SHA256)
    assert crypto.csr_names(csr) == ("www.example.com", ["www.example.com", "example.com", "192.0.2.5"])

    leaf = local_ca.issue_from_csr(crypto.csr_to_pem(csr))
    assert leaf.public_key() == csr.public_key()  # the CSR's key certified
    assert crypto.cert_matches_key(leaf, key)
    assert crypto.cert_matches_key(leaf, key.public_key())
    other = keys["ECDSA P-256"] if name != "ECDSA P-256" else keys["RSA 2048"]
    assert not crypto.cert_matches_key(leaf, other)

    bundle = _pem([local_ca.root, local_ca.intermediate, leaf])  # SCM "x509": root first
    got_leaf, chain = crypto.split_leaf_and_chain(crypto.parse_certificates(bundle))
    assert got_leaf == leaf
    assert chain == [local_ca.intermediate]
    got_leaf, chain = crypto.split_leaf_and_chain(crypto.parse_certificates(bundle), key.public_key())
    assert got_leaf == leaf
    assert chain == [local_ca.intermediate]

    info = crypto.cert_info(leaf)
    assert info.key.describe() == name
    assert info.common_name == "www.example.com"
    assert info.sans == ("www.example.com", "example.com", "192.0.2.5")


# ----------------------------------------------------------------------------------------- CSRs


def test_build_csr_subject_and_sans(keys):
    subject = Subject(
        organization="Example Ltd",
        organizational_unit="IT",
        locality="Leeds",
        state="West Yorkshire",
        country="GB",
        email="pki@example.com",
    )
    csr = crypto.build_csr(
        keys["ECDSA P-256"], "app.example.com", ["APP.example.com", "192.0.2.1", "::1", ""], subject
    )
    attrs = {a.oid: a.value for a in csr.subject}
    assert attrs == {
        NameOID.COMMON_NAME: "app.example.com",
        NameOID.ORGANIZATION_NAME: "Example Ltd",
        NameOID.ORGANIZATIONAL_UNIT_NAME: "IT",
        NameOID.LOCALITY_NAME: "Leeds",
        NameOID.STATE_OR_PROVINCE_NAME: "West Yorkshire",
        NameOID.COUNTRY_NAME: "GB",
        NameOID.EMAIL_ADDRESS: "pki@example.com",
    }
    san = csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["app.example.com"]  # case-insensitive dedupe
    assert [str(ip) for ip in san.get_values_for_type(x509.IPAddress)] == ["192.0.2.1", "::1"]


def test_build_csr_cn_already_in_sans_and_wildcard(keys):
    csr = crypto.build_csr(keys["RSA 2048"], "*.example.com", ["example.com", "*.example.com"])
    assert crypto.csr_names(csr) == ("*.example.com", ["*.example.com", "example.com"])


def test_build_csr_idn_is_a_label(keys):
    csr = crypto.build_csr(keys["ECDSA P-256"], "bücher.example", [])
    assert crypto.csr_names(csr)[1] == ["xn--bcher-kva.example"]


@pytest.mark.parametrize(
    ("cn", "sans", "subject"),
    [
        ("", ["a.example"], None),
        ("ok.example", ["bad name"], None),
        ("ok.example", [], Subject(country="GBR")),
        ("ok.example", "ok.example", None),
    ],
)
def test_build_csr_errors(keys, cn, sans, subject):
    with pytest.raises(CryptoError):
        crypto.build_csr(keys["ECDSA P-256"], cn, sans, subject)


def test_load_csr_formats(keys):
    csr = crypto.build_csr(keys["ECDSA P-384"], "fmt.example", ["alt.example"])
    pem = crypto.csr_to_pem(csr)
    der = csr.public_bytes(serialization.Encoding.DER)
    b64 = crypto.csr_to_der_b64(csr)
    assert "\n" not in b64 and "-----" not in b64
    assert base64.b64decode(b64) == der
    body = "".join(pem.splitlines()[1:-1])
    variants: list[bytes | str] = [
        pem,
        pem.encode(),
        pem.replace("\n", "\r\n"),
        pem.rstrip("\n"),
        f"-----BEGIN CERTIFICATE REQUEST-----{body}-----END CERTIFICATE REQUEST-----",  # armour on one line
        f"-----BEGIN NEW CERTIFICATE REQUEST-----\n{body}\n-----END NEW CERTIFICATE REQUEST-----\n",
        "  \n" + pem + "\n\n",
        der,
        b64,
        b64 + "\n",
        "\n".join(b64[i : i + 64] for i in range(0, len(b64), 64)),
    ]
    for variant in variants:
        loaded = crypto.load_csr(variant)
        assert loaded.public_bytes(serialization.Encoding.DER) == der, variant


def test_load_csr_rejects(keys, local_ca):
    with pytest.raises(CryptoError):
        crypto.load_csr("")
    with pytest.raises(CryptoError):
        crypto.load_csr("hello world")
    with pytest.raises(CryptoError):
        crypto.load_csr(b"\x30\x03\x02\x01\x00")
    with pytest.raises(CryptoError):
        crypto.load_csr(crypto.cert_to_pem(local_ca.root))  # a certificate, not a CSR
    with pytest.raises(CryptoError):
        crypto.load_csr("-----BEGIN CERTIFICATE REQUEST-----\n!!!!\n-----END CERTIFICATE REQUEST-----\n")
    # tamper with the signed content: the signature check must fail
    csr = crypto.build_csr(keys["RSA 2048"], "sig.example", [])
    der = bytearray(csr.public_bytes(serialization.Encoding.DER))
    idx = der.index(b"sig.example")
    der[idx] = ord("x")
    with pytest.raises(CryptoError):
        crypto.load_csr(bytes(der))


# ----------------------------------------------------------------------------- certificate parsing


def test_parse_certificates_pem_variants(local_ca, keys):
    leaf = local_ca.issue_from_csr(crypto.build_csr(keys["ECDSA P-256"], "p.example", []))
    certs = [local_ca.root, local_ca.intermediate, leaf]
    pem = _pem(certs)
    assert crypto.parse_certificates(pem) == certs
    assert crypto.parse_certificates(pem.encode()) == certs
    assert crypto.parse_certificates(pem.replace("\n", "\r\n")) == certs
    assert crypto.parse_certificates(pem.rstrip("\n")) == certs
    assert crypto.parse_certificates(pem.replace("-----\n-----", "----------")) == certs  # glued blocks
    assert crypto.parse_certificates("junk before\n" + pem + "junk after") == certs
    assert crypto.parse_certificates(pem + crypto.cert_to_pem(leaf)) == certs  # duplicates dropped
    # a private key next to the certificates is ignored, never an error
    with_key = crypto.private_key_to_pem(keys["ECDSA P-256"]).decode() + pem
    assert crypto.parse_certificates(with_key) == certs


def test_parse_certificates_pkcs7_and_der(local_ca, keys):
    leaf = local_ca.issue_from_csr(crypto.build_csr(keys["RSA 2048"], "p7.example", []))
    certs = [leaf, local_ca.intermediate, local_ca.root]
    p7_pem = pkcs7.serialize_certificates(certs, serialization.Encoding.PEM)
    assert p7_pem.startswith(b"-----BEGIN PKCS7-----")
    assert set(crypto.parse_certificates(p7_pem)) == set(certs)
    assert set(crypto.parse_certificates(p7_pem.replace(b"\n", b"\r\n"))) == set(certs)
    p7_der = pkcs7.serialize_certificates(certs, serialization.Encoding.DER)
    assert set(crypto.parse_certificates(p7_der)) == set(certs)
    assert set(crypto.parse_certificates(base64.b64encode(p7_der))) == set(certs)  # unarmoured base64
    assert crypto.parse_certificates(leaf.public_bytes(serialization.Encoding.DER)) == [leaf]


def test_der_ending_in_whitespace_byte(ec_keys, keys):
    """DER input must not be stripped: a signature may end in 0x20/0x0a/0x0d/..."""
    whitespace = b" \t\n\r\x0b\x0c"
    for _ in range(5000):
        cert = _cert("ws.example", keys["ECDSA P-256"], ("Deep Root", ec_keys[0]), ca=False)
        der = cert.public_bytes(serialization.Encoding.DER)
        if der[-1] in whitespace:
            break
    else:
        pytest.fail("could not make a DER certificate ending in a whitespace byte")
    assert crypto.parse_certificates(der) == [cert]
    p7 = pkcs7.serialize_certificates([cert], serialization.Encoding.DER)
    if p7[-1] in whitespace:
        assert crypto.parse_certificates(p7) == [cert]
    for _ in range(5000):
        csr = crypto.build_csr(keys["ECDSA P-256"], "ws.example", [])
        der = csr.public_bytes(serialization.Encoding.DER)
        if der[-1] in whitespace:
            break
    else:
        pytest.fail("could not make a DER CSR ending in a whitespace byte")
    assert crypto.load_csr(der).public_bytes(serialization.Encoding.DER) == der


@pytest.mark.parametrize(
    "data",
    [
        b"",
        "   ",
        b"\x00\x01\x02garbage",
        "hello",
        "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
        "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
        "-----BEGIN CERTIFICATE-----\nnot*base64\n-----END CERTIFICATE-----\n",
    ],
)
def test_parse_certificates_rejects(data):
    with pytest.raises(CryptoError):
        crypto.parse_certificates(data)


# ------------------------------------------------------------------------------------ chain split


def test_split_every_order_deep_chain(deep_chain):
    leaf, ca2, ca1, root = deep_chain
    for order in itertools.permutations([leaf, ca2, ca1, root]):
        got_leaf, chain = crypto.split_leaf_and_chain(list(order))
        assert got_leaf == leaf
        assert chain == [ca2, ca1], order


def test_split_root_first_leaf_first_and_shuffled_text(local_ca, keys):
    leaf = local_ca.issue_from_csr(crypto.build_csr(keys["ECDSA P-384"], "order.example", []))
    root_first = _pem([local_ca.root, local_ca.intermediate, leaf])
    leaf_first = _pem([leaf, local_ca.intermediate, local_ca.root])
    shuffled = _pem([local_ca.intermediate, leaf, local_ca.root])
    for text in (root_first, leaf_first, shuffled, root_first.replace("\n", "\r\n")):
        assert crypto.split_leaf_and_chain(crypto.parse_certificates(text)) == (leaf, [local_ca.intermediate])
    # leaf only (SCM x509CO) -> empty chain
    assert crypto.split_leaf_and_chain([leaf]) == (leaf, [])
    # PKCS#7 DER and PEM (order inside a SET is not meaningful)
    for encoding in (serialization.Encoding.DER, serialization.Encoding.PEM):
        p7 = pkcs7.serialize_certificates([local_ca.root, leaf, local_ca.intermediate], encoding)
        assert crypto.split_leaf_and_chain(crypto.parse_certificates(p7)) == (leaf, [local_ca.intermediate])


def test_split_keeps_cross_signed_root_drops_self_signed(ec_keys, keys):
    """Sectigo-style: issuing CA <- USERTrust cross-signed by AAA; self-signed USERTrust/AAA dropped."""
    aaa = _cert("AAA Certificate Services", ec_keys[3], ca=True)
    usertrust_self = _cert("USERTrust", ec_keys[4], ca=True)
    usertrust_cross = _cert("USERTrust", ec_keys[4], ("AAA Certificate Services", ec_keys[3]), ca=True)
    issuing = _cert("Issuing DV CA", ec_keys[5], ("USERTrust", ec_keys[4]), ca=True)
    leaf = _cert("x.example", keys["ECDSA P-256"], ("Issuing DV CA", ec_keys[5]), ca=False)
    certs = [aaa, usertrust_self, usertrust_cross, issuing, leaf]
    rng = random.Random(7)
    for _ in range(10):
        rng.shuffle(certs)
        assert crypto.split_leaf_and_chain(certs) == (leaf, [issuing, usertrust_cross])


def test_split_ignores_same_subject_wrong_key(ec_keys, keys, deep_chain):
    leaf, ca2, ca1, root = deep_chain
    impostor = _cert("Deep CA 2", ec_keys[5], ("Deep CA 1", ec_keys[1]), ca=True)  # same name, other key
    assert not crypto.is_issuer(impostor, leaf)
    assert crypto.is_issuer(ca2, leaf)
    assert crypto.split_leaf_and_chain([impostor, root, leaf, ca1, ca2]) == (leaf, [ca2, ca1])


def test_split_leaf_without_basic_constraints(ec_keys, keys):
    root = _cert("BC Root", ec_keys[0], ca=True)
    leaf = _cert("nobc.example", keys["RSA 2048"], ("BC Root", ec_keys[0]), ca=False, basic_constraints=False)
    assert crypto.split_leaf_and_chain([root, leaf]) == (leaf, [])


def test_split_with_public_key(deep_chain, keys):
    leaf, ca2, ca1, root = deep_chain
    assert crypto.split_leaf_and_chain([root, ca1, ca2, leaf], keys["RSA 2048"]) == (leaf, [ca2, ca1])
    assert crypto.split_leaf_and_chain([root, ca1, ca2, leaf], keys["RSA 2048"].public_key()) == (
        leaf,
        [ca2, ca1],
    )
    with pytest.raises(CryptoError, match="matches the private key"):
        crypto.split_leaf_and_chain([root, ca1, ca2, leaf], keys["ECDSA P-384"])


def test_split_errors(deep_chain, ec_keys, keys):
    leaf, ca2, ca1, root = deep_chain
    with pytest.raises(CryptoError):
        crypto.split_leaf_and_chain([])
    with pytest.raises(CryptoError, match="no end-entity"):
        crypto.split_leaf_and_chain([ca2, ca1, root])  # SCM x509IOR: no leaf
    other = _cert("other.example", keys["ECDSA P-256"], ("Deep CA 2", ec_keys[2]), ca=False)
    with pytest.raises(CryptoError, match="ambiguous"):
        crypto.split_leaf_and_chain([leaf, other, ca2, ca1, root])
    # with a key the ambiguity is resolved
    assert crypto.split_leaf_and_chain([leaf, other, ca2, ca1, root], keys["ECDSA P-256"]) == (
        other,
        [ca2, ca1],
    )


def test_split_after_rotation_picks_signing_intermediate(keys):
    ca = LocalCA.create("Rotation Split")
    old_int = ca.intermediate
    old_leaf = ca.issue_from_csr(crypto.build_csr(keys["ECDSA P-256"], "r.example", []))
    new_int = ca.rotate_intermediate()
    new_leaf = ca.issue_from_csr(crypto.build_csr(keys["ECDSA P-256"], "r.example", []))
    assert crypto.split_leaf_and_chain([ca.root, old_int, new_int, new_leaf]) == (new_leaf, [new_int])
    assert crypto.split_leaf_and_chain([new_int, old_leaf, ca.root, old_int]) == (old_leaf, [old_int])


# ------------------------------------------------------------------------------------- cert info


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("AB:CD:0F", "ABCD0F"),
        ("00abcd0f", "ABCD0F"),
        ("00:AB:CD:0F", "ABCD0F"),
        ("ab cd 0f", "ABCD0F"),
        ("ab-cd-0f", "ABCD0F"),
        ("0xABCD0F", "ABCD0F"),
        (0xABCD0F, "ABCD0F"),
        (0, "0"),
        ("00", "0"),
        ("0A1B", "A1B"),
        (" 0a1b\n", "A1B"),
    ],
)
def test_normalize_serial(raw, expected):
    assert crypto.normalize_serial(raw) == expected


@pytest.mark.parametrize("raw", ["", "xyz", "AB:CG", ":", -1, True])
def test_normalize_serial_rejects(raw):
    with pytest.raises(CryptoError):
        crypto.normalize_serial(raw)


def test_normalize_serial_scm_and_netscaler_forms_agree(local_ca, keys):
    leaf = local_ca.issue_from_csr(crypto.build_csr(keys["ECDSA P-256"], "s.example", []))
    raw = leaf.serial_number.to_bytes(17, "big")  # leading 00 as some tools print it
    scm_form = ":".join(f"{b:02x}" for b in raw)
    netscaler_form = raw.hex().upper()
    assert crypto.normalize_serial(scm_form) == crypto.normalize_serial(netscaler_form)
    assert crypto.normalize_serial(scm_form) == crypto.cert_info(leaf).serial_hex
    assert int(crypto.cert_info(leaf).serial_hex, 16) == leaf.serial_number


def test_cert_info(local_ca, keys):
    nb = datetime(2024, 3, 1, 12, 0, 0, tzinfo=timezone.utc)
    leaf = local_ca.issue_from_csr(
        crypto.build_csr(keys["RSA 3072"], "info.example", ["alt.info.example"]), days=90, not_before=nb
    )
    info = crypto.cert_info(leaf)
    assert isinstance(info, CertInfo)
    assert info.serial_hex == f"{leaf.serial_number:X}"
    assert not info.serial_hex.startswith("0")
    assert info.not_before == nb
    assert info.not_before.tzinfo is not None and info.not_before.utcoffset() == timedelta(0)
    assert info.not_after == nb + timedelta(days=90)
    assert info.common_name == "info.example"
    assert info.sans == ("info.example", "alt.info.example")
    assert info.issuer_cn == "Citrixagent Test ECC Issuing CA 1"
    assert info.subject == "CN=info.example"
    assert info.issuer == local_ca.intermediate.subject.rfc4514_string()
    assert info.fingerprint_sha256 == leaf.fingerprint(hashes.SHA256()).hex()
    assert info.fingerprint_sha256 == crypto.fingerprint_sha256(leaf)
    assert info.fingerprint_sha256 == info.fingerprint_sha256.lower() and len(info.fingerprint_sha256) == 64
    assert info.key == KeySpec("RSA", size=3072)
    assert (info.is_ca, info.self_signed) == (False, False)

    root = crypto.cert_info(local_ca.root)
    assert (root.is_ca, root.self_signed, root.key) == (True, True, KeySpec("ECDSA", curve="P-256"))
    assert root.sans == ()
    inter = crypto.cert_info(local_ca.intermediate)
    assert (inter.is_ca, inter.self_signed) == (True, False)


def test_cert_to_pem_roundtrip(local_ca):
    pem = crypto.cert_to_pem(local_ca.root)
    assert isinstance(pem, str) and pem.startswith("-----BEGIN CERTIFICATE-----")
    assert x509.load_pem_x509_certificate(pem.encode()) == local_ca.root


def test_is_issuer(local_ca, deep_chain):
    leaf, ca2, ca1, root = deep_chain
    assert crypto.is_issuer(local_ca.root, local_ca.intermediate)
    assert not crypto.is_issuer(local_ca.intermediate, local_ca.root)
    assert crypto.is_issuer(ca1, ca2) and crypto.is_issuer(root, ca1)
    assert not crypto.is_issuer(ca1, leaf)
    assert not crypto.is_issuer(local_ca.intermediate, leaf)
    assert crypto.is_issuer(root, root)  # self-signed
    assert crypto.is_self_signed(root) and not crypto.is_self_signed(ca1)


def test_is_issuer_rsa_pkcs1v15(keys):
    """An RSA CA (PKCS#1 v1.5 signature) issuing an ECDSA leaf, and an ECDSA-signed RSA leaf."""
    rsa_root = _cert("RSA Root", keys["RSA 2048"], ca=True)
    ec_leaf = _cert("e.example", keys["ECDSA P-384"], ("RSA Root", keys["RSA 2048"]), ca=False)
    assert crypto.is_issuer(rsa_root, ec_leaf)
    assert crypto.split_leaf_and_chain([rsa_root, ec_leaf]) == (ec_leaf, [])


# ------------------------------------------------------------------------------------- key files


def test_write_private_key_file(tmp_path, keys):
    pem = crypto.private_key_to_pem(keys["ECDSA P-256"])
    path = tmp_path / "state" / "keys" / "site.key"
    crypto.write_private_key_file(path, pem)
    assert path.read_bytes() == pem  # no newline translation, even on Windows
    if sys.platform != "win32":
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700


def test_write_private_key_file_created_0600_despite_umask(tmp_path, keys):
    if sys.platform == "win32":
        pytest.skip("POSIX modes")
    old = os.umask(0)
    try:
        path = tmp_path / "k.pem"
        crypto.write_private_key_file(path, crypto.private_key_to_pem(keys["ECDSA P-256"]))
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_write_private_key_file_refuses_overwrite(tmp_path, keys):
    path = tmp_path / "site.key"
    path.write_bytes(b"original")
    with pytest.raises(CryptoError, match="already exists"):
        crypto.write_private_key_file(path, crypto.private_key_to_pem(keys["ECDSA P-256"]))
    assert path.read_bytes() == b"original"
    if sys.platform != "win32":
        target = tmp_path / "target"
        link = tmp_path / "link.key"
        link.symlink_to(target)
        with pytest.raises(CryptoError):
            crypto.write_private_key_file(link, b"secret")
        assert not target.exists()
