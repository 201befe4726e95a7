"""The HTTP API: CRUD with events, search, lists, accounts, problems and scopes."""

from __future__ import annotations

from crm_contracts import contacts as ct
from tests.integration.contacts.conftest import Service, of_type, raw_event

ADA = {
    "email": "Ada@Example.com",
    "phone": "020 7946 0000",
    "external_ids": {"webshop": "c-42"},
    "first_name": "Ada",
    "last_name": "Lovelace",
}


async def test_creating_changing_and_deleting_a_contact_each_emit_an_event(
    service: Service,
) -> None:
    created = await service.send("POST", "/v1/contacts", ADA)
    contact_id = created.json()["id"]
    patched = await service.send(
        "PATCH", f"/v1/contacts/{contact_id}", {"city": "London", "last_name": None}
    )
    deleted = await service.send("DELETE", f"/v1/contacts/{contact_id}")
    gone = await service.get(f"/v1/contacts/{contact_id}")
    events = await service.contact_events(lambda es: bool(of_type(es, ct.CONTACT_DELETED)))

    assert created.status_code == 201, created.text
    assert created.headers["location"] == f"/v1/contacts/{contact_id}"
    assert {(i["kind"], i["value"]) for i in created.json()["identifiers"]} == {
        ("email", "ada@example.com"),
        ("phone", "+442079460000"),
        ("external_id", "webshop:c-42"),
    }
    assert patched.status_code == 200
    assert patched.json()["profile"]["city"] == "London"
    assert patched.json()["profile"]["last_name"] is None
    assert deleted.status_code == 204
    assert gone.status_code == 410
    assert [e.type for e in events] == [
        ct.CONTACT_CREATED,
        ct.CONTACT_IDENTITY_LINKED,
        ct.CONTACT_IDENTITY_LINKED,
        ct.CONTACT_IDENTITY_LINKED,
        ct.CONTACT_LIFECYCLE_CHANGED,
        ct.CONTACT_UPDATED,
        ct.CONTACT_DELETED,
    ]
    updated = of_type(events, ct.CONTACT_UPDATED)[0].data_as(ct.ContactUpdated)
    assert sorted(updated.changed_fields) == ["city", "last_name"]
    assert all(e.subject == contact_id for e in events)


async def test_a_deleted_contacts_identifiers_go_to_the_next_person_who_uses_them(
    service: Service,
) -> None:
    created = await service.send("POST", "/v1/contacts", {"email": "ada@example.com"})
    await service.send("DELETE", f"/v1/contacts/{created.json()['id']}")

    event = raw_event("signup")
    await service.publish(event)
    contact = await service.wait_contact(email="ada@example.com")

    assert contact["id"] != created.json()["id"]


async def test_contacts_are_found_by_each_identifier_and_by_name(service: Service) -> None:
    ada = (await service.send("POST", "/v1/contacts", {**ADA, "anonymous_id": "ck-1"})).json()
    await service.send(
        "POST", "/v1/contacts", {"email": "grace@example.com", "first_name": "Grace"}
    )

    searches = [
        {"email": "ADA@example.com"},
        {"phone": "+44 20 7946 0000"},
        {"phone": "020 7946 0000"},
        {"external_id": "webshop:c-42"},
        {"anonymous_id": "ck-1"},
        {"q": "lovel"},
        {"q": "ada LOVELACE"},
    ]
    found = [[c["id"] for c in (await service.ok("/v1/contacts", **s))["items"]] for s in searches]

    assert found == [[ada["id"]]] * len(searches)
    assert (await service.ok("/v1/contacts", email="nobody@example.com"))["items"] == []


async def test_lists_filter_by_stage_account_and_update_time_and_page_with_a_cursor(
    service: Service,
) -> None:
    account = (await service.send("POST", "/v1/accounts", {"name": "Engines Ltd"})).json()
    ids = []
    for n in range(5):
        body = {"email": f"p{n}@example.com", "stage": "prospect" if n % 2 else "suspect"}
        if n < 3:
            body["account_id"] = account["id"]
        ids.append((await service.send("POST", "/v1/contacts", body)).json())
    since = ids[3]["updated_at"]

    pages, cursor = [], None
    while True:
        params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = await service.ok("/v1/contacts", **params)
        pages.append([c["id"] for c in page["items"]])
        cursor = page["next_cursor"]
        if not cursor:
            break

    assert pages == [[ids[0]["id"], ids[1]["id"]], [ids[2]["id"], ids[3]["id"]], [ids[4]["id"]]]
    prospects = await service.ok("/v1/contacts", stage="prospect")
    assert [c["id"] for c in prospects["items"]] == [ids[1]["id"], ids[3]["id"]]
    of_account = await service.ok("/v1/contacts", account_id=account["id"])
    assert len(of_account["items"]) == 3
    recent = await service.ok("/v1/contacts", updated_since=since)
    assert [c["id"] for c in recent["items"]] == [ids[3]["id"], ids[4]["id"]]
    too_many = await service.get("/v1/contacts", limit=1000)
    assert too_many.status_code == 422


async def test_accounts_are_created_listed_and_linked_from_the_company_trait(
    service: Service,
) -> None:
    created = await service.send(
        "POST", "/v1/accounts", {"name": "Analytical Engines", "domain": "engines.example"}
    )
    twin = await service.send(
        "POST", "/v1/accounts", {"name": "Other", "domain": "ENGINES.example"}
    )
    listed = await service.ok("/v1/accounts", q="analytical")
    one = await service.ok(f"/v1/accounts/{created.json()['id']}")
    await service.publish(raw_event("signup", traits={"company": "analytical engines"}))
    contact = await service.wait_contact(email="ada@example.com")
    await service.publish(
        raw_event("signup", identity={"email": "x@y.z"}, traits={"company": "Unknown Co"})
    )
    stranger = await service.wait_contact(email="x@y.z")

    assert created.status_code == 201
    assert twin.status_code == 409 and twin.json()["account_id"] == created.json()["id"]
    assert [a["id"] for a in listed["items"]] == [created.json()["id"]] == [one["id"]]
    assert contact["account_id"] == created.json()["id"]
    assert stranger["account_id"] is None  # a trait never creates an account
    assert len((await service.ok("/v1/accounts"))["items"]) == 1


async def test_a_post_repeated_with_its_idempotency_key_creates_one_contact(
    service: Service,
) -> None:
    headers = {**service.headers(), "Idempotency-Key": "req-1"}
    first = await service.http.post("/v1/contacts", json=ADA, headers=headers)
    second = await service.http.post("/v1/contacts", json=ADA, headers=headers)
    other_body = await service.http.post(
        "/v1/contacts", json={"email": "b@example.com"}, headers=headers
    )
    without_key = await service.send("POST", "/v1/contacts", ADA)

    assert first.status_code == second.status_code == 201
    assert first.json() == second.json()
    assert other_body.status_code == 422
    assert without_key.status_code == 409
    assert without_key.json()["contact_id"] == first.json()["id"]
    assert len(await service.fetch("SELECT id FROM contacts")) == 1


async def test_a_replayed_idempotent_post_answers_with_the_same_status_body_and_location(
    service: Service,
) -> None:
    answers = {}
    for path, body in (("/v1/contacts", ADA), ("/v1/accounts", {"name": "Analytical Engines"})):
        headers = {**service.headers(), "Idempotency-Key": f"replay-{path.rsplit('/', 1)[-1]}"}
        first = await service.http.post(path, json=body, headers=headers)
        replay = await service.http.post(path, json=body, headers=headers)
        answers[path] = (first, replay)

    for path, (first, replay) in answers.items():
        assert first.status_code == replay.status_code == 201
        assert replay.json() == first.json()
        assert first.headers["location"] == f"{path}/{first.json()['id']}"
        assert replay.headers.get("location") == first.headers["location"]


async def test_client_errors_are_problem_documents(service: Service) -> None:
    answers = {
        "unknown field": await service.send("POST", "/v1/contacts", {"email": "a@b.c", "vip": 1}),
        "nobody": await service.send("POST", "/v1/contacts", {"city": "Paris"}),
        "bad email": await service.send("POST", "/v1/contacts", {"email": "not-an-address"}),
        "bad stage": await service.send("PUT", "/v1/contacts/c-1/stage", {"stage": "emperor"}),
        "missing": await service.get("/v1/contacts/c-missing"),
        "bad cursor": await service.get("/v1/contacts", cursor="%%%"),
        "two keys": await service.get("/v1/contacts", email="a@b.c", phone="+442079460000"),
    }

    statuses = {name: r.status_code for name, r in answers.items()}
    assert statuses == {
        "unknown field": 422,
        "nobody": 422,
        "bad email": 422,
        "bad stage": 422,
        "missing": 404,
        "bad cursor": 400,
        "two keys": 422,
    }
    for response in answers.values():
        assert response.headers["content-type"] == "application/problem+json"
        body = response.json()
        assert {"type", "title", "status"} <= set(body) and body["status"] == response.status_code
    assert "not-an-address" not in answers["bad email"].text  # never echo submitted values


async def test_scopes_are_enforced(service: Service) -> None:
    contact_id = (await service.send("POST", "/v1/contacts", ADA)).json()["id"]

    no_token = await service.http.get(f"/v1/contacts/{contact_id}")
    bad_token = await service.http.get(
        f"/v1/contacts/{contact_id}", headers={"Authorization": "Bearer nonsense"}
    )
    write_only = await service.get(f"/v1/contacts/{contact_id}", "contacts:write")
    read_only_write = await service.send(
        "PATCH", f"/v1/contacts/{contact_id}", {"city": "Paris"}, "contacts:read"
    )
    read_export = await service.get(f"/v1/contacts/{contact_id}/export", "contacts:read")
    write_erase = await service.send(
        "POST", f"/v1/contacts/{contact_id}/erase", None, "contacts:write"
    )
    reader = await service.get(f"/v1/contacts/{contact_id}", "contacts:read")

    assert (no_token.status_code, bad_token.status_code) == (401, 401)
    assert no_token.headers["content-type"] == "application/problem+json"
    assert [write_only.status_code, read_only_write.status_code] == [403, 403]
    assert [read_export.status_code, write_erase.status_code] == [403, 403]
    assert write_erase.json()["missing_scopes"] == ["privacy:erase"]
    assert reader.status_code == 200
