"""JSON logs on stdout, one object per line, carrying the event and correlation ids.

    configure_logging("contacts", settings.log_level)
    with log_context(event_id=str(envelope.id), correlation_id=envelope.correlation_id):
        logger.info("contact merged", extra={"survivor_id": str(survivor_id)})

gives

    {"time": "2025-01-01T12:00:00.123Z", "level": "INFO",
     "logger": "crm_contacts.handlers.resolution", "message": "contact merged",
     "service": "contacts", "event_id": "...", "correlation_id": "...", "survivor_id": "..."}

Logs must never carry PII: messages, `extra=` fields and context values are opaque ids,
counts, topics and outcomes, never an email, phone number, name or free text from a payload.
Run uvicorn with `log_config=None` so its loggers go through the same handler.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any

_EMPTY: Mapping[str, str] = MappingProxyType({})
_context: ContextVar[Mapping[str, str]] = ContextVar("crm_log_context", default=_EMPTY)

# Attributes every LogRecord has; anything else on a record came from `extra=`.
_RECORD_ATTRIBUTES = frozenset(
    logging.LogRecord("", logging.INFO, "", 0, "", None, None).__dict__
) | {"message", "asctime", "taskName"}
_CORE_FIELDS = ("time", "level", "logger", "message")


@contextmanager
def log_context(
    *, event_id: str | None = None, correlation_id: str | None = None, **fields: str | None
) -> Iterator[None]:
    """Add ids to every log line written inside the block; `None` leaves a value as it was."""
    updates = {"event_id": event_id, "correlation_id": correlation_id, **fields}
    merged = dict(_context.get())
    merged.update({key: str(value) for key, value in updates.items() if value is not None})
    token = _context.set(MappingProxyType(merged))
    try:
        yield
    finally:
        _context.reset(token)


def current_log_context() -> Mapping[str, str]:
    """Return the ids the current log context carries."""
    return _context.get()


class JsonFormatter(logging.Formatter):
    """Formats a record as one JSON object: core fields, service, context, extras."""

    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "time": _rfc3339(record.created),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "service": self.service,
        }
        out.update(_context.get())
        for key, value in record.__dict__.items():
            if key not in _RECORD_ATTRIBUTES and key not in _CORE_FIELDS:
                out[key] = value
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            out["stack"] = self.formatStack(record.stack_info)
        return json.dumps(out, default=str, ensure_ascii=False)


class _StdoutJsonHandler(logging.Handler):
    """Writes to the current `sys.stdout`, looked up per record so captures and redirects work."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record)
            sys.stdout.write(line + "\n")
            sys.stdout.flush()
        except Exception:
            self.handleError(record)


def configure_logging(service: str, level: str = "INFO") -> None:
    """Send all logs as JSON lines to stdout; calling it again only updates service and level."""
    numeric_level = logging.getLevelName(level.upper())
    if not isinstance(numeric_level, int):
        raise ValueError(f"unknown log level: {level!r}")
    root = logging.getLogger()
    handler = next((h for h in root.handlers if isinstance(h, _StdoutJsonHandler)), None)
    if handler is None:
        handler = _StdoutJsonHandler()
        root.addHandler(handler)
    handler.setFormatter(JsonFormatter(service))
    root.setLevel(numeric_level)


def _rfc3339(created: float) -> str:
    moment = datetime.fromtimestamp(created, tz=UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
