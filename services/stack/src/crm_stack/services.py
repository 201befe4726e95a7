"""The services crmctl knows, and which of them are installed."""

from __future__ import annotations

import importlib.util
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from crm_contracts import topics


@dataclass(frozen=True)
class ServiceDef:
    """A service: its name, its package (run as `python -m <package>`), what it consumes."""

    name: str
    package: str
    # The edge takes events in from outside: `down` stops it first, so that nothing new
    # arrives while the consumers drain.
    edge: bool = False
    # Consumer group -> the topics it reads. `down` waits until each group has caught up.
    # Groups it finds on the broker under `<name>.` count too (with the topics they have
    # committed on); these are named because a group that has never committed is
    # invisible there.
    consumer_groups: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    @property
    def database(self) -> str:
        return f"crm_{self.name}"

    @property
    def env_prefix(self) -> str:
        return f"CRM_{self.name.upper()}_"


KNOWN_SERVICES = (
    ServiceDef("ingest", "crm_ingest", edge=True),
    ServiceDef(
        "contacts",
        "crm_contacts",
        consumer_groups={
            "contacts.events": (
                topics.INTERACTIONS_RAW,
                topics.CASES,
                topics.CAMPAIGNS,
                topics.SCORES,
                topics.PRIVACY,
            )
        },
    ),
    ServiceDef(
        "cases",
        "crm_cases",
        consumer_groups={
            "cases.events": (topics.CONTACTS, topics.PRIVACY, topics.SCORES, topics.INTERACTIONS)
        },
    ),
    ServiceDef(
        "campaigns",
        "crm_campaigns",
        consumer_groups={
            "campaigns.events": (
                topics.CONTACTS,
                topics.INTERACTIONS,
                topics.SCORES,
                topics.CASES,
                topics.PRIVACY,
            )
        },
    ),
    ServiceDef(
        "scoring",
        "crm_scoring",
        consumer_groups={
            "scoring.events": (topics.INTERACTIONS, topics.CASES, topics.CONTACTS, topics.PRIVACY)
        },
    ),
)


ALL = "all"
NONE = "none"


def service_names(names: Iterable[str]) -> tuple[str, ...]:
    """The known services among `names`, in start order; ValueError naming the known ones.

    `all` stands for every service, `none` for no service (PostgreSQL and the broker only).
    """
    wanted = {name.strip().lower() for name in names if name.strip()}
    known = [s.name for s in KNOWN_SERVICES]
    if wanted & {ALL, NONE} and len(wanted) > 1:
        raise ValueError(f"`{ALL}` and `{NONE}` stand alone, not with service names")
    if not wanted or wanted == {ALL}:
        return tuple(known)
    if wanted == {NONE}:
        return ()
    unknown = sorted(wanted - set(known))
    if unknown:
        raise ValueError(
            f"no service {', '.join(map(repr, unknown))}: the known ones are "
            f"{', '.join(known)} (or `{ALL}`, `{NONE}`)"
        )
    return tuple(name for name in known if name in wanted)


def parse_service_names(text: str) -> tuple[str, ...]:
    """`contacts, scoring` (comma-separated), `all` or `none`: see `service_names`."""
    return service_names(text.split(","))


def installed_services() -> list[ServiceDef]:
    """The services whose package is installed in this environment."""
    return [s for s in KNOWN_SERVICES if importlib.util.find_spec(s.package) is not None]


def get_service(name: str) -> ServiceDef:
    """An installed service by name; KeyError naming the installed ones otherwise."""
    for service in installed_services():
        if service.name == name:
            return service
    names = ", ".join(s.name for s in installed_services())
    raise KeyError(f"no installed service {name!r} (installed: {names})")
