"""crmctl's list of what each service consumes agrees with the services' own settings.

`crmctl down` waits for these consumer groups on these topics; a topic missing here
would not be waited for, and its events would be lost with the embedded broker.
"""

from __future__ import annotations

from crm_campaigns.consumers import events_consumer as campaigns_events_consumer
from crm_campaigns.handlers.context import Context as CampaignsContext
from crm_campaigns.settings import CampaignsSettings
from crm_cases.consumers import events_consumer as cases_events_consumer
from crm_cases.handlers.context import Context as CasesContext
from crm_cases.settings import CasesSettings
from crm_contacts.settings import ContactsSettings
from crm_ingest.settings import IngestSettings
from crm_kit.settings import ServiceSettings
from crm_scoring.settings import ScoringSettings
from crm_stack.services import KNOWN_SERVICES, get_service, installed_services
from crm_stack.settings import StackSettings

SETTINGS: dict[str, type[ServiceSettings]] = {
    "ingest": IngestSettings,
    "contacts": ContactsSettings,
    "cases": CasesSettings,
    "campaigns": CampaignsSettings,
    "scoring": ScoringSettings,
}


def test_scoring_is_waited_for_on_every_topic_its_worker_consumes() -> None:
    settings = ScoringSettings()
    groups = get_service("scoring").consumer_groups
    assert set(groups) == {settings.faust_app_id}
    assert set(groups[settings.faust_app_id]) == set(settings.input_topics)


def test_contacts_is_waited_for_on_every_topic_it_consumes() -> None:
    settings = ContactsSettings()
    consumed = {
        settings.interactions_raw_topic,
        settings.cases_topic,
        settings.campaigns_topic,
        settings.scores_topic,
        settings.privacy_topic,
    }
    groups = get_service("contacts").consumer_groups
    assert set(groups) == {f"contacts.events{settings.consumer_group_suffix}"}
    assert set(groups[f"contacts.events{settings.consumer_group_suffix}"]) == consumed


def test_cases_is_waited_for_on_every_topic_its_consumer_subscribes_to() -> None:
    settings = CasesSettings()
    subscribed = cases_events_consumer(CasesContext(settings)).topics
    group = f"cases.events{settings.consumer_group_suffix}"
    groups = get_service("cases").consumer_groups
    assert set(groups) == {group}
    assert set(groups[group]) == set(subscribed)


def test_campaigns_is_waited_for_on_every_topic_its_consumer_subscribes_to() -> None:
    settings = CampaignsSettings()
    subscribed = campaigns_events_consumer(CampaignsContext(settings)).topics
    group = f"campaigns.events{settings.consumer_group_suffix}"
    groups = get_service("campaigns").consumer_groups
    assert set(groups) == {group}
    assert set(groups[group]) == set(subscribed)


def test_up_starts_every_service_of_the_repository_each_on_a_port_of_its_own() -> None:
    assert [s.name for s in installed_services()] == [s.name for s in KNOWN_SERVICES]
    assert {s.name for s in KNOWN_SERVICES} == set(SETTINGS)
    ports = {name: StackSettings.model_fields[f"{name}_port"].default for name in SETTINGS}
    assert len(set(ports.values())) == len(ports)
    # The port crmctl gives a service is the one it takes when started alone.
    assert ports == {name: cls.model_fields["http_port"].default for name, cls in SETTINGS.items()}


def test_ingest_is_the_edge_that_down_stops_first() -> None:
    assert get_service("ingest").edge
    assert not get_service("contacts").edge and not get_service("scoring").edge
