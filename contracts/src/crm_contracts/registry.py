"""Every event type of the backbone, mapped to the model of its data."""

from pydantic import BaseModel

from crm_contracts import campaigns, cases, contacts, interactions, privacy, scores

SCHEMA_BASE_URI = "https://crm-backbone.dev/schemas/"

EVENT_TYPES: dict[str, type[BaseModel]] = {
    **interactions.EVENTS,
    **contacts.EVENTS,
    **cases.EVENTS,
    **campaigns.EVENTS,
    **scores.EVENTS,
    **privacy.EVENTS,
}


class UnknownEventType(KeyError):
    """The event type is not in the registry."""

    def __init__(self, type: str) -> None:
        super().__init__(type)
        self.type = type

    def __str__(self) -> str:
        return f"unknown event type {self.type!r}"


def data_model_for(type: str) -> type[BaseModel]:
    """The data model registered for an event type; UnknownEventType if there is none."""
    try:
        return EVENT_TYPES[type]
    except KeyError:
        raise UnknownEventType(type) from None


def schema_uri(type: str) -> str:
    """The URI of the committed JSON Schema of an event type's data."""
    data_model_for(type)
    return f"{SCHEMA_BASE_URI}{type}.json"
