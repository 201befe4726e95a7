"""Backward compatibility: what breaks, what does not, against the schemas in git history."""

import copy
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from crm_contracts.compat import breaking_changes, compatibility_problems
from crm_contracts.generate import event_schema, main, write_files

CONTRACTS_DIR = Path(__file__).resolve().parents[3] / "contracts"

BASE: dict[str, Any] = {
    "$defs": {
        "Priority": {"enum": ["low", "normal", "high"], "type": "string"},
        "Money": {
            "type": "object",
            "properties": {
                "amount": {"type": "string"},
                "currency": {"type": "string", "pattern": "^[A-Z]{3}$"},
            },
            "required": ["amount", "currency"],
        },
    },
    "type": "object",
    "properties": {
        "case_id": {"type": "string", "maxLength": 128},
        "priority": {"$ref": "#/$defs/Priority"},
        "note": {"anyOf": [{"type": "string"}, {"type": "null"}], "default": None},
        "count": {"type": "integer", "minimum": 0},
        "value": {"anyOf": [{"$ref": "#/$defs/Money"}, {"type": "null"}], "default": None},
        "tags": {"type": "array", "items": {"type": "string"}},
        "due_at": {"type": "string"},
    },
    "required": ["case_id", "priority"],
}


def changed(edit: Any) -> list[str]:
    new = copy.deepcopy(BASE)
    edit(new)
    return breaking_changes(BASE, new)


def test_an_unchanged_schema_breaks_nothing() -> None:
    assert breaking_changes(BASE, copy.deepcopy(BASE)) == []


def test_adding_an_optional_field_is_not_breaking() -> None:
    def add(schema: dict[str, Any]) -> None:
        schema["properties"]["channel"] = {"type": "string"}

    assert changed(add) == []


def test_widening_is_not_breaking() -> None:
    def widen(schema: dict[str, Any]) -> None:
        schema["$defs"]["Priority"]["enum"].append("urgent")
        schema["properties"]["count"] = {"type": "number"}
        schema["properties"]["case_id"] = {"type": "string", "maxLength": 256}
        schema["properties"]["note"] = {"type": ["string", "null"]}
        schema["required"] = ["case_id"]
        schema["properties"]["due_at"] = {"anyOf": [{"type": "string"}, {"type": "integer"}]}

    assert changed(widen) == []


def test_removing_a_property_is_breaking() -> None:
    def remove(schema: dict[str, Any]) -> None:
        del schema["properties"]["note"]

    assert changed(remove) == ["note: property removed"]


def test_removing_a_nested_property_behind_a_ref_is_breaking() -> None:
    def remove(schema: dict[str, Any]) -> None:
        del schema["$defs"]["Money"]["properties"]["currency"]
        schema["$defs"]["Money"]["required"] = ["amount"]

    assert changed(remove) == ["value.currency: property removed"]


def test_changing_a_type_is_breaking() -> None:
    def retype(schema: dict[str, Any]) -> None:
        schema["properties"]["count"] = {"type": "string"}

    assert changed(retype) == ["count: type changed from integer to string"]


def test_changing_the_type_of_an_optional_field_is_breaking() -> None:
    def retype(schema: dict[str, Any]) -> None:
        schema["properties"]["note"]["anyOf"][0] = {"type": "integer"}

    assert changed(retype) == ["note: type changed from string to integer"]


def test_making_a_field_no_longer_nullable_is_breaking() -> None:
    def narrow(schema: dict[str, Any]) -> None:
        schema["properties"]["note"] = {"type": "string"}

    assert changed(narrow) == ["note: no longer accepts null"]


def test_adding_a_format_narrows_the_type() -> None:
    def narrow(schema: dict[str, Any]) -> None:
        schema["properties"]["due_at"]["format"] = "date-time"

    assert changed(narrow) == ["due_at: format changed from none to date-time"]


def test_pointing_a_ref_at_a_narrower_definition_is_breaking() -> None:
    def repoint(schema: dict[str, Any]) -> None:
        schema["$defs"]["StrictMoney"] = copy.deepcopy(schema["$defs"]["Money"])
        schema["$defs"]["StrictMoney"]["additionalProperties"] = False
        schema["properties"]["value"]["anyOf"][0] = {"$ref": "#/$defs/StrictMoney"}

    assert changed(repoint) == ["value: additionalProperties tightened to false"]


def test_making_an_optional_field_required_is_breaking() -> None:
    def require(schema: dict[str, Any]) -> None:
        schema["required"].append("note")

    assert changed(require) == ["note: optional property made required"]


def test_adding_a_required_field_is_breaking() -> None:
    def add(schema: dict[str, Any]) -> None:
        schema["properties"]["queue"] = {"type": "string"}
        schema["required"].append("queue")

    assert changed(add) == ["queue: new required property"]


def test_removing_an_enum_value_is_breaking() -> None:
    def remove(schema: dict[str, Any]) -> None:
        schema["$defs"]["Priority"]["enum"].remove("low")

    assert changed(remove) == ["priority: enum value 'low' removed"]


def test_tightening_additional_properties_is_breaking() -> None:
    def tighten(schema: dict[str, Any]) -> None:
        schema["additionalProperties"] = False

    assert changed(tighten) == ["(root): additionalProperties tightened to false"]


def test_narrowing_bounds_and_patterns_is_breaking() -> None:
    def narrow(schema: dict[str, Any]) -> None:
        schema["properties"]["case_id"]["maxLength"] = 64
        schema["properties"]["count"]["minimum"] = 1
        schema["$defs"]["Money"]["properties"]["currency"]["pattern"] = "^(EUR|USD)$"
        schema["properties"]["tags"]["items"] = {"type": "string", "maxLength": 10}

    assert changed(narrow) == [
        "case_id: maxLength lowered from 128 to 64",
        "count: minimum raised from 0 to 1",
        "value.currency: pattern changed from '^[A-Z]{3}$' to '^(EUR|USD)$'",
        "tags[]: maxLength lowered from None to 10",
    ]


def test_recursive_definitions_are_compared_without_looping() -> None:
    tree = {
        "$defs": {
            "Node": {
                "type": "object",
                "properties": {"children": {"type": "array", "items": {"$ref": "#/$defs/Node"}}},
            }
        },
        "$ref": "#/$defs/Node",
    }

    assert breaking_changes(tree, copy.deepcopy(tree)) == []


def test_every_current_schema_is_compatible_with_itself() -> None:
    from crm_contracts import EVENT_TYPES

    for event_type in EVENT_TYPES:
        schema = event_schema(event_type)
        assert breaking_changes(schema, copy.deepcopy(schema)) == [], event_type


def test_contracts_are_backward_compatible_with_committed_schemas() -> None:
    problems = compatibility_problems(CONTRACTS_DIR)

    assert not problems, "breaking changes (use a new topic version instead):\n" + "\n".join(
        problems
    )


# ---- against history, in a throwaway repository -----------------------------------------------

GIT = shutil.which("git")


def git(repo: Path, *args: str) -> None:
    subprocess.run(
        [
            "git",
            "-C",
            str(repo),
            "-c",
            "user.name=test",
            "-c",
            "user.email=test@invalid",
            "-c",
            "commit.gpgsign=false",
            *args,
        ],
        check=True,
        capture_output=True,
    )


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    if GIT is None:
        pytest.skip("git is not installed")
    git(tmp_path, "init", "-q")
    write_files(tmp_path / "contracts")
    return tmp_path


def commit_schema(repo: Path, name: str, schema: dict[str, Any]) -> None:
    path = repo / "contracts" / "schemas" / name
    path.write_text(json.dumps(schema))
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", f"publish {name}")


def test_a_field_removed_since_an_old_commit_is_found_in_history(repo: Path) -> None:
    old = event_schema("crm.case.closed")
    old["properties"]["closed_by"] = {"type": "string"}
    commit_schema(repo, "crm.case.closed.json", old)
    write_files(repo / "contracts")  # the working tree is current again

    problems = compatibility_problems(repo / "contracts")

    assert len(problems) == 1
    assert problems[0].startswith("crm.case.closed.json (commit ")
    assert problems[0].endswith("closed_by: property removed")


def test_a_schema_committed_for_an_event_type_that_is_gone_is_breaking(repo: Path) -> None:
    commit_schema(repo, "crm.case.teleported.json", {"type": "object"})
    write_files(repo / "contracts")  # deletes the file from the working tree
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "remove it")

    problems = compatibility_problems(repo / "contracts")

    assert len(problems) == 1
    assert problems[0].startswith("crm.case.teleported.json (commit ")
    assert problems[0].endswith("event type removed")


def test_outside_git_the_working_tree_is_compared(tmp_path: Path) -> None:
    write_files(tmp_path)
    old = event_schema("crm.case.closed")
    old["properties"]["closed_by"] = {"type": "string"}
    (tmp_path / "schemas" / "crm.case.closed.json").write_text(json.dumps(old))

    assert compatibility_problems(tmp_path) == [
        "crm.case.closed.json (working tree): closed_by: property removed"
    ]
    assert main(["compat", "--root", str(tmp_path)]) == 1
