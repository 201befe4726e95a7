"""Sample events for tests, built through the public contract."""

from __future__ import annotations

import copy
import uuid
from typing import Any

from crm_contracts import CloudEvent, decode_json

RAW_INTERACTION: dict[str, Any] = {
    "specversion": "1.0",
    "id": "evt-0001",
    "source": "urn:channel:webshop",
    "type": "crm.interaction.recorded",
    "time": "2026-11-22T10:00:00Z",
    "datacontenttype": "application/json",
    "data": {
        "channel": "store",
        "kind": "purchase",
        "identity": {
            "email": "ada@example.com",
            "phone": "+44 20 7946 0000",
            "external_ids": {"webshop": "c-42"},
            "anonymous_id": "ck-1",
        },
        "value": {"amount": "120.00", "currency": "EUR"},
        "traits": {"first_name": "Ada", "last_name": "Lovelace"},
        "properties": {"order_id": "o-1"},
    },
}


def interaction(event_id: str | None = None, **data: Any) -> CloudEvent:
    """A valid raw interaction with a unique id (or the one given)."""
    body = copy.deepcopy(RAW_INTERACTION)
    body["id"] = event_id or f"evt-{uuid.uuid4().hex}"
    body["data"].update(data)
    return decode_json(body)
