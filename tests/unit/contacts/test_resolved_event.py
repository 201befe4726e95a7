"""interaction.resolved is built without a second validation: it must be the event that
validating would have built, to the byte."""

from __future__ import annotations

import itertools

import pytest

from crm_contacts.handlers.batch import interaction_resolved
from crm_contracts import CloudEvent, decode_json, new_event
from crm_contracts import contacts as ct
from crm_contracts import interactions as it
from crm_stack.simulate.journeys import SimConfig, TrafficGenerator

STAGES = [
    (ct.LifecycleStage.PROSPECT, None),
    (ct.LifecycleStage.FIRST_TIME_CUSTOMER, ct.LifecycleStage.PROSPECT),
    (ct.LifecycleStage.CLIENT, ct.LifecycleStage.CLIENT),
]


def agents_reply() -> CloudEvent:
    data = {"channel": "email", "kind": "support_request", "identity": {"contact_id": "c-1"}}
    return new_event(
        it.INTERACTION_RECORDED,
        it.InteractionRecorded.model_validate(
            {**data, "case_id": "case-1042", "agent_id": "agent-17"}
        ),
        source="urn:channel:helpdesk",
    )


def campaign_click() -> CloudEvent:
    data = {"channel": "email", "kind": "email_clicked", "identity": {"contact_id": "c-1"}}
    return new_event(
        it.INTERACTION_RECORDED,
        it.InteractionRecorded.model_validate(
            {**data, "campaign_id": "cmp-spring-26", "campaign_step_id": "s2"}
        ),
        source="urn:channel:mailer",
    )


def simulated_interactions() -> list[CloudEvent]:
    traffic = TrafficGenerator(SimConfig(seed=11, contacts=300))
    simulated = [decode_json(e.event) for e in itertools.islice(traffic, 1500)]
    return [*simulated, agents_reply(), campaign_click()]


@pytest.mark.parametrize(("stage", "previous"), STAGES)
def test_the_resolved_interaction_is_the_one_validation_would_build(
    stage: ct.LifecycleStage, previous: ct.LifecycleStage | None
) -> None:
    for event in simulated_interactions():
        data = event.data_as(it.InteractionRecorded)
        built = interaction_resolved(event, data, "c-0123456789abcdef", stage, previous)

        # What the handler built before: the same fields, validated.
        validated = it.InteractionResolved(
            **{name: getattr(built, name) for name in built.model_fields_set}
        )

        assert built.model_dump_json(by_alias=True, exclude_none=True) == (
            validated.model_dump_json(by_alias=True, exclude_none=True)
        )
        assert built == validated
        assert built.model_fields_set == validated.model_fields_set


def test_the_resolved_interaction_names_the_agent_who_sent_it() -> None:
    event = agents_reply()
    data = event.data_as(it.InteractionRecorded)
    stage = ct.LifecycleStage.PROSPECT

    built = interaction_resolved(event, data, "c-1", stage, stage)

    assert (built.agent_id, built.case_id, built.stage_changed) == ("agent-17", "case-1042", False)


def test_the_resolved_interaction_names_the_campaign_step_it_responds_to() -> None:
    event = campaign_click()
    data = event.data_as(it.InteractionRecorded)
    stage = ct.LifecycleStage.PROSPECT

    built = interaction_resolved(event, data, "c-1", stage, stage)

    assert (built.campaign_id, built.campaign_step_id) == ("cmp-spring-26", "s2")
