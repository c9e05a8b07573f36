"""``verify_tls: false``: one warning of the agent's own per host and run, no urllib3 lines."""

from __future__ import annotations

import re
import warnings
from pathlib import Path
from typing import Any

import urllib3
import yaml

from citrix_connector.sandbox.world import Sandbox


def test_one_warning_per_host_and_run_instead_of_urllib3_lines(
    world: Sandbox, cli: Any, state_dir: Path
) -> None:
    data = yaml.safe_load(world.profile_path("lb-profile").read_text())
    data["appliance"]["verify_tls"] = False
    profile = world.write_profile("insecure", data)
    host = world.netscalers[0].url.split("//", 1)[1]
    for _run in range(2):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            res = cli("--scm-config", world.scm_yaml, "run", profile)
        assert res.code == 0, res.output
        assert not [w for w in caught if issubclass(w.category, urllib3.exceptions.InsecureRequestWarning)]
        lines = [line for line in res.err.splitlines() if "TLS verification is off" in line]
        assert lines == [
            f"WARNING TLS verification is off for {host} (verify_tls: false): the connection is encrypted, "
            "but the server is not authenticated; set verify_tls to a CA bundle path"
        ], res.err
    nitro_calls = [r for r in world.netscalers[0].requests if r.path.startswith("/nitro/")]
    assert len(nitro_calls) > 5  # many requests, one warning
    assert not re.search(r"Unverified HTTPS request", res.err)
