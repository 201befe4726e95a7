"""Every service of the back end running for real, once for the tests of its OpenAPI document.

The services share one set of topics (the registry's names with a suffix of this run), so
that they talk to each other as in production; each has its own database. They are served
from an event loop in a thread of its own: schemathesis drives synchronous tests, which
block the test thread while they wait for an answer.

A new service joins every test here with one line in `SERVICES`.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from pydantic import SecretStr

from crm_campaigns.app import create_app as create_campaigns_app
from crm_campaigns.handlers.examples import examples as campaign_examples
from crm_campaigns.settings import CampaignsSettings
from crm_cases.app import create_app as create_cases_app
from crm_cases.settings import CasesSettings
from crm_contacts.app import create_app as create_contacts_app
from crm_contacts.settings import ContactsSettings
from crm_contracts import TopicSpec, dead_letter_topic
from crm_ingest.app import create_app as create_ingest_app
from crm_ingest.settings import IngestSettings
from crm_kit.auth import ADMIN_SCOPE, issue_token
from crm_kit.db import drop_database, ensure_database, with_database
from crm_kit.kafka import delete_topics, ensure_topics
from crm_kit.settings import ServiceSettings
from crm_scoring.app import create_app as create_scoring_app
from crm_scoring.settings import ScoringSettings
from tests.support.background import BackgroundLoop
from tests.support.harness import QUICK_GROUPS
from tests.support.kafka import eventually
from tests.support.servers import Servers
from tests.support.services import running_app

pytestmark = pytest.mark.integration

JWT_SECRET = "openapi-tests-" + "x" * 32
API_KEY_SOURCE = "urn:channel:openapi-tests"


async def bearer_only(base_url: str, bearer: dict[str, str]) -> dict[str, str]:
    """The credentials of a service that takes bearer tokens only."""
    return bearer


async def with_api_key(base_url: str, bearer: dict[str, str]) -> dict[str, str]:
    """A bearer token and a channel API key (ingest's `POST /v1/events`)."""
    async with httpx.AsyncClient(base_url=base_url, timeout=30) as http:
        response = await http.post("/v1/api-keys", json={"source": API_KEY_SOURCE}, headers=bearer)
    assert response.status_code == 201, response.text
    return {**bearer, "X-API-Key": response.json()["key"]}


async def example_campaigns_loaded(base_url: str, headers: dict[str, str]) -> bool:
    """campaigns has created its shipped example campaigns (a job at start)."""
    wanted = {campaign["id"] for campaign in campaign_examples()["campaigns"]}
    async with httpx.AsyncClient(base_url=base_url, timeout=10) as http:
        response = await http.get("/v1/campaigns", headers=headers)
    return response.status_code == 200 and wanted <= {c["id"] for c in response.json()}


@dataclass(frozen=True)
class ServiceUnderTest:
    """A service whose OpenAPI document is tested: its settings, its app and its credentials."""

    name: str
    settings: type[ServiceSettings]
    create_app: Callable[[Any], Any]
    credentials: Callable[[str, dict[str, str]], Awaitable[dict[str, str]]] = field(
        default=bearer_only
    )
    # What the service does by itself at start, done before any test request (so that the
    # answers validated are the same on every run): a check polled after /readyz.
    settled: Callable[[str, dict[str, str]], Awaitable[bool]] | None = None
    # Operations (method, path) schemathesis generates no requests for (test_schemathesis);
    # their documents and the other tests here cover them either way.
    not_fuzzed: tuple[tuple[str, str], ...] = ()


SERVICES = (
    ServiceUnderTest("ingest", IngestSettings, create_ingest_app, with_api_key),
    ServiceUnderTest("contacts", ContactsSettings, create_contacts_app),
    ServiceUnderTest("scoring", ScoringSettings, create_scoring_app),
    ServiceUnderTest("cases", CasesSettings, create_cases_app),
    ServiceUnderTest(
        "campaigns",
        CampaignsSettings,
        create_campaigns_app,
        # The two bodies holding a segment rule: for its recursive schema (all / any / not),
        # schemathesis needed about 8 minutes on 2 cores to prepare its cases. The rule's
        # validation is tested through these operations in tests/integration/campaigns.
        not_fuzzed=(("PUT", "/v1/segments/{segment_id}"), ("POST", "/v1/segments/preview")),
        settled=example_campaigns_loaded,
    ),
)
SERVICE_NAMES = [service.name for service in SERVICES]


@dataclass(frozen=True)
class Running:
    """A service being served: where, and the headers of a caller allowed everything."""

    name: str
    base_url: str
    headers: dict[str, str]


def settings_of(
    service: ServiceUnderTest, servers: Servers, database_url: str, suffix: str, workdir: Path
) -> ServiceSettings:
    """Settings on this run's database, topics and consumer groups, whatever the service."""
    fields = service.settings.model_fields
    values: dict[str, Any] = {
        "environment": "test",
        "database_url": database_url,
        "kafka_bootstrap_servers": servers.bootstrap,
        "kafka_enable_idempotence": servers.idempotent_producers,
        "jwt_secret": SecretStr(JWT_SECRET),
        "consumer_retry_backoff_ms": 10,
        **QUICK_GROUPS,
    }
    # Settings that keep these services apart from every other test, where a service has them.
    isolation: dict[str, Any] = {
        "consumer_group_suffix": f"-{suffix}",
        "faust_app_id": f"openapi-{service.name}-{suffix}",
        "faust_data_dir": workdir / service.name,
        "reevaluate_interval_seconds": 0,
        "topic_partitions": 2,
    }
    values.update({name: value for name, value in isolation.items() if name in fields})
    for name, info in fields.items():
        if name.endswith("_topic") and isinstance(info.default, str):
            values[name] = f"{info.default}.{suffix}"
    return service.settings(**values)


def topics_of(settings: list[ServiceSettings]) -> list[TopicSpec]:
    """Every topic the services name, with its dead-letter topic, two partitions each."""
    names = {
        value
        for one in settings
        for name, value in one.model_dump().items()
        if name.endswith("_topic") and isinstance(value, str)
    }
    return [
        TopicSpec(topic, "test", 2, "delete", (), "openapi test topic")
        for name in sorted(names)
        for topic in (name, dead_letter_topic(name))
    ]


async def _start(service: ServiceUnderTest, settings: ServiceSettings, stack: list[Any]) -> Running:
    # Built on the loop that serves it: faust binds its app to the loop it first sees.
    served = running_app(service.create_app(settings))
    base_url = await served.__aenter__()
    stack.append(served)

    async def ready() -> bool:
        async with httpx.AsyncClient(base_url=base_url, timeout=10) as http:
            return (await http.get("/readyz")).status_code == 200

    await eventually(ready, timeout=60)
    token = issue_token(
        secret=JWT_SECRET,
        scopes=[ADMIN_SCOPE],
        subject="openapi-tests",
        issuer=settings.jwt_issuer,
        audience=settings.jwt_audience,
    )
    headers = await service.credentials(base_url, {"Authorization": f"Bearer {token}"})
    if service.settled is not None:
        settled = service.settled
        await eventually(lambda: settled(base_url, headers), timeout=60)
    return Running(service.name, base_url, headers)


async def _start_all(settings: dict[str, ServiceSettings], stack: list[Any]) -> dict[str, Running]:
    """Every service at once, their start-ups (consumer group joins, faust) overlapping."""
    started = await asyncio.gather(
        *(_start(service, settings[service.name], stack) for service in SERVICES),
        return_exceptions=True,  # every start ends, so `stack` holds each started app
    )
    for result in started:
        if isinstance(result, BaseException):
            raise result
    return {service.name: result for service, result in zip(SERVICES, started, strict=True)}


@pytest.fixture(scope="package")
def backend(
    servers: Servers, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Running]]:
    """Every service in `SERVICES`, served until the package's tests are done."""
    suffix = uuid.uuid4().hex[:10]
    workdir = tmp_path_factory.mktemp("openapi")
    databases = {service.name: f"oa_{service.name}_{suffix}" for service in SERVICES}
    settings = {
        service.name: settings_of(
            service,
            servers,
            with_database(servers.admin_dsn, databases[service.name]),
            suffix,
            workdir,
        )
        for service in SERVICES
    }
    topics = topics_of(list(settings.values()))
    stack: list[Any] = []
    with BackgroundLoop(name="openapi-services") as loop:
        loop.run(ensure_topics(servers.bootstrap, topics))
        try:
            for service in SERVICES:
                loop.run(ensure_database(servers.admin_dsn, databases[service.name]))
            yield loop.run(_start_all(settings, stack))
        finally:
            for served in reversed(stack):
                loop.run(served.__aexit__(None, None, None))
            for name in databases.values():
                loop.run(drop_database(servers.admin_dsn, name))
            loop.run(delete_topics(servers.bootstrap, [spec.name for spec in topics]))


def document_of(service: ServiceUnderTest) -> dict[str, Any]:
    """The OpenAPI document of a service, from an app built without starting anything."""
    offline = Servers(bootstrap="127.0.0.1:9", admin_dsn="postgresql://offline@127.0.0.1:9/none")
    settings = settings_of(service, offline, offline.admin_dsn, "offline", Path("/nonexistent"))
    document: dict[str, Any] = service.create_app(settings).openapi()
    return document


def served_document(running: Running) -> dict[str, Any]:
    """The OpenAPI document a running service serves."""
    response = httpx.get(f"{running.base_url}/openapi.json", timeout=30)
    assert response.status_code == 200, response.text
    document: dict[str, Any] = response.json()
    return document


# Per operation: enough generated requests to reach the edges of every parameter, on top of
# schemathesis' coverage cases (boundaries and invalid values, about two thirds of the run),
# few enough for the whole run to take well under two minutes. Deterministic (a fixed seed,
# derandomized, no example database), so a run is the same on every machine.
MAX_EXAMPLES = 25


def fuzzing_config() -> schemathesis.Config:
    """What schemathesis generates and checks: any 5xx, or an answer its document does not
    describe (status code, content type, body schema), fails."""
    return schemathesis.Config.from_dict(
        {
            "seed": 7,
            # Health checks judge generation (some by wall time, which a loaded machine
            # stretches), not the API: a failed one would be a flaky failure.
            "suppress-health-check": ["all"],
            "generation": {
                "max-examples": MAX_EXAMPLES,
                "deterministic": True,
                "database": "none",
                "with-security-parameters": False,
            },
            "phases": {
                # Methods a path does not have answer FastAPI's 405: not worth their requests.
                "coverage": {"unexpected-methods": []},
                "stateful": {"enabled": False},
            },
            "checks": {
                "enabled": False,
                "not_a_server_error": {"enabled": True},
                "status_code_conformance": {"enabled": True},
                "content_type_conformance": {"enabled": True},
                "response_schema_conformance": {"enabled": True},
            },
        }
    )
