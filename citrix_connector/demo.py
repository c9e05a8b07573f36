"""``citrixagent demo``: the whole job once, on the built-in sandbox, narrated."""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Callable
from pathlib import Path

from .config import load_profile, load_scm_config
from .errors import EXIT_FAILURE
from .lifecycle import Agent, worst_exit_code
from .nitro.client import NitroClient
from .sandbox.world import ADC_PASSWORD, ADC_USER, Sandbox
from .state import StateStore


def run_demo(
    directory: Path, *, api: str = "admin", json_output: bool = False, echo: Callable[[str], None] = print
) -> int:
    """Start the sandbox in ``directory``, enroll the lb profile, show the result. Returns the exit code."""
    say = (lambda _msg: None) if json_output else echo
    say("Starting the sandbox: a simulated Sectigo Certificate Manager and a simulated NetScaler,")
    say("both real HTTPS servers on 127.0.0.1 with a local CA ...")
    narrator = logging.StreamHandler(sys.stderr)
    narrator.setLevel(logging.INFO)
    narrator.setFormatter(logging.Formatter("  - %(message)s"))
    agent_log = logging.getLogger("citrixagent")
    with Sandbox(directory) as world:
        for line in world.describe()[:3]:
            say(f"  {line}")
        scm_path = world.scm_enrollment_yaml if api == "enrollment" else world.scm_yaml
        profile_path = world.profile_path("lb-profile")
        say(
            f"\nEnrolling {profile_path.name} through the SCM {api} API "
            f"(RSA 2048 key made locally, lb vserver vs_shop_https) ..."
        )
        scm = load_scm_config(scm_path)
        profile = load_profile(profile_path)
        agent = Agent(scm, StateStore(directory / "state"))
        already_shown = any(  # with -v the CLI's stderr handler shows these lines already
            isinstance(h, logging.StreamHandler) and h.stream is sys.stderr and h.level <= logging.INFO
            for h in agent_log.handlers
        )
        level = agent_log.level
        if not json_output and not already_shown:
            agent_log.addHandler(narrator)
            # the CLI lets through only what its own handlers take: the narration needs INFO too
            agent_log.setLevel(min(agent_log.getEffectiveLevel(), logging.INFO))
        try:
            outcomes = agent.enroll([profile])
        finally:
            agent_log.removeHandler(narrator)
            agent_log.setLevel(level)
        outcome = outcomes[0]
        code = worst_exit_code(outcomes)
        if outcome.result != "ok":
            echo(
                json.dumps([o.to_dict() for o in outcomes], indent=2)
                if json_output
                else f"\nThe demo failed: {outcome.message}"
            )
            return code or EXIT_FAILURE
        sim = world.enrollment if api == "enrollment" else world.scm
        pending_answers = sum(1 for r in sim.requests if r.method == "GET" and r.status in (400, 404))
        vserver = profile.vservers[0].name
        with NitroClient(
            world.netscaler.url, username=ADC_USER, password=ADC_PASSWORD, verify=world.ca_bundle
        ) as nitro:
            bindings = nitro.vserver_bindings(vserver)
            installed = nitro.get_certkey(profile.certificate.certkey_name)
            saved = not nitro.config_changed()
        bound = [b.certkey for b in bindings if not b.ca]
        if json_output:
            data = outcome.to_dict()
            data["appliance_readback"] = {
                "vserver": vserver,
                "bound_certkeys": bound,
                "serial": installed.serial if installed else None,
            }
            data["tls_probe"] = outcome.details.get("verification", {}).get("vips", [])
            echo(json.dumps(data, indent=2))
            return code
        say("")
        say("Done. What happened:")
        say(
            f"  SCM order id       {outcome.order_id}  (SCM said 'still being processed' {pending_answers} "
            "time(s) before issuing)"
        )
        say(f"  serial             {outcome.serial}")
        say(f"  expires            {outcome.expires} ({outcome.days_left} days)")
        say(f"  certkey            {outcome.certkey} on {world.netscaler.url}")
        say(f"  vserver            {vserver} (load balancing)")
        say(
            f"  read back (NITRO)  sslvserver_sslcertkey_binding/{vserver} -> {', '.join(bound) or 'nothing'}"
        )
        say(
            f"                     certkey serial {installed.serial if installed else '?'}; "
            f"configuration {'saved' if saved else 'NOT saved'}"
        )
        for vip in outcome.details.get("verification", {}).get("vips", []):
            say(
                f"  TLS probe          {vip['address']} (SNI {vip['server_name']}): {vip['status']}, "
                f"serves serial {vip['served_serial']} over {vip['protocol']}"
                if vip["served_serial"]
                else f"  TLS probe          {vip['address']}: {vip['detail']}"
            )
        if installed is None or profile.certificate.certkey_name not in bound or not saved:
            say("  WARNING: the read-back does not show the certificate bound")
            return EXIT_FAILURE
        say(
            "\nNext: `citrixagent sandbox serve --dir DIR` keeps the sandbox running so you can try "
            "enroll, status, renew, replace, revoke and run by hand."
        )
        return code
