"""Rows to and from JSON for multi-row writes: one `jsonb_populate_recordset` statement per
table, whatever the batch size."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, is_dataclass
from datetime import datetime
from decimal import Decimal
from enum import Enum
from typing import Any


def jsonable(value: Any) -> Any:
    """A value as JSON: times in ISO 8601, enums by value, decimals as strings (exact)."""
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, Enum):
        return value.value
    return value


def records(items: Iterable[Any]) -> list[dict[str, Any]]:
    """Dataclasses or dicts as JSON objects for `jsonb_populate_recordset`."""
    out = []
    for item in items:
        fields = asdict(item) if is_dataclass(item) and not isinstance(item, type) else dict(item)
        out.append({name: jsonable(value) for name, value in fields.items()})
    return out
