"""Values every service can store and compute with: the rules behind every field of the contracts.

Whatever a producer sends ends up in some service's Postgres and in Python date arithmetic:

- text holds no NUL character (U+0000): Postgres `text` and `jsonb` cannot store it;
- text holds no lone surrogate (U+D800 to U+DFFF): JSON can spell one (`"\\ud800"`) and
  Python keeps it, but it is not Unicode text and cannot be encoded as UTF-8 at all;
- an integer fits in 64 bits (Postgres `bigint`, most languages' widest integer);
- an instant lies between 1900-01-01T00:00:00Z and 9999-01-01T00:00:00Z (exclusive), so that
  it converts to UTC and leaves room for date arithmetic (windows, deadlines) either way.

`StorableModel` applies them to every field of a model, strings nested in free-form JSON and
dictionary keys included, and its errors point at the offending value (`properties.note`);
`first_problem` finds the first offender in any JSON-like value (the HTTP services check
request parameters and bodies with it).

These rules live in validation, not in the generated JSON Schemas: no event that broke one
could ever be stored, so refusing it changes nothing a consumer relied on, whereas a `pattern`
on every string would read as a narrowing to the compatibility check (and JSON Schema
patterns cannot portably speak of surrogates). EVENTS.md states them for every producer.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any, Self

from pydantic import BaseModel, ValidationError, model_validator
from pydantic_core import InitErrorDetails, PydanticCustomError

NUL_MESSAGE = "must not contain the NUL character (U+0000)"
SURROGATE_MESSAGE = "must not contain a lone surrogate (U+D800 to U+DFFF): it is not Unicode text"
INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1
INTEGER_MESSAGE = "must be a 64-bit integer (-2^63 to 2^63-1)"
EARLIEST_INSTANT = datetime(1900, 1, 1, tzinfo=UTC)
LATEST_INSTANT = datetime(9999, 1, 1, tzinfo=UTC)
INSTANT_MESSAGE = "must be from 1900-01-01T00:00:00Z to before 9999-01-01T00:00:00Z"

# The rules as published in EVENTS.md and the AsyncAPI document.
RULES: tuple[str, ...] = (
    "no string (an attribute, a field, a key or a value of free-form JSON such as "
    "`properties`) contains the NUL character U+0000 or a lone surrogate U+D800 to U+DFFF "
    "(Postgres cannot store the first; the second is not Unicode text);",
    "every integer fits in 64 bits (-2^63 to 2^63-1);",
    "every timestamp (`time` and each timestamp field) is from 1900-01-01T00:00:00Z to "
    "before 9999-01-01T00:00:00Z.",
)

_UNSTORABLE_TEXT = re.compile("[\x00\ud800-\udfff]")
_SURROGATE = re.compile("[\ud800-\udfff]")

Location = tuple[str | int, ...]
# What a validated field can hold that a rule applies to (pydantic gives exact builtins).
_CHECKED_TYPES = frozenset({int, datetime, dict, list, tuple, set, frozenset})


def text_problem(value: str) -> str | None:
    """Why `value` cannot be stored as text, or None."""
    if value.isascii():
        return NUL_MESSAGE if "\x00" in value else None
    found = _UNSTORABLE_TEXT.search(value)
    if found is None:
        return None
    return NUL_MESSAGE if found.group() == "\x00" else SURROGATE_MESSAGE


def instant_problem(value: datetime) -> str | None:
    """Why `value` is not an instant every service can store and compute with, or None."""
    # Comparing aware datetimes never converts them, so it cannot overflow; naive is UTC.
    moment = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
    return None if EARLIEST_INSTANT <= moment < LATEST_INSTANT else INSTANT_MESSAGE


def first_problem(value: Any) -> tuple[Location, str] | None:
    """The location and reason of the first value that breaks a rule, in a JSON-like value
    (strings, integers, datetimes, mappings with their keys, sequences); None if none does.

    Pydantic models inside are not walked: they check their own fields.
    """
    if isinstance(value, str):
        problem = text_problem(value)
        return None if problem is None else ((), problem)
    if value is None or isinstance(value, bool | float):
        return None
    if isinstance(value, int):
        return None if INT64_MIN <= value <= INT64_MAX else ((), INTEGER_MESSAGE)
    if isinstance(value, datetime):
        problem = instant_problem(value)
        return None if problem is None else ((), problem)
    if isinstance(value, dict):
        return _first_in_mapping(value)
    if isinstance(value, list | tuple | set | frozenset):
        return _first_in_items(value)
    if isinstance(value, Mapping):  # after the cheap checks: an abstract class is slower
        return _first_in_mapping(value)
    return None  # decimals, models (which check their own fields), anything else


def _first_in_mapping(value: Mapping[Any, Any]) -> tuple[Location, str] | None:
    for key, item in value.items():
        if isinstance(key, str):
            problem = text_problem(key)
            if problem is not None:
                return (), f"a key {problem}"
        found = first_problem(item)
        if found is not None:
            return (key if isinstance(key, str | int) else str(key), *found[0]), found[1]
    return None


def _first_in_items(value: Iterable[Any]) -> tuple[Location, str] | None:
    for index, item in enumerate(value):
        found = first_problem(item)
        if found is not None:
            return (index, *found[0]), found[1]
    return None


def _details(location: Location, problem: str, value: Any) -> InitErrorDetails:
    return InitErrorDetails(
        type=PydanticCustomError("unstorable_value", "{message}", {"message": problem}),
        loc=location,
        input=value,
    )


def check_storable(value: Any) -> Any:
    """`value` unchanged, or a validation error located where inside it a rule is broken
    (an `AfterValidator` for free-form JSON, whose errors then name the key)."""
    found = first_problem(value)
    if found is None:
        return value
    location, problem = found
    raise ValidationError.from_exception_data("storable", [_details(location, problem, value)])


class StorableModel(BaseModel):
    """Base of models whose every field must be storable (see the module docstring)."""

    @model_validator(mode="after")
    def _storable(self) -> Self:
        # One pass over the fields once they are validated (cheaper than a validator per
        # field); errors raised from here keep their location: the field, then inside it.
        errors: list[InitErrorDetails] = []
        for name, value in self.__dict__.items():
            kind = type(value)
            if kind is str:  # the common cases, without a call
                if "\x00" not in value and (value.isascii() or not _SURROGATE.search(value)):
                    continue
            elif kind is int:
                if INT64_MIN <= value <= INT64_MAX:
                    continue
            elif kind is datetime and value.tzinfo is not None:
                if EARLIEST_INSTANT <= value < LATEST_INSTANT:
                    continue
            elif kind not in _CHECKED_TYPES:
                continue  # None, bool, float, Decimal, an enum member, a model (checked itself)
            found = first_problem(value)
            if found is not None:
                location, problem = found
                errors.append(_details((name, *location), problem, value))
        if errors:
            raise ValidationError.from_exception_data(type(self).__name__, errors)
        return self
