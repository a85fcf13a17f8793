"""The client calls behind "no API key is ever lost": a bulk create's timeout sized to its chunk, a user's
keys listed across pages, revoking keys that are already gone."""

from __future__ import annotations

import json

import httpx

from .test_client import make


async def test_a_bulk_create_waits_longer_for_a_bigger_chunk() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        n = len(json.loads(request.content)["users"])
        data = [{"user_id": f"u{i}", "success": True, "key": f"sk-k{i}-abcdefgh"} for i in range(n)]
        return httpx.Response(200, json={"data": data})

    client, _sleeps, sent = make(handler, timeout_s=3.0)
    async with client:
        await client.bulk_create_users([{"user_id": f"u{i}"} for i in range(500)])
        await client.bulk_create_users([{"user_id": "u0"}])
    timeouts = [r.extensions["timeout"]["read"] for r in sent]
    assert timeouts == [3.0 + 0.1 * 499, 3.0]  # a full chunk: --timeout + ~50 s, one row: --timeout


async def test_list_user_keys_reads_every_page_and_only_that_users_keys() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        page = int(request.url.params["page"])
        assert request.url.params["user_id"] == "a@x.com" and request.url.params["return_full_object"] == "true"
        keys = [{"token": f"h{page}", "user_id": "a@x.com"}, {"token": "other", "user_id": "b@x.com"}]
        return httpx.Response(200, json={"keys": keys, "total_pages": 2})

    client, _sleeps, sent = make(handler)
    async with client:
        keys = await client.list_user_keys("a@x.com")
    assert [k["token"] for k in keys] == ["h1", "h2"] and len(sent) == 2


async def test_delete_keys_counts_keys_already_gone_as_revoked() -> None:
    gone = {"h-old"}

    def handler(request: httpx.Request) -> httpx.Response:
        keys = json.loads(request.content)["keys"]
        if any(k in gone for k in keys):
            return httpx.Response(404, json={"error": {"message": "Key not found"}})
        gone.update(keys)
        return httpx.Response(200, json={"deleted_keys": keys})

    client, _sleeps, sent = make(handler)
    async with client:
        await client.delete_keys(["h-old", "h-new"])
    assert "h-new" in gone and [json.loads(r.content)["keys"] for r in sent] == [
        ["h-old", "h-new"],
        ["h-old"],
        ["h-new"],
    ]
