"""`python -m crm_scoring` as crmctl runs it: env settings, readiness in seconds, a score
change through Kafka, a clean SIGTERM, then `python -m crm_scoring rebuild`."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from decimal import Decimal
from pathlib import Path

import pytest

from crm_contracts import contacts as ct
from crm_contracts import decode_record, encode_binary, new_event
from crm_contracts import interactions as it
from crm_contracts.base import Channel, Money
from crm_contracts.scores import ScoreChanged
from crm_kit.kafka import delete_topics
from crm_stack.ports import free_port
from tests.support.harness import QUICK_GROUPS
from tests.support.kafka import produce, read_until
from tests.support.servers import Servers

pytestmark = pytest.mark.integration


def _ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as response:
            return bool(response.status == 200)
    except OSError:
        return False


async def test_the_scoring_process_starts_in_seconds_scores_and_rebuilds(
    servers: Servers, database: str, tmp_path: Path
) -> None:
    suffix = uuid.uuid4().hex[:8]
    port = free_port()
    topics = {
        "CRM_SCORING_INTERACTIONS_TOPIC": f"e2e-interactions-{suffix}",
        "CRM_SCORING_CASES_TOPIC": f"e2e-cases-{suffix}",
        "CRM_SCORING_CONTACTS_TOPIC": f"e2e-contacts-{suffix}",
        "CRM_SCORING_PRIVACY_TOPIC": f"e2e-privacy-{suffix}",
        "CRM_SCORING_SCORES_TOPIC": f"e2e-scores-{suffix}",
        "CRM_SCORING_SCORES_CURRENT_TOPIC": f"e2e-scores-current-{suffix}",
    }
    env = {
        **os.environ,
        **topics,
        "CRM_SCORING_DATABASE_URL": database,
        "KAFKA_BOOTSTRAP_SERVERS": servers.bootstrap,
        "CRM_SCORING_HTTP_HOST": "127.0.0.1",
        "CRM_SCORING_HTTP_PORT": str(port),
        "CRM_SCORING_FAUST_APP_ID": f"e2e-scoring-{suffix}",
        "CRM_SCORING_FAUST_DATA_DIR": str(tmp_path / "faust"),
        "CRM_SCORING_TOPIC_PARTITIONS": "3",
        "CRM_JWT_SECRET": "e2e-secret-that-is-long-enough-for-hs256",
        "CRM_ENVIRONMENT": "test",
        # The worker and the rebuild each join a consumer group: 1 s, not 3 (QUICK_GROUPS).
        **{f"CRM_SCORING_{name.upper()}": str(value) for name, value in QUICK_GROUPS.items()},
    }
    log = (tmp_path / "scoring.log").open("wb")
    started = time.monotonic()
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "crm_scoring", env=env, stdout=log, stderr=subprocess.STDOUT
    )
    try:
        while not await asyncio.to_thread(_ready, f"http://127.0.0.1:{port}/readyz"):
            assert process.returncode is None, (tmp_path / "scoring.log").read_text()[-3000:]
            assert time.monotonic() - started < 90, "not ready within 90 s"
            await asyncio.sleep(0.1)

        contact = f"c-{uuid.uuid4().hex[:8]}"
        event = new_event(
            it.INTERACTION_RESOLVED,
            it.InteractionResolved(
                interaction_id=f"raw-{suffix}",
                interaction_source="urn:channel:e2e",
                contact_id=contact,
                channel=Channel.STORE,
                kind="purchase",
                value=Money(amount=Decimal("99.00"), currency="EUR"),
                stage=ct.LifecycleStage.FIRST_TIME_CUSTOMER,
                previous_stage=ct.LifecycleStage.PROSPECT,
                stage_changed=True,
            ),
            source="urn:crm:contacts",
        )
        await produce(
            servers.bootstrap,
            topics["CRM_SCORING_INTERACTIONS_TOPIC"],
            [encode_binary(event, key=contact)],
        )
        records = await read_until(
            servers.bootstrap, topics["CRM_SCORING_SCORES_TOPIC"], lambda rs: len(rs) >= 1
        )
        change = decode_record(records[0].value, list(records[0].headers)).data_as(ScoreChanged)

        process.send_signal(signal.SIGTERM)
        # uvicorn shuts down through the lifespan, then re-raises the signal it caught.
        assert await asyncio.wait_for(process.wait(), 60) in (0, -signal.SIGTERM)
        rebuild = await asyncio.create_subprocess_exec(
            sys.executable,
            *("-m", "crm_scoring", "rebuild", "--idle-seconds", "3"),
            env=env,
            stdout=subprocess.PIPE,
        )
        stdout, _ = await asyncio.wait_for(rebuild.communicate(), 60)
        assert rebuild.returncode == 0
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
        log.close()
        await delete_topics(servers.bootstrap, [*topics.values()])

    assert "Application shutdown complete" in (tmp_path / "scoring.log").read_text()
    assert change.contact_id == contact and change.cause_event_id == event.id
    summary = json.loads(stdout.decode().strip().splitlines()[-1])
    assert summary["events"] == 1 and summary["contacts"] == 1
