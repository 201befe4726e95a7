"""Which services `crmctl up` starts (CRM_STACK_SERVICES, `up --services`)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import ValidationError

from crm_stack import stack as stack_module
from crm_stack.cli import main
from crm_stack.errors import StackError
from crm_stack.services import KNOWN_SERVICES, parse_service_names
from crm_stack.settings import StackSettings
from crm_stack.stack import Stack, StackState

EVERY = tuple(s.name for s in KNOWN_SERVICES)


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("CRM_STACK_SERVICES", raising=False)
    monkeypatch.setenv("CRM_STACK_STATE_DIR", str(tmp_path / "state"))


def test_every_service_is_started_unless_some_are_named() -> None:
    assert StackSettings().services == EVERY
    assert parse_service_names("all") == parse_service_names("") == EVERY


def test_names_are_comma_separated_and_started_in_the_stacks_order(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CRM_STACK_SERVICES", " scoring, Contacts ,scoring")
    assert StackSettings().services == ("contacts", "scoring")


def test_none_starts_postgresql_and_the_broker_only(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CRM_STACK_SERVICES", "none")
    assert StackSettings().services == ()
    assert StackSettings(services=[]).services == ()


def test_an_unknown_name_is_refused_naming_the_known_ones() -> None:
    with pytest.raises(ValueError, match="no service 'scorer'") as refused:
        parse_service_names("contacts,scorer")
    assert ", ".join(EVERY) in str(refused.value)
    with pytest.raises(ValidationError, match="no service 'scorer'"):
        StackSettings(services="scorer")


def test_all_and_none_do_not_mix_with_names() -> None:
    with pytest.raises(ValueError, match="stand alone"):
        parse_service_names("none,contacts")


def test_up_refuses_an_unknown_service_in_one_line_before_anything_starts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["up", "--services", "contacts,scorer"]) == 2
    err = capsys.readouterr().err
    assert err.splitlines() == [
        "crmctl: error: --services: no service 'scorer': the known ones are "
        "ingest, contacts, cases, campaigns, scoring (or `all`, `none`)"
    ]
    assert not (tmp_path / "state").exists()


def test_the_setting_is_named_when_it_is_wrong(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("CRM_STACK_SERVICES", "contact")
    assert main(["status"]) == 2
    assert capsys.readouterr().err.startswith("crmctl: error: CRM_STACK_SERVICES: no service")


def test_status_without_a_stack_lists_the_services_up_would_start() -> None:
    stack = Stack(StackSettings(services="cases,ingest"))
    names = [c.name for c in stack.status()]
    assert names == ["postgres", "broker", "ingest", "cases", "supervisor"]


def test_status_lists_what_the_running_stack_started_whatever_the_setting_says_now() -> None:
    stack = Stack(StackSettings(services="all"))
    stack.save_state(StackState(selection=["contacts"]))
    assert [c.name for c in stack.status() if c.kind == "service"] == ["contacts"]


def test_restart_of_a_service_the_stack_does_not_run_says_which_it_runs() -> None:
    stack = Stack(StackSettings())
    stack.save_state(StackState(selection=["contacts", "scoring"]))
    with pytest.raises(StackError, match=r"does not run cases \(it runs contacts, scoring\)"):
        stack.restart("cases")


def test_a_stack_file_of_an_earlier_crmctl_shows_the_services_it_has() -> None:
    stack = Stack(StackSettings())
    state = StackState(services={"ingest": {"restarts": 0}})
    stack.state_file.parent.mkdir(parents=True)
    stack.state_file.write_text(
        json.dumps({k: v for k, v in state.__dict__.items() if k != "selection"})
    )
    assert [c.name for c in stack.status() if c.kind == "service"] == ["ingest"]


def test_all_is_every_installed_service_and_a_name_not_installed_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    without_campaigns = [s for s in KNOWN_SERVICES if s.name != "campaigns"]
    monkeypatch.setattr(stack_module, "installed_services", lambda: without_campaigns)
    assert Stack(StackSettings()).selected_services() == without_campaigns
    with pytest.raises(StackError, match="campaigns not installed in this environment"):
        Stack(StackSettings(services="contacts,campaigns")).selected_services()
