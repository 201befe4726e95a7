"""Generate the committed artefacts of the contracts, and check them.

    crm-contracts generate   write contracts/schemas/*.json, asyncapi.json and EVENTS.md
    crm-contracts check      exit 1 listing the files that are stale (run `make contracts`)
    crm-contracts compat     exit 1 listing changes that break the schemas committed in git

Every artefact is derived from the models and the topic registry; output is deterministic
(sorted keys, stable order, trailing newline) so that a diff shows a real change.
"""

import argparse
import json
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from crm_contracts.envelope import (
    CONTENT_TYPE_HEADER,
    HEADER_PREFIX,
    JSON_CONTENT_TYPE,
    STRUCTURED_CONTENT_TYPE,
    encode_binary,
    to_json_dict,
)
from crm_contracts.examples import example_event
from crm_contracts.registry import EVENT_TYPES, data_model_for, schema_uri
from crm_contracts.storable import RULES
from crm_contracts.topics import (
    DLT_ERROR_DROPPED,
    DLT_ERROR_HEADERS,
    DLT_ERROR_VALUE_SHA256,
    DLT_ERROR_VALUE_SIZE,
    INTERACTIONS_RAW,
    TopicSpec,
    topic_specs,
)

# Version of the published language; keep it equal to the version in contracts/pyproject.toml.
CONTRACTS_VERSION = "1.0.0"
JSON_SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"
ASYNCAPI_VERSION = "3.0.0"
KAFKA_BINDING_VERSION = "0.5.0"
SCHEMAS_DIR = "schemas"
ASYNCAPI_FILE = "asyncapi.json"
EVENTS_FILE = "EVENTS.md"
REGENERATE_HINT = "run `make contracts` (crm-contracts generate) and commit the result"


def dump_json(document: Any) -> str:
    """Deterministic JSON text: sorted keys, two-space indent, trailing newline."""
    return json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def event_schema(type: str) -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of an event type's data."""
    model = data_model_for(type)
    schema = model.model_json_schema(ref_template="#/$defs/{model}")
    return {
        "$schema": JSON_SCHEMA_DIALECT,
        "$id": schema_uri(type),
        **schema,
        "title": model.__name__,
        "description": schema.get("description", ""),
    }


def schema_file_name(type: str) -> str:
    """File name of an event type's schema inside contracts/schemas/."""
    return f"{type}.json"


def _ce_headers_schema(type: str) -> dict[str, Any]:
    def text(description: str) -> dict[str, Any]:
        return {"type": "string", "description": description}

    properties = {
        f"{HEADER_PREFIX}specversion": {"const": "1.0", "type": "string"},
        f"{HEADER_PREFIX}id": text("Event id; with ce_source the idempotency key."),
        f"{HEADER_PREFIX}source": text("URI-reference of the producer."),
        f"{HEADER_PREFIX}type": {"const": type, "type": "string"},
        f"{HEADER_PREFIX}time": {
            "type": "string",
            "format": "date-time",
            "description": "When it happened (RFC 3339).",
        },
        f"{HEADER_PREFIX}subject": text("The contact id, where known."),
        f"{HEADER_PREFIX}dataschema": {"const": schema_uri(type), "type": "string"},
        f"{HEADER_PREFIX}correlationid": text("Id shared by every event of one causal chain."),
        f"{HEADER_PREFIX}causationid": text("Id of the event that caused this one."),
        CONTENT_TYPE_HEADER: {"const": JSON_CONTENT_TYPE, "type": "string"},
    }
    required = [f"{HEADER_PREFIX}{name}" for name in ("specversion", "id", "source", "type")]
    return {
        "type": "object",
        "description": "CloudEvents binary mode (Kafka protocol binding), UTF-8 header values.",
        "properties": properties,
        "required": [*required, f"{HEADER_PREFIX}time", CONTENT_TYPE_HEADER],
    }


def _dead_letter_headers_schema() -> dict[str, Any]:
    return {
        "type": "object",
        "description": "The original record's headers, plus these.",
        "properties": {name: {"type": "string"} for name in DLT_ERROR_HEADERS},
        "required": list(DLT_ERROR_HEADERS[:3]),
    }


def _message_id(type: str) -> str:
    return type


def _structured_message_id(type: str) -> str:
    return f"{type}.structured"


def _structured_message(type: str, spec: TopicSpec) -> dict[str, Any]:
    model = data_model_for(type)
    event = example_event(type)
    attribute = {"type": "string", "minLength": 1}
    return {
        "name": _structured_message_id(type),
        "title": f"{model.__name__} (structured mode)",
        "summary": "The whole CloudEvent as one JSON object, as channels may send it.",
        "contentType": STRUCTURED_CONTENT_TYPE,
        "headers": {
            "type": "object",
            "properties": {CONTENT_TYPE_HEADER: {"const": STRUCTURED_CONTENT_TYPE}},
        },
        "payload": {
            "type": "object",
            "required": ["specversion", "id", "source", "type", "time", "data"],
            "properties": {
                "specversion": {"const": "1.0"},
                "id": attribute,
                "source": attribute,
                "type": {"const": type},
                "time": {"type": "string", "format": "date-time"},
                "subject": attribute,
                "datacontenttype": {"const": JSON_CONTENT_TYPE},
                "dataschema": {"type": "string", "format": "uri"},
                "correlationid": attribute,
                "causationid": attribute,
                "data": {"$ref": f"./{SCHEMAS_DIR}/{schema_file_name(type)}"},
            },
        },
        "bindings": {
            "kafka": {
                "bindingVersion": KAFKA_BINDING_VERSION,
                "key": {"type": "string", "description": spec.key},
            }
        },
        "examples": [{"name": "example", "payload": to_json_dict(event)}],
    }


def _operation_id(spec: TopicSpec) -> str:
    return f"send.{spec.name}"


def asyncapi_document() -> dict[str, Any]:
    """The AsyncAPI 3.0 document of every topic and event type."""
    specs = topic_specs()
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    messages: dict[str, Any] = {}
    for spec in specs:
        channel_messages: dict[str, Any] = {}
        if spec.is_dead_letter:
            channel_messages["dead_letter"] = {"$ref": "#/components/messages/dead_letter"}
        for type in spec.event_types:
            channel_messages[_message_id(type)] = {
                "$ref": f"#/components/messages/{_message_id(type)}"
            }
            messages[_message_id(type)] = _message(type, spec)
            if spec.name == INTERACTIONS_RAW:
                structured = _structured_message_id(type)
                channel_messages[structured] = {"$ref": f"#/components/messages/{structured}"}
                messages[structured] = _structured_message(type, spec)
        channels[spec.name] = {
            "address": spec.name,
            "description": spec.description,
            "messages": channel_messages,
            "bindings": {
                "kafka": {
                    "bindingVersion": KAFKA_BINDING_VERSION,
                    "topic": spec.name,
                    "partitions": spec.partitions,
                    "topicConfiguration": {"cleanup.policy": [spec.cleanup_policy]},
                }
            },
        }
        operations[_operation_id(spec)] = {
            "action": "send",
            "channel": {"$ref": f"#/channels/{spec.name}"},
            "summary": f"Publish to {spec.name}.",
            "messages": [
                {"$ref": f"#/channels/{spec.name}/messages/{message}"}
                for message in channel_messages
            ],
        }
    messages["dead_letter"] = {
        "name": "dead_letter",
        "title": "Dead letter",
        "summary": "A record that could not be handled, as it was, with the reason.",
        "headers": _dead_letter_headers_schema(),
        "payload": {"description": "The original value, unchanged (may not be JSON)."},
    }
    return {
        "asyncapi": ASYNCAPI_VERSION,
        "info": {
            "title": "CRM event backbone",
            "version": CONTRACTS_VERSION,
            "description": "Every Kafka topic of the CRM back end. Events are CloudEvents 1.0 in "
            "binary mode (ce_* headers, JSON data as the value); crm.interactions.raw.v1 also "
            f"takes structured mode ({STRUCTURED_CONTENT_TYPE}). Beyond the schemas, "
            + " ".join(RULES)
            + " Generated from crm_contracts; do not edit.",
        },
        "defaultContentType": JSON_CONTENT_TYPE,
        "channels": channels,
        "operations": operations,
        "components": {"messages": messages},
    }


def _message(type: str, spec: TopicSpec) -> dict[str, Any]:
    model = data_model_for(type)
    event = example_event(type)
    record = encode_binary(event, key=event.subject)
    return {
        "name": type,
        "title": model.__name__,
        "summary": (model.__doc__ or "").strip(),
        "contentType": JSON_CONTENT_TYPE,
        "headers": _ce_headers_schema(type),
        "payload": {"$ref": f"./{SCHEMAS_DIR}/{schema_file_name(type)}"},
        "correlationId": {"location": f"$message.header#/{HEADER_PREFIX}correlationid"},
        "bindings": {
            "kafka": {
                "bindingVersion": KAFKA_BINDING_VERSION,
                "key": {"type": "string", "description": spec.key},
            }
        },
        "examples": [
            {
                "name": "example",
                "headers": {name: value.decode() for name, value in record.headers},
                "payload": json.loads(record.value or b"null"),
            }
        ],
    }


def _escape(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _ref_name(ref: str) -> str:
    return ref.rsplit("/", 1)[-1]


def _bounds(schema: dict[str, Any]) -> str:
    low = schema.get("minimum", schema.get("exclusiveMinimum"))
    high = schema.get("maximum", schema.get("exclusiveMaximum"))
    if low is not None and high is not None:
        return f" {low}..{high}"
    if low is not None:
        return f" >= {low}"
    if high is not None:
        return f" <= {high}"
    if "maxLength" in schema:
        return f" (max {schema['maxLength']} chars)"
    return ""


def _type_label(schema: dict[str, Any]) -> str:
    if "$ref" in schema:
        return f"`{_ref_name(schema['$ref'])}`"
    if "anyOf" in schema:
        branches = [s for s in schema["anyOf"] if s.get("type") != "null"]
        label = " or ".join(_type_label(s) for s in branches)
        return label if len(branches) == len(schema["anyOf"]) else f"{label} or null"
    if "const" in schema:
        return f"`{json.dumps(schema['const'])}`"
    if "enum" in schema:
        return "one of " + ", ".join(f"`{value}`" for value in schema["enum"])
    kind = schema.get("type", "any")
    if kind == "array":
        return f"list of {_type_label(schema.get('items', {}))}"
    if kind == "object":
        values = schema.get("additionalProperties")
        if not isinstance(values, dict) and len(schema.get("patternProperties", {})) == 1:
            values = next(iter(schema["patternProperties"].values()))
        return f"map of string to {_type_label(values)}" if isinstance(values, dict) else "object"
    if "format" in schema:
        return f"{kind} ({schema['format']})"
    return f"{kind}{_bounds(schema)}"


def _refs(schema: Any) -> Iterator[str]:
    if isinstance(schema, dict):
        if "$ref" in schema:
            yield _ref_name(schema["$ref"])
        for key in sorted(schema):
            yield from _refs(schema[key])
    elif isinstance(schema, list):
        for item in schema:
            yield from _refs(item)


def _description(schema: dict[str, Any], defs: dict[str, Any]) -> str:
    """A field's description, else that of the one type it refers to."""
    if "description" in schema:
        return str(schema["description"])
    branches = [s for s in schema.get("anyOf", [schema]) if s.get("type") != "null"]
    if len(branches) != 1:
        return ""
    branch = branches[0]
    if "$ref" in branch:
        branch = defs.get(_ref_name(branch["$ref"]), {})
    return str(branch.get("description", ""))


def _fields_table(schema: dict[str, Any], defs: dict[str, Any]) -> list[str]:
    properties: dict[str, Any] = schema.get("properties", {})
    if not properties:
        return ["(no fields)"]
    required = set(schema.get("required", []))
    lines = ["| field | type | required | description |", "|---|---|---|---|"]
    for name, prop in properties.items():
        description = _description(prop, defs)
        if "examples" in prop:
            shown = ", ".join(f"`{value}`" for value in prop["examples"])
            description = f"{description} Examples: {shown}".strip()
        lines.append(
            f"| `{name}` | {_escape(_type_label(prop))} | {'yes' if name in required else 'no'} "
            f"| {_escape(description)} |"
        )
    return lines


def _event_section(type: str) -> list[str]:
    schema = event_schema(type)
    defs: dict[str, Any] = schema.get("$defs", {})
    lines = [
        f"### `{type}`",
        "",
        f"{schema['description']} Data model `{schema['title']}`, schema "
        f"[`{SCHEMAS_DIR}/{schema_file_name(type)}`]({SCHEMAS_DIR}/{schema_file_name(type)}).",
        "",
        *_fields_table(schema, defs),
    ]
    seen: list[str] = []
    pending = list(_refs(schema.get("properties", {})))
    while pending:
        name = pending.pop(0)
        if name in seen or name not in defs:
            continue
        seen.append(name)
        pending.extend(_refs(defs[name]))
    for name in seen:
        definition = defs[name]
        if "enum" in definition:
            values = ", ".join(f"`{value}`" for value in definition["enum"])
            lines += ["", f"`{name}`: {values}."]
        else:
            lines += ["", f"`{name}`: {definition.get('description', '')}", ""]
            lines += _fields_table(definition, defs)
    example = example_event(type).data.model_dump(mode="json", exclude_none=True)
    lines += ["", "Example data:", "", "```json", json.dumps(example, indent=2), "```", ""]
    return lines


def events_markdown() -> str:
    """Human documentation of every topic and event type."""
    specs = topic_specs()
    sample = example_event("crm.interaction.resolved")
    record = encode_binary(sample, key=sample.subject)
    lines = [
        "# CRM event backbone: topics and events",
        "",
        "Generated by `crm-contracts generate` from `contracts/src/crm_contracts`; do not edit.",
        "",
        "Every event is a CloudEvents 1.0 event. `id` + `source` identify it (the idempotency "
        "key), `type` says what happened, `time` is when it happened, `subject` is the contact "
        "id where known, `dataschema` points at the JSON Schema of the data, and the "
        "extensions `correlationid` and `causationid` trace an event back to what caused it.",
        "",
        "`time` is event time, not the time a service handled the event: an event that "
        "restates an occurrence (`crm.interaction.resolved`) keeps the occurrence's time, "
        "and so does every event an interaction leads to (a contact created, linked, "
        "updated, merged or moved to another stage by it); an event about a decision "
        "(`crm.score.changed`) has the moment the decision is for, and names its cause. "
        "What an agent or an erasure does has the moment it was done.",
        "",
        "## Values every service can store",
        "",
        "Besides its JSON Schema, every event keeps to these rules:",
        "",
        *(f"- {rule}" for rule in RULES),
        "",
        "An event that breaks one is refused where it enters: ingest answers 422 naming the "
        "field, and on Kafka the first consumer dead-letters it with reason "
        "`invalid_attribute` or `invalid_data`. The rules are checked by the contracts' "
        "models, not written into the JSON Schemas: no such event could ever be stored, so "
        "they narrow nothing a consumer relied on.",
        "",
        "## Binary mode on Kafka",
        "",
        "Services publish in binary mode: the attributes travel as UTF-8 headers named "
        f"`{HEADER_PREFIX}<attribute>`, `{CONTENT_TYPE_HEADER}` is `{JSON_CONTENT_TYPE}`, and "
        "the value is the data as compact JSON. The key is the topic's key (below). An "
        "example record:",
        "",
        "| header | value |",
        "|---|---|",
        *(f"| `{name}` | `{value.decode()}` |" for name, value in record.headers),
        "",
        f"key `{(record.key or b'').decode()}`, value:",
        "",
        "```json",
        (record.value or b"").decode(),
        "```",
        "",
        f"`{specs[0].name}` also accepts structured mode: header `{CONTENT_TYPE_HEADER}: "
        f"{STRUCTURED_CONTENT_TYPE}` and the whole event as one JSON object in the value "
        "(the form sent over HTTP to ingest). Without headers a record is read as structured.",
        "",
        "Dead letters go to `<topic>.dlt` with the original key, value and headers plus: "
        + ", ".join(f"`{name}`" for name in DLT_ERROR_HEADERS)
        + ". A record too large to be dead-lettered whole goes without its value: "
        f"`{DLT_ERROR_DROPPED}: value` (or `value,headers,key` when even its headers are too "
        f"large), with `{DLT_ERROR_VALUE_SHA256}` (hex) and `{DLT_ERROR_VALUE_SIZE}` (bytes) of "
        "the value; the record itself is still on its topic at `x-error-partition` / "
        "`x-error-offset` (while the topic's retention keeps it), and cannot be replayed from "
        "the dead letter.",
        "",
        "## Topics",
        "",
        "| topic | key | partitions | cleanup | event types |",
        "|---|---|---|---|---|",
    ]
    for spec in specs:
        types = ", ".join(f"`{type}`" for type in spec.event_types) or "any (dead letters)"
        lines.append(
            f"| `{spec.name}` | {_escape(spec.key)} | {spec.partitions} | "
            f"{spec.cleanup_policy} | {types} |"
        )
    lines.append("")
    for spec in specs:
        if spec.is_dead_letter:
            continue
        lines += [
            f"## `{spec.name}`",
            "",
            spec.description,
            "",
            f"Key: {spec.key}. Partitions: {spec.partitions}. Cleanup policy: "
            f"{spec.cleanup_policy}.",
            "",
        ]
        for type in spec.event_types:
            lines += _event_section(type)
    return "\n".join(lines).rstrip("\n") + "\n"


def generated_files() -> dict[str, str]:
    """Every generated file: path relative to the contracts directory, and its content."""
    files = {
        f"{SCHEMAS_DIR}/{schema_file_name(type)}": dump_json(event_schema(type))
        for type in EVENT_TYPES
    }
    files[ASYNCAPI_FILE] = dump_json(asyncapi_document())
    files[EVENTS_FILE] = events_markdown()
    return files


def _leftover_schemas(root: Path, files: dict[str, str]) -> list[str]:
    schemas = root / SCHEMAS_DIR
    if not schemas.is_dir():
        return []
    return sorted(
        f"{SCHEMAS_DIR}/{path.name}"
        for path in schemas.glob("*.json")
        if f"{SCHEMAS_DIR}/{path.name}" not in files
    )


def write_files(root: Path) -> list[str]:
    """Write every generated file under root, remove schemas of removed types; what changed."""
    files = generated_files()
    changed = []
    for relative, content in files.items():
        path = root / relative
        if not path.is_file() or path.read_text(encoding="utf-8") != content:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(content, encoding="utf-8")
            changed.append(relative)
    for relative in _leftover_schemas(root, files):
        (root / relative).unlink()
        changed.append(relative)
    return changed


def stale_files(root: Path) -> list[str]:
    """Generated files under root that are missing, out of date, or left over."""
    files = generated_files()
    stale = [
        relative
        for relative, content in files.items()
        if not (root / relative).is_file()
        or (root / relative).read_text(encoding="utf-8") != content
    ]
    return stale + _leftover_schemas(root, files)


def default_root() -> Path:
    """The contracts/ directory: next to the sources when installed editable, else ./contracts."""
    here = Path(__file__).resolve().parents[2]
    if (here / "src" / "crm_contracts").is_dir():
        return here
    return Path.cwd() / "contracts"


def main(argv: Sequence[str] | None = None) -> int:
    """Command line entry point of crm-contracts."""
    from crm_contracts.compat import compatibility_problems

    parser = argparse.ArgumentParser(prog="crm-contracts", description=__doc__.split("\n")[0])
    parser.add_argument("command", choices=("generate", "check", "compat"))
    parser.add_argument("--root", type=Path, default=None, help="the contracts/ directory")
    args = parser.parse_args(argv)
    root: Path = args.root or default_root()
    if args.command == "generate":
        for relative in write_files(root):
            print(f"wrote {root / relative}")
        return 0
    if args.command == "check":
        stale = stale_files(root)
        for relative in stale:
            print(f"stale: {root / relative}", file=sys.stderr)
        if stale:
            print(REGENERATE_HINT, file=sys.stderr)
        return 1 if stale else 0
    problems = compatibility_problems(root)
    for problem in problems:
        print(f"breaking: {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
