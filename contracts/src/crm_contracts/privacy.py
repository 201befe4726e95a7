"""Privacy events on `crm.privacy.v1`, keyed by contact_id: erasure asked for and done."""

from typing import Annotated

from pydantic import Field

from crm_contracts.base import ContactId, EventModel, OpaqueId

PRIVACY_ERASURE_REQUESTED = "crm.privacy.erasure_requested"
PRIVACY_ERASURE_COMPLETED = "crm.privacy.erasure_completed"

ServiceName = Annotated[
    str, Field(pattern=r"^[a-z][a-z0-9_\-]{0,63}$", description="Service name, e.g. cases.")
]


class ErasureRequested(EventModel):
    """Someone asked for a contact's personal data to be erased everywhere."""

    request_id: OpaqueId
    contact_id: ContactId
    requested_by: OpaqueId = Field(description="Opaque id of the user or system that asked.")
    reason: Annotated[str, Field(max_length=500)] | None = None


class ErasureCompleted(EventModel):
    """One service finished erasing a contact's personal data."""

    request_id: OpaqueId
    contact_id: ContactId
    service: ServiceName
    records_erased: int | None = Field(default=None, ge=0)


EVENTS: dict[str, type[EventModel]] = {
    PRIVACY_ERASURE_REQUESTED: ErasureRequested,
    PRIVACY_ERASURE_COMPLETED: ErasureCompleted,
}
