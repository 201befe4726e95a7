"""Domain errors: what a use case raises when it refuses, whoever called it.

A use case raises `NotFound`, `Gone`, `Conflict`, `InvalidInput` or `InvalidCursor`, never
an HTTP error, so that the same use case is safe from a route, a consumer and a timer:

- the API (the kit's problem handlers) answers a problem: the status of the class, the type
  `https://crm-backbone.dev/problems/<reason>`, `detail` and the `extensions` as members;
- the consumer pipeline dead-letters the event at once (no retry can change the verdict),
  with `x-error-reason` the reason in the dead-letter spelling (`contact_erased`).

`reason` is machine-readable and stable: clients and replays branch on it. Without one, the
class's default is used (`not-found`, `gone`, `conflict`, ...), which is also the problem type
of the same HTTP status answered by the kit.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar


class DomainError(Exception):
    """A use case refused: `reason` says why, `detail` explains it to a person."""

    default_reason: ClassVar[str] = "rejected"

    def __init__(
        self,
        detail: str,
        *,
        reason: str | None = None,
        extensions: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        self.reason = reason or self.default_reason
        self.extensions = dict(extensions or {})

    @property
    def dead_letter_reason(self) -> str:
        """The reason as dead letters spell reasons (`contact-erased` → `contact_erased`)."""
        return self.reason.replace("-", "_")


class NotFound(DomainError):
    """What the command names does not exist."""

    default_reason = "not-found"


class Gone(DomainError):
    """What the command names existed and is gone for good (deleted, erased)."""

    default_reason = "gone"


class Conflict(DomainError):
    """The command contradicts the current state (taken, changed meanwhile, not merged)."""

    default_reason = "conflict"


class InvalidInput(DomainError):
    """The command is well-formed but its values cannot be acted on."""

    default_reason = "validation-failed"


class InvalidCursor(InvalidInput):
    """A page cursor that is not one the service handed out."""

    default_reason = "invalid-cursor"
