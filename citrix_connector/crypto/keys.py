"""Private keys: the key types the agent supports, generation, PEM, loading (own keys once), key files."""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, TypeAlias, cast

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from ..cpuslot import waiting
from ..errors import CryptoError
from ..private_files import FILE_MODE, make_private_dir

RSA_SIZES: tuple[int, ...] = (2048, 3072, 4096)
EC_CURVES: tuple[str, ...] = ("P-256", "P-384")

PrivateKey: TypeAlias = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey
PublicKey: TypeAlias = rsa.RSAPublicKey | ec.EllipticCurvePublicKey
AnyKey: TypeAlias = PrivateKey | PublicKey

Algorithm = Literal["RSA", "ECDSA"]
Curve = Literal["P-256", "P-384"]

ALGORITHM_ALIASES: dict[str, Algorithm] = {"RSA": "RSA", "ECDSA": "ECDSA", "EC": "ECDSA", "ECC": "ECDSA"}
# keys are upper-cased with '-', '_' and spaces removed
CURVE_ALIASES: dict[str, Curve] = {
    "P256": "P-256",
    "PRIME256V1": "P-256",
    "SECP256R1": "P-256",
    "P256R1": "P-256",
    "P384": "P-384",
    "PRIME384V1": "P-384",
    "SECP384R1": "P-384",
    "P384R1": "P-384",
}
CURVE_BITS: dict[Curve, int] = {"P-256": 256, "P-384": 384}
_CURVE_BY_NAME: dict[str, Curve] = {"secp256r1": "P-256", "secp384r1": "P-384"}


@dataclass(frozen=True)
class KeySpec:
    """A supported key type: RSA 2048/3072/4096 or ECDSA P-256/P-384."""

    algorithm: Algorithm
    size: int | None = None
    curve: Curve | None = None

    def __post_init__(self) -> None:
        if self.algorithm == "RSA":
            if self.curve is not None or self.size not in RSA_SIZES:
                raise ValueError(f"unsupported RSA key spec size={self.size!r} curve={self.curve!r}")
        elif self.algorithm == "ECDSA":
            if self.size is not None or self.curve not in EC_CURVES:
                raise ValueError(f"unsupported ECDSA key spec size={self.size!r} curve={self.curve!r}")
        else:
            raise ValueError(f"unsupported key algorithm {self.algorithm!r}")

    def describe(self) -> str:
        """``"RSA 2048"`` or ``"ECDSA P-256"``."""
        return f"RSA {self.size}" if self.algorithm == "RSA" else f"ECDSA {self.curve}"

    @classmethod
    def parse(cls, algorithm: str, size: int | None = None, curve: str | None = None) -> KeySpec:
        """Validate user input; ``ValueError`` with a readable message when unsupported."""
        supported = "supported: RSA 2048/3072/4096, ECDSA P-256/P-384"
        alg = ALGORITHM_ALIASES.get(str(algorithm).strip().upper())
        if alg is None:
            raise ValueError(f"unsupported key algorithm {algorithm!r} ({supported})")
        if size is not None and (isinstance(size, bool) or not isinstance(size, int)):
            raise ValueError(f"key size must be an integer, got {size!r}")
        if alg == "RSA":
            if curve is not None:
                raise ValueError(f"a curve ({curve!r}) only applies to ECDSA keys, not RSA")
            if size is None:
                raise ValueError(f"RSA needs a key size ({supported})")
            if size not in RSA_SIZES:
                raise ValueError(f"unsupported RSA key size {size} ({supported})")
            return cls("RSA", size=size)
        if curve is None:
            by_size = {bits: name for name, bits in CURVE_BITS.items()}
            if size is None or size not in by_size:
                raise ValueError(f"ECDSA needs a curve ({supported})")
            return cls("ECDSA", curve=by_size[size])
        norm = re.sub(r"[-_\s]", "", str(curve)).upper()
        named = CURVE_ALIASES.get(norm)
        if named is None:
            raise ValueError(f"unsupported ECDSA curve {curve!r} ({supported})")
        if size is not None and size != CURVE_BITS[named]:
            raise ValueError(f"key size {size} does not match curve {named}")
        return cls("ECDSA", curve=named)


# --------------------------------------------------------------------------------------------- keys


def generate_private_key(spec: KeySpec) -> PrivateKey:
    """A new private key of the given spec (outside the GIL: another fleet worker computes meanwhile)."""
    with waiting():
        if spec.algorithm == "RSA":
            assert spec.size is not None
            return rsa.generate_private_key(public_exponent=65537, key_size=spec.size)
        curve: ec.EllipticCurve = ec.SECP256R1() if spec.curve == "P-256" else ec.SECP384R1()
        return ec.generate_private_key(curve)


def private_key_to_pem(key: PrivateKey) -> bytes:
    """Unencrypted PKCS#8 PEM."""
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


#: Keys this process made or loaded from its own state directory, by the SHA-256 of their PEM: each
#: key is parsed (and an RSA key's costly consistency check run) at most once per run.
_OWN_KEYS: dict[bytes, PrivateKey] = {}
_OWN_KEYS_LOCK = threading.Lock()


def remember_own_key(pem: bytes, key: PrivateKey) -> None:
    """Keep a key the agent just generated (and wrote as ``pem``): later loads of it cost nothing."""
    with _OWN_KEYS_LOCK:
        _OWN_KEYS[hashlib.sha256(pem).digest()] = key


def load_own_key(pem: bytes) -> PrivateKey:
    """Load a key the agent generated itself and stored in its private state directory.

    The RSA consistency check (``unsafe_skip_rsa_key_validation``) is skipped: it guards against
    malformed keys from elsewhere, and costs ~30 ms per 2048-bit key; this key came out of
    ``generate_private_key``. The key is kept for the rest of the run."""
    digest = hashlib.sha256(pem).digest()
    with _OWN_KEYS_LOCK:
        known = _OWN_KEYS.get(digest)
    if known is not None:
        return known
    key = _load_private_key(pem, own=True)
    with _OWN_KEYS_LOCK:
        _OWN_KEYS[digest] = key
    return key


def load_private_key(pem: bytes) -> PrivateKey:
    """Load an unencrypted PEM (or DER) RSA/EC private key; CryptoError otherwise. A key the agent
    made or loaded from its state dir this run (:func:`load_own_key`) is answered without parsing."""
    with _OWN_KEYS_LOCK:
        known = _OWN_KEYS.get(hashlib.sha256(pem).digest())
    return known if known is not None else _load_private_key(pem, own=False)


def _load_private_key(pem: bytes, *, own: bool) -> PrivateKey:
    try:
        if b"-----BEGIN" in pem:
            key = serialization.load_pem_private_key(pem, password=None, unsafe_skip_rsa_key_validation=own)
        else:
            key = serialization.load_der_private_key(pem, password=None, unsafe_skip_rsa_key_validation=own)
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        # never include the key bytes in the message
        raise CryptoError(f"cannot load private key: {type(exc).__name__}") from None
    if not isinstance(key, (rsa.RSAPrivateKey, ec.EllipticCurvePrivateKey)):
        raise CryptoError(f"unsupported private key type {type(key).__name__}")
    key_spec_of(key)
    return key


def key_spec_of(key: AnyKey) -> KeySpec:
    """The KeySpec of a public or private key; CryptoError if it is not a supported type."""
    if isinstance(key, (rsa.RSAPrivateKey, rsa.RSAPublicKey)):
        if key.key_size not in RSA_SIZES:
            raise CryptoError(f"unsupported RSA key size {key.key_size}")
        return KeySpec("RSA", size=key.key_size)
    if isinstance(key, (ec.EllipticCurvePrivateKey, ec.EllipticCurvePublicKey)):
        curve = _CURVE_BY_NAME.get(key.curve.name)
        if curve is None:
            raise CryptoError(f"unsupported EC curve {key.curve.name}")
        return KeySpec("ECDSA", curve=curve)
    raise CryptoError(f"unsupported key type {type(key).__name__}")


def _public_key(key: object) -> object:
    if isinstance(key, (rsa.RSAPrivateKey, ec.EllipticCurvePrivateKey)):
        return key.public_key()
    return key


def spki(key: object) -> bytes:
    pub = _public_key(key)
    public_bytes = getattr(pub, "public_bytes", None)
    if public_bytes is None:
        raise CryptoError(f"not a key: {type(key).__name__}")
    try:
        return cast(
            bytes,
            public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo),
        )
    except (ValueError, TypeError) as exc:
        raise CryptoError(f"cannot serialise public key: {exc}") from None


# ---------------------------------------------------------------------------------------- key files


def write_private_key_file(path: Path, pem: bytes) -> None:
    """Create ``path`` exclusively with mode 0600 (missing parents 0700) and write ``pem``.

    Never overwrites an existing file.
    """
    path = Path(path)
    try:
        make_private_dir(path.parent)
    except OSError as exc:
        raise CryptoError(f"cannot create key directory {path.parent}: {exc.strerror or exc}") from None
    flags = os.O_CREAT | os.O_EXCL | os.O_WRONLY | getattr(os, "O_BINARY", 0) | getattr(os, "O_NOFOLLOW", 0)
    try:
        fd = os.open(path, flags, FILE_MODE)
    except FileExistsError:
        raise CryptoError(f"private key file {path} already exists; refusing to overwrite it") from None
    except OSError as exc:
        raise CryptoError(f"cannot create private key file {path}: {exc.strerror or exc}") from None
    try:
        if sys.platform != "win32":
            os.fchmod(fd, FILE_MODE)  # exactly 0600, whatever the umask took away
        view = memoryview(pem)
        while view:
            written = os.write(fd, view)
            view = view[written:]
        os.fsync(fd)
    except OSError as exc:
        os.close(fd)
        fd = -1
        with contextlib.suppress(OSError):
            path.unlink()
        raise CryptoError(f"cannot write private key file {path}: {exc.strerror or exc}") from None
    finally:
        if fd >= 0:
            os.close(fd)
