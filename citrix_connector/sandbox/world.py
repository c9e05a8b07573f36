"""The whole sandbox in one object: CAs, simulated SCM (both APIs), simulated NetScalers, and the
configuration files that point the agent at them.

Used by ``citrixagent demo``, ``citrixagent sandbox serve`` and the tests. Everything listens on
127.0.0.1 with HTTPS whose certificates chain to a sandbox TLS root written to ``sandbox-ca.pem``.
The credentials are sandbox-only values, written in clear into the generated files on purpose.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from ..config.schema import SCHEMA_FILES, SchemaKind, schema_text
from ..crypto import private_key_to_pem
from ..probe import guard as probe_guard
from .brownfield import BrownfieldSeed, seed_brownfield
from .ca import LocalCA
from .httpserver import SimServer
from .netscaler import HaPair, NetScalerSimulator
from .scm import ScmSimulator
from .scm_enrollment import EnrollmentSimulator

SCM_LOGIN = "api-admin"
SCM_PASSWORD = "sandbox-scm-password"
SCM_CUSTOMER_URI = "sandbox"
SCM_ORG_ID = 1234
SCM_CERT_TYPE = 567
ENROLL_CLIENT_ID = "sandbox-rest-account"
ENROLL_CLIENT_SECRET = "sandbox-rest-secret"
ENROLL_PROFILE_ID = 2001
ADMIN_OAUTH_CLIENT_ID = "sandbox-admin-api-key"
ADMIN_OAUTH_CLIENT_SECRET = "sandbox-admin-api-secret"
ADC_USER = "nsroot"
ADC_PASSWORD = "sandbox-nsroot"
#: the environment variable the sandbox's appliances file names for the NetScaler password
ADC_PASSWORD_ENV = "SANDBOX_ADC_PASSWORD"

# (name, kind, sni enabled on the vserver)
DEFAULT_VSERVERS: tuple[tuple[str, str, bool], ...] = (
    ("vs_shop_https", "lb", False),
    ("cs_portal_https", "cs", False),
    ("gw_remote_access", "vpn", False),
    ("aaa_login", "authentication", False),
    ("vs_sni_https", "lb", True),
    ("vs_onbox_https", "lb", False),
)

#: the vserver of the ``appliances:`` profile (``multi-profile.yaml``): on every appliance and HA pair of
#: a sandbox with two or more of them, and bound by that profile only (a directory run flips no
#: binding of another profile)
MULTI_VSERVER: tuple[str, str, bool] = ("vs_multi_https", "lb", False)
MULTI_PROFILE_STEM = "multi-profile"

# profile file stem -> (vserver, kind, sni, common name, extra certificate keys)
EXAMPLE_PROFILES: dict[str, tuple[str, str, bool, str, dict[str, Any]]] = {
    "lb-profile": ("vs_shop_https", "lb", False, "shop.sandbox.test", {}),
    "cs-profile": ("cs_portal_https", "cs", False, "portal.sandbox.test", {}),
    "vpn-profile": (
        "gw_remote_access",
        "vpn",
        False,
        "gateway.sandbox.test",
        {"key_type": "ECDSA", "curve": "P-256"},
    ),
    "authentication-profile": ("aaa_login", "authentication", False, "login.sandbox.test", {}),
    "sni-profile": ("vs_sni_https", "lb", True, "api.sandbox.test", {}),
    "appliance-key-profile": (
        "vs_onbox_https",
        "lb",
        False,
        "onbox.sandbox.test",
        # no subject: country, state and organization come from SCM's organization (admin API)
        {"key_location": "appliance"},
    ),
}


def make_client_auth_pki(common_name: str, days: int = 3650) -> tuple[bytes, bytes, bytes]:
    """(CA PEM, client certificate PEM, client key PEM): a small CA and a clientAuth certificate whose
    CN is ``common_name`` (SCM maps a client certificate to the admin whose login is its CN).
    :class:`LocalCA` only issues serverAuth certificates, hence this one."""
    now = datetime.now(timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Citrixagent Sandbox Client Auth CA")])
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True
        )
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    return ca_cert.public_bytes(pem), leaf.public_bytes(pem), private_key_to_pem(key)


@dataclass
class Sandbox:
    """Starts and stops the simulators and writes the files that point the agent at them."""

    directory: Path
    appliances: int = 1
    vservers: Sequence[tuple[str, str, bool]] = DEFAULT_VSERVERS
    issue_after_polls: int = 2
    # when set, SCM issues this many seconds after the order instead (as the real one does)
    issue_after_seconds: float | None = None
    latency: float = 0.0  # seconds added to every request of every simulator (network round trip)
    # seed the first appliance and SCM with a fleet the agent never installed (sandbox/brownfield.py)
    brownfield: bool = False
    ha_pairs: int = 0  # HA pairs (two nodes each, same vservers) beside the standalone appliances
    ha_file_sync_seconds: float | None = None  # periodic SSL file sync of the pairs (None: on demand only)
    signing_ca: LocalCA = field(init=False)
    tls_ca: LocalCA = field(init=False)
    scm: ScmSimulator = field(init=False)
    enrollment: EnrollmentSimulator = field(init=False)
    netscalers: list[NetScalerSimulator] = field(init=False, default_factory=list)
    pairs: list[HaPair] = field(init=False, default_factory=list)
    client_auth: tuple[bytes, bytes, bytes] = field(init=False, repr=False)  # CA, cert, key PEM
    seed: BrownfieldSeed | None = field(init=False, default=None, repr=False)

    def __post_init__(self) -> None:
        # absolute: the files written point at each other (CA bundle, keys), and users run the agent
        # from other directories than the one the sandbox was started in
        self.directory = Path(self.directory).absolute()
        if self.appliances + self.ha_pairs >= 2 and tuple(self.vservers) == DEFAULT_VSERVERS:
            self.vservers = (*DEFAULT_VSERVERS, MULTI_VSERVER)  # for multi-profile.yaml
        self.signing_ca = LocalCA.create("Citrixagent Sandbox")
        self.tls_ca = LocalCA.create("Citrixagent Sandbox TLS")
        cert_pem, key_pem = self.tls_ca.issue_tls_server_cert(("localhost",), ("127.0.0.1",))
        self.client_auth = make_client_auth_pki(SCM_LOGIN)
        self.scm = ScmSimulator(
            self.signing_ca,
            cert_pem,
            key_pem,
            login=SCM_LOGIN,
            password=SCM_PASSWORD,
            customer_uri=SCM_CUSTOMER_URI,
            client_ca_pem=self.client_auth[0],
        )
        self.scm.add_oauth_client(ADMIN_OAUTH_CLIENT_ID, ADMIN_OAUTH_CLIENT_SECRET)
        timing: dict[str, Any] = (
            {"issue_after_polls": None, "issue_after_seconds": self.issue_after_seconds}
            if self.issue_after_seconds is not None
            else {"issue_after_polls": self.issue_after_polls}
        )
        self.scm.set_defaults(**timing)
        self.enrollment = EnrollmentSimulator(self.signing_ca, cert_pem, key_pem)
        self.enrollment.add_account(ENROLL_CLIENT_ID, ENROLL_CLIENT_SECRET, profile_ids=(ENROLL_PROFILE_ID,))
        self.enrollment.set_defaults(**timing)
        self.netscalers = []
        for _ in range(self.appliances):
            ns = NetScalerSimulator(cert_pem, key_pem, username=ADC_USER, password=ADC_PASSWORD)
            for name, kind, sni in self.vservers:
                ns.add_vserver(name, kind, snienable=sni)
            self.netscalers.append(ns)
        self.pairs = []
        for _ in range(self.ha_pairs):
            nodes = [
                NetScalerSimulator(cert_pem, key_pem, username=ADC_USER, password=ADC_PASSWORD) for _ in "ab"
            ]
            pair = HaPair(nodes[0], nodes[1], file_sync_interval=self.ha_file_sync_seconds)
            for name, kind, sni in self.vservers:
                pair.add_vserver(name, kind, snienable=sni)
            self.pairs.append(pair)
        if self.brownfield:
            self.seed = seed_brownfield(self)

    # -- lifecycle -------------------------------------------------------------------------------
    @property
    def servers(self) -> list[SimServer]:
        """Every simulator of the world: both SCM APIs, then the appliances."""
        nodes = [node for pair in self.pairs for node in (pair.primary, pair.secondary)]
        return [self.scm, self.enrollment, *self.netscalers, *nodes]

    def start(self) -> Sandbox:
        probe_guard.enable()  # from now on this process probes loopback addresses only
        for server in self.servers:
            server.latency = self.latency
        self.scm.start()
        self.enrollment.start()
        for ns in self.netscalers:
            ns.start()
        for pair in self.pairs:
            pair.primary.start()
            pair.secondary.start()
        self.write_files()
        return self

    def stop(self) -> None:
        for server in self.servers:
            server.stop()

    def __enter__(self) -> Sandbox:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def netscaler(self) -> NetScalerSimulator:
        return self.netscalers[0]

    # -- files -----------------------------------------------------------------------------------
    @property
    def ca_bundle(self) -> Path:
        return self.directory / "sandbox-ca.pem"

    @property
    def scm_yaml(self) -> Path:
        return self.directory / "scm.yaml"

    @property
    def scm_enrollment_yaml(self) -> Path:
        return self.directory / "scm-enrollment.yaml"

    @property
    def scm_clientcert_yaml(self) -> Path:
        return self.directory / "scm-clientcert.yaml"

    @property
    def scm_oauth_yaml(self) -> Path:
        return self.directory / "scm-oauth.yaml"

    @property
    def client_cert_path(self) -> Path:
        return self.directory / "scm-client.crt.pem"

    @property
    def client_key_path(self) -> Path:
        return self.directory / "scm-client.key.pem"

    @property
    def appliances_yaml(self) -> Path:
        """For ``discover``; in a subdirectory, so that ``run DIR`` never takes it for a profile."""
        return self.directory / "fleet" / "appliances.yaml"

    def appliances_dict(self) -> dict[str, Any]:
        """An appliances file for ``citrixagent discover``: every appliance, the password as
        ``${SANDBOX_ADC_PASSWORD}``."""
        return {
            "appliances": [
                {
                    "url": ns.url,
                    "username": ADC_USER,
                    "password": "${" + ADC_PASSWORD_ENV + "}",
                    "verify_tls": str(self.ca_bundle),
                }
                for ns in self.netscalers
            ]
        }

    def profile_path(self, stem: str) -> Path:
        return self.directory / f"{stem}.yaml"

    def poll_settings(self) -> dict[str, float]:
        return {"first_wait": 0.2, "interval": 0.3, "timeout": 30.0}

    def scm_config_dict(self, api: str = "admin", auth: str = "password") -> dict[str, Any]:
        """scm.yaml content: ``api`` admin|enrollment; for admin, ``auth`` password|client_cert|oauth.
        The admin API's files give the organization, certificate profile and term of every profile."""
        data = self._scm_connection(api, auth)
        if api == "admin":
            data.update(org_id=SCM_ORG_ID, cert_type=SCM_CERT_TYPE, term=365)
        return data

    def _scm_connection(self, api: str, auth: str) -> dict[str, Any]:
        if api == "admin" and auth == "client_cert":
            return {
                "url": self.scm.url,
                "customer_uri": SCM_CUSTOMER_URI,
                "auth": "client_cert",
                "username": SCM_LOGIN,
                "client_cert": str(self.client_cert_path),
                "client_key": str(self.client_key_path),
                "verify_tls": str(self.ca_bundle),
                "poll": self.poll_settings(),
            }
        if api == "admin" and auth == "oauth":
            return {
                "url": self.scm.url,
                "auth": "oauth",
                "client_id": ADMIN_OAUTH_CLIENT_ID,
                "client_secret": ADMIN_OAUTH_CLIENT_SECRET,
                "token_url": self.scm.token_url,
                "verify_tls": str(self.ca_bundle),
                "poll": self.poll_settings(),
            }
        if api == "enrollment":
            return {
                "api": "enrollment",
                "url": f"{self.enrollment.url}/api/v1",
                "client_id": ENROLL_CLIENT_ID,
                "client_secret": ENROLL_CLIENT_SECRET,
                "profile_id": ENROLL_PROFILE_ID,
                "verify_tls": str(self.ca_bundle),
                "poll": self.poll_settings(),
            }
        return {
            "url": self.scm.url,
            "customer_uri": SCM_CUSTOMER_URI,
            "username": SCM_LOGIN,
            "password": SCM_PASSWORD,
            "verify_tls": str(self.ca_bundle),
            "poll": self.poll_settings(),
        }

    def profile_dict(
        self,
        name: str,
        vservers: Sequence[tuple[str, str, bool]],
        common_name: str,
        *,
        appliance_index: int = 0,
        certificate: dict[str, Any] | None = None,
        appliance: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """A profile for this sandbox (callers may override certificate/appliance keys)."""
        cert: dict[str, Any] = {
            "common_name": common_name,
            "subject_alt_names": [common_name, f"www.{common_name}"],
            "key_type": "RSA",
            "key_size": 2048,
        }
        cert.update(certificate or {})
        if cert.get("key_type") == "ECDSA":
            cert.pop("key_size", None)
        app: dict[str, Any] = {
            "url": self.netscalers[appliance_index].url,
            "username": ADC_USER,
            "password": ADC_PASSWORD,
            "verify_tls": str(self.ca_bundle),
        }
        app.update(appliance or {})
        return {
            "name": name,
            "appliance": app,
            "vservers": [
                {"name": vs, "type": kind, **({"sni": True} if sni else {})} for vs, kind, sni in vservers
            ],
            "certificate": cert,
            # no sectigo: block: with the admin API, scm.yaml gives org_id/cert_type/term; with the
            # Enrollment API the REST account decides (so each profile is clean with either)
        }

    def write_profile(self, stem: str, data: dict[str, Any]) -> Path:
        path = self.profile_path(stem)
        _write_private(path, _schema_header("profile") + yaml.safe_dump(data, sort_keys=False))
        return path

    def write_files(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        self.ca_bundle.write_bytes(self.tls_ca.bundle_pem())
        for kind in ("profile", "scm"):
            (self.directory / SCHEMA_FILES[kind]).write_text(schema_text(kind), encoding="utf-8")
        header = (
            _schema_header("scm")
            + "# Written by citrixagent's sandbox: sandbox-only credentials, not secrets.\n"
        )
        _write_private(self.scm_yaml, header + yaml.safe_dump(self.scm_config_dict("admin"), sort_keys=False))
        _write_private(
            self.scm_enrollment_yaml,
            header + yaml.safe_dump(self.scm_config_dict("enrollment"), sort_keys=False),
        )
        self.client_cert_path.write_bytes(self.client_auth[1])
        fd = os.open(self.client_key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(self.client_auth[2])
        _write_private(
            self.scm_clientcert_yaml,
            header + yaml.safe_dump(self.scm_config_dict("admin", "client_cert"), sort_keys=False),
        )
        _write_private(
            self.scm_oauth_yaml,
            header + yaml.safe_dump(self.scm_config_dict("admin", "oauth"), sort_keys=False),
        )
        self.appliances_yaml.parent.mkdir(exist_ok=True)
        self.appliances_yaml.write_text(
            f"# Written by citrixagent's sandbox: export {ADC_PASSWORD_ENV}={ADC_PASSWORD}\n"
            + yaml.safe_dump(self.appliances_dict(), sort_keys=False)
        )
        for stem, (vs, kind, sni, cn, extra) in EXAMPLE_PROFILES.items():
            if any(v[0] == vs for v in self.vservers):
                self.write_profile(stem, self.profile_dict(stem, [(vs, kind, sni)], cn, certificate=extra))
        lb = next((v for v in self.vservers if v[0] == "vs_shop_https"), None)
        for i, pair in enumerate(self.pairs):
            if lb is not None:
                stem = self.ha_profile_stem(i)
                urls = {"url": [pair.primary.url, pair.secondary.url]}
                self.write_profile(
                    stem, self.profile_dict(stem, [lb], f"ha{i + 1}.sandbox.test", appliance=urls)
                )
        if MULTI_VSERVER in self.vservers:
            self.write_profile(MULTI_PROFILE_STEM, self.multi_profile_dict())

    def multi_profile_dict(self) -> dict[str, Any]:
        """``multi-profile.yaml``: one profile over every appliance and HA pair (``appliances:``, one
        entry each, the pair's by both node URLs) on their own vserver ``vs_multi_https``."""
        vs, kind, sni = MULTI_VSERVER
        data = self.profile_dict(MULTI_PROFILE_STEM, [(vs, kind, sni)], "multi.sandbox.test")
        del data["appliance"]
        login = {"username": ADC_USER, "password": ADC_PASSWORD, "verify_tls": str(self.ca_bundle)}
        entries: list[dict[str, Any]] = [{"url": ns.url, **login} for ns in self.netscalers]
        entries += [{"url": [p.primary.url, p.secondary.url], **login} for p in self.pairs]
        return {"name": data.pop("name"), "appliances": entries, "rollout": "all", **data}

    def ha_profile_stem(self, index: int) -> str:
        """The profile written for HA pair ``index`` (both node URLs, the pair's ``vs_shop_https``)."""
        return f"ha{index + 1}-lb-profile"

    def describe(self) -> list[str]:
        """Human-readable lines: URLs and credentials of every simulator, and the files written."""
        lines = [
            f"SCM admin API        {self.scm.url}  (login {SCM_LOGIN}, password {SCM_PASSWORD}, "
            f"customer URI {SCM_CUSTOMER_URI})",
            f"SCM Enrollment API   {self.enrollment.url}/api/v1  (client id {ENROLL_CLIENT_ID}, "
            f"secret {ENROLL_CLIENT_SECRET})",
        ]
        for i, ns in enumerate(self.netscalers):
            lines.append(f"NetScaler #{i + 1}          {ns.url}  (user {ADC_USER}, password {ADC_PASSWORD})")
            lines.extend(self._vip_lines(ns))
        for i, pair in enumerate(self.pairs):
            sync = (
                f"SSL files synced every {pair.file_sync_interval:g} s"
                if pair.file_sync_interval is not None
                else "SSL files synced on demand (hafiles sync)"
            )
            lines.append(
                f"HA pair #{i + 1}            primary {pair.primary.url}, secondary {pair.secondary.url}"
            )
            lines.append(f"  {sync}; the secondary refuses writes; VIPs on the primary")
            lines.extend(self._vip_lines(pair.primary))
        lines.append(f"TLS CA bundle        {self.ca_bundle}")
        lines.append(
            f"fleet/appliances.yaml {self.appliances_yaml}  (for discover; password ${{{ADC_PASSWORD_ENV}}})"
        )
        lines.append(f"scm.yaml             {self.scm_yaml}  (admin API)")
        lines.append(f"scm-enrollment.yaml  {self.scm_enrollment_yaml}  (REST Enrollment API)")
        lines.append(
            f"scm-clientcert.yaml  {self.scm_clientcert_yaml}  (admin API, client certificate CN {SCM_LOGIN})"
        )
        lines.append(
            f"scm-oauth.yaml       {self.scm_oauth_yaml}  (admin API, OAuth client {ADMIN_OAUTH_CLIENT_ID})"
        )
        stems = [
            *EXAMPLE_PROFILES,
            *(self.ha_profile_stem(i) for i in range(len(self.pairs))),
            MULTI_PROFILE_STEM,
        ]
        for stem in stems:
            if self.profile_path(stem).exists():
                lines.append(f"profile              {self.profile_path(stem)}")
        return lines

    def _vip_lines(self, ns: NetScalerSimulator) -> list[str]:
        """One line per vserver: kind, SNI, and the loopback VIP where its TLS is served."""
        out = []
        for vs, kind, sni in self.vservers:
            host, port = ns.vip(vs)
            out.append(f"  vserver {vs} ({kind}{', SNI' if sni else ''})  VIP {host}:{port}")
        return out


def _schema_header(kind: SchemaKind) -> str:
    """The comment that lets a YAML language server (VS Code...) validate and complete the file."""
    return f"# yaml-language-server: $schema={SCHEMA_FILES[kind]}\n"


def _write_private(path: Path, text: str) -> None:
    """Write a file holding (sandbox) credentials readable by its owner only, from creation on."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
    if os.name == "posix":
        os.chmod(path, 0o600)
