"""Channels authenticate with per-source API keys; operators manage them with a JWT scope."""

from __future__ import annotations

import asyncio
import os
import sys

import asyncpg

from crm_contracts import to_json_dict
from crm_ingest.domain import api_key_prefix, hash_api_key
from tests.integration.ingest.conftest import SOURCE, Ingest
from tests.support.events import interaction

PROBLEM = "application/problem+json"


def _event(source: str = SOURCE) -> dict[str, object]:
    event = to_json_dict(interaction())
    event["source"] = source
    return event


async def _assert_unauthorized(ingest: Ingest, headers: dict[str, str]) -> None:
    response = await ingest.http.post("/v1/events", json=_event(), headers=headers)
    assert response.status_code == 401, response.text
    assert response.headers["content-type"] == PROBLEM
    assert response.headers["www-authenticate"] == "ApiKey"


async def test_a_request_without_an_api_key_is_401(ingest: Ingest) -> None:
    await _assert_unauthorized(ingest, {})


async def test_a_bearer_token_is_not_an_api_key(ingest: Ingest) -> None:
    await _assert_unauthorized(ingest, ingest.bearer("admin"))


async def test_an_unknown_or_malformed_api_key_is_401(ingest: Ingest, api_key: str) -> None:
    prefix = api_key_prefix(api_key)
    forged = f"{prefix}_{'A' * 43}"  # a real prefix with a wrong secret
    assert api_key_prefix(forged) == prefix
    for key in ("nonsense", forged, api_key + "x"):
        await _assert_unauthorized(ingest, {"X-API-Key": key})


async def test_the_authorization_header_takes_an_api_key_too(ingest: Ingest, api_key: str) -> None:
    response = await ingest.http.post(
        "/v1/events", json=_event(), headers={"Authorization": f"ApiKey {api_key}"}
    )
    assert response.status_code == 202, response.text


async def test_two_active_keys_of_one_source_both_work_and_a_revoked_one_fails(
    ingest: Ingest,
) -> None:
    old, new = await ingest.create_key(), await ingest.create_key()
    assert old["prefix"] != new["prefix"]
    for created in (old, new):
        response = await ingest.post_events(_event(), created["key"])
        assert response.status_code == 202, response.text
    revoked = await ingest.http.delete(
        f"/v1/api-keys/{old['id']}", headers=ingest.bearer("apikeys:write")
    )
    assert revoked.status_code == 204
    await _assert_unauthorized(ingest, {"X-API-Key": old["key"]})
    assert (await ingest.post_events(_event(), new["key"])).status_code == 202
    again = await ingest.http.delete(
        f"/v1/api-keys/{old['id']}", headers=ingest.bearer("apikeys:write")
    )
    assert again.status_code == 204  # revoking twice is harmless


async def test_a_key_publishes_for_its_own_source_only(ingest: Ingest) -> None:
    pos = await ingest.create_key(source="urn:channel:pos")
    response = await ingest.post_events(_event(SOURCE), pos["key"])
    assert response.status_code == 422
    assert response.json()["results"][0]["reason"] == "source_not_allowed"
    assert (await ingest.post_events(_event("urn:channel:pos"), pos["key"])).status_code == 202


async def test_only_the_hash_of_a_key_is_stored(ingest: Ingest) -> None:
    created = await ingest.create_key()
    conn = await asyncpg.connect(ingest.settings.database_url)
    try:
        row = await conn.fetchrow(
            "SELECT key_hash, prefix FROM ingest_api_keys WHERE id = $1::uuid", created["id"]
        )
        dump = await conn.fetchval("SELECT string_agg(t::text, ' ') FROM ingest_api_keys t")
    finally:
        await conn.close()
    assert row is not None and bytes(row["key_hash"]) == hash_api_key(created["key"])
    assert created["key"] not in dump


async def test_managing_keys_needs_a_token_with_the_apikeys_scopes(ingest: Ingest) -> None:
    body = {"source": SOURCE, "description": "web shop"}
    no_token = await ingest.http.post("/v1/api-keys", json=body)
    assert no_token.status_code == 401
    for scopes in (("contacts:write",), ("apikeys:read",)):
        response = await ingest.http.post("/v1/api-keys", json=body, headers=ingest.bearer(*scopes))
        assert response.status_code == 403, scopes
        assert response.headers["content-type"] == PROBLEM
    listing = await ingest.http.get("/v1/api-keys", headers=ingest.bearer("apikeys:write"))
    assert listing.status_code == 403  # write does not imply read
    created = await ingest.http.post(
        "/v1/api-keys", json=body, headers=ingest.bearer("apikeys:write")
    )
    assert created.status_code == 201
    assert created.headers["location"] == f"/v1/api-keys/{created.json()['id']}"
    forbidden = await ingest.http.delete(
        f"/v1/api-keys/{created.json()['id']}", headers=ingest.bearer("apikeys:read")
    )
    assert forbidden.status_code == 403


async def test_listing_keys_shows_no_secret_and_hides_revoked_keys_unless_asked(
    ingest: Ingest,
) -> None:
    kept = await ingest.create_key(description="kept")
    gone = await ingest.create_key(description="gone")
    await ingest.create_key(source="urn:channel:pos")
    await ingest.http.delete(f"/v1/api-keys/{gone['id']}", headers=ingest.bearer("apikeys:write"))
    reader = ingest.bearer("apikeys:read")
    active = await ingest.http.get("/v1/api-keys", params={"source": SOURCE}, headers=reader)
    assert active.status_code == 200
    assert [k["id"] for k in active.json()["items"]] == [kept["id"]]
    assert kept["key"] not in active.text and "key_hash" not in active.text
    assert "key" not in active.json()["items"][0]
    everything = await ingest.http.get(
        "/v1/api-keys", params={"source": SOURCE, "include_revoked": "true"}, headers=reader
    )
    items = {k["id"]: k for k in everything.json()["items"]}
    assert set(items) == {kept["id"], gone["id"]}
    assert items[gone["id"]]["active"] is False and items[gone["id"]]["revoked_at"]
    one = await ingest.http.get(f"/v1/api-keys/{kept['id']}", headers=reader)
    assert one.json()["description"] == "kept" and one.json()["created_by"] == "ops-test"
    page = await ingest.http.get("/v1/api-keys", params={"limit": 501}, headers=reader)
    assert page.status_code == 422


async def test_a_used_key_shows_when_it_was_last_used(ingest: Ingest, api_key: str) -> None:
    assert (await ingest.post_events(_event(), api_key)).status_code == 202
    listing = await ingest.http.get("/v1/api-keys", headers=ingest.bearer("apikeys:read"))
    [item] = listing.json()["items"]
    assert item["last_used_at"] is not None


async def test_revoking_an_unknown_key_is_404(ingest: Ingest) -> None:
    response = await ingest.http.delete(
        "/v1/api-keys/00000000-0000-0000-0000-000000000000", headers=ingest.bearer("apikeys:write")
    )
    assert response.status_code == 404
    assert response.headers["content-type"] == PROBLEM


async def test_a_key_needs_a_source_without_blanks(ingest: Ingest) -> None:
    for body in ({"source": "urn:channel: web"}, {"source": ""}, {"source": SOURCE, "x": 1}):
        response = await ingest.http.post(
            "/v1/api-keys", json=body, headers=ingest.bearer("apikeys:write")
        )
        assert response.status_code == 422, body


async def _cli(database_url: str, *args: str) -> tuple[int, str, str]:
    env = {**os.environ, "CRM_INGEST_DATABASE_URL": database_url}
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "crm_ingest",
        *args,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout=60)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_the_cli_create_key_prints_a_key_that_works(ingest: Ingest) -> None:
    code, out, err = await _cli(
        ingest.settings.database_url, "create-key", "--source", SOURCE, "--description", "cli"
    )
    assert code == 0, err
    key = out.strip()
    assert len(out.splitlines()) == 1 and "shown once" in err
    response = await ingest.post_events(_event(), key)
    assert response.status_code == 202, response.text
    code, out, err = await _cli(ingest.settings.database_url, "list-keys", "--source", SOURCE)
    assert code == 0, err
    assert key not in out and f"\t{api_key_prefix(key)}\t" in out


async def test_the_cli_refuses_a_source_with_blanks(ingest: Ingest) -> None:
    code, _, err = await _cli(ingest.settings.database_url, "create-key", "--source", "a b")
    assert code == 2 and "source" in err
