"""The profile's verification settings: the TLS probe of every VIP (``probe:``, and a vserver's
``probe: host:port`` override) and the HA secondary's sync check (``ha_sync:``)."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Annotated, Literal

from pydantic import BeforeValidator, PlainValidator, WithJsonSchema

from . import checks
from .fields import Bool, Choice, Float, expect_str
from .problems import fail
from .rules import StrictModel

__all__ = ["HaSyncSpec", "HostPort", "ProbeAddress", "ProbeMode", "ProbeSpec", "ProbeSetting"]

ProbeMode = Literal["on", "off", "warn-only", "required"]
_MODES = {
    "on": "on",
    "off": "off",
    "warn-only": "warn-only",
    "warn_only": "warn-only",
    "warn": "warn-only",
    "required": "required",
}


@dataclass(frozen=True)
class HostPort:
    """Where to probe a vserver instead of its NITRO ``ipv46:port`` (NAT, a firewall's address)."""

    host: str
    port: int

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


def _host_port(value: object) -> HostPort:
    if isinstance(value, HostPort):
        return value
    text = expect_str(value).strip()
    if text.startswith("["):
        host, sep, rest = text[1:].partition("]")
        if not sep or not rest.startswith(":"):
            raise fail(f"expected [IPv6]:port, got {checks.shown(text)}")
        port_text = rest[1:]
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise fail(f"{checks.shown(host)} is not an IPv6 address") from None
    else:
        host, sep, port_text = text.rpartition(":")
        if not sep or not host:
            raise fail(f"expected host:port, got {checks.shown(text)}")
        if ":" in host:
            raise fail(f"write an IPv6 address in brackets: [{host}]:{port_text}")
        problem = checks.host_name_problem(host)
        if problem or host.startswith("*"):
            raise fail(problem or f"{checks.shown(host)} is a wildcard, not a host to connect to")
    if not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
        raise fail(f"port must be a number between 1 and 65535, got {checks.shown(port_text)}")
    return HostPort(host, int(port_text))


ProbeAddress = Annotated[
    HostPort,
    PlainValidator(_host_port),
    WithJsonSchema(
        {
            "type": "string",
            "pattern": r"^(\[[0-9A-Fa-f:.]+\]|[^:\[\]\s]+):"
            r"([1-9][0-9]{0,3}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5])$",
            "description": "host:port (or [IPv6]:port) to probe instead of the vserver's VIP from NITRO",
        }
    ),
]


_Mode = Annotated[ProbeMode, Choice(_MODES, canonical=["on", "off", "warn-only", "required"])]


class ProbeSpec(StrictModel):
    """``probe:``: a TLS handshake to every vserver's VIP after a deployment and in ``status --probe``."""

    mode: _Mode = "on"
    timeout: Annotated[float, Float(positive=True, hi=60)] = 5.0


def _probe_shorthand(value: object) -> object:
    return {"mode": value} if isinstance(value, str) else value


ProbeSetting = Annotated[
    ProbeSpec, BeforeValidator(_probe_shorthand, json_schema_input_type=_Mode | ProbeSpec)
]


class HaSyncSpec(StrictModel):
    """``ha_sync:``: after saving on an HA Primary, sync the SSL files and check the Secondary."""

    verify: Bool = True
    deadline: Annotated[float, Float(lo=0, hi=3600)] = 120.0
    interval: Annotated[float, Float(positive=True, hi=600)] = 5.0
