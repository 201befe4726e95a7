"""Identity resolution: raw interactions find or create their contact, once per person."""

from __future__ import annotations

import json

from crm_contracts import contacts as ct
from crm_contracts import interactions as it
from tests.integration.contacts.conftest import Service, of_type, purchase, raw_event


async def test_an_interaction_from_a_new_person_creates_a_contact_and_is_republished_resolved(
    service: Service,
) -> None:
    event = purchase(
        identity={"email": "Ada@Example.com", "external_ids": {"webshop": "c-42"}},
        correlationid="corr-1",
        traits={"first_name": "Ada", "last_name": "Lovelace"},
    )
    await service.publish(event)

    contact = await service.wait_contact(email="ada@example.com")
    resolved = await service.resolved_events(lambda es: len(es) >= 1)
    changes = await service.contact_events(
        lambda es: bool(of_type(es, ct.CONTACT_LIFECYCLE_CHANGED))
    )

    assert contact["profile"]["first_name"] == "Ada"
    assert contact["stage"] == "first_time_customer"
    [out] = resolved
    assert out.type == it.INTERACTION_RESOLVED
    assert out.subject == contact["id"]
    assert out.causationid == event.id
    assert out.correlationid == "corr-1"
    data = out.data_as(it.InteractionResolved)
    assert (data.contact_id, data.kind, data.interaction_id) == (
        contact["id"],
        "purchase",
        event.id,
    )
    assert (data.previous_stage, data.stage, data.stage_changed) == (
        None,
        ct.LifecycleStage.FIRST_TIME_CUSTOMER,
        True,
    )
    assert changes[0].type == ct.CONTACT_CREATED  # first on the contact's key
    linked = [
        e.data_as(ct.ContactIdentityLinked) for e in of_type(changes, ct.CONTACT_IDENTITY_LINKED)
    ]
    assert {(ln.identity_type, ln.identifier) for ln in linked} == {
        (ct.IdentityType.EMAIL, None),
        (ct.IdentityType.EXTERNAL_ID, "c-42"),
    }
    assert all(b"example.com" not in (e.model_dump_json().encode()) for e in changes)


async def test_a_click_on_a_campaign_email_is_republished_with_its_campaign_and_step(
    service: Service,
) -> None:
    click = raw_event(
        "email_clicked",
        channel="email",
        source="urn:channel:mailer",
        campaign_id="cmp-spring-26",
        campaign_step_id="s2",
    )
    await service.publish(click)

    contact = await service.wait_contact(email="ada@example.com")
    [out] = await service.resolved_events(lambda es: len(es) >= 1)
    [entry] = await service.timeline(contact["id"], kind="email_clicked")

    data = out.data_as(it.InteractionResolved)
    assert (data.interaction_id, data.contact_id) == (click.id, contact["id"])
    assert (data.campaign_id, data.campaign_step_id) == ("cmp-spring-26", "s2")
    assert (entry["data"]["campaign_id"], entry["data"]["campaign_step_id"]) == (
        "cmp-spring-26",
        "s2",
    )


async def test_variants_of_an_email_or_a_phone_number_find_the_same_contact(
    service: Service,
) -> None:
    first = raw_event("signup", identity={"email": "ada@example.com", "phone": "+44 20 7946 0000"})
    by_email = raw_event(identity={"email": "ADA@example.COM"}, channel="email")
    by_national_phone = raw_event(identity={"phone": "020 7946 0000"}, channel="phone")
    by_e164 = raw_event(identity={"phone": "+442079460000"}, channel="sms")
    await service.publish(first, key="k")
    await service.publish(by_email, by_national_phone, by_e164, key="k")
    await service.wait_applied(first.id, by_email.id, by_national_phone.id, by_e164.id)

    found = {
        (await service.contact_by(**search) or {}).get("id")
        for search in (
            {"email": " Ada@Example.com"},
            {"phone": "020 7946 0000"},
            {"phone": "+44 (0)20 7946 0000"},
            {"phone": "+442079460000"},
        )
    }
    contacts = await service.fetch("SELECT id FROM contacts")

    assert len(contacts) == 1
    assert found == {contacts[0]["id"]}
    assert len(await service.timeline(contacts[0]["id"])) == 4


async def test_structured_and_binary_cloudevents_resolve_alike(service: Service) -> None:
    binary = raw_event(identity={"anonymous_id": "ck-1"})
    structured = raw_event(identity={"anonymous_id": "ck-1"}, channel="app")
    await service.publish(binary, key="ck-1")
    await service.publish_structured(structured, key="ck-1")
    await service.wait_applied(binary.id, structured.id)

    contact = await service.contact_by(anonymous_id="ck-1")

    assert contact is not None
    assert {e["event_id"] for e in await service.timeline(contact["id"])} == {
        binary.id,
        structured.id,
    }


async def test_an_event_with_no_usable_identifier_is_dead_lettered_with_the_reason(
    service: Service,
) -> None:
    unknown_contact = raw_event(identity={"contact_id": "c-nobody"})
    bad_phone = raw_event(identity={"phone": "123"})
    good = raw_event(identity={"email": "ok@example.com"})
    await service.publish(unknown_contact, bad_phone, good, key="same")

    letters = await service.dead_letters(2)
    await service.wait_contact(email="ok@example.com")

    assert sorted(reason for reason, _ in letters) == ["invalid_identity", "unknown_contact"]
    assert len(await service.fetch("SELECT id FROM contacts")) == 1


async def test_an_explicit_contact_id_attaches_the_interaction_to_that_contact(
    service: Service,
) -> None:
    created = await service.send("POST", "/v1/contacts", {"first_name": "Grace"})
    contact_id = created.json()["id"]
    event = raw_event("call", identity={"contact_id": contact_id}, channel="phone")
    await service.publish(event)
    await service.wait_applied(event.id)

    assert [e["event_id"] for e in await service.timeline(contact_id)] == [event.id]


async def test_logs_carry_event_ids_and_never_an_email_or_a_phone_number(
    service: Service, capsys
) -> None:
    first = raw_event("signup", identity={"email": "ada@example.com"})
    second = raw_event("signup", identity={"phone": "+44 20 7946 0000"})
    proof = raw_event(identity={"email": "ada@example.com", "phone": "020 7946 0000"})
    await service.publish(first, second, proof, key="k")
    await service.wait_applied(first.id, second.id, proof.id)

    lines = [
        json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")
    ]

    merged = [line for line in lines if line["message"] == "contacts merged"]
    assert [line["event_id"] for line in merged] == [proof.id]
    text = json.dumps(lines).lower()
    assert "example.com" not in text
    assert "+442079460000" not in text and "20 7946" not in text
