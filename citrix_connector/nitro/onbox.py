"""A private key and CSR made on the appliance, so the key never leaves it (``nitro-api.md`` §4)."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from ..crypto import KeySpec, Subject, csr_names, csr_to_pem, load_csr, unique_names
from ..errors import CryptoError
from .client import NitroClient
from .naming import fresh_stem, join, output_path_room
from .plan import step

__all__ = ["make_csr_on_appliance", "make_key_on_appliance"]

log = logging.getLogger("citrixagent.nitro.deploy")


def _check_csr(csr_pem: bytes, common_name: str, sans: Sequence[str], where: str) -> str:
    csr = load_csr(csr_pem)
    cn, got = csr_names(csr)
    wanted = {n.lower() for n in unique_names([common_name, *sans])}
    have = {n.lower() for n in got}
    if cn.lower() != common_name.strip().lower():
        raise CryptoError(f"the CSR made on {where} has CN {cn!r}, expected {common_name!r}")
    if have != wanted:
        raise CryptoError(f"the CSR made on {where} names {sorted(have)}, expected {sorted(wanted)}")
    return csr_to_pem(csr)


def _make_csr(
    nitro: NitroClient, stem: str, keyfile: str, common_name: str, names: Sequence[str], subject: Subject
) -> str:
    with step("create-csr"):
        reqfile = join(nitro.ssl_dir, f"{stem}.csr")
        nitro.create_csr(reqfile, keyfile, common_name=common_name, sans=names, subject=subject)
        pem = nitro.download_file(f"{stem}.csr")
        return _check_csr(pem, common_name, names, nitro.host)


def make_key_on_appliance(
    nitro: NitroClient,
    *,
    base: str,
    key: KeySpec,
    common_name: str,
    sans: Sequence[str],
    subject: Subject,
) -> tuple[str, str]:
    """Create a private key and a CSR on the appliance; return (key file path, CSR PEM).

    The files are ``<base>.key``/``<base>.csr`` in the partition's SSL directory (a ``-<n>`` suffix when
    taken; ≤63 characters). The CSR is downloaded and checked to carry the requested CN and SANs. The key
    never leaves the appliance.
    """
    taken = set(nitro.list_files())
    # keyfile/reqfile are sent as full paths, and NITRO limits those values to 63 characters
    stem = fresh_stem(base, "", taken, (".key", ".csr"), output_path_room(nitro.ssl_dir))
    keyfile = join(nitro.ssl_dir, f"{stem}.key")
    names = unique_names([common_name, *sans])
    with step("create-key"):
        if key.algorithm == "RSA":
            assert key.size is not None
            nitro.create_rsa_key(keyfile, key.size)
        else:
            assert key.curve is not None
            nitro.create_ecdsa_key(keyfile, key.curve)
    csr = _make_csr(nitro, stem, keyfile, common_name, names, subject)
    log.info("NetScaler %s: created %s key %s and CSR %s.csr", nitro.host, key.describe(), keyfile, stem)
    return keyfile, csr


def make_csr_on_appliance(
    nitro: NitroClient,
    *,
    keyfile: str,
    reqfile_base: str,
    common_name: str,
    sans: Sequence[str],
    subject: Subject,
) -> str:
    """A new CSR for a key already on the appliance (key reuse); returns the checked CSR PEM."""
    taken = set(nitro.list_files())
    stem = fresh_stem(reqfile_base, "", taken, (".csr",), output_path_room(nitro.ssl_dir))
    return _make_csr(nitro, stem, keyfile, common_name, unique_names([common_name, *sans]), subject)
