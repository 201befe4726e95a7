"""crmctl's list of what each service consumes agrees with the services' own settings.

`crmctl down` waits for these consumer groups on these topics; a topic missing here
would not be waited for, and its events would be lost with the embedded broker.
"""

from __future__ import annotations

from crm_cases.consumers import events_consumer as cases_events_consumer
from crm_cases.handlers.context import Context as CasesContext
from crm_cases.settings import CasesSettings
from crm_contacts.settings import ContactsSettings
from crm_scoring.settings import ScoringSettings
from crm_stack.services import get_service


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


def test_ingest_is_the_edge_that_down_stops_first() -> None:
    assert get_service("ingest").edge
    assert not get_service("contacts").edge and not get_service("scoring").edge
