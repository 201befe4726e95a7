"""Export and erasure: everything held about a person, then nothing that identifies them."""

from __future__ import annotations

from datetime import timedelta

from crm_contracts import contacts as ct
from crm_contracts import privacy as pv
from crm_contracts.examples import example_data
from tests.integration.contacts.conftest import T0, Service, of_type, purchase, raw_event

IDENTITY = {"email": "ada@example.com", "phone": "+44 20 7946 0000", "anonymous_id": "ck-77"}
PII = ("ada@example.com", "+442079460000", "ck-77", "Lovelace", "Ada", "o-secret")


async def ada_with_history(service: Service) -> tuple[str, list]:
    events = [
        raw_event(
            "signup",
            identity=IDENTITY,
            traits={"first_name": "Ada", "last_name": "Lovelace"},
            time=T0,
        ),
        purchase(identity=IDENTITY, properties={"order_id": "o-secret"}, time=T0 + timedelta(1)),
        raw_event(
            "consent_given",
            identity=IDENTITY,
            consent={"purpose": "marketing"},
            time=T0 + timedelta(2),
        ),
    ]
    await service.publish(*events, key="ada")
    await service.wait_applied(*(e.id for e in events))
    contact = await service.contact_by(email="ada@example.com")
    assert contact is not None
    return contact["id"], events


async def every_text_in_the_database(service: Service) -> str:
    """Every row of every table of the service, as text."""
    tables = await service.fetch(
        "SELECT table_name FROM information_schema.tables "
        "WHERE table_schema = 'public' AND table_name <> 'kit_outbox'"
    )
    dump = [bytes(r["value"]).decode() for r in await service.fetch("SELECT value FROM kit_outbox")]
    for table in tables:
        rows = await service.fetch(f'SELECT t::text AS row FROM "{table["table_name"]}" t')
        dump += [r["row"] for r in rows]
    return "\n".join(dump)


async def test_the_export_holds_everything_about_the_person(service: Service) -> None:
    contact_id, events = await ada_with_history(service)

    export = await service.ok(f"/v1/contacts/{contact_id}/export")

    assert export["contact"]["profile"]["last_name"] == "Lovelace"
    assert {i["value"] for i in export["contact"]["identifiers"]} == {
        "ada@example.com",
        "+442079460000",
        "ck-77",
    }
    assert [e["event_id"] for e in export["timeline"]] == [e.id for e in events]
    assert export["timeline"][1]["data"]["properties"] == {"order_id": "o-secret"}
    assert [c["purpose"] for c in export["consent_history"]] == ["marketing"]


async def test_erasure_removes_the_persons_data_everywhere_and_tells_the_other_services(
    service: Service,
) -> None:
    contact_id, _ = await ada_with_history(service)

    response = await service.send(
        "POST", f"/v1/contacts/{contact_id}/erase", {"reason": "customer asked"}
    )
    again = await service.send("POST", f"/v1/contacts/{contact_id}/erase")
    export = await service.ok(f"/v1/contacts/{contact_id}/export")
    dump = await every_text_in_the_database(service)
    privacy = await service.read(service.settings.privacy_topic, lambda es: len(es) >= 2)
    erased = await service.contact_events(lambda es: bool(of_type(es, ct.CONTACT_ERASED)))

    assert response.status_code == 202, response.text
    body = response.json()
    assert body["contact_id"] == contact_id
    assert [c["service"] for c in body["completed_by"]] == ["contacts"]
    assert response.headers["location"] == f"/v1/erasures/{body['request_id']}"
    assert again.status_code == 200 and again.json()["request_id"] == body["request_id"]
    assert export["contact"]["status"] == "erased"
    assert export["contact"]["identifiers"] == []
    assert all(e["data"] is None for e in export["timeline"])
    assert not [text for text in PII if text in export.__repr__()]
    assert not [text for text in PII if text in dump]
    assert [e.type for e in privacy] == [
        pv.PRIVACY_ERASURE_REQUESTED,
        pv.PRIVACY_ERASURE_COMPLETED,
    ]
    assert privacy[0].data_as(pv.ErasureRequested).request_id == body["request_id"]
    assert privacy[0].subject == contact_id
    assert (
        of_type(erased, ct.CONTACT_ERASED)[0].data_as(ct.ContactErased).request_id
        == (body["request_id"])
    )
    assert (await service.get(f"/v1/contacts/{contact_id}/360")).status_code == 410


async def test_replaying_the_erased_persons_old_events_does_not_bring_them_back(
    service: Service,
) -> None:
    contact_id, events = await ada_with_history(service)
    await service.send("POST", f"/v1/contacts/{contact_id}/erase")

    # The same records again (the inbox knows them), and copies under new ids, as a
    # channel re-export would send them.
    copies = [
        raw_event("page_view", identity=IDENTITY, time=T0 + timedelta(hours=n)) for n in range(3)
    ]
    by_phone_only = raw_event(identity={"phone": "020 7946 0000"}, time=T0)
    by_old_id = raw_event(identity={"contact_id": contact_id}, time=T0 + timedelta(days=3))
    await service.publish(*events, *copies, by_phone_only, by_old_id, key="ada")
    await service.wait_applied(*(e.id for e in [*copies, by_phone_only, by_old_id]))

    assert len(await service.fetch("SELECT id FROM contacts")) == 1
    assert await service.contact_by(email="ada@example.com") is None
    assert not [t for t in PII if t in await every_text_in_the_database(service)]
    assert len(await service.fetch("SELECT id FROM timeline")) == 3


async def test_the_person_may_come_back_after_the_erasure_as_a_new_contact(
    service: Service,
) -> None:
    contact_id, _ = await ada_with_history(service)
    await service.send("POST", f"/v1/contacts/{contact_id}/erase")

    comeback = raw_event(
        "signup", identity={"email": "ada@example.com"}, time=T0 + timedelta(days=9999)
    )
    await service.publish(comeback)
    contact = await service.wait_contact(email="ada@example.com")

    assert contact["id"] != contact_id


async def test_the_erasure_status_collects_the_other_services_completions(
    service: Service,
) -> None:
    contact_id, _ = await ada_with_history(service)
    request_id = (await service.send("POST", f"/v1/contacts/{contact_id}/erase")).json()[
        "request_id"
    ]
    done = example_data(pv.PRIVACY_ERASURE_COMPLETED).model_copy(
        update={"request_id": request_id, "contact_id": contact_id, "service": "cases"}
    )
    event = await service.publish_related(pv.PRIVACY_ERASURE_COMPLETED, done)
    await service.wait_applied(event.id)

    status = await service.ok(f"/v1/erasures/{request_id}")

    assert sorted(c["service"] for c in status["completed_by"]) == ["cases", "contacts"]
    assert (await service.get(f"/v1/erasures/{request_id}", "contacts:read")).status_code == 403


async def test_an_erasure_requested_by_another_system_erases_here_too(service: Service) -> None:
    contact_id, _ = await ada_with_history(service)
    request = example_data(pv.PRIVACY_ERASURE_REQUESTED).model_copy(
        update={"request_id": "pr-9", "contact_id": contact_id}
    )
    event = await service.publish_related(pv.PRIVACY_ERASURE_REQUESTED, request)
    await service.wait_applied(event.id)

    status = await service.ok("/v1/erasures/pr-9")
    privacy = await service.read(
        service.settings.privacy_topic,
        lambda es: bool(of_type(es, pv.PRIVACY_ERASURE_COMPLETED)),
    )

    assert [c["service"] for c in status["completed_by"]] == ["contacts"]
    completed = of_type(privacy, pv.PRIVACY_ERASURE_COMPLETED)[0]
    assert completed.causationid == event.id
    assert await service.contact_by(email="ada@example.com") is None
