"""JSON log lines and the log context."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest

from crm_kit.logs import configure_logging, current_log_context, log_context

logger = logging.getLogger("crm_kit.tests.logs")


@pytest.fixture(autouse=True)
def restore_root_logger() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def _lines(capsys: pytest.CaptureFixture[str]) -> list[dict[str, Any]]:
    out = capsys.readouterr().out
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def test_a_log_line_carries_the_ids_inside_log_context_and_not_after_it(
    capsys: pytest.CaptureFixture[str],
) -> None:
    configure_logging("contacts", "INFO")

    with log_context(event_id="evt-1", correlation_id="corr-1"):
        logger.info("contact merged", extra={"survivor_id": "c-1"})
    logger.info("batch committed")

    inside, after = _lines(capsys)
    assert inside["event_id"] == "evt-1"
    assert inside["correlation_id"] == "corr-1"
    assert inside["survivor_id"] == "c-1"
    assert inside["message"] == "contact merged"
    assert inside["service"] == "contacts"
    assert inside["level"] == "INFO"
    assert inside["logger"] == "crm_kit.tests.logs"
    assert inside["time"].endswith("Z")
    assert "event_id" not in after
    assert "correlation_id" not in after


def test_nested_log_contexts_add_to_and_restore_the_outer_one() -> None:
    with log_context(correlation_id="corr-1"):
        with log_context(event_id="evt-2"):
            assert current_log_context() == {"correlation_id": "corr-1", "event_id": "evt-2"}
        with log_context(correlation_id="corr-2"):
            assert current_log_context() == {"correlation_id": "corr-2"}
        assert current_log_context() == {"correlation_id": "corr-1"}
    assert current_log_context() == {}


def test_configure_logging_twice_writes_each_line_once(
    capsys: pytest.CaptureFixture[str],
) -> None:
    configure_logging("contacts", "INFO")
    configure_logging("scoring", "DEBUG")

    logger.debug("scored")

    (line,) = _lines(capsys)
    assert line["service"] == "scoring"


def test_lines_below_the_level_are_dropped(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("contacts", "WARNING")

    logger.info("quiet")
    logger.warning("loud")

    assert [line["message"] for line in _lines(capsys)] == ["loud"]


def test_an_unknown_level_is_refused() -> None:
    with pytest.raises(ValueError):
        configure_logging("contacts", "CHATTY")


def test_an_exception_is_logged_with_its_traceback(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("contacts", "INFO")

    try:
        raise KeyError("k")
    except KeyError:
        logger.exception("handler failed")

    (line,) = _lines(capsys)
    assert "KeyError" in line["exception"]
