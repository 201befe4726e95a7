"""Events in through Kafka, explained score changes out, against the real broker."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from crm_contracts.base import Channel
from crm_contracts.scores import ScoreChanged
from crm_kit.db import connect
from crm_scoring.settings import ScoringSettings
from tests.integration.scoring.conftest import (
    for_contact,
    interaction,
    publish,
    read_changes,
    sla_breached,
)
from tests.support.kafka import eventually


def _contact() -> str:
    return f"c-{uuid.uuid4().hex[:10]}"


async def test_a_purchase_raises_value_and_clv(
    scoring_settings: ScoringSettings, start_scoring: Any
) -> None:
    contact = _contact()
    async with start_scoring() as service:
        await publish(scoring_settings, interaction(contact, "page_view"))
        first = await read_changes(scoring_settings, lambda cs: len(for_contact(cs, contact)) >= 1)
        purchase = interaction(contact, "purchase", channel=Channel.STORE, amount="120.00")
        await publish(scoring_settings, purchase)
        changes = for_contact(
            await read_changes(scoring_settings, lambda cs: len(for_contact(cs, contact)) >= 2),
            contact,
        )
        api = await service.scores(contact)

    assert first[0].old is None
    change = changes[1]
    assert change.old is not None and change.deltas is not None
    assert change.new.clv.amount > change.old.clv.amount
    assert change.new.monetary > change.old.monetary
    assert (change.old.value_tier, change.new.value_tier) == ("bronze", "silver")
    assert change.tier_changed
    assert change.cause_event_id == purchase.id
    assert change.model_version == "2026.11"
    texts = [r.text for r in change.reasons]
    assert any(t.startswith("purchase 120.00 EUR: +") and t.endswith(" CLV") for t in texts)
    assert api is not None
    assert api["scores"]["value_tier"] == "silver"
    assert api["cause_event_id"] == purchase.id


async def test_a_complaint_and_a_breached_case_raise_churn_risk_with_reasons_naming_them(
    scoring_settings: ScoringSettings, start_scoring: Any
) -> None:
    contact = _contact()
    async with start_scoring():
        await publish(
            scoring_settings, interaction(contact, "purchase", channel=Channel.STORE, amount="80")
        )
        await read_changes(scoring_settings, lambda cs: len(for_contact(cs, contact)) >= 1)
        await publish(
            scoring_settings,
            interaction(contact, "complaint", channel=Channel.PHONE),
            sla_breached(contact),
        )

        def both_named(cs: list[Any]) -> bool:
            texts = [r.text for c in for_contact(cs, contact) for r in c.reasons]
            return any(t.startswith("complaint via phone: +") for t in texts) and any(
                t.startswith("case breached SLA") for t in texts
            )

        changes = for_contact(await read_changes(scoring_settings, both_named), contact)

    first, last = changes[0], changes[-1]
    assert last.new.churn_risk > first.new.churn_risk
    reasons = [r for c in changes[1:] for r in c.reasons if r.score == "churn_risk"]
    texts = [r.text for r in reasons]
    assert "complaint via phone: +0.15 churn risk" in texts
    assert "case breached SLA (resolution): +0.20 churn risk" in texts
    assert all(r.contribution > 0 for r in reasons)


async def test_decay_over_simulated_time_lowers_engagement_and_publishes_the_band_change(
    scoring_settings: ScoringSettings, start_scoring: Any
) -> None:
    contact = _contact()
    async with start_scoring() as service:
        await publish(
            scoring_settings,
            interaction(contact, "purchase", channel=Channel.STORE, amount="120"),
            interaction(contact, "email_clicked", channel=Channel.EMAIL),
        )
        await read_changes(scoring_settings, lambda cs: len(for_contact(cs, contact)) >= 1)
        worker = service.app.state.worker

        async def both_applied() -> bool:
            return worker.applied == 2

        await eventually(both_applied)  # the first change may be the purchase's alone
        later = datetime.now(UTC) + timedelta(days=60)
        response = await service.http.post(
            "/v1/scores/reevaluate", params={"as_of": later.isoformat()}
        )
        assert response.status_code == 200, response.text
        assert response.json()["published"] == 1

        def by_reevaluation(changes: list[ScoreChanged]) -> list[ScoreChanged]:
            return [
                c
                for c in for_contact(changes, contact)
                if c.cause_event_id.startswith("scoring.reevaluation:")
            ]

        [decayed] = by_reevaluation(
            await read_changes(scoring_settings, lambda cs: bool(by_reevaluation(cs)))
        )
        again = await service.http.post(
            "/v1/scores/reevaluate", params={"as_of": later.isoformat()}
        )

    assert decayed.old is not None
    assert decayed.new.engagement < decayed.old.engagement
    assert any("days since the last activity" in r.text for r in decayed.reasons)
    assert again.json()["evaluated"] == 0  # already up to date for that moment


async def test_late_and_out_of_order_events_give_the_same_scores_as_ordered_ones(
    scoring_settings: ScoringSettings, start_scoring: Any
) -> None:
    moment = datetime.now(UTC) + timedelta(minutes=5)
    ordered, shuffled = _contact(), _contact()

    def history(contact: str) -> list[Any]:
        start = datetime.now(UTC) - timedelta(days=90)
        return [
            interaction(contact, "purchase", amount="200", time=start),
            interaction(
                contact, "email_clicked", channel=Channel.EMAIL, time=start + timedelta(days=20)
            ),
            interaction(contact, "purchase", amount="80", time=start + timedelta(days=50)),
            interaction(
                contact, "complaint", channel=Channel.PHONE, time=start + timedelta(days=85)
            ),
        ]

    in_order = history(ordered)
    out_of_order = history(shuffled)
    out_of_order = [out_of_order[3], out_of_order[1], out_of_order[0], out_of_order[2]]
    async with start_scoring(clock=lambda: moment) as service:
        await publish(scoring_settings, *in_order)
        await publish(scoring_settings, *out_of_order)

        async def both_done() -> bool:
            a, b = await service.scores(ordered), await service.scores(shuffled)
            return bool(
                a
                and b
                and a["cause_event_id"] == in_order[-1].id
                and b["cause_event_id"] == out_of_order[-1].id
            )

        from tests.support.kafka import eventually

        await eventually(both_done)
        a, b = await service.scores(ordered), await service.scores(shuffled)
    assert a is not None and b is not None
    assert a["scores"] == b["scores"]
    assert a["scores"]["frequency"] == 2 and a["scores"]["churn_band"] in ("low", "medium")


async def test_an_agents_reply_changes_no_score(
    scoring_settings: ScoringSettings, start_scoring: Any
) -> None:
    contact = _contact()
    reply = interaction(
        contact, "chat", channel=Channel.CHAT, case_id="case-1", agent_id="agent-17"
    )
    visit = interaction(contact, "page_view")
    async with start_scoring() as service:
        # One key, one partition: the reply is applied before the visit.
        await publish(scoring_settings, reply, visit)
        changes = for_contact(
            await read_changes(scoring_settings, lambda cs: len(for_contact(cs, contact)) >= 1),
            contact,
        )
        api = await service.scores(contact)
    conn = await connect(scoring_settings.database_url)
    try:
        claimed = await conn.fetchval(
            "SELECT count(*) FROM kit_inbox WHERE event_id = $1", reply.id
        )
        kinds = await conn.fetch("SELECT kind FROM scoring_facts WHERE contact_id = $1", contact)
    finally:
        await conn.close()

    first = changes[0]
    assert (first.cause_event_id, first.old) == (visit.id, None)
    assert [r.text for r in first.reasons if "chat" in r.text] == []
    assert api is not None and api["cause_event_id"] == visit.id
    assert claimed == 1  # taken from the topic once, like every event
    assert [r["kind"] for r in kinds] == ["page_view"]
