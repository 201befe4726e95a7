"""Campaign definitions: checked once, turned into the domain's Campaign."""

from __future__ import annotations

import re
from typing import Any

import pytest
from pydantic import ValidationError

from crm_campaigns.definitions import WALL_CLOCK, CampaignDefinition
from crm_campaigns.domain import CampaignStatus
from crm_campaigns.handlers.examples import examples


def body(**overrides: Any) -> dict[str, Any]:
    value: dict[str, Any] = {
        "name": "Spring sale",
        "steps": [
            {"id": "s1", "channel": "email", "template_ref": "t-1"},
            {"id": "s2", "channel": "sms", "template_ref": "t-2", "wait_seconds": 3600},
        ],
    }
    value.update(overrides)
    return value


def test_a_step_branching_to_an_unknown_step_is_refused() -> None:
    steps = [
        {
            "id": "s1",
            "channel": "email",
            "template_ref": "t",
            "branch_kind": "purchase",
            "branch_to": "nowhere",
        }
    ]
    with pytest.raises(ValidationError, match="unknown step"):
        CampaignDefinition.model_validate(body(steps=steps))


@pytest.mark.parametrize(
    "overrides",
    [
        {"steps": []},
        {"time_zone": "Mars/Olympus"},
        {"holdout_share": 0.95},
        {"starts_at": "2026-12-01T00:00:00Z", "ends_at": "2026-11-01T00:00:00Z"},
        {"ends_at": "2026-12-01T00:00:00"},
        {"unknown": 1},
        {"steps": [{"id": "s1", "channel": "email", "template_ref": "t"}] * 2},
    ],
)
def test_inconsistent_definitions_are_refused(overrides: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        CampaignDefinition.model_validate(body(**overrides))


def test_the_domain_campaign_follows_its_steps_in_order() -> None:
    campaign = CampaignDefinition.model_validate(body()).to_campaign(
        id="cmp-1", status=CampaignStatus.ACTIVE
    )
    assert campaign.channels == ["email", "sms"]
    first = campaign.step_after(None)
    assert first is not None and first.id == "s1"
    second = campaign.step_after("s1")
    assert second is not None and second.wait_seconds == 3600
    assert campaign.step_after("s2") is None


def test_the_shipped_example_campaigns_are_valid_and_name_shipped_segments() -> None:
    document = examples()
    segment_ids = {s["id"] for s in document["segments"]}
    for item in document["campaigns"]:
        definition = CampaignDefinition.model_validate(item["definition"])
        assert definition.segment_id in segment_ids
    assert {c["id"] for c in document["campaigns"]} == {
        "cmp-retention",
        "cmp-cross-sell",
        "cmp-win-back",
        "cmp-welcome",
        "cmp-vip",
    }


@pytest.mark.parametrize("wall", ["21:00", "08:30:15", "00:00", "23:59:59"])
def test_quiet_hours_are_local_wall_clock_times_and_are_answered_as_documented(wall: str) -> None:
    definition = CampaignDefinition.model_validate(
        body(quiet_hours={"start": wall, "end": "08:00"})
    )
    answered = definition.model_dump(mode="json")["quiet_hours"]["start"]
    assert re.fullmatch(WALL_CLOCK, answered)
    assert answered.startswith(wall[:5])


@pytest.mark.parametrize("wall", ["21:00Z", "21:00+02:00", "24:00", "9:00", "21:00:00.5", "21h"])
def test_quiet_hours_with_a_zone_or_not_a_wall_clock_time_are_refused(wall: str) -> None:
    with pytest.raises(ValidationError, match="wall-clock time"):
        CampaignDefinition.model_validate(body(quiet_hours={"start": wall, "end": "08:00"}))


def test_the_documented_quiet_hours_are_a_pattern_not_json_schemas_zoned_time() -> None:
    schema = CampaignDefinition.model_json_schema(mode="serialization")
    start = schema["$defs"]["QuietHoursDefinition"]["properties"]["start"]
    assert "format" not in start
    assert start["pattern"] == WALL_CLOCK
