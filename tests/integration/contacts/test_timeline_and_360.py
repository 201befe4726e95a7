"""The timeline is the institutional memory; the 360 view shows it with everything else."""

from __future__ import annotations

import random
from datetime import timedelta

from crm_contracts import campaigns as cm
from crm_contracts import cases as cs
from crm_contracts import scores as sc
from crm_contracts.examples import example_data
from tests.integration.contacts.conftest import T0, Service, purchase, raw_event


def case_event(type: str, contact_id: str, **changes: object):
    return example_data(type).model_copy(update={"contact_id": contact_id, **changes})


async def test_the_timeline_is_in_event_time_order_whatever_the_arrival_order(
    service: Service,
) -> None:
    events = [
        raw_event(
            kind,
            channel=channel,
            source=source,
            time=T0 + timedelta(minutes=n),
        )
        for n, (kind, channel, source) in enumerate(
            [
                ("page_view", "web", "urn:channel:webshop"),
                ("email_opened", "email", "urn:channel:mailer"),
                ("call", "phone", "urn:channel:callcentre"),
                ("page_view", "web", "urn:channel:webshop"),
                ("email_clicked", "email", "urn:channel:mailer"),
                ("chat", "chat", "urn:channel:chat"),
                ("page_view", "app", "urn:channel:app"),
            ]
        )
    ]
    shuffled = events[:]
    random.Random(7).shuffle(shuffled)
    await service.publish(*shuffled, key="ada")
    await service.wait_applied(*(e.id for e in events))
    contact_id = (await service.contact_by(email="ada@example.com"))["id"]

    pages: list[list[str]] = []
    cursor = None
    while True:
        params = {"limit": 3, **({"cursor": cursor} if cursor else {})}
        page = await service.ok(f"/v1/contacts/{contact_id}/timeline", **params)
        pages.append([e["event_id"] for e in page["items"]])
        cursor = page["next_cursor"]
        if cursor is None:
            break
    newest_first = [e.id for e in reversed(events)]

    assert pages == [newest_first[0:3], newest_first[3:6], newest_first[6:]]
    assert [e["event_id"] for e in await service.timeline(contact_id, order="asc")] == [
        e.id for e in events
    ]
    assert [e["kind"] for e in await service.timeline(contact_id, kind="page_view")] == [
        "page_view"
    ] * 3
    assert {e["channel"] for e in await service.timeline(contact_id, channel="email")} == {"email"}
    by_source = await service.timeline(contact_id, source=["urn:channel:chat", "urn:channel:app"])
    assert [e["event_id"] for e in by_source] == [events[6].id, events[5].id]
    window = await service.timeline(
        contact_id,
        since=(T0 + timedelta(minutes=2)).isoformat(),
        until=(T0 + timedelta(minutes=4)).isoformat(),
    )
    assert [e["event_id"] for e in window] == [events[3].id, events[2].id]


async def test_case_campaign_and_score_events_fill_the_timeline_and_the_360(
    service: Service,
) -> None:
    await service.publish(purchase(traits={"first_name": "Ada", "company": "Engines"}))
    contact_id = (await service.wait_contact(email="ada@example.com"))["id"]
    account = await service.send("POST", "/v1/accounts", {"name": "Engines", "domain": "eng.io"})
    await service.send("PATCH", f"/v1/contacts/{contact_id}", {"account_id": account.json()["id"]})

    later = T0 + timedelta(hours=1)
    published = [
        await service.publish_related(
            cs.CASE_OPENED, case_event(cs.CASE_OPENED, contact_id), time=later
        ),
        await service.publish_related(
            cs.CASE_OPENED,
            case_event(cs.CASE_OPENED, contact_id, case_id="case-2", title="Wrong size"),
            time=later,
        ),
        await service.publish_related(
            cs.CASE_CLOSED, case_event(cs.CASE_CLOSED, contact_id), time=later + timedelta(1)
        ),
        await service.publish_related(
            cm.CAMPAIGN_CONTACT_ENROLLED,
            case_event(cm.CAMPAIGN_CONTACT_ENROLLED, contact_id),
            time=later,
        ),
        await service.publish_related(
            cm.CAMPAIGN_CONTACT_ENROLLED,
            case_event(cm.CAMPAIGN_CONTACT_ENROLLED, contact_id, enrolment_id="enr-2"),
            time=later,
        ),
        await service.publish_related(
            cm.CAMPAIGN_EXITED,
            case_event(cm.CAMPAIGN_EXITED, contact_id, enrolment_id="enr-2"),
            time=later + timedelta(minutes=5),
        ),
        await service.publish_related(
            cm.CAMPAIGN_SEGMENT_ENTERED,
            case_event(cm.CAMPAIGN_SEGMENT_ENTERED, contact_id),
            time=later,
        ),
        await service.publish_related(
            cm.CAMPAIGN_SEGMENT_LEFT,
            case_event(cm.CAMPAIGN_SEGMENT_LEFT, contact_id),
            time=later + timedelta(minutes=5),
        ),
        await service.publish_related(
            sc.SCORE_CHANGED, case_event(sc.SCORE_CHANGED, contact_id), time=later
        ),
    ]
    await service.wait_applied(*(e.id for e in published))

    view = await service.ok(f"/v1/contacts/{contact_id}/360")

    assert view["contact"]["profile"]["first_name"] == "Ada"
    assert view["account"]["name"] == "Engines"
    assert [c["case_id"] for c in view["open_cases"]] == ["case-2"]
    assert [e["enrolment_id"] for e in view["campaigns"]] == ["enr-88"]
    assert view["scores"]["scores"]["value_tier"] == "gold"
    kinds = [e["kind"] for e in view["timeline"]]
    assert kinds[0] == "case.closed"
    assert sorted(kinds) == sorted(
        [
            "purchase",
            "case.opened",
            "case.opened",
            "case.closed",
            "campaign.contact_enrolled",
            "campaign.contact_enrolled",
            "campaign.exited",
            "campaign.segment_entered",
            "campaign.segment_left",
            "score.changed",
        ]
    )
    only_cases = await service.timeline(contact_id, kind=["case.opened", "case.closed"])
    assert len(only_cases) == 3
    segments = await service.timeline(
        contact_id, kind=["campaign.segment_entered", "campaign.segment_left"], order="asc"
    )
    assert [(e["kind"], e["data"]["segment_id"]) for e in segments] == [
        ("campaign.segment_entered", "seg-repeat-buyers"),
        ("campaign.segment_left", "seg-repeat-buyers"),
    ]


async def test_an_event_about_an_unknown_contact_is_dead_lettered(service: Service) -> None:
    event = await service.publish_related(cs.CASE_OPENED, case_event(cs.CASE_OPENED, "c-nobody"))

    letters = await service.read(service.settings.cases_topic + ".dlt", lambda es: len(es) >= 1)

    assert [e.id for e in letters] == [event.id]


async def test_a_comment_on_a_case_goes_on_the_timeline_and_changes_nothing_about_the_case(
    service: Service,
) -> None:
    await service.publish(purchase())
    contact_id = (await service.wait_contact(email="ada@example.com"))["id"]
    later = T0 + timedelta(hours=1)
    opened = await service.publish_related(
        cs.CASE_OPENED, case_event(cs.CASE_OPENED, contact_id), time=later
    )
    comment = await service.publish_related(
        cs.CASE_COMMENTED,
        case_event(cs.CASE_COMMENTED, contact_id),
        time=later + timedelta(minutes=10),
    )
    await service.wait_applied(opened.id, comment.id)

    view = await service.ok(f"/v1/contacts/{contact_id}/360")
    [entry] = await service.timeline(contact_id, kind="case.commented")

    [case] = view["open_cases"]
    assert (case["case_id"], case["status"], case["assignee"]) == ("case-1042", "new", "agent-17")
    assert entry["event_id"] == comment.id
    assert entry["data"] == {
        "case_id": "case-1042",
        "contact_id": contact_id,
        "comment_id": "cmt-301",
        "author": "agent-17",
        "internal": True,
    }
