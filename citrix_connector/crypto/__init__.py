"""Pure crypto helpers: keys, CSRs, certificate/chain parsing and matching.

Everything here is built on ``cryptography``. Functions raise :class:`CryptoError` for bad input
(except :meth:`KeySpec.parse`, which raises ``ValueError`` for the config layer to wrap). Private key
material never appears in an error message.

:mod:`.keys` (key types, generation, loading, key files), :mod:`.csr` (CSRs), :mod:`.certs`
(certificates and chains), :mod:`.pem` (input formats shared by the two). Everything public is
re-exported here: callers import from ``citrix_connector.crypto``.
"""

from __future__ import annotations

from .certs import (
    CertInfo,
    cert_info,
    cert_matches_key,
    cert_to_pem,
    fingerprint_sha256,
    is_ca,
    is_issuer,
    is_self_signed,
    normalize_serial,
    parse_certificates,
    split_leaf_and_chain,
)
from .csr import (
    Subject,
    build_csr,
    csr_names,
    csr_to_der_b64,
    csr_to_pem,
    load_csr,
    unique_names,
)
from .keys import (
    ALGORITHM_ALIASES,
    CURVE_ALIASES,
    CURVE_BITS,
    EC_CURVES,
    RSA_SIZES,
    Algorithm,
    AnyKey,
    Curve,
    KeySpec,
    PrivateKey,
    PublicKey,
    generate_private_key,
    key_spec_of,
    load_own_key,
    load_private_key,
    private_key_to_pem,
    remember_own_key,
    spki,
    write_private_key_file,
)

__all__ = [
    "ALGORITHM_ALIASES",
    "CURVE_ALIASES",
    "CURVE_BITS",
    "Algorithm",
    "AnyKey",
    "CertInfo",
    "Curve",
    "EC_CURVES",
    "KeySpec",
    "PrivateKey",
    "PublicKey",
    "RSA_SIZES",
    "Subject",
    "build_csr",
    "cert_info",
    "cert_matches_key",
    "cert_to_pem",
    "csr_names",
    "csr_to_der_b64",
    "csr_to_pem",
    "fingerprint_sha256",
    "generate_private_key",
    "is_ca",
    "is_issuer",
    "is_self_signed",
    "key_spec_of",
    "load_csr",
    "load_own_key",
    "load_private_key",
    "normalize_serial",
    "parse_certificates",
    "private_key_to_pem",
    "remember_own_key",
    "spki",
    "split_leaf_and_chain",
    "unique_names",
    "write_private_key_file",
]
