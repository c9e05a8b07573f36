"""``GET /_sim/`` on every simulator lists its control routes, and every route it lists is answered
(never "unknown control route"); an unknown route says so and lists them too."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests

from citrix_connector.sandbox.httpserver import SimServer
from citrix_connector.sandbox.webhook import WebhookReceiver
from citrix_connector.sandbox.world import Sandbox


def _root(server: SimServer) -> str:
    parts = urlsplit(server.url)
    return f"{parts.scheme}://{parts.netloc}"


def _servers(world: Sandbox) -> list[SimServer]:
    return [world.scm, world.enrollment, world.netscaler]


def test_sim_root_lists_the_control_routes(world: Sandbox) -> None:
    for server in _servers(world):
        for path in ("/_sim/", "/_sim"):
            answer = requests.get(_root(server) + path, verify=str(world.ca_bundle), timeout=10)
            assert answer.status_code == 200, (server.name, path, answer.text)
            body = answer.json()
            assert body["simulator"] == server.name
            listed = {(r["method"], r["path"]) for r in body["routes"]}
            assert ("GET", "/_sim/requests") in listed and ("POST", "/_sim/faults") in listed
            assert all(r["description"] for r in body["routes"])
    scm_routes = {r["path"] for r in world.scm.control_routes()}
    assert {"/_sim/approve/{id}", "/_sim/rotate-intermediate", "/_sim/reset"} <= scm_routes
    ns_routes = {r["path"] for r in world.netscaler.control_routes()}
    assert {"/_sim/state", "/_sim/ha_pair/failover", "/_sim/knobs"} <= ns_routes
    assert "/_sim/accounts" in {r["path"] for r in world.enrollment.control_routes()}
    assert "/_sim/accounts" not in scm_routes  # each simulator lists its own routes only


@pytest.mark.parametrize("which", ["scm", "enrollment", "netscaler"])
def test_every_listed_route_is_answered(world: Sandbox, which: str) -> None:
    server: SimServer = getattr(world, which)
    values = {"{id}": "999999", "{vserver}": "vs_shop_https"}
    for route in server.control_routes():
        path = route["path"]
        for placeholder, value in values.items():
            path = path.replace(placeholder, value)
        if route["method"] == "POST" and path.endswith(("/reset", "/reboot", "/failover")):
            continue  # answered too, but they would undo the seeded state the other calls read
        answer = requests.request(
            route["method"], _root(server) + path, verify=str(world.ca_bundle), timeout=10, json=None
        )
        assert "unknown control route" not in answer.text, (which, route, answer.text)


def test_unknown_route_names_itself_and_lists_the_routes(world: Sandbox) -> None:
    for server in _servers(world):
        answer = requests.get(_root(server) + "/_sim/nonsense", verify=str(world.ca_bundle), timeout=10)
        assert answer.status_code == 404
        body = answer.json()
        assert body["error"] == "unknown control route GET /_sim/nonsense (GET /_sim/ lists them)"
        assert body["routes"] == server.control_routes()


def test_webhook_receiver_lists_its_route(tmp_path: Path, world: Sandbox) -> None:
    assert ("GET", "/_sim/payloads") in {(r["method"], r["path"]) for r in WebhookReceiver.control_routes()}
