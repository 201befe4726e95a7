"""The read API: scores with reasons, history, top-N, distributions, scopes."""

from __future__ import annotations

import uuid
from typing import Any

from crm_contracts.base import Channel
from crm_scoring.settings import ScoringSettings
from tests.integration.scoring.conftest import (
    for_contact,
    interaction,
    publish,
    read_changes,
    token,
)


async def test_the_read_api_ranks_and_counts_contacts_and_keeps_their_history(
    scoring_settings: ScoringSettings, start_scoring: Any
) -> None:
    big, small, idle = (f"c-{uuid.uuid4().hex[:10]}" for _ in range(3))
    async with start_scoring() as service:
        await publish(
            scoring_settings,
            interaction(big, "purchase", channel=Channel.STORE, amount="900"),
            interaction(small, "purchase", amount="20"),
            interaction(idle, "page_view"),
        )
        await read_changes(
            scoring_settings, lambda cs: all(for_contact(cs, c) for c in (big, small, idle))
        )
        await publish(scoring_settings, interaction(big, "purchase", amount="300"))
        await read_changes(scoring_settings, lambda cs: len(for_contact(cs, big)) >= 2)
        http = service.http
        top = (await http.get("/v1/scores/top", params={"score": "clv", "limit": 2})).json()
        lowest = (
            await http.get("/v1/scores/top", params={"score": "engagement", "order": "asc"})
        ).json()
        spread = (
            await http.get("/v1/scores/distribution", params={"score": "engagement", "buckets": 4})
        ).json()
        rfm = (await http.get("/v1/scores/distribution", params={"score": "monetary"})).json()
        history = (await http.get(f"/v1/contacts/{big}/scores/history", params={"limit": 1})).json()
        older = (
            await http.get(
                f"/v1/contacts/{big}/scores/history",
                params={"limit": 1, "before": history["next_before"]},
            )
        ).json()
        anonymous = await http.get("/v1/scores/top", headers={"Authorization": ""})
        writer_only = await http.get(
            "/v1/scores/top",
            headers={"Authorization": f"Bearer {token(scoring_settings, 'scores:write')}"},
        )
        reader_posts = await http.post(
            "/v1/scores/reevaluate",
            headers={"Authorization": f"Bearer {token(scoring_settings, 'scores:read')}"},
        )
        missing = await http.get("/v1/contacts/c-nobody/scores")
        metrics = (await http.get("/metrics")).text

    assert [item["contact_id"] for item in top["items"]] == [big, small]
    assert top["items"][0]["value_tier"] in ("gold", "platinum", "silver")
    assert lowest["items"][0]["contact_id"] == idle
    assert spread["contacts"] == 3 and sum(b["count"] for b in spread["buckets"]) == 3
    assert len(spread["buckets"]) == 4 and spread["buckets"][-1]["upper"] == 100
    assert sum(spread["value_tiers"].values()) == 3 and spread["churn_bands"]
    assert [b["count"] for b in rfm["buckets"]] == [2, 0, 0, 0, 1]  # idle, small | big
    assert len(history["items"]) == 1 and len(older["items"]) == 1
    newest, first = history["items"][0]["change"], older["items"][0]["change"]
    assert first["old"] is None and newest["old"] == first["new"]
    assert newest["reasons"][0]["text"].startswith("purchase 300.00 EUR: +")
    assert anonymous.status_code == 401
    assert writer_only.status_code == 403
    assert reader_posts.status_code == 403
    assert missing.status_code == 404
    assert missing.headers["content-type"].startswith("application/problem+json")
    assert 'crm_events_consumed_total{outcome="applied",service="scoring"' in metrics or (
        'crm_events_consumed_total{service="scoring"' in metrics
    )
    assert 'crm_scoring_changes_published_total{trigger="event"}' in metrics
