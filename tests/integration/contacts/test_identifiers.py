"""Identifiers by hand: an agent adds one to a contact or takes a wrong one off."""

from __future__ import annotations

from crm_contracts import contacts as ct
from tests.integration.contacts.conftest import Service, of_type, raw_event


def _identifiers(contact: dict[str, object]) -> set[tuple[str, str]]:
    items = contact["identifiers"]
    assert isinstance(items, list)
    return {(i["kind"], i["value"]) for i in items}


async def test_an_added_email_links_the_next_event_carrying_it_to_the_contact(
    service: Service,
) -> None:
    ada = (await service.send("POST", "/v1/contacts", {"first_name": "Ada"})).json()
    path = f"/v1/contacts/{ada['id']}/identifiers"

    added = await service.send("POST", path, {"kind": "email", "value": " Ada@Example.com "})
    again = await service.send("POST", path, {"kind": "email", "value": "ada@example.com"})
    webshop = await service.send("POST", path, {"kind": "external_id", "value": "webshop:c-42"})
    signup = raw_event("signup", identity={"email": "ada@example.com"})
    await service.publish(signup)
    await service.wait_applied(signup.id)
    events = await service.contact_events(
        lambda es: len(of_type(es, ct.CONTACT_IDENTITY_LINKED)) >= 2
    )

    assert added.status_code == 201, added.text
    assert ("email", "ada@example.com") in _identifiers(added.json())
    assert again.status_code == 200  # already hers: nothing changes, no second event
    assert _identifiers(webshop.json()) == {
        ("email", "ada@example.com"),
        ("external_id", "webshop:c-42"),
    }
    assert (await service.contact_by(email="ada@example.com"))["id"] == ada["id"]
    assert [e["event_id"] for e in await service.timeline(ada["id"])] == [signup.id]
    linked = [
        e.data_as(ct.ContactIdentityLinked) for e in of_type(events, ct.CONTACT_IDENTITY_LINKED)
    ]
    assert [(e.identity_type, e.system, e.identifier) for e in linked] == [
        (ct.IdentityType.EMAIL, None, None),  # an email never leaves the service
        (ct.IdentityType.EXTERNAL_ID, "webshop", "c-42"),
    ]
    assert all(e.contact_id == ada["id"] for e in linked)


async def test_an_identifier_of_someone_else_is_refused_with_who_holds_it(
    service: Service,
) -> None:
    ada = (await service.send("POST", "/v1/contacts", {"email": "ada@example.com"})).json()
    grace = (await service.send("POST", "/v1/contacts", {"email": "grace@example.com"})).json()

    taken = await service.send(
        "POST",
        f"/v1/contacts/{grace['id']}/identifiers",
        {"kind": "email", "value": "ADA@example.com"},
    )
    invalid = await service.send(
        "POST", f"/v1/contacts/{grace['id']}/identifiers", {"kind": "phone", "value": "not a phone"}
    )
    unknown_kind = await service.send(
        "POST", f"/v1/contacts/{grace['id']}/identifiers", {"kind": "fax", "value": "1"}
    )
    nobody = await service.send(
        "POST", "/v1/contacts/c-nobody/identifiers", {"kind": "email", "value": "x@example.com"}
    )
    reader = await service.send(
        "POST",
        f"/v1/contacts/{grace['id']}/identifiers",
        {"kind": "email", "value": "g2@example.com"},
        "contacts:read",
    )

    assert taken.status_code == 409
    assert taken.json()["type"].endswith("/identifier-taken")
    assert taken.json()["contact_id"] == ada["id"]
    assert "ada@example.com" not in taken.text.lower()  # names the holder, not the value
    assert [invalid.status_code, unknown_kind.status_code] == [422, 422]
    assert nobody.status_code == 404
    assert reader.status_code == 403
    assert _identifiers(await service.ok(f"/v1/contacts/{grace['id']}")) == {
        ("email", "grace@example.com")
    }


async def test_a_wrong_email_taken_off_goes_to_the_next_person_who_uses_it(
    service: Service,
) -> None:
    body = {"email": "family@example.com", "phone": "+44 20 7946 0000", "first_name": "Ada"}
    ada = (await service.send("POST", "/v1/contacts", body)).json()
    unlink = f"/v1/contacts/{ada['id']}/identifiers/unlink"

    removed = await service.send(
        "POST", unlink, {"kind": "email", "value": "Family@example.com", "reason": "shared inbox"}
    )
    twice = await service.send("POST", unlink, {"kind": "email", "value": "family@example.com"})
    signup = raw_event("signup", identity={"email": "family@example.com"})
    await service.publish(signup)
    sibling = await service.wait_contact(email="family@example.com")
    events = await service.contact_events(
        lambda es: bool(of_type(es, ct.CONTACT_IDENTITY_UNLINKED))
    )

    assert removed.status_code == 200, removed.text
    assert _identifiers(removed.json()) == {("phone", "+442079460000")}
    assert twice.status_code == 404
    assert twice.json()["type"].endswith("/identifier-not-found")
    assert sibling["id"] != ada["id"]
    assert await service.timeline(ada["id"]) == []
    (unlinked,) = of_type(events, ct.CONTACT_IDENTITY_UNLINKED)
    data = unlinked.data_as(ct.ContactIdentityUnlinked)
    assert (data.contact_id, data.identity_type, data.identifier, data.reason) == (
        ada["id"],
        ct.IdentityType.EMAIL,
        None,
        "shared inbox",
    )
    assert b"family@example.com" not in unlinked.model_dump_json().encode()
