"""Shared pytest fixtures. Expensive objects (RSA 3072/4096 keys, the local CA) are session-scoped."""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from citrix_connector.cli import main as cli_main
from citrix_connector.config import Profile, ScmConfig, load_profile, load_scm_config
from citrix_connector.crypto import KeySpec, PrivateKey, generate_private_key
from citrix_connector.lifecycle import Agent
from citrix_connector.sandbox.ca import LocalCA
from citrix_connector.sandbox.world import Sandbox
from citrix_connector.state import StateStore

# No test ever probes a VIP off this machine: the TLS probe refuses any non-loopback address before
# connecting while this is set (citrix_connector/probe/guard.py).
os.environ["CITRIXAGENT_LOOPBACK_ONLY"] = "1"

# ---------------------------------------------------------------------------------------- crypto

ALL_KEY_SPECS: tuple[KeySpec, ...] = (
    KeySpec("RSA", size=2048),
    KeySpec("RSA", size=3072),
    KeySpec("RSA", size=4096),
    KeySpec("ECDSA", curve="P-256"),
    KeySpec("ECDSA", curve="P-384"),
)


@pytest.fixture(scope="session")
def keys() -> dict[str, PrivateKey]:
    """One private key per supported spec, keyed by ``KeySpec.describe()`` ("RSA 2048", ...)."""
    return {spec.describe(): generate_private_key(spec) for spec in ALL_KEY_SPECS}


@pytest.fixture
def no_proxy_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No proxy from this machine's environment (CI machines often set NO_PROXY and the like): a
    test that wants one sets it itself."""
    for name in ("HTTPS_PROXY", "HTTP_PROXY", "ALL_PROXY", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)


@pytest.fixture(scope="session")
def local_ca() -> LocalCA:
    """A session-wide sandbox CA. Tests that rotate its intermediate should use their own LocalCA."""
    return LocalCA.create("Citrixagent Test")


# ---------------------------------------------------------------------------------- sandbox + CLI
# End-to-end fixtures: the whole sandbox (simulated SCM admin + Enrollment APIs, simulated NetScaler)
# on 127.0.0.1, the agent driven in-process through the real CLI entry point or the Agent class.

SCM_APIS = ("admin", "enrollment")


@pytest.fixture(params=SCM_APIS)
def scm_api(request: pytest.FixtureRequest) -> str:
    """Parametrizes a test over both SCM APIs (admin API and REST Enrollment API)."""
    return str(request.param)


@pytest.fixture
def world(tmp_path: Path) -> Iterator[Sandbox]:
    """A running sandbox with its files (scm.yaml, scm-enrollment.yaml, CA bundle, profiles) in tmp."""
    with Sandbox(tmp_path / "sandbox", issue_after_polls=1) as sandbox:
        yield sandbox


@pytest.fixture
def state_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private state dir, also the CLI's default (licence accepted via the environment)."""
    path = tmp_path / "state"
    monkeypatch.setenv("CITRIXAGENT_STATE_DIR", str(path))
    monkeypatch.setenv("CITRIXAGENT_ACCEPT_LICENSE", "yes")
    return path


def scm_yaml_for(world: Sandbox, api: str) -> Path:
    return world.scm_enrollment_yaml if api == "enrollment" else world.scm_yaml


@dataclasses.dataclass
class CliResult:
    code: int
    out: str
    err: str

    @property
    def output(self) -> str:
        return self.out + self.err


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str], state_dir: Path) -> Callable[..., CliResult]:
    """Run ``citrixagent ARGS...`` in-process through the real entry point; returns code/stdout/stderr."""

    def run(*args: str | Path) -> CliResult:
        # the CLI sets up the "citrixagent" logger for its run (handlers, level, no propagation);
        # put it back afterwards, so later tests' caplog sees the package's records again
        agent_log = logging.getLogger("citrixagent")
        saved = (agent_log.level, agent_log.propagate, list(agent_log.handlers))
        capsys.readouterr()
        try:
            cli_main([str(a) for a in args])
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        finally:
            for handler in list(agent_log.handlers):
                agent_log.removeHandler(handler)
                if handler not in saved[2]:
                    handler.close()
            for handler in saved[2]:
                agent_log.addHandler(handler)
            agent_log.setLevel(saved[0])
            agent_log.propagate = saved[1]
        captured = capsys.readouterr()
        return CliResult(code, captured.out, captured.err)

    return run


@dataclasses.dataclass
class AgentKit:
    """Builds Agents and profiles against one sandbox for one SCM API."""

    world: Sandbox
    api: str
    store: StateStore
    clock: Callable[[], Any] | None = None

    @property
    def scm_config(self) -> ScmConfig:
        return load_scm_config(scm_yaml_for(self.world, self.api))

    def agent(self, **kwargs: Any) -> Agent:
        if self.clock is not None:
            kwargs.setdefault("clock", self.clock)
        kwargs.setdefault("sleep", lambda _s: None)
        return Agent(self.scm_config, self.store, **kwargs)

    def profile(self, stem: str = "lb-profile", **overrides: Any) -> Profile:
        """Load one of the sandbox's example profiles, or write a variant: ``overrides`` replace
        top-level keys (``certificate`` / ``appliance`` dicts are merged)."""
        if not overrides:
            return load_profile(self.world.profile_path(stem))
        data = yaml.safe_load(self.world.profile_path(stem).read_text())
        for key, value in overrides.items():
            if isinstance(value, dict) and isinstance(data.get(key), dict):
                data[key].update(value)
            else:
                data[key] = value
        name = str(overrides.get("name", data.get("name", stem)))
        data["name"] = name
        return load_profile(self.world.write_profile(name, data))

    @property
    def sim(self) -> Any:
        """The SCM simulator this kit's API talks to."""
        return self.world.enrollment if self.api == "enrollment" else self.world.scm


@pytest.fixture
def kit(world: Sandbox, scm_api: str, tmp_path: Path) -> AgentKit:
    return AgentKit(world, scm_api, StateStore(tmp_path / "kit-state"))
