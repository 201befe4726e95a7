"""The pure rules of the contacts service: normalisation, resolution, merges, lifecycle."""

from __future__ import annotations

import tomllib
from datetime import UTC, datetime, timedelta

import pytest

from crm_contacts.domain import (
    ConsentStatement,
    Identifier,
    KnownContact,
    LifecycleRulesError,
    Match,
    MergeRules,
    TimelineEntry,
    apply_traits,
    by_agent,
    consent_changes,
    fill_gaps,
    furthest,
    identifier_digest,
    is_erased_replay,
    normalise_email,
    normalise_identity,
    normalise_phone,
    oldest,
    parse_lifecycle_rules,
    resolve,
    stage_after,
    timeline_entry,
)
from crm_contacts.settings import DEFAULT_LIFECYCLE_RULES
from crm_contracts import new_event
from crm_contracts.contacts import IdentityType, LifecycleStage
from crm_contracts.interactions import INTERACTION_RECORDED, Identity, InteractionRecorded

T0 = datetime(2026, 1, 1, tzinfo=UTC)
EMAIL = IdentityType.EMAIL
PHONE = IdentityType.PHONE
EXTERNAL = IdentityType.EXTERNAL_ID
ANONYMOUS = IdentityType.ANONYMOUS_ID
ALL_MERGE = MergeRules(frozenset({EMAIL, PHONE, EXTERNAL, ANONYMOUS}))


def contact(contact_id: str, age_days: int = 0) -> KnownContact:
    return KnownContact(contact_id, T0 - timedelta(days=age_days))


def match(kind: IdentityType | None, value: str, who: KnownContact) -> Match:
    identifier = None if kind is None else Identifier(kind, value)
    return Match(identifier, who, who.id)


# -- normalisation -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw", ["ada@example.com", "  Ada@Example.COM ", "ADA@EXAMPLE.COM\t", "\nada@example.com"]
)
def test_emails_are_trimmed_and_lowercased(raw: str) -> None:
    assert normalise_email(raw) == "ada@example.com"


@pytest.mark.parametrize("raw", ["ada", "@example.com", "ada@", "a da@example.com", "a@b@c"])
def test_a_string_that_is_no_email_address_is_refused(raw: str) -> None:
    assert normalise_email(raw) is None


@pytest.mark.parametrize(
    "raw",
    ["+44 20 7946 0000", "020 7946 0000", "(020) 7946-0000", "+442079460000", "0044 20 7946 0000"],
)
def test_phone_numbers_become_e164_reading_national_numbers_in_the_default_region(
    raw: str,
) -> None:
    assert normalise_phone(raw, "GB") == "+442079460000"


def test_the_default_region_decides_what_a_national_number_means() -> None:
    assert normalise_phone("(415) 555-2671", "US") == "+14155552671"
    assert normalise_phone("(415) 555-2671", "GB") != "+14155552671"


@pytest.mark.parametrize("raw", ["12", "not a number", "+44 1", "1234", "7946 0000"])
def test_an_impossible_phone_number_is_refused(raw: str) -> None:
    assert normalise_phone(raw, "GB") is None


def test_an_identity_normalises_every_identifier_and_drops_the_invalid_ones() -> None:
    identity = Identity(
        email="Ada@Example.COM",
        phone="123",
        external_ids={"webshop": " c-42 ", "pos": "P9"},
        anonymous_id=" ck-1 ",
    )

    normalised = normalise_identity(identity, region="GB")

    assert normalised.identifiers == (
        Identifier(EXTERNAL, "pos:P9"),
        Identifier(EXTERNAL, "webshop:c-42"),
        Identifier(EMAIL, "ada@example.com"),
        Identifier(ANONYMOUS, "ck-1"),
    )
    assert normalised.dropped == (PHONE,)


def test_emails_and_phones_are_personal_and_external_ids_name_their_system() -> None:
    assert Identifier(EMAIL, "a@b.c").is_personal
    assert Identifier(PHONE, "+1").is_personal
    assert not Identifier(EXTERNAL, "webshop:c-42").is_personal
    assert Identifier(EXTERNAL, "webshop:c-42").system == "webshop"


# -- resolution ----------------------------------------------------------------------------


def test_an_interaction_matching_nobody_creates_a_contact_with_all_its_identifiers() -> None:
    ids = [Identifier(EMAIL, "a@b.c"), Identifier(PHONE, "+442079460000")]

    resolution = resolve(ids, [], ALL_MERGE)

    assert resolution.creates
    assert resolution.link == tuple(ids)


def test_a_match_attaches_to_that_contact_and_links_the_new_identifiers() -> None:
    ada = contact("c-ada")
    email, phone = Identifier(EMAIL, "a@b.c"), Identifier(PHONE, "+442079460000")

    resolution = resolve([email, phone], [match(EMAIL, "a@b.c", ada)], ALL_MERGE)

    assert resolution.target_id == "c-ada"
    assert resolution.link == (phone,)
    assert resolution.survivor_id is None


def test_two_contacts_proven_one_person_merge_into_the_older() -> None:
    older, newer = contact("c-zzz", age_days=10), contact("c-aaa", age_days=1)
    matches = [match(EMAIL, "a@b.c", newer), match(PHONE, "+1", older)]

    resolution = resolve([Identifier(EMAIL, "a@b.c"), Identifier(PHONE, "+1")], matches, ALL_MERGE)

    assert resolution.survivor_id == "c-zzz"
    assert resolution.merged_ids == ("c-aaa",)
    assert resolution.target_id == "c-zzz"
    assert resolution.matched_on == EMAIL


def test_the_survivor_is_the_oldest_and_ties_go_to_the_smaller_id() -> None:
    assert oldest([contact("c-b", 1), contact("c-a", 1), contact("c-c", 0)]).id == "c-a"
    assert oldest([contact("c-b", 2), contact("c-a", 1)]).id == "c-b"


def test_a_kind_that_may_not_auto_merge_leaves_both_contacts_apart() -> None:
    mum, child = contact("c-mum", 5), contact("c-child", 1)
    no_email = MergeRules(frozenset({PHONE, EXTERNAL}))
    matches = [match(EMAIL, "family@b.c", mum), match(PHONE, "+1", child)]

    resolution = resolve(
        [Identifier(EMAIL, "family@b.c"), Identifier(PHONE, "+1")], matches, no_email
    )

    assert resolution.survivor_id is None
    assert resolution.target_id == "c-mum"  # email outranks phone
    assert resolution.left_apart == ("c-child",)
    assert resolution.link == ()


def test_precedence_is_contact_id_then_external_id_email_phone_anonymous_id() -> None:
    a, b, c, d, e = (contact(f"c-{n}", n) for n in range(5))
    none_merge = MergeRules(frozenset())
    matches = [
        match(ANONYMOUS, "ck", a),
        match(PHONE, "+1", b),
        match(EMAIL, "x@y.z", c),
        match(EXTERNAL, "shop:1", d),
    ]
    ids = [m.identifier for m in matches if m.identifier]

    assert resolve(ids, matches, none_merge).target_id == "c-3"
    assert resolve(ids, [*matches, match(None, "", e)], none_merge).target_id == "c-4"
    assert resolve(ids, matches[:3], none_merge).target_id == "c-2"
    assert resolve(ids, matches[:2], none_merge).target_id == "c-1"


def test_an_explicit_contact_id_may_always_merge_with_a_mergeable_match() -> None:
    given, other = contact("c-given", 1), contact("c-other", 9)
    matches = [match(None, "", given), match(EMAIL, "a@b.c", other)]

    resolution = resolve([Identifier(EMAIL, "a@b.c")], matches, ALL_MERGE)

    assert resolution.survivor_id == "c-other"
    assert resolution.merged_ids == ("c-given",)
    assert resolution.target_id == "c-other"


def test_contacts_an_agent_unmerged_are_not_merged_again() -> None:
    a, b = contact("c-a", 5), contact("c-b", 1)
    matches = [match(EMAIL, "a@b.c", a), match(PHONE, "+1", b)]
    split = frozenset({frozenset({"c-a", "c-b"})})

    resolution = resolve(
        [Identifier(EMAIL, "a@b.c"), Identifier(PHONE, "+1")], matches, ALL_MERGE, split
    )

    assert resolution.survivor_id is None
    assert resolution.target_id == "c-a"


def test_three_contacts_proven_one_merge_into_the_oldest_of_them() -> None:
    a, b, c = contact("c-a", 1), contact("c-b", 30), contact("c-c", 2)
    matches = [match(EXTERNAL, "s:1", a), match(EMAIL, "e@x.y", b), match(PHONE, "+1", c)]
    ids = [m.identifier for m in matches if m.identifier]

    resolution = resolve(ids, matches, ALL_MERGE)

    assert resolution.survivor_id == "c-b"
    assert resolution.merged_ids == ("c-c", "c-a")  # oldest first
    assert resolution.target_id == "c-b"
    assert resolution.matched_on == EXTERNAL


# -- lifecycle -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def rules():
    with DEFAULT_LIFECYCLE_RULES.open("rb") as file:
        return parse_lifecycle_rules(tomllib.load(file))


def test_the_shipped_rules_start_contacts_as_suspects(rules) -> None:
    assert rules.initial_stage == LifecycleStage.SUSPECT


@pytest.mark.parametrize(
    ("kind", "counts", "expected"),
    [
        ("page_view", {}, LifecycleStage.SUSPECT),
        ("signup", {"signup": 1}, LifecycleStage.PROSPECT),
        ("form_submitted", {"form_submitted": 1}, LifecycleStage.PROSPECT),
        ("purchase", {"purchase": 1}, LifecycleStage.FIRST_TIME_CUSTOMER),
        ("purchase", {"purchase": 2}, LifecycleStage.REPEAT_CUSTOMER),
        ("membership_joined", {"membership_joined": 1}, LifecycleStage.MEMBER),
        ("referral", {"referral": 1}, LifecycleStage.ADVOCATE),
        ("review", {"review": 1}, LifecycleStage.ADVOCATE),
    ],
)
def test_a_new_contact_moves_by_the_rules(rules, kind, counts, expected) -> None:
    assert stage_after(rules, None, kind, counts) == expected


def test_the_second_purchase_makes_a_repeat_customer(rules) -> None:
    first = stage_after(rules, LifecycleStage.PROSPECT, "purchase", {"purchase": 1})
    second = stage_after(rules, first, "purchase", {"purchase": 2})

    assert (first, second) == (LifecycleStage.FIRST_TIME_CUSTOMER, LifecycleStage.REPEAT_CUSTOMER)


def test_rules_never_move_a_contact_backwards(rules) -> None:
    assert stage_after(rules, LifecycleStage.MEMBER, "purchase", {"purchase": 5}) == (
        LifecycleStage.MEMBER
    )
    assert stage_after(rules, LifecycleStage.PARTNER, "signup", {"signup": 1}) == (
        LifecycleStage.PARTNER
    )


def test_an_agents_interaction_leaves_the_stage_where_it_is(rules) -> None:
    prospect = LifecycleStage.PROSPECT

    assert stage_after(rules, prospect, "purchase", {"purchase": 2}, agent=True) == prospect
    assert stage_after(rules, None, "signup", {"signup": 1}, agent=True) == rules.initial_stage


def test_an_agents_interaction_is_on_the_timeline_but_not_the_customers_activity() -> None:
    def chat(**data: object) -> InteractionRecorded:
        return InteractionRecorded.model_validate(
            {"channel": "chat", "kind": "chat", "identity": {"contact_id": "c-1"}, **data}
        )

    def entry(data: InteractionRecorded) -> TimelineEntry:
        event = new_event(INTERACTION_RECORDED, data, source="urn:channel:helpdesk")
        return timeline_entry(event, contact_id="c-1", origin_id="c-1")

    reply, question = chat(agent_id="agent-17", case_id="case-1"), chat(case_id="case-1")

    assert by_agent(reply) and entry(reply).by_agent
    assert entry(reply).data["agent_id"] == "agent-17"
    assert not by_agent(question) and not entry(question).by_agent


def test_a_rule_can_count_several_kinds_together() -> None:
    rules = parse_lifecycle_rules(
        {"rules": [{"kinds": ["call", "chat"], "min_count": 3, "stage": "prospect"}]}
    )

    assert rules.counted_kinds("chat") == {"call", "chat"}
    assert stage_after(rules, None, "chat", {"call": 2, "chat": 1}) == LifecycleStage.PROSPECT
    assert stage_after(rules, None, "chat", {"chat": 2}) == LifecycleStage.SUSPECT


@pytest.mark.parametrize(
    "document",
    [
        {"initial_stage": "nobody"},
        {"rules": [{"kinds": [], "stage": "prospect"}]},
        {"rules": [{"kinds": ["signup"], "stage": "vip"}]},
        {"rules": [{"kinds": ["signup"], "stage": "prospect", "min_count": 0}]},
        {"rules": [{"kinds": ["signup"], "stage": "prospect", "when": "always"}]},
        {"rulez": []},
    ],
)
def test_an_invalid_rules_file_is_refused_with_the_reason(document) -> None:
    with pytest.raises(LifecycleRulesError):
        parse_lifecycle_rules(document)


def test_a_merge_keeps_the_furthest_stage() -> None:
    assert furthest(LifecycleStage.PROSPECT, LifecycleStage.MEMBER, None) == LifecycleStage.MEMBER
    assert furthest(None) is None


# -- profile, consent, erasure ---------------------------------------------------------


def test_traits_change_only_the_fields_they_carry() -> None:
    profile = {"first_name": "Ada", "last_name": "Byron", "custom": {"tier": "a"}}

    updated, changed = apply_traits(profile, {"last_name": "Lovelace", "custom": {"pet": "cat"}})

    assert updated["first_name"] == "Ada"
    assert updated["last_name"] == "Lovelace"
    assert updated["custom"] == {"tier": "a", "pet": "cat"}
    assert changed == ["last_name", "custom"]


def test_a_merge_fills_only_the_gaps_of_the_survivor() -> None:
    survivor = {"first_name": "Ada", "custom": {"a": 1}}
    merged = {"first_name": "Augusta", "city": "London", "custom": {"a": 2, "b": 3}}

    updated, changed = fill_gaps(survivor, merged)

    assert updated["first_name"] == "Ada"
    assert updated["city"] == "London"
    assert updated["custom"] == {"a": 1, "b": 3}
    assert changed == ["city", "custom"]


def test_a_late_consent_statement_older_than_the_current_one_changes_nothing() -> None:
    current = ConsentStatement(granted=False, time=T0)

    assert not consent_changes(current, ConsentStatement(True, T0 - timedelta(hours=1)))
    assert consent_changes(current, ConsentStatement(True, T0 + timedelta(hours=1)))
    assert not consent_changes(current, ConsentStatement(False, T0 + timedelta(hours=1)))
    assert consent_changes(None, ConsentStatement(False, T0))


def test_a_tombstone_is_a_keyed_digest_that_does_not_contain_the_identifier() -> None:
    email = Identifier(EMAIL, "ada@example.com")

    digest = identifier_digest(b"key-1", email)

    assert "ada" not in digest and len(digest) == 64
    assert digest == identifier_digest(b"key-1", email)
    assert digest != identifier_digest(b"key-2", email)
    assert digest != identifier_digest(b"key-1", Identifier(PHONE, "ada@example.com"))


def test_only_events_from_before_an_erasure_are_replays_of_the_erased_person() -> None:
    assert is_erased_replay(T0 - timedelta(days=1), erased_at=T0)
    assert not is_erased_replay(T0 + timedelta(seconds=1), erased_at=T0)
    assert not is_erased_replay(T0, erased_at=None)
