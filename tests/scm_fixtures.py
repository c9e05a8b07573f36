"""Fixtures and helpers for the SCM client tests: simulators on loopback HTTPS and configs for them.

Import the fixtures into a test module with ``from scm_fixtures import *  # noqa: F403``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from citrix_connector.config import PollSettings, ScmConfig, Secret
from citrix_connector.crypto import PrivateKey, build_csr, csr_to_pem
from citrix_connector.sandbox.ca import LocalCA
from citrix_connector.sandbox.scm import ScmSimulator
from citrix_connector.sandbox.scm_enrollment import EnrollmentSimulator
from citrix_connector.sandbox.world import make_client_auth_pki

__all__ = [
    "ADMIN_CLIENT_ID",
    "ADMIN_CLIENT_SECRET",
    "LOGIN",
    "PASSWORD",
    "CUSTOMER_URI",
    "ENROLL_CLIENT_ID",
    "ENROLL_CLIENT_SECRET",
    "ENROLL_PROFILE_ID",
    "ClientCert",
    "SimTls",
    "Sleeps",
    "admin_config",
    "admin_sim",
    "client_cert",
    "csr_pem",
    "enrollment_config",
    "enrollment_sim",
    "sim_tls",
    "untrusted_ca_file",
]

LOGIN = "api-admin"
PASSWORD = "Pa55-w0rd-do-not-log"
CUSTOMER_URI = "sandbox"
ADMIN_CLIENT_ID = "admin-client-1"
ADMIN_CLIENT_SECRET = "admin-oauth-secret-do-not-log"
ENROLL_CLIENT_ID = "rest-account-1"
ENROLL_CLIENT_SECRET = "rest-secret-do-not-log"
ENROLL_PROFILE_ID = 2001


@dataclass(frozen=True)
class SimTls:
    cert_pem: bytes
    key_pem: bytes
    ca_file: Path


@dataclass(frozen=True)
class ClientCert:
    ca_pem: bytes
    cert_file: Path
    key_file: Path


class Sleeps:
    """A recording no-op ``sleep``."""

    def __init__(self) -> None:
        self.calls: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)


@pytest.fixture(scope="session")
def sim_tls(tmp_path_factory: pytest.TempPathFactory) -> SimTls:
    """A TLS CA for the simulators' HTTPS, its server certificate and the bundle clients trust."""
    tls_ca = LocalCA.create("SCM Test TLS")
    cert_pem, key_pem = tls_ca.issue_tls_server_cert(("localhost",), ("127.0.0.1",))
    ca_file = tmp_path_factory.mktemp("scm-tls") / "ca.pem"
    ca_file.write_bytes(tls_ca.bundle_pem())
    return SimTls(cert_pem, key_pem, ca_file)


@pytest.fixture(scope="session")
def untrusted_ca_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A CA bundle that did NOT sign the simulators' certificates."""
    path = tmp_path_factory.mktemp("other-ca") / "other.pem"
    path.write_bytes(LocalCA.create("Somebody Else").bundle_pem())
    return path


@pytest.fixture(scope="session")
def client_cert(tmp_path_factory: pytest.TempPathFactory) -> ClientCert:
    """A client-auth CA and a certificate for ``LOGIN`` (CN = login), as SCM's /private API wants."""
    ca_pem, cert_pem, key_pem = make_client_auth_pki(LOGIN, days=30)
    directory = tmp_path_factory.mktemp("client-cert")
    cert_file = directory / "admin.crt"
    key_file = directory / "admin.key"
    cert_file.write_bytes(cert_pem)
    key_file.write_bytes(key_pem)
    return ClientCert(ca_pem, cert_file, key_file)


@pytest.fixture()
def admin_sim(local_ca: LocalCA, sim_tls: SimTls, client_cert: ClientCert) -> Iterator[ScmSimulator]:
    """A started admin-API simulator (login/password, client certificate and OAuth all enabled)."""
    sim = ScmSimulator(
        local_ca,
        sim_tls.cert_pem,
        sim_tls.key_pem,
        login=LOGIN,
        password=PASSWORD,
        customer_uri=CUSTOMER_URI,
        client_ca_pem=client_cert.ca_pem,
    )
    sim.add_oauth_client(ADMIN_CLIENT_ID, ADMIN_CLIENT_SECRET)
    sim.start()
    try:
        yield sim
    finally:
        sim.stop()


def admin_config(sim: ScmSimulator, ca_file: Path | bool, **overrides: Any) -> ScmConfig:
    """An ``api: admin`` config for ``sim`` (``auth: password`` unless overridden)."""
    values: dict[str, Any] = {
        "source": Path("scm.yaml"),
        "api": "admin",
        "url": sim.url,
        "customer_uri": CUSTOMER_URI,
        "auth": "password",
        "username": LOGIN,
        "password": Secret(PASSWORD),
        "client_cert": None,
        "client_key": None,
        "client_id": None,
        "client_secret": None,
        "token_url": None,
        "profile_id": None,
        "verify_tls": ca_file,
        "timeout": 10.0,
        "poll": PollSettings(first_wait=0, interval=1, timeout=10),
    }
    auth = overrides.get("auth")
    if auth == "oauth":
        values.update(
            username=None,
            password=None,
            client_id=ADMIN_CLIENT_ID,
            client_secret=Secret(ADMIN_CLIENT_SECRET),
            token_url=sim.token_url,
        )
    elif auth == "client_cert":
        values.update(password=None)
    values.update(overrides)
    return ScmConfig(**values)


@pytest.fixture()
def enrollment_sim(local_ca: LocalCA, sim_tls: SimTls) -> Iterator[EnrollmentSimulator]:
    """A started REST Enrollment API simulator with one REST account (profile ``ENROLL_PROFILE_ID``)."""
    sim = EnrollmentSimulator(local_ca, sim_tls.cert_pem, sim_tls.key_pem)
    sim.add_account(ENROLL_CLIENT_ID, ENROLL_CLIENT_SECRET, profile_ids=(ENROLL_PROFILE_ID,))
    sim.start()
    try:
        yield sim
    finally:
        sim.stop()


def enrollment_config(sim: EnrollmentSimulator, ca_file: Path | bool, **overrides: Any) -> ScmConfig:
    """An ``api: enrollment`` config for ``sim`` (token URL configured unless overridden)."""
    values: dict[str, Any] = {
        "source": Path("scm.yaml"),
        "api": "enrollment",
        "url": sim.url,
        "customer_uri": None,
        "auth": "oauth",
        "username": None,
        "password": None,
        "client_cert": None,
        "client_key": None,
        "client_id": ENROLL_CLIENT_ID,
        "client_secret": Secret(ENROLL_CLIENT_SECRET),
        "token_url": sim.token_url,
        "profile_id": ENROLL_PROFILE_ID,
        "verify_tls": ca_file,
        "timeout": 10.0,
        "poll": PollSettings(first_wait=0, interval=1, timeout=10),
    }
    values.update(overrides)
    return ScmConfig(**values)


def csr_pem(key: PrivateKey, cn: str = "www.example.com", sans: tuple[str, ...] = ()) -> str:
    return csr_to_pem(build_csr(key, cn, [cn, *sans]))
