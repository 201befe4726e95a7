"""Contacts by hand: create (idempotent), search and list, read, change, delete."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Response, status
from pydantic import BaseModel, Field, model_validator

from crm_contacts import domain, handlers
from crm_contacts.api.dependencies import Ctx, Reader, Writer
from crm_contacts.api.models import Reason, Text
from crm_contracts.base import ShortScalar
from crm_contracts.contacts import IdentityType, LifecycleStage
from crm_kit.api import MAX_PAGE, IdempotencyKey, Input, Page, created, in_transaction
from crm_kit.http import CorrelationIdDep
from crm_kit.idempotency import IdempotentPost
from crm_kit.inputs import Instant
from crm_kit.problems import ProblemError, problem_responses
from crm_kit.runtime import ConnectionDep, SnapshotDep

router = APIRouter()


class ProfileFields(Input):
    """Profile traits an agent may set."""

    first_name: Text | None = None
    last_name: Text | None = None
    company: Text | None = None
    job_title: Text | None = None
    locale: Text | None = None
    country: Text | None = None
    city: Text | None = None
    timezone: Text | None = None
    custom: dict[Annotated[str, Field(min_length=1, max_length=64)], ShortScalar] | None = Field(
        default=None, max_length=20
    )


class ContactCreate(ProfileFields):
    """A contact an agent creates; at least one identifier or a name."""

    email: Annotated[str, Field(max_length=254)] | None = None
    phone: Annotated[str, Field(max_length=32)] | None = None
    external_ids: dict[
        Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_.\-]{0,63}$")],
        Annotated[str, Field(min_length=1, max_length=256)],
    ] = Field(default_factory=dict, max_length=20)
    anonymous_id: Annotated[str, Field(min_length=1, max_length=256)] | None = None
    stage: LifecycleStage | None = None
    account_id: Annotated[str, Field(max_length=128)] | None = None

    @model_validator(mode="after")
    def _someone(self) -> ContactCreate:
        identified = self.email or self.phone or self.external_ids or self.anonymous_id
        if not identified and not (self.first_name or self.last_name):
            raise ValueError("give at least one identifier or a name")
        return self


class ContactPatch(ProfileFields):
    """Fields to change; a field sent as null is cleared, a field left out is kept."""

    account_id: Annotated[str, Field(max_length=128)] | None = None


class DeleteIn(Input):
    """Why the contact is deleted (optional)."""

    reason: Reason | None = None


class Profile(BaseModel):
    """A contact's profile traits."""

    first_name: str | None = None
    last_name: str | None = None
    company: str | None = None
    job_title: str | None = None
    locale: str | None = None
    country: str | None = None
    city: str | None = None
    timezone: str | None = None
    custom: dict[str, Any] = Field(default_factory=dict)


class IdentifierOut(BaseModel):
    """An identifier pointing at the contact."""

    kind: IdentityType
    value: str
    origin_contact_id: str
    linked_at: datetime


class ContactSummary(BaseModel):
    """A contact in a list."""

    id: str
    status: Literal["active", "merged", "deleted", "erased"]
    stage: LifecycleStage
    profile: Profile
    account_id: str | None
    created_at: datetime
    updated_at: datetime

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> ContactSummary:
        """A contact row in a list."""
        return cls(**_summary(row))


class ContactOut(ContactSummary):
    """One contact, with its identifiers and the contacts merged into it."""

    identifiers: list[IdentifierOut]
    merged_ids: list[str]
    resolved_from: str | None = Field(
        default=None, description="The merged id asked for, when it is not this contact's id."
    )

    @classmethod
    def from_details(cls, contact: handlers.ContactDetails) -> ContactOut:
        """A contact with its identifiers and merged ids."""
        return cls(
            **_summary(contact.row),
            identifiers=[IdentifierOut(**i) for i in contact.identifiers],
            merged_ids=contact.merged_ids,
            resolved_from=contact.resolved_from,
        )


def _summary(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": row["id"],
        "status": row["status"],
        "stage": row["stage"],
        "profile": handlers.profile_of(row),
        "account_id": row["account_id"],
        "created_at": row["created_at"],
        "updated_at": row["updated_at"],
    }


def parse_identifier(kind: IdentityType, raw: str, region: str) -> domain.Identifier:
    identifier = domain.normalise_identifier(kind, raw, region=region)
    if identifier is None:
        raise ProblemError(422, detail=f"The {kind.value} is not valid.", slug="invalid-identifier")
    return identifier


def _new_contact(body: ContactCreate, region: str) -> handlers.NewContact:
    identifiers: list[domain.Identifier] = []
    for system, value in sorted(body.external_ids.items()):
        identifiers.append(parse_identifier(IdentityType.EXTERNAL_ID, f"{system}:{value}", region))
    for kind, raw in (
        (IdentityType.EMAIL, body.email),
        (IdentityType.PHONE, body.phone),
        (IdentityType.ANONYMOUS_ID, body.anonymous_id),
    ):
        if raw is not None:
            identifiers.append(parse_identifier(kind, raw, region))
    return handlers.NewContact(
        identifiers=tuple(dict.fromkeys(identifiers)),
        profile=body.model_dump(include={*domain.PROFILE_FIELDS, "custom"}, exclude_none=True),
        stage=body.stage,
        account_id=body.account_id,
    )


@router.post(
    "/contacts",
    status_code=status.HTTP_201_CREATED,
    response_model=ContactOut,
    responses=problem_responses(409),
)
async def create_contact(
    body: ContactCreate,
    principal: Writer,
    conn: ConnectionDep,
    ctx: Ctx,
    correlation_id: CorrelationIdDep,
    idempotency_key: IdempotencyKey = None,
) -> Any:
    """Create a contact by hand (409 if an identifier already belongs to someone)."""
    answer = await handlers.create_contact_once(
        conn,
        ctx,
        _new_contact(body, ctx.settings.default_phone_region),
        post=IdempotentPost.of(
            body, principal=principal.subject, operation="create_contact", key=idempotency_key
        ),
        render=ContactOut.from_details,
        correlation_id=correlation_id,
    )
    return created(answer, "/v1/contacts")


@router.get("/contacts", response_model=Page[ContactSummary], responses=problem_responses(400))
async def list_contacts(
    principal: Reader,
    conn: SnapshotDep,
    ctx: Ctx,
    email: Annotated[str | None, Query(max_length=254)] = None,
    phone: Annotated[str | None, Query(max_length=32)] = None,
    external_id: Annotated[
        str | None, Query(max_length=322, description="`system:id`, e.g. webshop:c-42.")
    ] = None,
    anonymous_id: Annotated[str | None, Query(max_length=256)] = None,
    q: Annotated[str | None, Query(min_length=1, max_length=100, description="Name.")] = None,
    stage: LifecycleStage | None = None,
    account_id: Annotated[str | None, Query(max_length=128)] = None,
    updated_since: Instant | None = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 50,
    cursor: Annotated[str | None, Query(max_length=512)] = None,
) -> Page[ContactSummary]:
    """Search by one identifier or name, or list by stage, account and update time."""
    keys = [
        (kind, raw)
        for kind, raw in (
            (IdentityType.EMAIL, email),
            (IdentityType.PHONE, phone),
            (IdentityType.EXTERNAL_ID, external_id),
            (IdentityType.ANONYMOUS_ID, anonymous_id),
        )
        if raw is not None
    ]
    if len(keys) > 1:
        raise ProblemError(422, detail="Search by one identifier at a time.")
    region = ctx.settings.default_phone_region
    rows = await handlers.search_contacts(
        conn,
        identifier=parse_identifier(*keys[0], region) if keys else None,
        name=q,
        stage=stage,
        account_id=account_id,
        updated_since=updated_since,
        cursor=cursor,
        limit=limit,
    )
    return Page[ContactSummary].of(rows, ContactSummary.from_row)


@router.get(
    "/contacts/{contact_id}", response_model=ContactOut, responses=problem_responses(404, 410)
)
async def get_contact(contact_id: str, principal: Reader, conn: SnapshotDep) -> ContactOut:
    """One contact; a merged id answers for its survivor (see `resolved_from`)."""
    return ContactOut.from_details(await handlers.get_contact(conn, contact_id))


@router.patch(
    "/contacts/{contact_id}", response_model=ContactOut, responses=problem_responses(404, 409, 410)
)
async def update_contact(
    contact_id: str,
    body: ContactPatch,
    principal: Writer,
    conn: ConnectionDep,
    ctx: Ctx,
    correlation_id: CorrelationIdDep,
) -> ContactOut:
    """Change profile fields or the account link; emits contact.updated."""
    changes = {name: getattr(body, name) for name in body.model_fields_set}
    contact = await in_transaction(
        conn,
        handlers.update_contact,
        ctx,
        contact_id=contact_id,
        changes=changes,
        correlation_id=correlation_id,
    )
    return ContactOut.from_details(contact)


@router.delete(
    "/contacts/{contact_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=problem_responses(404, 410),
)
async def delete_contact(
    contact_id: str,
    principal: Writer,
    conn: ConnectionDep,
    ctx: Ctx,
    correlation_id: CorrelationIdDep,
    body: DeleteIn | None = None,
) -> Response:
    """Soft-delete a contact (not an erasure); emits contact.deleted."""
    await in_transaction(
        conn,
        handlers.delete_contact,
        ctx,
        contact_id=contact_id,
        reason=None if body is None else body.reason,
        actor=principal.subject,
        correlation_id=correlation_id,
    )
    return Response(status_code=204)
