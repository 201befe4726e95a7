"""Lifecycle stages move by the rules file and by hand; consent keeps its history."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from crm_contracts import contacts as ct
from tests.integration.contacts.conftest import T0, Service, of_type, purchase, raw_event


async def test_stages_move_forward_by_the_rules_each_change_an_event_with_its_cause(
    service: Service,
) -> None:
    steps = [
        raw_event(time=T0),
        raw_event("signup", time=T0 + timedelta(hours=1)),
        purchase(time=T0 + timedelta(hours=2)),
        purchase(time=T0 + timedelta(hours=3)),
        raw_event("signup", time=T0 + timedelta(hours=4)),  # never back to prospect
        raw_event("review", time=T0 + timedelta(hours=5)),
    ]
    await service.publish(*steps, key="ada")
    await service.wait_applied(*(e.id for e in steps))
    events = await service.contact_events(
        lambda es: len(of_type(es, ct.CONTACT_LIFECYCLE_CHANGED)) >= 5
    )

    changes = [
        (e.causationid, e.data_as(ct.ContactLifecycleChanged))
        for e in of_type(events, ct.CONTACT_LIFECYCLE_CHANGED)
    ]
    assert [(c.from_stage, c.to_stage) for _, c in changes] == [
        (None, "suspect"),
        ("suspect", "prospect"),
        ("prospect", "first_time_customer"),
        ("first_time_customer", "repeat_customer"),
        ("repeat_customer", "advocate"),
    ]
    assert [cause for cause, _ in changes] == [e.id for i, e in enumerate(steps) if i != 4]
    assert [c.cause_kind for _, c in changes] == [
        "page_view",
        "signup",
        "purchase",
        "purchase",
        "review",
    ]
    assert (await service.contact_by(email="ada@example.com"))["stage"] == "advocate"


async def test_an_agent_sets_any_stage_by_hand_with_a_reason(service: Service) -> None:
    await service.publish(purchase())
    contact = await service.wait_contact(email="ada@example.com")

    response = await service.send(
        "PUT", f"/v1/contacts/{contact['id']}/stage", {"stage": "partner", "reason": "reseller"}
    )
    back = await service.send(
        "PUT", f"/v1/contacts/{contact['id']}/stage", {"stage": "prospect", "reason": "refunded"}
    )
    events = await service.contact_events(
        lambda es: len(of_type(es, ct.CONTACT_LIFECYCLE_CHANGED)) >= 3
    )
    manual = [
        e.data_as(ct.ContactLifecycleChanged)
        for e in of_type(events, ct.CONTACT_LIFECYCLE_CHANGED)
        if e.data_as(ct.ContactLifecycleChanged).cause_kind == "manual"
    ]
    entries = await service.timeline(contact["id"], kind="contact.lifecycle_changed")

    assert response.status_code == 200 and response.json()["stage"] == "partner"
    assert back.status_code == 200 and back.json()["stage"] == "prospect"
    assert [(m.from_stage, m.to_stage) for m in manual] == [
        ("first_time_customer", "partner"),
        ("partner", "prospect"),
    ]
    assert [(e["data"]["reason"], e["data"]["actor"]) for e in entries] == [
        ("refunded", "agent-7"),
        ("reseller", "agent-7"),
    ]


async def test_a_rules_file_of_ones_own_replaces_the_shipped_rules(
    start_service, tmp_path: Path
) -> None:
    rules = tmp_path / "rules.toml"
    rules.write_text(
        'initial_stage = "prospect"\n'
        "[[rules]]\n"
        'kinds = ["call", "chat"]\n'
        "min_count = 2\n"
        'stage = "client"\n'
    )
    service: Service = await start_service(lifecycle_rules_path=rules)
    calls = [
        raw_event("call", channel="phone", time=T0),
        raw_event("chat", channel="chat", time=T0 + timedelta(minutes=5)),
    ]
    await service.publish(*calls, key="ada")
    await service.wait_applied(*(e.id for e in calls))

    assert (await service.contact_by(email="ada@example.com"))["stage"] == "client"


async def test_consent_from_events_and_from_the_api_keeps_who_changed_it_and_when(
    service: Service,
) -> None:
    given = raw_event(
        "consent_given",
        channel="email",
        consent={"purpose": "marketing", "channel": "email"},
        time=T0,
    )
    await service.publish(given)
    contact = await service.wait_contact(email="ada@example.com")
    contact_id = contact["id"]

    withdrawn = await service.send(
        "PUT",
        f"/v1/contacts/{contact_id}/consent",
        {"purpose": "marketing", "channel": "email", "granted": False, "note": "asked by phone"},
    )
    repeated = await service.send(
        "PUT",
        f"/v1/contacts/{contact_id}/consent",
        {"purpose": "marketing", "channel": "email", "granted": False},
    )
    late = raw_event(
        "consent_given",
        channel="email",
        consent={"purpose": "marketing", "channel": "email"},
        time=T0 - timedelta(days=30),  # an old statement arriving late
    )
    await service.publish(late)
    await service.wait_applied(late.id)
    view = await service.ok(f"/v1/contacts/{contact_id}/consent")
    events = await service.contact_events(
        lambda es: len(of_type(es, ct.CONTACT_CONSENT_CHANGED)) >= 2
    )

    assert withdrawn.status_code == 200 and withdrawn.json()["changed"] is True
    assert repeated.json()["changed"] is False
    assert [(c["purpose"], c["channel"], c["granted"]) for c in view["current"]] == [
        ("marketing", "email", False)
    ]
    assert [(h["granted"], h["source"], h["actor"], h["note"]) for h in view["history"]] == [
        (False, "api:agent-7", "agent-7", "asked by phone"),
        (True, "urn:channel:webshop", None, None),
        (True, "urn:channel:webshop", None, None),
    ]
    changes = [
        e.data_as(ct.ContactConsentChanged) for e in of_type(events, ct.CONTACT_CONSENT_CHANGED)
    ]
    assert [(c.granted, c.source) for c in changes] == [
        (True, "urn:channel:webshop"),
        (False, "api:agent-7"),
    ]
