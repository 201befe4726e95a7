"""asyncpg records as the plain dicts the repository returns, and LIKE patterns."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import asyncpg


def as_dict(record: asyncpg.Record | None) -> dict[str, Any] | None:
    """One record as a dict (None stays None)."""
    return None if record is None else dict(record.items())


def as_dicts(records: Sequence[asyncpg.Record]) -> list[dict[str, Any]]:
    """Records as dicts."""
    return [dict(r.items()) for r in records]


def contains_pattern(text: str) -> str:
    """A case-insensitive LIKE pattern matching `text` anywhere (`%`, `_`, `\\` escaped)."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped.lower()}%"
