"""How a certificate gets onto a NetScaler: the expert admin's way (nitro-api.md §3 and §4).

Plain functions over a connected :class:`~citrix_connector.nitro.client.NitroClient`; no Click, no SCM,
no state files. The rules they keep:

* a certificate in use is replaced **in place** (``update`` on the same certkey name), so every binding
  survives and no vserver ever goes without a certificate; never unbind-then-bind;
* every deployment uploads files under **new** names (``<base>-<UTC timestamp>.crt/.key``);
* intermediates are installed once and reused whatever their name (found by serial);
* the leaf is linked to its issuer, and re-linked when the issuer changed;
* a failure after the new certificate went live (link) rolls the certkey back to its previous files, so
  the old certificate keeps serving; re-running converges;
* ``dry_run`` only reads, and returns the actions it would take;
* nothing here saves the configuration: the caller calls :func:`save` once per appliance per run.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import re
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Protocol

from cryptography import x509
from cryptography.x509.oid import NameOID

from ..crypto import (
    KeySpec,
    Subject,
    cert_info,
    cert_matches_key,
    cert_to_pem,
    csr_names,
    csr_to_pem,
    fingerprint_sha256,
    is_issuer,
    is_self_signed,
    load_csr,
    load_private_key,
    parse_certificates,
    unique_names,
)
from ..errors import ApplianceStateError, CitrixAgentError, CryptoError, NitroAuthError, NitroError
from .client import VSERVER_KINDS, CertKey, NitroClient

__all__ = [
    "DeployPlan",
    "DeployResult",
    "InstalledState",
    "VserverRef",
    "ca_certkey_name",
    "remove_unreferenced_files",
    "deploy",
    "make_csr_on_appliance",
    "make_key_on_appliance",
    "open_appliance",
    "preflight",
    "read_installed",
    "save",
]

log = logging.getLogger("citrixagent.nitro.deploy")



class VserverRef(Protocol):
    """A vserver to bind to (the profile's ``VserverSpec`` is one): its name, its kind
    (lb|cs|vpn|authentication), and whether to bind as an SNI certificate."""

    @property
    def name(self) -> str: ...
    @property
    def type(self) -> str: ...
    @property
    def sni(self) -> bool: ...


CERTKEY_NAME_MAX = 31
FILE_NAME_MAX = 63
_TIMESTAMP_FORMAT = "%Y%m%d%H%M%S"
_LINK_CHANGED_CODES = frozenset({1587, 1590, 1591})
_ISSUER_MISMATCH_CODES = frozenset({1548, 3669})
_FILE_MISSING_CODES = frozenset({258, 3441})
_CONTENTS_RE = re.compile(r"Contents\s*,\s*([^\]]+)\]")


# ----------------------------------------------------------------------------------------- errors


@contextlib.contextmanager
def _step(name: str) -> Iterator[None]:
    """Name the step on any error raised inside (``NitroError.step`` and a ``step <name>:`` prefix)."""
    try:
        yield
    except NitroError as exc:
        if exc.step:
            raise
        cls = NitroAuthError if isinstance(exc, NitroAuthError) else NitroError
        raise cls(
            f"step {name}: {exc}",
            errorcode=exc.errorcode,
            nitro_message=exc.nitro_message,
            status=exc.status,
            endpoint=exc.endpoint,
            step=name,
        ) from exc
    except (ApplianceStateError, CryptoError) as exc:
        if str(exc).startswith("step "):
            raise
        raise type(exc)(f"step {name}: {exc}") from exc


def _fail(step: str, message: str) -> NitroError:
    return NitroError(f"step {step}: {message}", step=step)


# ----------------------------------------------------------------------------------------- naming


def _safe(text: str, allowed: str = r"A-Za-z0-9_.\-") -> str:
    cleaned = re.sub(rf"[^{allowed}]+", "-", text).strip("-.")
    cleaned = re.sub(r"-{2,}", "-", cleaned)
    return cleaned


def ca_certkey_name(cert: x509.Certificate) -> str:
    """Deterministic certkey name for a CA certificate: sanitised CN + ``-`` + 8 hex of its fingerprint.

    At most 31 characters, starts with a letter, digit or ``_`` (NetScaler's certkey name rules).
    """
    attrs = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    cn = str(attrs[0].value) if attrs else ""
    base = _safe(cn) or "CA"
    if not re.match(r"[A-Za-z0-9_]", base):
        base = "CA-" + base
    suffix = "-" + fingerprint_sha256(cert)[:8]
    return base[: CERTKEY_NAME_MAX - len(suffix)].rstrip("-.") + suffix


def _file_stem(base: str, extra: str, limit: int = FILE_NAME_MAX) -> str:
    """``<base><extra>`` trimmed so that stem + a 4-character extension fits in ``limit`` characters."""
    safe = _safe(base) or "cert"
    room = max(limit - 4 - len(extra), 8)
    return safe[:room].rstrip("-.") + extra


def _fresh_stem(
    base: str, stamp: str, taken: set[str], exts: Sequence[str], limit: int = FILE_NAME_MAX
) -> str:
    """A stem for which none of ``<stem><ext>`` exists yet."""
    for n in range(1, 100):
        extra = f"-{stamp}" if n == 1 else f"-{stamp}-{n}"
        if not stamp:
            extra = "" if n == 1 else f"-{n}"
        stem = _file_stem(base, extra, limit)
        if not any(f"{stem}{ext}" in taken for ext in exts):
            return stem
    raise ApplianceStateError(f"cannot find a free file name for {base!r}")


def _output_path_room(nitro: NitroClient) -> int:
    """Room for a file name when the full path (key/CSR output) must fit in 63 characters."""
    return FILE_NAME_MAX - len(nitro.ssl_dir.rstrip("/")) - 1


def _path(nitro: NitroClient, name: str) -> str:
    return f"{nitro.ssl_dir.rstrip('/')}/{name}"


def _cn_from_nitro_subject(subject: str) -> str:
    match = re.search(r"(?:^|[,/]\s*)CN\s*=\s*([^,/]+)", subject)
    return match.group(1).strip() if match else ""


def _names_of_cert(cert: x509.Certificate) -> set[str]:
    info = cert_info(cert)
    return {n.lower() for n in (info.common_name, *info.sans) if n}


def _names_of_certkey(ck: CertKey) -> set[str]:
    names = {n.lower() for n in ck.sandns}
    cn = _cn_from_nitro_subject(ck.subject)
    if cn:
        names.add(cn.lower())
    return names


# --------------------------------------------------------------------------------------- connect


def open_appliance(
    urls: Sequence[str],
    *,
    username: str,
    password: str,
    verify: bool | Path,
    timeout: float = 60,
    partition: str | None = None,
    sleep: Callable[[float], None] = time.sleep,
    proxy: str | None = None,
) -> NitroClient:
    """A logged-in client on the node that may be written to (HA Primary or standalone).

    One URL on an HA Secondary is refused; with several URLs (both HA nodes) the Primary is used. The
    partition is switched after the HA check. The caller closes the client (``with`` or ``close()``).
    """
    if isinstance(urls, str):
        urls = [urls]
    if not urls:
        raise ApplianceStateError("no appliance URL given")
    problems: list[str] = []
    last_error: NitroError | None = None
    for url in urls:
        client = NitroClient(
            url,
            username=username,
            password=password,
            verify=verify,
            timeout=timeout,
            partition=partition,
            sleep=sleep,
            proxy=proxy,
        )
        try:
            client.login()
            ha = client.ha_info()
            if ha.state == "Secondary":
                client.close()
                if len(urls) == 1:
                    raise ApplianceStateError(
                        f"{client.host} is the HA secondary node; point appliance.url at the primary "
                        "(or list both nodes)"
                    )
                state = ha.raw_state or "Secondary"
                problems.append(f"{client.host} is not the HA primary (state {state})")
                continue
            if partition:
                client.switch_partition(partition)
            log.debug("NetScaler %s: HA state %s, using it", client.host, ha.state)
            return client
        except NitroAuthError:
            client.close()
            raise
        except NitroError as exc:
            client.close()
            if len(urls) == 1:
                raise
            last_error = exc
            problems.append(str(exc))
        except BaseException:
            client.close()
            raise
    if last_error is not None and len(problems) == 1:
        raise last_error
    raise ApplianceStateError("no HA primary node among " + ", ".join(urls) + ": " + "; ".join(problems))


def preflight(nitro: NitroClient, vservers: Sequence[VserverRef]) -> None:
    """Check every vserver exists, terminates SSL, and has SNI enabled where SNI binding is asked.

    Raises one :class:`ApplianceStateError` listing every problem.
    """
    problems: list[str] = []
    for ref in vservers:
        name, kind, sni = ref.name, ref.type, ref.sni
        try:
            canon = nitro.vserver_kind(kind)
        except ValueError as exc:
            problems.append(f"vserver {name!r}: {exc}")
            continue
        collection = VSERVER_KINDS[canon]
        vs = nitro.get_vserver(canon, name)
        if vs is None:
            problems.append(f"{collection} {name!r} does not exist")
            continue
        if vs.servicetype.upper() == "SSL_BRIDGE":
            problems.append(f"{collection} {name!r} is SSL_BRIDGE (passes TLS through; nothing to bind)")
            continue
        if not vs.is_ssl:
            problems.append(f"{collection} {name!r} has service type {vs.servicetype or '?'}, not SSL")
            continue
        if sni and not nitro.ssl_vserver_sni_enabled(name):
            problems.append(
                f"{collection} {name!r} does not have SNI enabled "
                f"(set ssl vserver {name} -SNIEnable ENABLED, or bind without sni)"
            )
    if problems:
        raise ApplianceStateError(f"NetScaler {nitro.host}: " + "; ".join(problems))


# ------------------------------------------------------------------------------ key + CSR on box


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
    stem = _fresh_stem(base, "", taken, (".key", ".csr"), _output_path_room(nitro))
    keyfile = _path(nitro, f"{stem}.key")
    reqfile = _path(nitro, f"{stem}.csr")
    names = unique_names([common_name, *sans])
    with _step("create-key"):
        if key.algorithm == "RSA":
            assert key.size is not None
            nitro.create_rsa_key(keyfile, key.size)
        else:
            assert key.curve is not None
            nitro.create_ecdsa_key(keyfile, key.curve)
    with _step("create-csr"):
        nitro.create_csr(reqfile, keyfile, common_name=common_name, sans=names, subject=subject)
        pem = nitro.download_file(f"{stem}.csr")
        csr = _check_csr(pem, common_name, names, nitro.host)
    log.info("NetScaler %s: created %s key %s and CSR %s", nitro.host, key.describe(), keyfile, reqfile)
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
    stem = _fresh_stem(reqfile_base, "", taken, (".csr",), _output_path_room(nitro))
    names = unique_names([common_name, *sans])
    with _step("create-csr"):
        reqfile = _path(nitro, f"{stem}.csr")
        nitro.create_csr(reqfile, keyfile, common_name=common_name, sans=names, subject=subject)
        pem = nitro.download_file(f"{stem}.csr")
        return _check_csr(pem, common_name, names, nitro.host)


# ----------------------------------------------------------------------------------------- deploy


@dataclass
class DeployPlan:
    """What to install: leaf (+ chain, issuer first, no root) under ``certkey``, bound to ``vservers``."""

    certkey: str
    leaf: x509.Certificate
    chain: list[x509.Certificate]
    key_pem: bytes | None
    appliance_keyfile: str | None
    vservers: Sequence[VserverRef]
    file_base: str

    def validate(self) -> None:
        """Local consistency checks before touching the appliance (CryptoError)."""
        if not self.certkey or len(self.certkey) > CERTKEY_NAME_MAX:
            raise CryptoError(f"certkey name {self.certkey!r} must be 1..{CERTKEY_NAME_MAX} characters")
        if (self.key_pem is None) == (self.appliance_keyfile is None):
            raise CryptoError(
                f"deploy plan for {self.certkey!r} needs exactly one key: a local key or a key file on the "
                "appliance"
            )
        if self.key_pem is not None:
            key = load_private_key(self.key_pem)
            if not cert_matches_key(self.leaf, key):
                raise CryptoError(f"the certificate for {self.certkey!r} does not match the private key")
        previous = self.leaf
        for ca in self.chain:
            if not is_issuer(ca, previous):
                raise CryptoError(
                    f"chain for {self.certkey!r} is out of order: {ca.subject.rfc4514_string()} did not "
                    f"issue {previous.subject.rfc4514_string()}"
                )
            previous = ca


@dataclass
class DeployResult:
    certkey: str
    serial: str
    changed: bool
    actions: list[str]
    vservers_bound: list[str]
    cert_file: str
    key_file: str


@dataclass(frozen=True)
class InstalledState:
    """What the appliance holds under a certkey name (``serial`` None when the certkey is absent)."""

    serial: str | None
    not_after: datetime | None
    names: tuple[str, ...]
    bound_vservers: list[str] = field(default_factory=list)
    link: str | None = None
    cert_file: str = ""
    key_file: str = ""


class _Run:
    """The state of one :func:`deploy` call."""

    def __init__(self, nitro: NitroClient, plan: DeployPlan, dry_run: bool, now: datetime) -> None:
        self.nitro = nitro
        self.plan = plan
        self.dry_run = dry_run
        self.stamp = now.astimezone(timezone.utc).strftime(_TIMESTAMP_FORMAT)
        self.actions: list[str] = []
        self.changed = False
        self._files: set[str] | None = None
        self._all_certkeys: list[CertKey] | None = None

    def act(self, text: str) -> None:
        self.actions.append(text)
        log.info("NetScaler %s: %s%s", self.nitro.host, "[dry run] " if self.dry_run else "", text)

    def write(self, text: str, fn: Callable[[], object]) -> None:
        """Record an action; run it unless dry-run."""
        self.act(text)
        self.changed = True
        if not self.dry_run:
            fn()

    def files(self) -> set[str]:
        if self._files is None:
            self._files = set(self.nitro.list_files())
        return self._files

    def all_certkeys(self) -> list[CertKey]:
        if self._all_certkeys is None:
            self._all_certkeys = self.nitro.list_certkeys()
        return self._all_certkeys

    def upload(self, stem_base: str, ext_content: Sequence[tuple[str, bytes, str]]) -> str:
        """Upload files ``<stem><ext>`` under one fresh stem; returns the stem. 1642 -> next stem."""
        exts = [ext for ext, _, _ in ext_content]
        for _ in range(5):
            stem = _fresh_stem(stem_base, self.stamp, self.files(), exts)
            try:
                for ext, content, what in ext_content:
                    name = f"{stem}{ext}"
                    self.write(
                        f"upload {what} {_path(self.nitro, name)}",
                        functools.partial(self.nitro.upload_file, name, content),
                    )
                    self.files().add(name)
                return stem
            except NitroError as exc:
                if exc.errorcode != 1642:
                    raise
                log.info("NetScaler %s: %s exists already; choosing another name", self.nitro.host, stem)
                self._files = None
                self.files().update(f"{stem}{ext}" for ext in exts)
        raise ApplianceStateError(f"cannot upload {stem_base}: every file name tried exists already")


def _install_chain(run: _Run) -> list[str]:
    """Install each CA certificate once; return their certkey names (issuer of the leaf first)."""
    nitro = run.nitro
    chain = run.plan.chain
    names: list[str] = [""] * len(chain)
    for index in range(len(chain) - 1, -1, -1):  # top of the chain first, so links can be made
        ca = chain[index]
        info = cert_info(ca)
        cn = info.common_name or info.subject
        existing = [
            ck
            for ck in nitro.find_certkeys_by_serial(info.serial_hex)
            if not ck.subject
            or not info.common_name
            or _cn_from_nitro_subject(ck.subject) == info.common_name
        ]
        if existing:
            ck = existing[0]
            names[index] = ck.name
            run.act(f"CA certificate {cn!r} is installed as certkey {ck.name!r}")
        else:
            name = ca_certkey_name(ca)
            names[index] = _add_ca(run, name, ca, cn)
            ck = nitro.get_certkey(names[index]) or CertKey(
                name=names[index],
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
        _link_ca(run, ck, ca, names, chain, index)
    return names


def _add_ca(run: _Run, name: str, ca: x509.Certificate, cn: str) -> str:
    nitro = run.nitro
    current = nitro.get_certkey(name)
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
        run.write(
            f"add CA certkey {name!r} ({cn})",
            lambda: nitro.add_certkey(name, _path(nitro, f"{stem}.crt"), None),
        )
    except NitroError as exc:
        match = _CONTENTS_RE.search(exc.nitro_message or str(exc))
        if exc.errorcode == 273 and match:
            other = match.group(1).strip()
            run.act(f"CA certificate {cn!r} is already installed as certkey {other!r}; using it")
            with contextlib.suppress(NitroError):
                nitro.delete_file(f"{stem}.crt")
            return other
        raise
    return name


def _link_ca(
    run: _Run, ck: CertKey, ca: x509.Certificate, names: list[str], chain: list[x509.Certificate], index: int
) -> None:
    """Link a CA certkey to its issuer's certkey.

    When the chain names the issuer, the CA certkey is linked to it, and re-linked when it points at
    another certkey (e.g. a superseded cross-certificate). At the top of the chain an installed certkey
    named like the issuer is linked, and only when the CA has no link yet.
    """
    if is_self_signed(ca):
        return
    old = ck.linkcertkeyname
    target: str | None = None
    if index + 1 < len(chain):
        target = names[index + 1]
        if old == target:
            return
    else:
        if old:
            return
        issuer_cn = cert_info(ca).issuer_cn
        for other in run.all_certkeys():
            if other.name != ck.name and issuer_cn and _cn_from_nitro_subject(other.subject) == issuer_cn:
                target = other.name
                break
    if not target:
        return
    nitro = run.nitro
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
    except NitroError as exc:
        if old:
            with contextlib.suppress(NitroError):
                nitro.link_certkey(ck.name, old)
        if exc.errorcode in _ISSUER_MISMATCH_CODES and index + 1 >= len(chain):
            log.info("NetScaler %s: %s is not the issuer of %s; not linked", nitro.host, target, ck.name)
            return
        raise


def _needs_domain_check_off(nitro: NitroClient, installed: CertKey, leaf: x509.Certificate) -> bool:
    old = _names_of_certkey(installed)
    if not old and installed.cert:
        with contextlib.suppress(NitroError, CryptoError):
            location, _, name = installed.cert.rpartition("/")
            data = nitro.download_file(name, location or None)
            old = _names_of_cert(parse_certificates(data)[0])
    if not old:
        return True  # unknown: the domain check would only be a guess
    return old != _names_of_cert(leaf)


def _rollback(run: _Run, before: CertKey, error: CitrixAgentError) -> str:
    """Put the previous certificate files back behind the certkey; returns a note for the error."""
    nitro = run.nitro
    name = before.name
    try:
        nitro.update_certkey(name, before.cert, before.key, no_domain_check=True)
        now = nitro.get_certkey(name)
        if before.linkcertkeyname and now is not None and now.linkcertkeyname != before.linkcertkeyname:
            if now.linkcertkeyname:
                nitro.unlink_certkey(name)
            nitro.link_certkey(name, before.linkcertkeyname)
    except NitroError as exc:
        log.error("NetScaler %s: rollback of %s failed: %s", nitro.host, name, exc)
        return f"; rolling back to the previous certificate failed too: {exc}"
    log.warning("NetScaler %s: rolled %s back to serial %s after: %s", nitro.host, name, before.serial, error)
    return f"; rolled back: certkey {name!r} serves the previous certificate (serial {before.serial}) again"


def deploy(
    nitro: NitroClient,
    plan: DeployPlan,
    *,
    dry_run: bool = False,
    now: Callable[[], datetime] | None = None,
) -> DeployResult:
    """Install ``plan`` on the appliance (see the module docstring for the rules); no config save."""
    plan.validate()
    run = _Run(nitro, plan, dry_run, (now or (lambda: datetime.now(timezone.utc)))())
    name = plan.certkey
    leaf_info = cert_info(plan.leaf)
    serial = leaf_info.serial_hex

    with _step("read"):
        installed = nitro.get_certkey(name)

    # (1) the chain
    with _step("chain"):
        ca_names = _install_chain(run)
    issuer_name = ca_names[0] if ca_names else None

    # (2) files and (3) the certkey itself
    cert_file = installed.cert if installed is not None else ""
    key_file = (installed.key or "") if installed is not None else ""
    updated = False
    if installed is not None and installed.serial == serial:
        run.act(f"certkey {name!r} already holds serial {serial}: no upload, no update")
    else:
        with _step("upload"):
            leaf_pem = cert_to_pem(plan.leaf).encode("ascii")
            files: list[tuple[str, bytes, str]] = [(".crt", leaf_pem, "certificate")]
            if plan.key_pem is not None:
                files.append((".key", plan.key_pem, "private key"))
            stem = run.upload(plan.file_base, files)
        cert_file = _path(nitro, f"{stem}.crt")
        key_file = _path(nitro, f"{stem}.key") if plan.key_pem is not None else str(plan.appliance_keyfile)
        if installed is None:
            with _step("add"):
                names = ", ".join(leaf_info.sans) or leaf_info.common_name
                run.write(
                    f"add certkey {name!r} (serial {serial}, {names})",
                    lambda: nitro.add_certkey(name, cert_file, key_file),
                )
        else:
            with _step("update"):
                _update(run, installed, cert_file, key_file)
            updated = True

    # (4) link to the issuer, (5) bindings, (6) verify: a failure in any of them after an in-place
    # update rolls the certkey back to its previous files, so the old certificate keeps serving
    newly_bound: list[str] = []  # vservers this run bound the certkey to
    try:
        with _step("link"):
            if issuer_name:
                link = installed.linkcertkeyname if installed is not None else None
                if not dry_run and (updated or installed is None):
                    current = nitro.get_certkey(name)  # an update may have dropped the link
                    link = current.linkcertkeyname if current is not None else None
                if link != issuer_name:
                    if link:
                        old = link
                        run.write(f"unlink certkey {name!r} from {old!r}", lambda: nitro.unlink_certkey(name))
                    run.write(
                        f"link certkey {name!r} to its issuer {issuer_name!r}",
                        lambda: nitro.link_certkey(name, issuer_name),
                    )
                else:
                    run.act(f"certkey {name!r} is linked to its issuer {issuer_name!r}")

        # (5) bindings
        bound: list[str] = []
        with _step("bind"):
            for ref in plan.vservers:
                vs_name, kind, sni = ref.name, ref.type, ref.sni
                bindings = nitro.vserver_bindings(vs_name)
                mine = [b for b in bindings if b.certkey == name and not b.ca]
                if any(b.sni == sni for b in mine):
                    sni_note = " (SNI)" if sni else ""
                    run.act(f"certkey {name!r} is bound to {kind} vserver {vs_name!r}{sni_note}")
                    bound.append(vs_name)
                    continue
                others = [b.certkey for b in bindings if not b.sni and not b.ca and b.certkey != name]
                what = f"bind certkey {name!r} to {kind} vserver {vs_name!r}"
                if sni:
                    what += " as SNI certificate"
                elif others:
                    what += f" (replaces {', '.join(repr(o) for o in others)})"
                run.write(what, functools.partial(nitro.bind_certkey, vs_name, name, sni=sni))
                bound.append(vs_name)
                newly_bound.append(vs_name)

        # (6) verify
        if not dry_run:
            with _step("verify"):
                bound = _verify(nitro, plan, serial, issuer_name)  # report what the read-back saw
    except NitroError as exc:
        if updated and installed is not None and not dry_run:
            note = _rollback(run, installed, exc)
            raise NitroError(
                f"{exc}{note}",
                errorcode=exc.errorcode,
                nitro_message=exc.nitro_message,
                status=exc.status,
                endpoint=exc.endpoint,
                step=exc.step,
            ) from exc
        if newly_bound and not dry_run:
            # no rollback for a certkey that is new here: say where the new certificate serves already
            raise NitroError(
                f"{exc}; certkey {name!r} (serial {serial}) already serves {', '.join(newly_bound)}",
                errorcode=exc.errorcode,
                nitro_message=exc.nitro_message,
                status=exc.status,
                endpoint=exc.endpoint,
                step=exc.step,
            ) from exc
        raise

    return DeployResult(
        certkey=name,
        serial=serial,
        changed=run.changed,
        actions=run.actions,
        vservers_bound=bound,
        cert_file=cert_file,
        key_file=key_file,
    )


def _update(run: _Run, installed: CertKey, cert_file: str, key_file: str) -> None:
    nitro = run.nitro
    name = installed.name
    no_domain_check = _needs_domain_check_off(nitro, installed, run.plan.leaf)
    serial = cert_info(run.plan.leaf).serial_hex
    text = f"update certkey {name!r} in place: serial {installed.serial or '?'} -> {serial}"
    if no_domain_check:
        text += " (names change: nodomaincheck)"
    try:
        run.write(
            text, lambda: nitro.update_certkey(name, cert_file, key_file, no_domain_check=no_domain_check)
        )
    except NitroError as exc:
        if exc.errorcode not in _LINK_CHANGED_CODES or not installed.linkcertkeyname:
            raise
        # this appliance refuses an update that breaks the CA link: drop the link, update, relink on failure
        log.info("NetScaler %s: update refused (%s); unlinking first", nitro.host, exc.errorcode)
        old_link = installed.linkcertkeyname
        run.write(f"unlink certkey {name!r} from {old_link!r}", lambda: nitro.unlink_certkey(name))
        try:
            nitro.update_certkey(name, cert_file, key_file, no_domain_check=no_domain_check)
        except NitroError:
            with contextlib.suppress(NitroError):
                nitro.link_certkey(name, str(installed.linkcertkeyname))
            raise


def _verify(nitro: NitroClient, plan: DeployPlan, serial: str, issuer_name: str | None) -> list[str]:
    """Read back certkey, link and bindings; returns the vservers found bound (all, or it raises)."""
    ck = nitro.get_certkey(plan.certkey)
    if ck is None:
        raise _fail("verify", f"certkey {plan.certkey!r} is missing after the deployment")
    if ck.serial != serial:
        raise _fail("verify", f"certkey {plan.certkey!r} holds serial {ck.serial}, expected {serial}")
    if issuer_name and ck.linkcertkeyname != issuer_name:
        raise _fail(
            "verify",
            f"certkey {plan.certkey!r} is linked to {ck.linkcertkeyname!r}, expected {issuer_name!r}",
        )
    verified: list[str] = []
    missing: list[str] = []
    for ref in plan.vservers:
        bindings = nitro.vserver_bindings(ref.name)
        if any(b.certkey == plan.certkey and b.sni == ref.sni and not b.ca for b in bindings):
            verified.append(ref.name)
        else:
            missing.append(ref.name)
    if missing:
        raise _fail("verify", f"certkey {plan.certkey!r} is not bound to {', '.join(missing)}")
    return verified


def save(nitro: NitroClient) -> None:
    """Save the running configuration (``save ns config``), once per appliance per run."""
    with _step("save"):
        nitro.save_config()


def read_installed(
    nitro: NitroClient, certkey: str, vservers: Sequence[VserverRef | str] = ()
) -> InstalledState:
    """What the appliance holds under ``certkey`` and which of ``vservers`` it is bound to.

    Without ``vservers`` every vserver the certkey is bound to is reported.
    """
    ck = nitro.get_certkey(certkey)
    if ck is None:
        return InstalledState(serial=None, not_after=None, names=())
    bound_all = nitro.certkey_vservers(certkey)
    wanted = [v if isinstance(v, str) else v.name for v in vservers]
    bound = [v for v in wanted if v in bound_all] if wanted else bound_all
    cn = _cn_from_nitro_subject(ck.subject)
    names = tuple(unique_names([cn, *ck.sandns]))
    return InstalledState(
        serial=ck.serial or None,
        not_after=ck.not_after,
        names=names,
        bound_vservers=bound,
        link=ck.linkcertkeyname,
        cert_file=ck.cert,
        key_file=ck.key or "",
    )


def remove_unreferenced_files(
    nitro: NitroClient, paths: Sequence[str], *, dry_run: bool = False
) -> list[str]:
    """Delete the given appliance files (full paths, e.g. superseded certificate and key files)
    unless a certkey still refers to them. Returns the paths deleted (or that would be).

    Housekeeping after a saved deployment: only files the caller knows it uploaded or created are
    named here, never files found by pattern.
    """
    referenced: set[str] = set()
    for ck in nitro.list_certkeys():
        for ref in (ck.cert, ck.key):
            if ref:
                referenced.add(ref if "/" in ref else _path(nitro, ref))
    doomed = [p for p in dict.fromkeys(paths) if p and p not in referenced]
    if dry_run:
        return doomed
    deleted: list[str] = []
    for path in doomed:
        directory, _, name = path.replace("\\", "/").rpartition("/")
        try:
            nitro.delete_file(name, directory or None)
        except NitroError as exc:
            # already gone (an earlier cleanup that stopped half-way, or an admin): nothing to do
            if exc.status != 404 and exc.errorcode not in _FILE_MISSING_CODES:
                raise
            log.info("NetScaler %s: %s is gone already", nitro.host, path)
            continue
        deleted.append(path)
    return deleted
