"""Planning a batch of raw interactions: which contact each goes to, from one lookup."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from crm_contacts.batching import (
    Assigned,
    Dropped,
    Existing,
    Interaction,
    Newcomer,
    StoredLink,
    goes_one_by_one,
    plan_run,
)
from crm_contacts.domain import Identifier, identifier_digest, normalise_identity
from crm_contracts import decode_json
from crm_contracts.contacts import IdentityType
from crm_contracts.interactions import InteractionRecorded

T0 = datetime(2026, 1, 1, tzinfo=UTC)
KEY = b"test-key"
ADA = Identifier(IdentityType.EMAIL, "ada@example.com")
ADA_PHONE = Identifier(IdentityType.PHONE, "+442079460000")
ADA_COOKIE = Identifier(IdentityType.ANONYMOUS_ID, "ck-ada")
BOB = Identifier(IdentityType.EMAIL, "bob@example.com")


def interaction(identity: dict[str, Any], *, time: datetime = T0, **data: Any) -> Interaction:
    event = decode_json(
        {
            "specversion": "1.0",
            "id": f"evt-{uuid.uuid4().hex}",
            "source": "urn:channel:webshop",
            "type": "crm.interaction.recorded",
            "time": time.isoformat(),
            "data": {"channel": "web", "kind": "page_view", "identity": identity, **data},
        }
    )
    recorded = event.data_as(InteractionRecorded)
    normalised = normalise_identity(recorded.identity, region="GB")
    digests = tuple(identifier_digest(KEY, i) for i in normalised.identifiers)
    return Interaction(event, recorded, normalised, digests)


def active(contact_id: str, origin_id: str | None = None) -> StoredLink:
    return StoredLink(contact_id, origin_id or contact_id, "active")


def test_two_events_of_one_new_person_go_to_one_newcomer() -> None:
    first = interaction({"email": "ada@example.com"})
    second = interaction({"email": "ADA@example.com", "phone": "020 7946 0000"})
    third = interaction({"phone": "+44 20 7946 0000", "anonymous_id": "ck-ada"})

    plan = plan_run([first, second, third], {}, {})

    assert plan.steps == (
        Assigned(Newcomer(0), Newcomer(0), (ADA,), creates=True),
        Assigned(Newcomer(0), Newcomer(0), (ADA_PHONE,)),
        Assigned(Newcomer(0), Newcomer(0), (ADA_COOKIE,)),
    )
    assert plan.newcomers == 1
    assert plan.existing_ids == []


def test_different_new_people_are_different_newcomers() -> None:
    plan = plan_run(
        [interaction({"email": "ada@example.com"}), interaction({"email": "bob@example.com"})],
        {},
        {},
    )

    assert [s.owner for s in plan.steps if isinstance(s, Assigned)] == [Newcomer(0), Newcomer(1)]
    assert plan.newcomers == 2


def test_a_stored_identifier_sends_the_event_to_its_contact_through_its_origin() -> None:
    event = interaction({"email": "ada@example.com", "phone": "020 7946 0000"})

    plan = plan_run([event], {}, {ADA: active("c-ada", origin_id="c-old")})

    assert plan.steps == (Assigned(Existing("c-ada"), Existing("c-old"), (ADA_PHONE,)),)
    assert plan.existing_ids == ["c-ada"]


def test_the_origin_is_that_of_the_identifier_of_highest_precedence() -> None:
    event = interaction({"email": "ada@example.com", "anonymous_id": "ck-ada"})
    links = {ADA_COOKIE: active("c-ada", "c-cookie"), ADA: active("c-ada", "c-email")}

    [step] = plan_run([event], {}, links).steps

    assert step == Assigned(Existing("c-ada"), Existing("c-email"), ())


def test_an_identifier_linked_earlier_in_the_batch_carries_that_events_origin() -> None:
    first = interaction({"email": "ada@example.com", "phone": "020 7946 0000"})
    second = interaction({"phone": "020 7946 0000"})

    plan = plan_run([first, second], {}, {ADA: active("c-ada", "c-old")})

    assert plan.steps[1] == Assigned(Existing("c-ada"), Existing("c-old"), ())


def test_an_event_proving_two_stored_contacts_one_ends_the_run_before_it() -> None:
    before = interaction({"email": "bob@example.com"})
    proof = interaction({"email": "ada@example.com", "phone": "020 7946 0000"})
    after = interaction({"email": "ada@example.com"})
    links = {ADA: active("c-ada"), ADA_PHONE: active("c-phone")}

    plan = plan_run([before, proof, after], {}, links)

    assert plan.steps == (Assigned(Newcomer(0), Newcomer(0), (BOB,), creates=True),)


def test_an_event_joining_a_new_person_to_a_stored_contact_ends_the_run() -> None:
    new = interaction({"phone": "020 7946 0000"})
    proof = interaction({"email": "ada@example.com", "phone": "020 7946 0000"})

    plan = plan_run([new, proof], {}, {ADA: active("c-ada")})

    assert len(plan.steps) == 1


def test_an_erased_identity_from_before_the_erasure_is_dropped_and_after_it_is_new() -> None:
    late = interaction({"email": "ada@example.com"}, time=T0 - timedelta(days=1))
    back = interaction({"email": "ada@example.com"}, time=T0 + timedelta(days=1))
    erased = {identifier_digest(KEY, ADA): T0}

    plan = plan_run([late, back], erased, {})

    assert plan.steps == (Dropped(), Assigned(Newcomer(0), Newcomer(0), (ADA,), creates=True))


def test_identifiers_of_a_deleted_contact_are_released_to_whoever_comes_next() -> None:
    event = interaction({"email": "ada@example.com"})

    plan = plan_run([event], {}, {ADA: StoredLink("c-gone", "c-gone", "deleted")})

    assert plan.steps == (Assigned(Newcomer(0), Newcomer(0), (ADA,), creates=True),)
    assert plan.released == (ADA,)


def test_a_contact_caught_in_a_merge_ends_the_run() -> None:
    event = interaction({"email": "ada@example.com"})

    plan = plan_run([event], {}, {ADA: StoredLink("c-ada", "c-ada", "merged")})

    assert plan.steps == ()


def test_named_contacts_and_unusable_identities_go_one_by_one() -> None:
    named = interaction({"contact_id": "c-ada"})
    consent = interaction(
        {"email": "ada@example.com"}, consent={"purpose": "marketing", "granted": True}
    )
    unusable = interaction({"phone": "123"})
    plain = interaction({"email": "ada@example.com"})

    assert [goes_one_by_one(i) for i in (named, consent, unusable, plain)] == [
        True,
        False,
        True,
        False,
    ]
    assert plan_run([plain, named, plain], {}, {}).steps == (
        Assigned(Newcomer(0), Newcomer(0), (ADA,), creates=True),
    )


def test_the_contacts_to_lock_are_each_stored_owner_once_in_id_order() -> None:
    events = [
        interaction({"email": "bob@example.com"}),
        interaction({"email": "ada@example.com"}),
        interaction({"email": "bob@example.com"}),
    ]

    plan = plan_run(events, {}, {ADA: active("c-2"), BOB: active("c-1")})

    assert plan.existing_ids == ["c-1", "c-2"]
