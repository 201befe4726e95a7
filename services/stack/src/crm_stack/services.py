"""The services crmctl knows, and which of them are installed."""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass


@dataclass(frozen=True)
class ServiceDef:
    """A service: its name, its package (run as `python -m <package>`)."""

    name: str
    package: str

    @property
    def database(self) -> str:
        return f"crm_{self.name}"

    @property
    def env_prefix(self) -> str:
        return f"CRM_{self.name.upper()}_"


KNOWN_SERVICES = (
    ServiceDef("ingest", "crm_ingest"),
    ServiceDef("contacts", "crm_contacts"),
    ServiceDef("cases", "crm_cases"),
    ServiceDef("campaigns", "crm_campaigns"),
    ServiceDef("scoring", "crm_scoring"),
)


def installed_services() -> list[ServiceDef]:
    """The services whose package is installed in this environment."""
    return [s for s in KNOWN_SERVICES if importlib.util.find_spec(s.package) is not None]
