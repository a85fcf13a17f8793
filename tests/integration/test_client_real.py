"""The client's contract with the real proxy: what the mocked client tests assume, proven on LiteLLM 1.110.2
(and, where 1.74 answers the same, on 1.74.15.post2 and 1.74.0; what differs is marked with the version)."""

from __future__ import annotations

import pytest

from litellm_usersync.errors import AuthError, ConflictError, NotFoundError, RejectedError
from litellm_usersync.proxy.client import ProxyClient

from .conftest import Proxy, create_users


async def _user(c: ProxyClient, email: str, **kw: object) -> None:
    await c.create_user(
        {"user_id": email, "user_email": email, "user_role": "internal_user", "auto_create_key": False, **kw}
    )


def test_version_detection_and_bulk_support(clean_proxy: Proxy, litellm_version: str) -> None:
    async def go(c: ProxyClient) -> tuple[str | None, bool, str]:
        return await c.proxy_version(), await c.supports_bulk("create"), await c.check_auth()

    version, bulk, caller = clean_proxy.run(go)
    assert version == litellm_version
    assert bulk is (litellm_version == "1.110.2"), "only 1.110 has /management/v1/users/bulk"
    assert caller == "default_user_id"
    assert clean_proxy.run(go, bulk="never")[1] is False


@pytest.mark.litellm(">=1.100", reason="1.74's single user_ids value is already exact")
def test_read_users_by_a_single_id_is_exact(clean_proxy: Proxy) -> None:
    """Regression: one ``user_ids`` value is a substring match on the proxy; the client must stay exact."""

    async def go(c: ProxyClient) -> tuple[list[str], list[str]]:
        for e in ("a@x.com", "aa@x.com", "ba@x.com", "A@x.com.au"):
            await _user(c, e)
        raw = await c.list_users_page(1, user_ids=["a@x.com"])
        return [u["user_id"] for u in raw.items], sorted(await c.read_users_by_ids(["a@x.com"]))

    raw, exact = clean_proxy.run(go)
    assert len(raw) > 1, "the proxy's single-id filter is a substring match (what the client works around)"
    assert exact == ["a@x.com"]


def test_pagination_reads_every_page_with_totals(clean_proxy: Proxy) -> None:
    async def go(c: ProxyClient) -> tuple[int, int]:
        await create_users(
            c,
            [
                {"user_id": f"p{i:03d}@x.com", "user_email": f"p{i:03d}@x.com", "user_role": "internal_user"}
                for i in range(230)
            ],
        )
        counted = c.request_counts.get("GET /user/list", 0)
        users = await c.read_all_users()
        return len(users), c.request_counts["GET /user/list"] - counted

    n, requests = clean_proxy.run(go)
    assert n == 230
    assert requests == 3  # ceil(230 / 100) pages, nothing else


def test_status_mapping_on_real_answers(clean_proxy: Proxy, litellm_version: str) -> None:
    async def go(c: ProxyClient) -> None:
        await _user(c, "dup@x.com")
        # 1.74.0's duplicate check is case-sensitive (test_old_proxies proves it): the same case conflicts there
        with pytest.raises(ConflictError) as conflict:
            await _user(c, "dup@x.com" if litellm_version == "1.74.0" else "DUP@x.com", user_id="other-id")
        status = 409 if litellm_version == "1.110.2" else 400  # 1.74 answers a duplicate email with 400
        assert conflict.value.status == status and "already exists" in conflict.value.message
        with pytest.raises(NotFoundError):
            await c.request("POST", "/user/delete", body={"user_ids": ["nobody"]})
        with pytest.raises(RejectedError) as bad:
            await c.create_user({"user_id": "r@x.com", "user_role": "org_admin"})
        assert bad.value.status == 422

    clean_proxy.run(go)

    async def bad_key(c: ProxyClient) -> None:
        await c.read_all_users()

    with pytest.raises(AuthError) as exc:
        Proxy(clean_proxy.base_url, "sk-not-the-key-0000000").run(bad_key)
    assert "sk-not-the-key-0000000" not in str(exc.value)


def test_idempotent_membership_and_delete_answers_count_as_done(clean_proxy: Proxy) -> None:
    async def go(c: ProxyClient) -> None:
        team = (await c.create_team("idem"))["team_id"]
        await _user(c, "m@x.com")
        assert await c.add_team_members(team, [("m@x.com", "m@x.com")]) == {"m@x.com"}
        # already in team: 400 team_member_already_in_team -> done
        assert await c.add_team_members(team, [("m@x.com", "m@x.com")]) == {"m@x.com"}
        await c.remove_team_member(team, "m@x.com")
        await c.remove_team_member(team, "m@x.com")  # 400 "User not found in team" -> done
        await _user(c, "d1@x.com")
        await _user(c, "d2@x.com")
        assert await c.delete_users(["d1@x.com"]) == {"d1@x.com"}
        # d1 is already gone: the 404 names it, the rest are still deleted
        assert await c.delete_users(["d1@x.com", "d2@x.com"]) == {"d1@x.com", "d2@x.com"}
        assert await c.read_users_by_ids(["d1@x.com", "d2@x.com"]) == {}

    clean_proxy.run(go)


@pytest.mark.litellm(">=1.100", reason="the /management/v1 bulk routes")
def test_bulk_endpoints_per_row_results(clean_proxy: Proxy) -> None:
    async def go(c: ProxyClient) -> None:
        team = (await c.create_team("bulk"))["team_id"]
        rows = await c.bulk_create_users(
            [
                {
                    "user_id": "b1@x.com",
                    "user_email": "b1@x.com",
                    "user_role": "internal_user",
                    "teams": [team],
                    "auto_create_key": True,
                },
                {"user_id": "b2@x.com", "user_email": "B1@x.com", "user_role": "internal_user"},
            ]
        )
        assert rows is not None
        by_id = {r.user_id: r for r in rows}
        assert by_id["b1@x.com"].success and by_id["b1@x.com"].teams == (team,)
        assert by_id["b1@x.com"].api_key and by_id["b1@x.com"].api_key.startswith("sk-")
        assert not by_id["b2@x.com"].success  # duplicate email (case-insensitive) in the batch
        removed = await c.bulk_remove_team_members(team, ["b1@x.com"])
        assert removed is not None and removed[0].success
        deleted = await c.bulk_delete_users(["b1@x.com", "never@x.com"])
        assert deleted is not None
        assert {r.user_id: r.success for r in deleted} == {"b1@x.com": True, "never@x.com": True}

    clean_proxy.run(go)
