"""`run` through a real forward proxy on loopback: SCM through the proxy, the appliance directly.

The proxy's own log of CONNECT tunnels proves which traffic went through it. ``proxy:`` in scm.yaml
(with credentials from the environment), ``HTTPS_PROXY`` with ``proxy: none`` for the appliance,
a per-appliance proxy, and a proxy refusing (407): a one-line error naming the proxy, never its
password, nothing at SCM. The proxy environment is set by each test (CI machines set NO_PROXY).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from citrix_connector.config import ScmConfig
from citrix_connector.sandbox.forward_proxy import ForwardProxy
from citrix_connector.sandbox.world import Sandbox

# The `proxy:` keys arrive with the pydantic config package; until then only the environment applies.
needs_proxy_key = pytest.mark.skipif(
    "proxy" not in getattr(ScmConfig, "model_fields", {}), reason="config has no proxy: key yet"
)

PROXY_USER = "svc-cert"
PROXY_PASSWORD = "Pr0xy-pass-7781"


@pytest.fixture(autouse=True)
def clean_proxy_env(no_proxy_env: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PROXY_PASSWORD", PROXY_PASSWORD)


@pytest.fixture
def proxy() -> Iterator[ForwardProxy]:
    with ForwardProxy(auth=(PROXY_USER, PROXY_PASSWORD)) as px:
        yield px


def netloc(url: str) -> str:
    return url.split("//", 1)[1].rstrip("/")


def scm_yaml(world: Sandbox, **extra: Any) -> Path:
    path = world.directory / "scm-proxy.yaml"
    path.write_text(yaml.safe_dump({**world.scm_config_dict(), **extra}), encoding="utf-8")
    path.chmod(0o600)  # it holds the sandbox's SCM password in clear
    return path


def profile(world: Sandbox, **appliance: Any) -> Path:
    data = yaml.safe_load(world.profile_path("lb-profile").read_text())
    data["appliance"].update(appliance)
    return world.write_profile("proxied", data)


def nitro_calls(world: Sandbox) -> int:
    return sum(1 for r in world.netscalers[0].requests if r.path.startswith("/nitro/"))


@needs_proxy_key
def test_scm_through_the_configured_proxy_and_the_appliance_directly(world: Sandbox, cli: Any, proxy) -> None:
    scm = scm_yaml(world, proxy=f"http://{PROXY_USER}:${{PROXY_PASSWORD}}@127.0.0.1:{proxy.port}")
    res = cli("-v", "--scm-config", scm, "run", profile(world))
    assert res.code == 0, res.output
    tunnels = proxy.log
    assert tunnels and {t.target for t in tunnels} == {netloc(world.scm.url)}
    assert all(t.status == 200 and t.user == PROXY_USER for t in tunnels)
    assert world.scm.requests and nitro_calls(world) > 0  # the appliance was reached, not via the proxy
    assert PROXY_PASSWORD not in res.output
    assert f"via proxy http://{PROXY_USER}:***@127.0.0.1:{proxy.port}" in res.err  # the -v trace


@needs_proxy_key
def test_environment_proxy_with_proxy_none_for_the_appliance(world: Sandbox, cli: Any, monkeypatch) -> None:
    with ForwardProxy() as open_proxy:
        monkeypatch.setenv("HTTPS_PROXY", open_proxy.url)
        res = cli("--scm-config", world.scm_yaml, "run", profile(world, proxy="none"))
        assert res.code == 0, res.output
        assert {t.target for t in open_proxy.log} == {netloc(world.scm.url)}
    assert nitro_calls(world) > 0


@needs_proxy_key
def test_a_per_appliance_proxy(world: Sandbox, cli: Any, proxy) -> None:
    appliance_proxy = f"http://{PROXY_USER}:${{PROXY_PASSWORD}}@127.0.0.1:{proxy.port}"
    res = cli("--scm-config", scm_yaml(world, proxy="none"), "run", profile(world, proxy=appliance_proxy))
    assert res.code == 0, res.output
    assert {t.target for t in proxy.log} == {netloc(world.netscalers[0].url)}


@needs_proxy_key
def test_a_proxy_refusing_the_tunnel_is_one_line_without_the_password(
    world: Sandbox, cli: Any, proxy
) -> None:
    scm = scm_yaml(world, proxy=f"http://{PROXY_USER}:wrong-${{PROXY_PASSWORD}}@127.0.0.1:{proxy.port}")
    res = cli("--scm-config", scm, "run", profile(world))
    assert res.code == 1, res.output
    assert PROXY_PASSWORD not in res.output
    expected = (
        f"proxy http://{PROXY_USER}:***@127.0.0.1:{proxy.port} "
        f"refused the tunnel to {netloc(world.scm.url)}: "
        "HTTP 407 Proxy Authentication Required"
    )
    assert expected in res.output
    assert world.scm.requests == []
    # the enroll was refused once (never retried), so no order exists
    assert [t.status for t in proxy.log] == [407]


def test_environment_proxy_for_scm_and_no_proxy_for_the_appliance(
    world: Sandbox, cli: Any, monkeypatch
) -> None:
    """The standard environment alone: HTTPS_PROXY for everything, NO_PROXY naming the appliance."""
    appliance_port = world.netscalers[0].port
    with ForwardProxy() as open_proxy:
        monkeypatch.setenv("HTTPS_PROXY", open_proxy.url)
        monkeypatch.setenv("NO_PROXY", "localhost")
        res = cli(
            "--scm-config", world.scm_yaml, "run", profile(world, url=f"https://localhost:{appliance_port}")
        )
        assert res.code == 0, res.output
        assert open_proxy.log and {t.target for t in open_proxy.log} == {netloc(world.scm.url)}
    assert nitro_calls(world) > 0
