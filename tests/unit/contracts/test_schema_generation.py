"""The generated artefacts: committed, current, deterministic, and describing every event."""

import json
from importlib.metadata import version
from pathlib import Path

import pytest

from crm_contracts import EVENT_TYPES, schema_uri, topic_specs
from crm_contracts.generate import (
    CONTRACTS_VERSION,
    REGENERATE_HINT,
    asyncapi_document,
    event_schema,
    generated_files,
    main,
    stale_files,
    write_files,
)

CONTRACTS_DIR = Path(__file__).resolve().parents[3] / "contracts"


def test_committed_schemas_are_current() -> None:
    stale = stale_files(CONTRACTS_DIR)

    assert not stale, f"stale generated files {stale}: {REGENERATE_HINT}"


def test_generation_is_deterministic() -> None:
    assert generated_files() == generated_files()
    assert all(content.endswith("\n") for content in generated_files().values())


@pytest.mark.parametrize("event_type", sorted(EVENT_TYPES))
def test_every_schema_is_draft_2020_12_with_its_id_title_and_description(event_type: str) -> None:
    schema = event_schema(event_type)

    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["$id"] == schema_uri(event_type)
    assert schema["title"] == EVENT_TYPES[event_type].__name__
    assert schema["description"]
    assert schema["type"] == "object"


def test_the_raw_interaction_schema_refuses_unknown_fields_and_lists_the_known_kinds() -> None:
    schema = event_schema("crm.interaction.recorded")

    assert schema["additionalProperties"] is False
    assert "purchase" in schema["properties"]["kind"]["examples"]
    assert schema["$defs"]["MoneyInput"]["properties"]["amount"]["type"] == "string"


def test_the_asyncapi_document_has_every_topic_as_a_kafka_channel() -> None:
    document = asyncapi_document()

    assert document["asyncapi"] == "3.0.0"
    for spec in topic_specs():
        channel = document["channels"][spec.name]
        kafka = channel["bindings"]["kafka"]
        assert channel["address"] == spec.name
        assert kafka["partitions"] == spec.partitions
        assert kafka["topicConfiguration"]["cleanup.policy"] == [spec.cleanup_policy]
        assert document["operations"][f"send.{spec.name}"]["channel"] == {
            "$ref": f"#/channels/{spec.name}"
        }


def test_the_asyncapi_document_has_a_message_per_event_type_pointing_at_its_schema() -> None:
    document = asyncapi_document()
    messages = document["components"]["messages"]
    files = generated_files()

    for event_type in EVENT_TYPES:
        message = messages[event_type]
        reference = message["payload"]["$ref"]
        assert reference == f"./schemas/{event_type}.json"
        assert reference.removeprefix("./") in files
        assert message["headers"]["properties"]["ce_type"]["const"] == event_type
        assert message["bindings"]["kafka"]["key"]["type"] == "string"


def test_the_asyncapi_references_all_resolve() -> None:
    document = asyncapi_document()

    def references(node: object) -> list[str]:
        if isinstance(node, dict):
            found = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
            return found + [ref for value in node.values() for ref in references(value)]
        if isinstance(node, list):
            return [ref for value in node for ref in references(value)]
        return []

    for reference in references(document):
        if not reference.startswith("#/"):
            continue
        node: object = document
        for part in reference.removeprefix("#/").split("/"):
            assert isinstance(node, dict) and part in node, reference
            node = node[part]


def test_the_events_document_names_every_topic_and_event_type() -> None:
    text = generated_files()["EVENTS.md"]

    for spec in topic_specs():
        assert f"`{spec.name}`" in text
    for event_type in EVENT_TYPES:
        assert f"### `{event_type}`" in text
    assert "ce_specversion" in text and "ce_correlationid" in text


def test_the_document_version_is_the_package_version() -> None:
    assert version("crm-contracts") == CONTRACTS_VERSION


def test_generate_writes_every_file_and_removes_schemas_of_removed_types(tmp_path: Path) -> None:
    (tmp_path / "schemas").mkdir()
    (tmp_path / "schemas" / "crm.case.teleported.json").write_text("{}\n")

    assert main(["generate", "--root", str(tmp_path)]) == 0

    assert stale_files(tmp_path) == []
    assert not (tmp_path / "schemas" / "crm.case.teleported.json").exists()
    assert json.loads((tmp_path / "asyncapi.json").read_text())["asyncapi"] == "3.0.0"
    assert write_files(tmp_path) == []


def test_check_fails_and_lists_stale_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_files(tmp_path)
    (tmp_path / "EVENTS.md").write_text("old\n")
    (tmp_path / "schemas" / "crm.case.opened.json").unlink()

    assert main(["check", "--root", str(tmp_path)]) == 1

    err = capsys.readouterr().err
    assert "EVENTS.md" in err and "crm.case.opened.json" in err
    assert "make contracts" in err


def test_check_passes_on_fresh_files(tmp_path: Path) -> None:
    write_files(tmp_path)

    assert main(["check", "--root", str(tmp_path)]) == 0
