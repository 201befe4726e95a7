"""Building blocks shared by the event data models: base classes, ids, money, channels."""

import math
import re
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from typing import Annotated, Any, ClassVar

from pydantic import (
    AwareDatetime,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainValidator,
    WithJsonSchema,
)

from crm_contracts.storable import StorableModel


class EventModel(StorableModel):
    """Base of data a service publishes: consumers ignore fields added after they were built.

    Every field is storable (`crm_contracts.storable`): no NUL or lone surrogate in any
    string, 64-bit integers, instants from 1900 to 9999.
    """

    model_config = ConfigDict(extra="ignore", frozen=True)

    # Dotted path of the field that names the contact, used as the default CloudEvents subject.
    subject_field: ClassVar[str | None] = "contact_id"


class InputModel(EventModel):
    """Base of data a caller outside the backbone controls: unknown fields are refused."""

    model_config = ConfigDict(extra="forbid", frozen=True)


OpaqueId = Annotated[
    str,
    Field(
        min_length=1,
        max_length=128,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:\-]*$",
        description="Opaque identifier (letters, digits, '_', '.', ':', '-'); never an email "
        "or a phone number.",
    ),
]
ContactId = Annotated[OpaqueId, Field(description="Opaque id of a contact (contacts service).")]
EventId = Annotated[
    str,
    Field(min_length=1, max_length=256, description="CloudEvents id of another event."),
]
Code = Annotated[
    str,
    Field(
        pattern=r"^[a-z][a-z0-9_]{0,63}$",
        description="Lowercase snake_case code.",
    ),
]
ShortText = Annotated[str, Field(min_length=1, max_length=200)]
Timestamp = Annotated[AwareDatetime, Field(description="RFC 3339 timestamp with a time zone.")]

_DECIMAL = re.compile(r"^-?\d{1,18}(\.\d{1,6})?$")


def _parse_decimal(value: Any) -> Any:
    """Accept a decimal string (the contract) and, leniently, an integer or float."""
    if isinstance(value, bool):
        raise ValueError("must be a decimal string like '120.00'")
    if isinstance(value, int | float):
        value = str(value)
    if isinstance(value, str):
        if not _DECIMAL.fullmatch(value):
            raise ValueError("must be a decimal string like '120.00'")
        try:
            return Decimal(value)
        except InvalidOperation as exc:  # pragma: no cover - the pattern already rules it out
            raise ValueError("must be a decimal string like '120.00'") from exc
    return value


Amount = Annotated[
    Decimal,
    BeforeValidator(_parse_decimal),
    Field(ge=0, max_digits=24, decimal_places=6),
    WithJsonSchema(
        {
            "type": "string",
            "pattern": r"^\d{1,18}(\.\d{1,6})?$",
            "description": 'Non-negative decimal amount as a string, e.g. "120.00".',
            "examples": ["120.00"],
        }
    ),
]
SignedAmount = Annotated[
    Decimal,
    BeforeValidator(_parse_decimal),
    Field(max_digits=24, decimal_places=6),
    WithJsonSchema(
        {
            "type": "string",
            "pattern": r"^-?\d{1,18}(\.\d{1,6})?$",
            "description": 'Decimal amount as a string, may be negative, e.g. "-12.50".',
            "examples": ["-12.50"],
        }
    ),
]
Currency = Annotated[
    str,
    Field(pattern=r"^[A-Z]{3}$", description="ISO 4217 currency code, e.g. EUR.", examples=["EUR"]),
]


def _scalar_checker(max_length: int, *, nullable: bool) -> PlainValidator:
    """One validator for a free-form scalar, so that an error names the value, not a branch."""
    allowed = "a string, number, boolean" + (" or null" if nullable else "")

    def check(value: Any) -> Any:
        if value is None and nullable:
            return value
        if isinstance(value, bool | int):
            return value
        if isinstance(value, float) and math.isfinite(value):
            return value
        if isinstance(value, str):
            if len(value) > max_length:
                raise ValueError(f"must be at most {max_length} characters")
            return value
        raise ValueError(f"must be {allowed}")

    return PlainValidator(check)


def _scalar_schema(max_length: int, *, nullable: bool) -> WithJsonSchema:
    branches: list[Any] = [
        {"type": "string", "maxLength": max_length},
        {"type": "number"},
        {"type": "boolean"},
    ]
    if nullable:
        branches.append({"type": "null"})
    return WithJsonSchema({"anyOf": branches})


ShortScalar = Annotated[
    str | int | float | bool,
    _scalar_checker(256, nullable=False),
    _scalar_schema(256, nullable=False),
]
Scalar = Annotated[
    str | int | float | bool,
    _scalar_checker(1024, nullable=False),
    _scalar_schema(1024, nullable=False),
]
NullableScalar = Annotated[
    str | int | float | bool | None,
    _scalar_checker(1024, nullable=True),
    _scalar_schema(1024, nullable=True),
]


class Channel(StrEnum):
    """Channel through which the organisation and the customer meet."""

    WEB = "web"
    EMAIL = "email"
    PHONE = "phone"
    CHAT = "chat"
    SMS = "sms"
    SOCIAL = "social"
    STORE = "store"
    APP = "app"
    SUPPORT = "support"
    PARTNER = "partner"


class Money(EventModel):
    """An amount of money in one currency."""

    amount: Amount
    currency: Currency
