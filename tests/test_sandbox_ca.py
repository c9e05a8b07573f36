"""Tests for citrix_connector.sandbox.ca.LocalCA."""

from __future__ import annotations

import ipaddress
import ssl
from datetime import datetime, timedelta, timezone

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from citrix_connector import crypto
from citrix_connector.sandbox.ca import LocalCA

SPEC_NAMES = ["RSA 2048", "RSA 3072", "RSA 4096", "ECDSA P-256", "ECDSA P-384"]


def _ext(cert: x509.Certificate, cls):
    return cert.extensions.get_extension_for_class(cls)


def _cn(name: x509.Name) -> str:
    return str(name.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value)


def test_root_and_intermediate_structure(local_ca: LocalCA):
    root, inter = local_ca.root, local_ca.intermediate
    assert _cn(root.subject) == "Citrixagent Test Root CA R1"
    assert root.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)[0].value == "Citrixagent Test"
    assert _cn(inter.subject) == "Citrixagent Test ECC Issuing CA 1"
    assert crypto.is_self_signed(root)
    assert crypto.is_issuer(root, inter)
    assert not crypto.is_self_signed(inter)
    for cert, pathlen in ((root, 1), (inter, 0)):
        bc = _ext(cert, x509.BasicConstraints)
        assert bc.critical and bc.value.ca and bc.value.path_length == pathlen
        ku = _ext(cert, x509.KeyUsage)
        assert ku.critical and ku.value.key_cert_sign and ku.value.crl_sign
        public_key = cert.public_key()
        assert isinstance(public_key, ec.EllipticCurvePublicKey)
        assert public_key.curve.name == "secp256r1"
    root_ski = _ext(root, x509.SubjectKeyIdentifier).value.digest
    assert _ext(inter, x509.AuthorityKeyIdentifier).value.key_identifier == root_ski
    assert _ext(inter, x509.SubjectKeyIdentifier).value.digest != root_ski
    now = datetime.now(timezone.utc)
    for cert in (root, inter):
        assert cert.not_valid_before_utc < now < cert.not_valid_after_utc
    assert local_ca.intermediates == [inter]
    assert crypto.parse_certificates(local_ca.bundle_pem()) == [root]


@pytest.mark.parametrize("name", SPEC_NAMES)
def test_issue_from_csr_every_key_type(local_ca: LocalCA, keys, name):
    key = keys[name]
    csr = crypto.build_csr(key, "web.example.org", ["web2.example.org"])
    before = datetime.now(timezone.utc).replace(microsecond=0)
    leaf = local_ca.issue_from_csr(csr, sans=["extra.example.org", "198.51.100.7", "WEB2.example.org"])
    assert crypto.cert_matches_key(leaf, key)
    assert crypto.is_issuer(local_ca.intermediate, leaf)
    assert _cn(leaf.subject) == "web.example.org"
    san = _ext(leaf, x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == [
        "web.example.org",
        "web2.example.org",
        "extra.example.org",
    ]
    assert san.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("198.51.100.7")]
    assert _ext(leaf, x509.ExtendedKeyUsage).value == x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH])
    assert _ext(leaf, x509.BasicConstraints).value.ca is False
    ku = _ext(leaf, x509.KeyUsage).value
    assert ku.digital_signature and ku.key_encipherment == name.startswith("RSA")
    assert 0 < leaf.serial_number < 2**128
    assert len(leaf.serial_number.to_bytes(16, "big").lstrip(b"\0")) == 16
    assert before <= leaf.not_valid_before_utc <= datetime.now(timezone.utc)
    assert leaf.not_valid_after_utc - leaf.not_valid_before_utc == timedelta(days=365)
    assert crypto.cert_info(leaf).key.describe() == name
    assert local_ca.chain_for(leaf) == [local_ca.intermediate, local_ca.root]


def test_issue_from_csr_input_forms(local_ca: LocalCA, keys):
    csr = crypto.build_csr(keys["ECDSA P-256"], "forms.example", [])
    der = csr.public_bytes(serialization.Encoding.DER)
    for form in (
        csr,
        crypto.csr_to_pem(csr),
        crypto.csr_to_pem(csr).encode(),
        der,
        crypto.csr_to_der_b64(csr),
    ):
        leaf = local_ca.issue_from_csr(form)
        assert leaf.public_key() == csr.public_key()  # the CSR's key certified
    serials = {local_ca.issue_from_csr(csr).serial_number for _ in range(5)}
    assert len(serials) == 5


@pytest.mark.parametrize(
    "bad", ["", "garbage", b"\x30\x00", "-----BEGIN CERTIFICATE REQUEST-----\nAA\n-----END"]
)
def test_issue_from_csr_rejects_garbage(local_ca: LocalCA, bad):
    with pytest.raises(ValueError):
        local_ca.issue_from_csr(bad)


def test_issue_days_and_not_before(local_ca: LocalCA, keys):
    nb = datetime(2020, 1, 2, 3, 4, 5, tzinfo=timezone.utc)
    leaf = local_ca.issue_from_csr(
        crypto.build_csr(keys["ECDSA P-256"], "old.example", []), days=30, not_before=nb
    )
    assert leaf.not_valid_before_utc == nb
    assert leaf.not_valid_after_utc == nb + timedelta(days=30)


def test_injected_clock(keys):
    when = datetime(2023, 6, 1, 8, 0, 0, tzinfo=timezone.utc)
    ca = LocalCA.create("Clocked", clock=lambda: when)
    assert ca.now() == when
    leaf = ca.issue_from_csr(crypto.build_csr(keys["ECDSA P-256"], "past.example", []), days=10)
    assert leaf.not_valid_before_utc == when
    assert leaf.not_valid_after_utc == when + timedelta(days=10)
    assert ca.root.not_valid_before_utc < when < ca.root.not_valid_after_utc
    assert ca.intermediate.not_valid_before_utc < when < ca.intermediate.not_valid_after_utc


def test_rotate_intermediate_changes_issuer(keys):
    ca = LocalCA.create("Rotating")
    csr = crypto.build_csr(keys["RSA 2048"], "rot.example", [])
    first = ca.intermediate
    old_leaf = ca.issue_from_csr(csr)
    second = ca.rotate_intermediate()
    new_leaf = ca.issue_from_csr(csr)

    assert ca.intermediate == second != first
    assert _cn(second.subject) == "Rotating ECC Issuing CA 2"
    assert second.serial_number != first.serial_number
    assert second.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    ) != first.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    assert crypto.is_issuer(ca.root, second)
    assert old_leaf.issuer == first.subject and new_leaf.issuer == second.subject
    assert crypto.cert_info(old_leaf).issuer_cn != crypto.cert_info(new_leaf).issuer_cn
    assert crypto.is_issuer(second, new_leaf) and not crypto.is_issuer(second, old_leaf)
    assert ca.chain_for(old_leaf) == [first, ca.root]
    assert ca.chain_for(new_leaf) == [second, ca.root]

    third = ca.rotate_intermediate()
    assert _cn(third.subject) == "Rotating ECC Issuing CA 3"
    assert ca.intermediates == [first, second, third]


def test_chain_for_foreign_leaf(local_ca: LocalCA, keys):
    other = LocalCA.create("Foreign")
    leaf = other.issue_from_csr(crypto.build_csr(keys["ECDSA P-256"], "f.example", []))
    with pytest.raises(ValueError):
        local_ca.chain_for(leaf)


def test_issue_tls_server_cert_handshake(local_ca: LocalCA, tmp_path):
    cert_pem, key_pem = local_ca.issue_tls_server_cert()
    certs = crypto.parse_certificates(cert_pem)
    assert certs[1:] == [local_ca.intermediate]
    leaf = certs[0]
    assert crypto.cert_matches_key(leaf, crypto.load_private_key(key_pem))
    san = _ext(leaf, x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["localhost"]
    assert san.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("127.0.0.1")]

    # a real TLS handshake in memory: server presents leaf+intermediate, client trusts only the root
    (tmp_path / "cert.pem").write_bytes(cert_pem)
    (tmp_path / "key.pem").write_bytes(key_pem)
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(tmp_path / "cert.pem", tmp_path / "key.pem")
    client_ctx = ssl.create_default_context(cadata=local_ca.bundle_pem().decode())
    for server_name in ("localhost", "127.0.0.1"):
        _handshake(server_ctx, client_ctx, server_name)
    with pytest.raises(ssl.SSLCertVerificationError):
        _handshake(server_ctx, client_ctx, "other.example")


def _handshake(server_ctx: ssl.SSLContext, client_ctx: ssl.SSLContext, server_name: str) -> None:
    c_in, c_out, s_in, s_out = ssl.MemoryBIO(), ssl.MemoryBIO(), ssl.MemoryBIO(), ssl.MemoryBIO()
    client = client_ctx.wrap_bio(c_in, c_out, server_hostname=server_name)
    server = server_ctx.wrap_bio(s_in, s_out, server_side=True)
    done = {"c": False, "s": False}
    for _ in range(20):
        for name, obj in (("c", client), ("s", server)):
            if not done[name]:
                try:
                    obj.do_handshake()
                    done[name] = True
                except ssl.SSLWantReadError:
                    pass
        s_in.write(c_out.read())
        c_in.write(s_out.read())
        if all(done.values()):
            return
    raise AssertionError("handshake did not finish")


def test_issue_tls_server_cert_custom_names(local_ca: LocalCA):
    cert_pem, _ = local_ca.issue_tls_server_cert(["scm.sandbox.test", "localhost"], ["127.0.0.1", "::1"])
    leaf = crypto.parse_certificates(cert_pem)[0]
    info = crypto.cert_info(leaf)
    assert info.common_name == "scm.sandbox.test"
    assert info.sans == ("scm.sandbox.test", "localhost", "127.0.0.1", "::1")
