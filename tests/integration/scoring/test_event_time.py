"""A score change is a decision: its `time` is the moment the scores are for (pattern 7)."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from crm_contracts import CloudEvent, decode_record
from crm_contracts.base import Channel
from crm_contracts.scores import ScoreChanged
from crm_scoring.settings import ScoringSettings
from tests.integration.scoring.conftest import interaction, publish
from tests.support.kafka import read_until


async def _events(
    settings: ScoringSettings, topic: str, done: Callable[[list[CloudEvent]], bool]
) -> list[CloudEvent]:
    def decoded(records: list[Any]) -> list[CloudEvent]:
        return [decode_record(r.value, list(r.headers or ())) for r in records]

    records = await read_until(
        settings.kafka_bootstrap_servers, topic, lambda rs: done(decoded(rs))
    )
    return decoded(records)


async def test_score_changes_carry_the_moment_they_are_for_not_the_facts_time(
    scoring_settings: ScoringSettings, start_scoring: Any
) -> None:
    moment = datetime.now(UTC).replace(microsecond=0) + timedelta(minutes=5)
    later = moment + timedelta(days=120)
    contact = f"c-{uuid.uuid4().hex[:10]}"
    bought = interaction(
        contact, "purchase", channel=Channel.STORE, amount="120", time=moment - timedelta(days=3)
    )
    async with start_scoring(clock=lambda: moment) as service:
        await publish(scoring_settings, bought)
        await _events(scoring_settings, scoring_settings.scores_topic, lambda es: len(es) >= 1)
        response = await service.http.post(
            "/v1/scores/reevaluate", params={"as_of": later.isoformat()}
        )
        assert response.status_code == 200 and response.json()["published"] == 1
        changes = await _events(
            scoring_settings, scoring_settings.scores_topic, lambda es: len(es) >= 2
        )
        current = await _events(
            scoring_settings, scoring_settings.scores_current_topic, lambda es: len(es) >= 2
        )

    assert [e.time for e in changes] == [moment, later]
    assert [e.time for e in current] == [moment, later]
    assert changes[0].data_as(ScoreChanged).cause_event_id == bought.id
    assert changes[1].data_as(ScoreChanged).cause_event_id.startswith("scoring.reevaluation:")
