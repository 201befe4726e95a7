"""The OpenAPI document of every service describes the problems it really answers."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from crm_kit.problems import PROBLEM_MEDIA_TYPE
from tests.integration.openapi.conftest import (
    SERVICE_NAMES,
    SERVICES,
    Running,
    document_of,
    served_document,
)

PROBLEM_REF = {"$ref": "#/components/schemas/Problem"}
METHODS = ("get", "put", "post", "patch", "delete")


def operations(document: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    for path, item in document["paths"].items():
        for method in METHODS:
            if method in item:
                yield f"{method.upper()} {path}", item[method]


@pytest.mark.parametrize("name", SERVICE_NAMES)
def test_no_operation_documents_fastapis_validation_error(
    backend: dict[str, Running], name: str
) -> None:
    document = served_document(backend[name])

    assert "HTTPValidationError" not in json.dumps(document)
    assert "ValidationError" not in document["components"]["schemas"]


@pytest.mark.parametrize("name", SERVICE_NAMES)
def test_every_error_response_is_a_problem_with_the_problem_schema(
    backend: dict[str, Running], name: str
) -> None:
    document = served_document(backend[name])
    wrong = {
        f"{label} {status}": response.get("content")
        for label, operation in operations(document)
        for status, response in operation["responses"].items()
        if int(status) >= 400
        and response.get("content") != {PROBLEM_MEDIA_TYPE: {"schema": PROBLEM_REF}}
    }

    assert wrong == {}
    problem = document["components"]["schemas"]["Problem"]
    assert {"type", "title", "status", "detail", "errors"} <= set(problem["properties"])


@pytest.mark.parametrize("name", SERVICE_NAMES)
def test_every_operation_taking_input_documents_its_422_and_every_secured_one_its_401(
    backend: dict[str, Running], name: str
) -> None:
    document = served_document(backend[name])

    for label, operation in operations(document):
        if operation.get("parameters") or "requestBody" in operation:
            assert "422" in operation["responses"], label
        if operation.get("security"):
            assert "401" in operation["responses"], label


@pytest.mark.parametrize("service", SERVICES, ids=SERVICE_NAMES)
def test_the_document_schemathesis_reads_is_the_one_served(
    backend: dict[str, Running], service: Any
) -> None:
    assert document_of(service) == served_document(backend[service.name])
