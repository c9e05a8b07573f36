"""A settled fleet of any size in seconds: the sandbox in this process, its NetScalers and the agent's
journal seeded directly (the way ``sandbox/brownfield.py`` seeds), instead of enrolling every profile
through the agent (10,000 enrollments would take hours).

For each profile: a leaf certificate signed by the sandbox's own CA (as SCM would have issued it),
installed on its appliance as a certkey (certificate and key files, linked to the issuing CA's certkey,
bound to the profile's own ``lb`` vserver) and recorded in the journal as issued, deployed and saved:
exactly what the agent leaves behind after a successful ``run``. So ``status`` and an idle ``run`` over
the fleet find nothing to do, and make the requests they would make on a real settled fleet.

The vservers are seeded without a listening VIP socket each (``serve_vip=False``): a real TLS port
per vserver is what the TLS probe needs, not status or run, and 50,000 sockets would exceed the
process's file limit.

    with SeededFleet(Path("/tmp/f"), appliances=200, profiles_per_appliance=50, latency_ms=20) as f:
        subprocess.run([..., "--scm-config", f.scm_yaml, "status", f.profile_dir], env=f.env())

The agent runs as its own process; this process only serves (its threads wait on sockets).
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import yaml
from cryptography.hazmat.primitives.asymmetric import ec

from citrix_connector import crypto
from citrix_connector.nitro.naming import ca_certkey_name
from citrix_connector.sandbox.world import ADC_PASSWORD, ADC_USER, Sandbox
from citrix_connector.state import DeploymentRecord, IssuedRecord, ProfileState
from citrix_connector.state_codec import state_to_json

KEY = crypto.KeySpec("ECDSA", curve="P-256")


def vserver_name(j: int) -> str:
    return f"bench_vs_{j:04d}"


def profile_name(i: int, j: int) -> str:
    return f"a{i:03d}-p{j:04d}"


def _iso(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).isoformat(timespec="seconds")


def _write_private(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)


@dataclass
class SeededFleet:
    directory: Path
    appliances: int
    profiles_per_appliance: int
    latency_ms: int = 20
    world: Sandbox = field(init=False)
    seconds_to_seed: float = field(init=False, default=0.0)

    # -- paths -------------------------------------------------------------------------------
    @property
    def profile_dir(self) -> Path:
        return self.directory / "profiles"

    @property
    def state_dir(self) -> Path:
        return self.directory / "state"

    @property
    def scm_yaml(self) -> Path:
        return self.world.scm_yaml

    @property
    def profile_count(self) -> int:
        return self.appliances * self.profiles_per_appliance

    # -- lifecycle ---------------------------------------------------------------------------
    def __enter__(self) -> SeededFleet:
        started = time.monotonic()
        self.world = Sandbox(
            self.directory / "sandbox",
            appliances=self.appliances,
            vservers=(),
            latency=self.latency_ms / 1000,
        )
        self.world.start()
        try:
            self._seed()
        except BaseException:
            self.world.stop()
            raise
        self.seconds_to_seed = time.monotonic() - started
        return self

    def __exit__(self, *exc: object) -> None:
        self.world.stop()

    def clear_logs(self) -> None:
        for server in self.world.servers:
            server.clear_requests()

    def nitro_requests(self) -> list[int]:
        """NITRO requests per appliance since the last :meth:`clear_logs`."""
        return [sum(1 for r in ns.requests if r.path.startswith("/nitro/")) for ns in self.world.netscalers]

    def scm_requests(self) -> int:
        return len(self.world.scm.requests) + len(self.world.enrollment.requests)

    # -- seeding -----------------------------------------------------------------------------
    def _seed(self) -> None:
        world = self.world
        ca = world.signing_ca
        self.profile_dir.mkdir(parents=True, exist_ok=True)
        (self.state_dir / "profiles").mkdir(parents=True, exist_ok=True, mode=0o700)
        keys_dir = self.state_dir / "keys"
        keys_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        key = ec.generate_private_key(ec.SECP256R1())  # one key for every leaf: seeding speed only
        key_pem = crypto.private_key_to_pem(key)
        now = datetime.now(timezone.utc)
        intermediate = ca.intermediate
        ca_name = ca_certkey_name(intermediate)
        ca_pem = crypto.cert_to_pem(intermediate).encode("ascii")
        chain_pem = [crypto.cert_to_pem(intermediate)]
        for i, ns in enumerate(world.netscalers):
            host = ns.url.split("://", 1)[-1]
            ns.install_certkey(ca_name, ca_pem)
            for j in range(self.profiles_per_appliance):
                name = profile_name(i, j)
                vs = vserver_name(j)
                cn = f"p{j:04d}.a{i:03d}.bench.test"
                sans = [cn, f"www.{cn}"]
                ns.add_vserver(vs, "lb", serve_vip=False)
                leaf = ca.issue_from_csr(crypto.build_csr(key, cn, sans), not_before=now - timedelta(days=1))
                leaf_pem = crypto.cert_to_pem(leaf)
                ns.install_certkey(name, leaf_pem.encode("ascii"), key_pem, link=ca_name)
                ns.bind_certkey(vs, name)
                path = self.profile_dir / f"{name}.yaml"
                profile = self._profile(name, ns.url, vs, cn, sans)
                _write_private(path, yaml.safe_dump(profile, sort_keys=False))
                key_path = keys_dir / name / "seeded.key.pem"
                key_path.parent.mkdir(mode=0o700, exist_ok=True)
                _write_private(key_path, key_pem.decode("ascii"))
                info = crypto.cert_info(leaf)
                ssl = "/nsconfig/ssl"
                state = ProfileState(
                    profile=name,
                    source=str(path.resolve()),
                    current=IssuedRecord(
                        order_id=str(100000 + i * self.profiles_per_appliance + j),
                        serial=info.serial_hex,
                        not_before=_iso(info.not_before),
                        not_after=_iso(info.not_after),
                        fingerprint_sha256=info.fingerprint_sha256,
                        common_name=cn,
                        sans=sans,
                        key_desc=KEY.describe(),
                        key_location="local",
                        key_ref=str(key_path),
                        cert_pem=leaf_pem,
                        chain_pem=chain_pem,
                        issued_at=_iso(now),
                    ),
                    deployed=DeploymentRecord(
                        appliance=host,
                        partition=None,
                        certkey=name,
                        serial=info.serial_hex,
                        vservers=[vs],
                        deployed_at=_iso(now),
                        cert_file=f"{ssl}/{name}.crt",
                        key_file=f"{ssl}/{name}.key",
                        saved=True,
                    ),
                )
                state.add_event("seeded", appliance=host, certkey=name, serial=info.serial_hex)
                _write_private(self.state_dir / "profiles" / f"{name}.json", state_to_json(state))
        for ns in world.netscalers:
            ns.clear_requests()

    def _profile(self, name: str, url: str, vs: str, cn: str, sans: list[str]) -> dict[str, Any]:
        return {
            "name": name,
            "appliance": {
                "url": url,
                "username": ADC_USER,
                "password": ADC_PASSWORD,
                "verify_tls": str(self.world.ca_bundle),
            },
            "vservers": [{"name": vs, "type": "lb"}],
            "certificate": {"common_name": cn, "subject_alt_names": sans, "key_type": "ECDSA"},
        }


def check_settled(fleet: SeededFleet, sample: int = 3) -> None:
    """Fails loudly when the seeded journal does not match what the agent writes (the state format
    moved on): a loaded sample must round-trip through the agent's own reader."""
    from citrix_connector.state import StateStore

    store = StateStore(fleet.state_dir)
    for name in sorted(p.stem for p in (fleet.state_dir / "profiles").glob("*.json"))[:sample]:
        state = store.load(name)
        assert state.current is not None and state.deployed is not None, name
        assert json.loads(state_to_json(state))["profile"] == name
