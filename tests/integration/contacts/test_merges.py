"""Merges and unmerges: one person, one contact; a wrong merge can be undone."""

from __future__ import annotations

from datetime import timedelta

from crm_contracts import contacts as ct
from tests.integration.contacts.conftest import T0, Service, of_type, purchase, raw_event

EMAIL = {"email": "ada@example.com"}
PHONE = {"phone": "+44 20 7946 0000"}


async def two_contacts(service: Service) -> tuple[str, str]:
    """Ada by email (older), then someone by phone (newer)."""
    await service.publish(raw_event("signup", identity=EMAIL, time=T0))
    older = (await service.wait_contact(email="ada@example.com"))["id"]
    await service.publish(purchase(identity=PHONE, time=T0 + timedelta(hours=1)))
    newer = (await service.wait_contact(phone="+442079460000"))["id"]
    assert older != newer
    return older, newer


async def test_an_interaction_proving_two_contacts_one_merges_them_into_the_older(
    service: Service,
) -> None:
    older, newer = await two_contacts(service)
    proof = raw_event(
        identity={"email": "ada@example.com", "phone": "020 7946 0000"},
        time=T0 + timedelta(hours=2),
    )
    await service.publish(proof)
    await service.wait_applied(proof.id)

    survivor = await service.ok(f"/v1/contacts/{older}")
    asked_for_merged = await service.ok(f"/v1/contacts/{newer}")
    view = await service.ok(f"/v1/contacts/{newer}/360")
    events = await service.contact_events(lambda es: bool(of_type(es, ct.CONTACT_MERGED)))

    assert (await service.contact_by(phone="+442079460000"))["id"] == older
    assert survivor["merged_ids"] == [newer]
    assert {i["kind"] for i in survivor["identifiers"]} == {"email", "phone"}
    assert survivor["stage"] == "first_time_customer"  # the furthest of the two
    assert (asked_for_merged["id"], asked_for_merged["resolved_from"]) == (older, newer)
    assert view["contact"]["id"] == older
    assert [e["kind"] for e in view["timeline"]] == ["page_view", "purchase", "signup"]
    [merged] = of_type(events, ct.CONTACT_MERGED)
    data = merged.data_as(ct.ContactMerged)
    assert (data.survivor_id, data.merged_ids, data.matched_on) == (
        older,
        [newer],
        ct.IdentityType.PHONE,
    )
    assert merged.causationid == proof.id
    assert merged.subject == older


async def test_events_for_a_merged_contact_id_land_on_the_survivor(service: Service) -> None:
    older, newer = await two_contacts(service)
    proof = raw_event(identity={**EMAIL, **PHONE}, time=T0 + timedelta(hours=2))
    later = raw_event("call", identity={"contact_id": newer}, time=T0 + timedelta(hours=3))
    await service.publish(proof, later, key="k")
    await service.wait_applied(proof.id, later.id)

    timeline = await service.timeline(older)

    assert timeline[0]["event_id"] == later.id
    assert timeline[0]["origin_contact_id"] == newer


async def test_unmerge_returns_identifiers_and_timeline_to_the_contact_they_came_from(
    service: Service,
) -> None:
    older, newer = await two_contacts(service)
    proof = raw_event(identity={**EMAIL, **PHONE}, time=T0 + timedelta(hours=2))
    await service.publish(proof)
    await service.wait_applied(proof.id)

    response = await service.send(
        "POST", f"/v1/contacts/{older}/unmerge", {"merged_id": newer, "reason": "two people"}
    )
    again = raw_event(identity={**EMAIL, **PHONE}, time=T0 + timedelta(hours=3))
    await service.publish(again)
    await service.wait_applied(again.id)
    events = await service.contact_events(lambda es: bool(of_type(es, ct.CONTACT_UNMERGED)))

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["restored"]["id"] == newer and body["restored"]["status"] == "active"
    assert [i["kind"] for i in body["restored"]["identifiers"]] == ["phone"]
    assert [i["kind"] for i in body["survivor"]["identifiers"]] == ["email"]
    assert (await service.contact_by(phone="+442079460000"))["id"] == newer
    assert [e["kind"] for e in await service.timeline(newer)] == ["purchase"]
    # the proof came through Ada's email: it stays hers; so does the new interaction, since
    # a pair an agent split is never merged again automatically
    assert [e["kind"] for e in await service.timeline(older)] == [
        "page_view",
        "page_view",
        "signup",
    ]
    [unmerged] = of_type(events, ct.CONTACT_UNMERGED)
    assert unmerged.data_as(ct.ContactUnmerged).model_dump() == {
        "contact_id": newer,
        "survivor_id": older,
        "reason": "two people",
    }
    assert len(of_type(events, ct.CONTACT_MERGED)) == 1


async def test_unmerging_a_contact_that_is_not_merged_is_a_conflict(service: Service) -> None:
    older, newer = await two_contacts(service)

    response = await service.send("POST", f"/v1/contacts/{older}/unmerge", {"merged_id": newer})

    assert response.status_code == 409
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["type"].endswith("/not-merged")


async def test_with_email_auto_merge_off_a_shared_address_keeps_two_people_apart(
    start_service,
) -> None:
    service: Service = await start_service(
        auto_merge={"email": False, "phone": True, "external_id": True}
    )
    await service.publish(raw_event("signup", identity={"email": "family@example.com"}))
    parent = (await service.wait_contact(email="family@example.com"))["id"]
    await service.publish(raw_event("signup", identity={"phone": "07700 900123"}))
    child = (await service.wait_contact(phone="+447700900123"))["id"]

    shared = purchase(identity={"email": "family@example.com", "phone": "07700 900123"})
    await service.publish(shared)
    await service.wait_applied(shared.id)

    assert len(await service.fetch("SELECT id FROM contacts WHERE status = 'active'")) == 2
    assert (await service.contact_by(phone="+447700900123"))["id"] == child
    # email outranks phone: the interaction goes to the address's contact
    assert next(e["event_id"] for e in await service.timeline(parent)) == shared.id
    assert [e["kind"] for e in await service.timeline(child)] == ["signup"]
    assert not await service.fetch("SELECT id FROM merges")


async def test_an_agent_merges_contacts_by_hand_into_the_one_chosen(service: Service) -> None:
    older, newer = await two_contacts(service)

    response = await service.send("POST", f"/v1/contacts/{newer}/merge", {"merged_ids": [older]})
    events = await service.contact_events(lambda es: bool(of_type(es, ct.CONTACT_MERGED)))

    assert response.status_code == 200, response.text
    assert response.json()["merged_ids"] == [older]
    data = of_type(events, ct.CONTACT_MERGED)[0].data_as(ct.ContactMerged)
    assert (data.survivor_id, data.merged_ids, data.matched_on) == (newer, [older], None)
