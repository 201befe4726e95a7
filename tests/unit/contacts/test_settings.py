"""Settings of the contacts service: safe defaults, placeholders refused in production."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from crm_contacts.settings import ContactsSettings

REAL_JWT = "a-real-jwt-secret-of-enough-length-0123456789"


def test_defaults_merge_on_external_id_email_and_phone_but_not_anonymous_ids() -> None:
    settings = ContactsSettings()

    assert settings.http_port == 8001
    assert settings.auto_merge == {
        "external_id": True,
        "email": True,
        "phone": True,
        "anonymous_id": False,
    }


def test_auto_merge_rules_come_from_a_json_environment_variable(monkeypatch) -> None:
    monkeypatch.setenv("CRM_CONTACTS_AUTO_MERGE", '{"email": false, "phone": true}')
    monkeypatch.setenv("CRM_CONTACTS_DEFAULT_PHONE_REGION", "us")

    settings = ContactsSettings()

    assert settings.auto_merge == {"email": False, "phone": True}
    assert settings.default_phone_region == "US"


def test_an_unknown_identifier_kind_in_the_merge_rules_is_refused() -> None:
    with pytest.raises(ValidationError, match="unknown identifier kinds"):
        ContactsSettings(auto_merge={"fax": True})


def test_the_development_erasure_key_is_refused_in_production() -> None:
    with pytest.raises(ValidationError, match="erasure_hmac_key"):
        ContactsSettings(environment="production", jwt_secret=REAL_JWT)

    settings = ContactsSettings(
        environment="production", jwt_secret=REAL_JWT, erasure_hmac_key="k" * 40
    )
    assert settings.environment == "production"
