"""Backward compatibility of event schemas: what a change breaks for data already published.

A new schema is compatible with an old one when it still accepts every document the old one
accepted and still offers every field consumers may read. Breaking: a property removed, a type
changed or narrowed (format, enum, const, pattern, bounds), an optional property made required
(or a new required one), an enum value removed, `additionalProperties` tightened.
"""

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from crm_contracts.registry import EVENT_TYPES

Schema = dict[str, Any]

_LOWER_BOUNDS = ("minimum", "exclusiveMinimum", "minLength", "minItems", "minProperties")
_UPPER_BOUNDS = ("maximum", "exclusiveMaximum", "maxLength", "maxItems", "maxProperties")
_UNION_KEYWORDS = ("anyOf", "oneOf")


def breaking_changes(old_schema: Schema, new_schema: Schema) -> list[str]:
    """Every change from old_schema to new_schema that breaks producers or consumers of old data.

    Each entry reads `<path>: <what changed>`; `$ref`s are resolved inside each document.
    """
    problems = _Comparison(old_schema, new_schema).compare(old_schema, new_schema, "", frozenset())
    return list(dict.fromkeys(problems))


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def _shown(path: str) -> str:
    return path or "(root)"


def _pointer(root: Schema, ref: str) -> Any:
    node: Any = root
    for part in ref.removeprefix("#/").split("/"):
        part = part.replace("~1", "/").replace("~0", "~")
        if not isinstance(node, dict) or part not in node:
            raise KeyError(f"unresolvable $ref {ref!r}")
        node = node[part]
    return node


def _types(schema: Schema) -> set[str] | None:
    kind = schema.get("type")
    if kind is None:
        return None
    return {kind} if isinstance(kind, str) else set(kind)


def _type_text(types: set[str] | None) -> str:
    return "any" if types is None else "/".join(sorted(types))


class _Comparison:
    def __init__(self, old_root: Schema, new_root: Schema) -> None:
        self.old_root = old_root
        self.new_root = new_root

    def _resolve(self, schema: Any, root: Schema) -> tuple[Any, str | None]:
        ref_name: str | None = None
        seen: set[str] = set()
        while isinstance(schema, dict) and isinstance(schema.get("$ref"), str):
            ref = schema["$ref"]
            if not ref.startswith("#") or ref in seen:
                break
            seen.add(ref)
            ref_name = ref
            siblings = {key: value for key, value in schema.items() if key != "$ref"}
            schema = {**_pointer(root, ref), **siblings}
        if isinstance(schema, dict) and isinstance(schema.get("allOf"), list):
            merged: Schema = {key: value for key, value in schema.items() if key != "allOf"}
            for part in schema["allOf"]:
                resolved, _ = self._resolve(part, root)
                if isinstance(resolved, dict):
                    merged = {**resolved, **merged}
            schema = merged
        return schema, ref_name

    def _branches(self, schema: Schema, root: Schema) -> list[Any]:
        for keyword in _UNION_KEYWORDS:
            if isinstance(schema.get(keyword), list):
                branches: list[Any] = []
                for branch in schema[keyword]:
                    resolved, _ = self._resolve(branch, root)
                    if isinstance(resolved, dict):
                        branches.extend(self._branches(resolved, root))
                    else:
                        branches.append(resolved)
                return branches
        return [schema]

    def compare(
        self, old: Any, new: Any, path: str, stack: frozenset[tuple[str, str]]
    ) -> list[str]:
        old, old_ref = self._resolve(old, self.old_root)
        new, new_ref = self._resolve(new, self.new_root)
        if old_ref and new_ref:
            if (old_ref, new_ref) in stack:
                return []  # a recursive definition already being compared
            stack = stack | {(old_ref, new_ref)}
        if new is True or old is False:
            return []
        if new is False:
            return [f"{_shown(path)}: no longer accepts anything"]
        if old is True:
            old = {}
        if not isinstance(old, dict) or not isinstance(new, dict):
            return [] if old == new else [f"{_shown(path)}: schema changed"]
        old_branches = self._branches(old, self.old_root)
        new_branches = self._branches(new, self.new_root)
        if len(old_branches) > 1 or len(new_branches) > 1:
            # Each old alternative must still be accepted by its closest new alternative.
            problems: list[str] = []
            for branch in old_branches:
                outcomes: list[list[str]] = [
                    self.compare(branch, other, path, stack) for other in new_branches
                ]
                best: list[str] = min(outcomes, key=len)
                problems += best
            return problems
        return self._compare_single(old, new, path, stack)

    def _compare_single(
        self, old: Schema, new: Schema, path: str, stack: frozenset[tuple[str, str]]
    ) -> list[str]:
        old_types, new_types = _types(old), _types(new)
        if new_types is not None:
            lost = {
                kind
                for kind in old_types or {"any"}
                if kind not in new_types and not (kind == "integer" and "number" in new_types)
            }
            if lost:
                if lost == {"null"}:
                    return [f"{_shown(path)}: no longer accepts null"]
                return [
                    f"{_shown(path)}: type changed from {_type_text(old_types)} to "
                    f"{_type_text(new_types)}"
                ]
        problems = self._compare_values(old, new, path)
        problems += self._compare_bounds(old, new, path)
        if "properties" in old or "properties" in new or "object" in (new_types or ()):
            problems += self._compare_objects(old, new, path, stack)
        if "items" in new and isinstance(new["items"], dict | bool):
            problems += self.compare(old.get("items", True), new["items"], f"{path}[]", stack)
        return problems

    def _compare_values(self, old: Schema, new: Schema, path: str) -> list[str]:
        problems = []
        new_format, old_format = new.get("format"), old.get("format")
        if new_format is not None and new_format != old_format:
            problems.append(
                f"{_shown(path)}: format changed from {old_format or 'none'} to {new_format}"
            )
        old_values: list[Any] | None = None
        if "enum" in old:
            old_values = list(old["enum"])
        elif "const" in old:
            old_values = [old["const"]]
        allowed: list[Any] | None = None
        if "enum" in new:
            allowed = list(new["enum"])
        if "const" in new:
            allowed = (
                [new["const"]] if allowed is None else [v for v in allowed if v == new["const"]]
            )
        if allowed is not None:
            if old_values is None:
                problems.append(f"{_shown(path)}: now restricted to {allowed!r}")
            else:
                problems += [
                    f"{_shown(path)}: enum value {value!r} removed"
                    for value in old_values
                    if value not in allowed
                ]
        new_pattern = new.get("pattern")
        if new_pattern is not None and new_pattern != old.get("pattern"):
            problems.append(
                f"{_shown(path)}: pattern changed from {old.get('pattern')!r} to {new_pattern!r}"
            )
        return problems

    def _compare_bounds(self, old: Schema, new: Schema, path: str) -> list[str]:
        problems = []
        for keyword in _LOWER_BOUNDS:
            if keyword in new and (keyword not in old or new[keyword] > old[keyword]):
                problems.append(
                    f"{_shown(path)}: {keyword} raised from {old.get(keyword)} to {new[keyword]}"
                )
        for keyword in _UPPER_BOUNDS:
            if keyword in new and (keyword not in old or new[keyword] < old[keyword]):
                problems.append(
                    f"{_shown(path)}: {keyword} lowered from {old.get(keyword)} to {new[keyword]}"
                )
        return problems

    def _compare_objects(
        self, old: Schema, new: Schema, path: str, stack: frozenset[tuple[str, str]]
    ) -> list[str]:
        problems = []
        old_properties: Schema = old.get("properties", {})
        new_properties: Schema = new.get("properties", {})
        for name, old_property in old_properties.items():
            if name not in new_properties:
                problems.append(f"{_join(path, name)}: property removed")
            else:
                problems += self.compare(
                    old_property, new_properties[name], _join(path, name), stack
                )
        old_required = set(old.get("required", []))
        for name in new.get("required", []):
            if name in old_required:
                continue
            if name in old_properties:
                problems.append(f"{_join(path, name)}: optional property made required")
            else:
                problems.append(f"{_join(path, name)}: new required property")
        old_extra = old.get("additionalProperties", True)
        new_extra = new.get("additionalProperties", True)
        if new_extra is False and old_extra is not False:
            problems.append(f"{_shown(path)}: additionalProperties tightened to false")
        elif isinstance(new_extra, dict) and new_extra and old_extra is True:
            problems.append(f"{_shown(path)}: additionalProperties tightened to a schema")
        elif isinstance(new_extra, dict) and isinstance(old_extra, dict):
            problems += self.compare(old_extra, new_extra, _join(path, "*"), stack)
        old_patterns: Schema = old.get("patternProperties", {})
        for pattern, value in new.get("patternProperties", {}).items():
            if pattern in old_patterns:
                problems += self.compare(
                    old_patterns[pattern], value, _join(path, f"<{pattern}>"), stack
                )
            else:
                problems.append(f"{_shown(path)}: keys matching {pattern!r} now constrained")
        if "propertyNames" in new:
            problems += self.compare(
                old.get("propertyNames", True), new["propertyNames"], _join(path, "<key>"), stack
            )
        return problems


# ---- against what was published -------------------------------------------------------------


def _git(cwd: Path, *args: str) -> str | None:
    try:
        done = subprocess.run(
            ["git", "-C", str(cwd), *args], capture_output=True, text=True, check=False
        )
    except OSError:
        return None
    return done.stdout if done.returncode == 0 else None


def _committed_schemas(contracts_dir: Path) -> Iterator[tuple[str, str, str]]:
    """(label, file name, text) of every version of every schema file in git history."""
    top = _git(contracts_dir, "rev-parse", "--show-toplevel")
    if top is None:
        return
    top_dir = Path(top.strip())
    schemas = (contracts_dir.resolve() / "schemas").relative_to(top_dir.resolve()).as_posix()
    touched = _git(top_dir, "log", "--format=", "--name-only", "--", f"{schemas}/")
    for path in sorted(set((touched or "").split())):
        if not path.endswith(".json"):
            continue
        for commit in (_git(top_dir, "log", "--format=%H", "--", path) or "").split():
            text = _git(top_dir, "show", f"{commit}:{path}")
            if text is not None:
                yield f"commit {commit[:12]}", path.rsplit("/", 1)[-1], text


def _working_tree_schemas(contracts_dir: Path) -> Iterator[tuple[str, str, str]]:
    for path in sorted((contracts_dir / "schemas").glob("*.json")):
        yield "working tree", path.name, path.read_text(encoding="utf-8")


def compatibility_problems(contracts_dir: Path) -> list[str]:
    """Breaking changes of the current models against every schema version ever committed.

    Compares with each version of contracts/schemas/*.json in git history and with the files in
    the working tree (only those when not in a git checkout). A schema file whose event type no
    longer exists is breaking too.
    """
    from crm_contracts.generate import event_schema, schema_file_name

    current = {schema_file_name(type): event_schema(type) for type in EVENT_TYPES}
    problems: list[str] = []
    seen: set[tuple[str, str]] = set()
    sources = [*_committed_schemas(contracts_dir), *_working_tree_schemas(contracts_dir)]
    for label, name, text in sources:
        if (name, text) in seen:
            continue
        seen.add((name, text))
        if name not in current:
            problems.append(f"{name} ({label}): event type removed")
            continue
        try:
            old = json.loads(text)
        except ValueError:
            problems.append(f"{name} ({label}): not valid JSON")
            continue
        problems += [f"{name} ({label}): {p}" for p in breaking_changes(old, current[name])]
    return list(dict.fromkeys(problems))
