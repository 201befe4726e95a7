"""Keyset pages of rows: opaque cursors and where the next page starts.

after = decode_cursor(cursor, datetime, str) if cursor else None   # InvalidCursor: 400
rows = await repo.list_accounts(conn, after=after, limit=limit + 1)
return page_of(rows, limit, "created_at", "id")
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from crm_contracts.storable import first_problem
from crm_kit.errors import InvalidCursor


@dataclass(frozen=True)
class RowPage:
    """One page of rows; `next_cursor` (None on the last page) asks for the next."""

    items: list[dict[str, Any]]
    next_cursor: str | None


def encode_cursor(*values: Any) -> str:
    """An opaque cursor of a row's sort key."""
    raw = json.dumps([v.isoformat() if isinstance(v, datetime) else v for v in values])
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(cursor: str, *types: type) -> tuple[Any, ...]:
    """The sort key a cursor holds, checked against `types`; InvalidCursor when it is not
    one of ours."""
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        values = json.loads(base64.urlsafe_b64decode(padded.encode()))
        if not isinstance(values, list) or len(values) != len(types):
            raise ValueError
        out: list[Any] = []
        for value, kind in zip(values, types, strict=True):
            if kind is datetime:
                out.append(datetime.fromisoformat(value))
            elif isinstance(value, kind):
                out.append(value)
            else:
                raise ValueError
        if first_problem(out) is not None:
            raise ValueError  # a forged cursor: nothing in it may reach Postgres unchecked
        return tuple(out)
    except (ValueError, TypeError, binascii.Error, UnicodeDecodeError):
        raise InvalidCursor("The cursor is not valid.") from None


def page_of(rows: Sequence[dict[str, Any]], limit: int, *key: str) -> RowPage:
    """The first `limit` of rows fetched with `limit + 1`; a cursor on `key` if there are more."""
    more = len(rows) > limit
    items = list(rows[:limit])
    next_cursor = encode_cursor(*(items[-1][k] for k in key)) if more and items else None
    return RowPage(items=items, next_cursor=next_cursor)
