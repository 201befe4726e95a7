"""Values at the edges of what Postgres and Python hold, mixed into schemathesis' requests.

Generation from a schema seldom puts a NUL character in a path, an integer past 64 bits
in a query or the first instant of year 1 in a timestamp, yet these are what reaches a
database or a datetime computation unchecked: half of the generated requests get one of
them in one place (a path parameter, a query parameter or a leaf of the JSON body).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import schemathesis
from hypothesis import strategies as st

# Text Postgres cannot store (NUL) and instants no timestamp arithmetic survives.
EDGE_TEXT: tuple[str, ...] = (
    "\x00",
    "c-1\x00",
    "0001-01-01T00:00:00Z",
    "0001-01-01T00:00:00+01:00",
    "9999-12-31T23:59:59-01:00",
)
# No lone surrogate here: schemathesis re-validates an edited case with a Rust validator,
# whose strings cannot hold one (test_unstorable_input sends them by hand).
EDGE_INTEGERS: tuple[int, ...] = (2**63, 2**64 + 1, -(2**63) - 1)


@dataclass(frozen=True)
class Slot:
    """One place of a request that can take an edge value."""

    location: str  # path, query or body
    keys: tuple[str | int, ...]
    kind: type


def _leaves(value: Any, keys: tuple[str | int, ...]) -> list[tuple[tuple[str | int, ...], type]]:
    if isinstance(value, bool):
        return []
    if isinstance(value, str | int):
        return [(keys, str if isinstance(value, str) else int)]
    if isinstance(value, dict):
        return [leaf for k, v in value.items() for leaf in _leaves(v, (*keys, k))]
    if isinstance(value, list):
        return [leaf for i, v in enumerate(value) for leaf in _leaves(v, (*keys, i))]
    return []


def slots_of(case: schemathesis.Case) -> list[Slot]:
    """Every string or integer a request carries, where an edge value could go instead."""
    found: list[Slot] = []
    for location, container in (
        ("path", case.path_parameters),
        ("query", case.query),
        ("body", case.body),
    ):
        if isinstance(container, dict | list):
            found += [Slot(location, keys, kind) for keys, kind in _leaves(container, ())]
    return found


def _replaced(container: Any, keys: tuple[str | int, ...], value: Any) -> Any:
    changed = copy.deepcopy(container)
    target = changed
    for key in keys[:-1]:
        target = target[key]
    target[keys[-1]] = value
    return changed


def with_edge(case: schemathesis.Case, slot: Slot, value: Any) -> schemathesis.Case:
    """A copy of `case` with `value` at `slot`."""
    edged = case.derive(keep_auth=True)
    if slot.location == "path":
        edged.path_parameters = _replaced(
            case.path_parameters, slot.keys, quote(str(value), safe="")
        )
    elif slot.location == "query":
        edged.query = _replaced(case.query, slot.keys, value)
    else:
        edged.body = _replaced(case.body, slot.keys, value)
    return edged


def _edges_for(slot: Slot) -> tuple[Any, ...]:
    return EDGE_INTEGERS if slot.kind is int else EDGE_TEXT


def mix_in_edges(context: schemathesis.HookContext, case: schemathesis.Case) -> Any:
    """Hook `flatmap_case`: the case as generated, or with one edge value in one place."""
    slots = slots_of(case)
    if not slots:
        return st.just(case)
    edged = st.sampled_from(slots).flatmap(
        lambda slot: st.sampled_from(_edges_for(slot)).map(
            lambda value: with_edge(case, slot, value)
        )
    )
    return st.one_of(st.just(case), edged)
