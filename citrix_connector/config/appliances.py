"""An appliances file (for ``discover``): a list of entries in a profile's ``appliance:`` shape.

appliances:
  - url: https://adc1.example.com          # or [node1, node2] for an HA pair
    username: discovery
    password: ${ADC_PASSWORD}
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

from pydantic import Field
from pydantic.json_schema import SkipJsonSchema

from .profile import ApplianceConfig
from .rules import StrictModel


class AppliancesFile(StrictModel):
    source: SkipJsonSchema[Path] = Path("appliances.yaml")
    appliances: Annotated[tuple[ApplianceConfig, ...], Field(min_length=1, max_length=1000)]


@dataclass(frozen=True)
class ApplianceEntry:
    appliance: ApplianceConfig
    #: the line of the entry in the file
    line: int
