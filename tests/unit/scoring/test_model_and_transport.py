"""The model file is checked at load; faust's consumer gets our fetch wait."""

from __future__ import annotations

from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer

from crm_scoring.consumers import build_faust_app
from crm_scoring.model import DEFAULT_MODEL_FILE, ModelError, load_model, parse_model
from crm_scoring.settings import ScoringSettings
from crm_scoring.transport import FetchWaitConsumer, FetchWaitTransport, set_fetch_max_wait

DEFAULT_TEXT = DEFAULT_MODEL_FILE.read_text()


def test_the_packaged_model_loads_with_its_version() -> None:
    model = load_model()
    assert model.version == "2026.11"
    assert model.currency == "EUR"
    assert [t.name for t in model.rfm.tiers] == ["bronze", "silver", "gold", "platinum"]
    assert [b.name for b in model.churn.bands] == ["low", "medium", "high"]


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ('version = "2026.11"', "version = 7", "version"),
        ("half_life_days = 30.0", "half_life_days = -1", "half_life_days"),
        ("recency_days = [14, 45, 90, 180]", "recency_days = [45, 14, 90, 180]", "ascending"),
        ("platinum = 13", "diamond = 13", "tiers"),
        ("[churn.signals.refund]", "[churn.signals.refnud]", "unknown churn signals"),
        ("max_reasons = 6", "max_reasons = 50", "max_reasons"),
    ],
)
def test_a_wrong_model_file_is_refused_with_the_setting_named(
    old: str, new: str, message: str
) -> None:
    assert old in DEFAULT_TEXT
    with pytest.raises(ModelError, match=message):
        parse_model(DEFAULT_TEXT.replace(old, new, 1))


def test_a_model_path_that_does_not_exist_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="cannot read"):
        load_model(tmp_path / "missing.toml")


def test_the_faust_app_uses_our_transport_with_the_fetch_wait_setting(tmp_path: Path) -> None:
    settings = ScoringSettings(
        environment="test", kafka_fetch_max_wait_ms=7, faust_data_dir=tmp_path
    )
    app = build_faust_app(settings)
    assert isinstance(app.transport, FetchWaitTransport)
    assert app.transport.Consumer is FetchWaitConsumer
    assert app.transport.fetch_max_wait_ms == 7
    assert app.conf.broker_session_timeout == 6.0
    assert app.conf.broker_heartbeat_interval == 1.0
    assert app.conf.processing_guarantee.value == "at_least_once"


async def test_the_fetch_wait_is_set_on_a_consumer_before_it_starts() -> None:
    consumer = AIOKafkaConsumer(bootstrap_servers="127.0.0.1:1", fetch_max_wait_ms=1500)
    set_fetch_max_wait(consumer, 10)
    assert consumer._fetch_max_wait_ms == 10
    with pytest.raises(ValueError):
        set_fetch_max_wait(consumer, 0)
