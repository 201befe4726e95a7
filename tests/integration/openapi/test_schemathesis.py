"""Schemathesis against the OpenAPI document of every service, served for real.

Each operation gets a bounded, deterministic set of requests (valid and invalid, some with
edge values: see edges.py) with credentials that grant everything; any 5xx, and any answer
the document does not describe (status, content type, body schema), fails the build.
"""

from __future__ import annotations

import pytest
import schemathesis

from tests.integration.openapi.conftest import (
    SERVICES,
    Running,
    ServiceUnderTest,
    document_of,
    fuzzing_config,
)
from tests.integration.openapi.edges import mix_in_edges

# Schemathesis draws from `random` inside its strategies; Hypothesis seeds it per example, so
# a derandomized run stays deterministic. The warning says nothing about this suite.
pytestmark = pytest.mark.filterwarnings(
    "ignore:Do not use the `random` module inside strategies"
    ":hypothesis.errors.HypothesisDeprecationWarning"
)


def _schema_of(service: ServiceUnderTest) -> schemathesis.BaseSchema:
    schema = schemathesis.openapi.from_dict(document_of(service), config=fuzzing_config())
    for method, path in service.not_fuzzed:
        schema = schema.exclude(method=method, path=path)
    schema.hook("flatmap_case")(mix_in_edges)
    return schema


# Built at collection from each service's app (no server needed); test_documents checks that
# they are the documents the running services serve.
SCHEMAS = {service.name: _schema_of(service) for service in SERVICES}


@schemathesis.pytest.parametrize(**SCHEMAS)
def test_every_answer_is_documented_and_none_is_a_server_error(
    case: schemathesis.Case, backend: dict[str, Running]
) -> None:
    service = backend[case.operation.schema.raw_schema["info"]["title"]]
    case.call_and_validate(base_url=service.base_url, headers=service.headers, timeout=30)
