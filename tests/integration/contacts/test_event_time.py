"""The `time` of what contacts publishes (DESIGN.md, pattern 7).

Whatever an interaction leads to carries the interaction's time, however late it arrives;
what an agent or an erasure does carries the moment it was done.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from crm_contracts import contacts as ct
from crm_contracts import interactions as it
from crm_contracts import privacy as pv
from tests.integration.contacts.conftest import T0, Service, of_type, purchase, raw_event

EMAIL = {"email": "ada@example.com"}
PHONE = {"phone": "+44 20 7946 0000"}


async def test_every_event_an_interaction_leads_to_carries_the_interactions_time(
    service: Service,
) -> None:
    first = raw_event(
        "signup",
        identity={**EMAIL, "external_ids": {"webshop": "c-42"}},
        traits={"first_name": "Ada"},
        consent={"purpose": "marketing", "granted": True},
        time=T0,
    )
    other = purchase(identity=PHONE, time=T0 + timedelta(days=1))
    # Late: older than the contact it merges away; it names and moves the survivor.
    proof = purchase(
        identity={**EMAIL, **PHONE}, traits={"last_name": "Lovelace"}, time=T0 + timedelta(hours=12)
    )
    await service.publish(first, other, proof, key="ada")
    await service.wait_applied(first.id, other.id, proof.id)

    contact_events = await service.contact_events(lambda es: bool(of_type(es, ct.CONTACT_MERGED)))
    resolved = await service.resolved_events(lambda es: len(es) >= 3)
    by_cause = {raw.id: raw.time for raw in (first, other, proof)}
    kinds_by_cause: dict[str, set[str]] = {}
    for event in contact_events + resolved:
        assert event.causationid in by_cause, event.type
        assert event.time == by_cause[event.causationid], (event.type, event.time)
        kinds_by_cause.setdefault(event.causationid, set()).add(event.type)

    assert kinds_by_cause[first.id] == {
        it.INTERACTION_RESOLVED,
        ct.CONTACT_CREATED,
        ct.CONTACT_IDENTITY_LINKED,
        ct.CONTACT_LIFECYCLE_CHANGED,
        ct.CONTACT_CONSENT_CHANGED,
    }
    assert {ct.CONTACT_MERGED, ct.CONTACT_UPDATED, ct.CONTACT_LIFECYCLE_CHANGED} <= (
        kinds_by_cause[proof.id]
    )


async def test_what_an_agent_or_an_erasure_does_carries_the_moment_it_was_done(
    service: Service,
) -> None:
    await service.publish(raw_event("signup", identity=EMAIL, time=T0))
    contact_id = (await service.wait_contact(email="ada@example.com"))["id"]
    before = datetime.now(UTC)
    staged = await service.send(
        "PUT", f"/v1/contacts/{contact_id}/stage", {"stage": "partner", "reason": "reseller"}
    )
    assert staged.status_code == 200, staged.text
    # Another system asks for the erasure, in an event dated long before.
    request = await service.publish_related(
        pv.PRIVACY_ERASURE_REQUESTED,
        pv.ErasureRequested(
            request_id="er-elsewhere-1", contact_id=contact_id, requested_by="dpo-tool"
        ),
        time=T0,
    )
    await service.wait_applied(request.id)
    after = datetime.now(UTC)

    contact_events = await service.contact_events(lambda es: bool(of_type(es, ct.CONTACT_ERASED)))
    privacy = await service.read(
        service.settings.privacy_topic,
        lambda es: bool(of_type(es, pv.PRIVACY_ERASURE_COMPLETED)),
    )
    [manual] = [
        e
        for e in of_type(contact_events, ct.CONTACT_LIFECYCLE_CHANGED)
        if e.data_as(ct.ContactLifecycleChanged).cause_kind == "manual"
    ]
    [erased] = of_type(contact_events, ct.CONTACT_ERASED)
    [completed] = of_type(privacy, pv.PRIVACY_ERASURE_COMPLETED)
    assert erased.causationid == completed.causationid == request.id
    for event in (manual, erased, completed):
        assert before <= event.time <= after, (event.type, event.time)
