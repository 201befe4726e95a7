"""An agent's reply (an interaction with agent_id) goes on the timeline and the backbone, but
it is not the customer's activity: no lifecycle rule counts it or fires on it."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from crm_contracts import CloudEvent
from crm_contracts import contacts as ct
from crm_contracts import interactions as it
from tests.integration.contacts.conftest import T0, Service, of_type, raw_event


async def test_an_agents_reply_is_resolved_with_its_agent_and_moves_no_stage(
    start_service, tmp_path: Path
) -> None:
    rules = tmp_path / "rules.toml"
    rules.write_text('[[rules]]\nkinds = ["chat"]\nmin_count = 3\nstage = "prospect"\n')
    service: Service = await start_service(lifecycle_rules_path=rules)

    def chat(minutes: int, **data: object) -> CloudEvent:
        return raw_event("chat", channel="chat", time=T0 + timedelta(minutes=minutes), **data)

    question = chat(0, case_id="case-1")
    by_email = chat(1, case_id="case-1", agent_id="agent-17")  # resolved in a batch run
    await service.publish(question, by_email, key="ada")
    await service.wait_applied(question.id, by_email.id)
    contact_id = (await service.contact_by(email="ada@example.com"))["id"]
    by_id = chat(2, case_id="case-1", agent_id="agent-17", identity={"contact_id": contact_id})
    second, third = chat(3, case_id="case-1"), chat(4, case_id="case-1")
    await service.publish(by_id, second, third, key="ada")
    resolved = {
        e.data_as(it.InteractionResolved).interaction_id: e.data_as(it.InteractionResolved)
        for e in await service.resolved_events(lambda es: len(es) >= 5)
    }
    changes = of_type(
        await service.contact_events(
            lambda es: len(of_type(es, ct.CONTACT_LIFECYCLE_CHANGED)) >= 2
        ),
        ct.CONTACT_LIFECYCLE_CHANGED,
    )
    timeline = await service.timeline(contact_id, order="asc")

    def outcome(event_id: str) -> tuple[str | None, str | None, str, bool]:
        data = resolved[event_id]
        return data.agent_id, data.previous_stage, data.stage, data.stage_changed

    assert outcome(question.id) == (None, None, "suspect", True)
    assert outcome(by_email.id) == ("agent-17", "suspect", "suspect", False)
    assert outcome(by_id.id) == ("agent-17", "suspect", "suspect", False)
    # Two replies of ours do not make up the customer's three chats: the third one does.
    assert outcome(second.id) == (None, "suspect", "suspect", False)
    assert outcome(third.id) == (None, "suspect", "prospect", True)
    assert [e.causationid for e in changes] == [question.id, third.id]
    assert [(e["event_id"], e["data"].get("agent_id")) for e in timeline] == [
        (question.id, None),
        (by_email.id, "agent-17"),
        (by_id.id, "agent-17"),
        (second.id, None),
        (third.id, None),
    ]
    assert (await service.contact_by(email="ada@example.com"))["stage"] == "prospect"
