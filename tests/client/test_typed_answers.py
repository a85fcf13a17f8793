"""Typed answers: what the proxy says in words comes back from the client as a class or a value.

"already a member", "not a member", "route missing", "conflict"/"already exists", "not found" and the
invitation's missing maker are exception classes; a failed row of a batch answer carries a ``RowErrorKind``.
The proxy's own shapes are those of the API contract (§1.3, §2.5, §2.11, §2.12, §2.16, §2.17).
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from litellm_usersync.apply.invitations import CALLER_ROW_HINT, explain_invitation_error
from litellm_usersync.errors import (
    AlreadyMemberError,
    ConflictError,
    InviterMissingError,
    MethodNotAllowedError,
    NotFoundError,
    NotMemberError,
    ProxyError,
    RejectedError,
    RouteMissingError,
)
from litellm_usersync.proxy.answers import RowErrorKind, missing_user_id, row_error_kind
from litellm_usersync.proxy.client import error_for_response

from .test_client import make

USER_MISSING = {"detail": {"error": "User not found, passed user_id=bob@example.com"}}
ALREADY_IN_TEAM = {
    "error": {
        "message": "User already in team. Member: user_id=alice@example.com",
        "type": "team_member_already_in_team",
        "param": "member",
        "code": "400",
    }
}
INVITER_MISSING = {
    "error": {"message": "User id alice@example.com does not exist in 'LiteLLM_UserTable'", "type": "bad_request"}
}


def mapped(status: int, body: Any, path: str = "/user/new", method: str = "POST") -> ProxyError:
    return error_for_response(httpx.Response(status, json=body), method, path)


@pytest.mark.parametrize(
    ("status", "body", "path", "cls"),
    [
        (404, {"detail": "Not Found"}, "/management/v1/users/bulk", RouteMissingError),
        (405, {"detail": "Method Not Allowed"}, "/management/v1/users/bulk", MethodNotAllowedError),
        (404, USER_MISSING, "/user/delete", NotFoundError),
        (404, {"error": {"message": "Key not found."}}, "/key/delete", NotFoundError),
        (409, {"error": {"message": "{'error': 'User with email a@b.c already exists'}"}}, "/user/new", ConflictError),
        (400, {"error": {"message": "{'error': 'User with email a@b.c already exists'}"}}, "/user/new", ConflictError),
        (400, ALREADY_IN_TEAM, "/team/member_add", AlreadyMemberError),
        (400, {"error": {"message": "All users are already in team"}}, "/team/member_add", AlreadyMemberError),
        (400, {"detail": {"error": "User not found in team"}}, "/team/member_delete", NotMemberError),
        (400, {"error": {"message": "User id doesn't exist in team table"}}, "/team/member_delete", NotMemberError),
        (400, INVITER_MISSING, "/invitation/new", InviterMissingError),
        (400, INVITER_MISSING, "/user/update", RejectedError),  # only the invitation's maker is meant
        (
            400,
            {"error": {"message": "Team id = t already exists. Please use a different team id."}},
            "/team/new",
            RejectedError,
        ),
    ],
)
def test_each_answer_is_its_own_class(status: int, body: Any, path: str, cls: type[ProxyError]) -> None:
    exc = mapped(status, body, path)
    assert type(exc) is cls, (type(exc).__name__, exc)
    assert exc.status == status and exc.path == path


def test_the_typed_classes_keep_their_old_families() -> None:
    """A caller that caught NotFoundError/RejectedError before still catches the finer classes."""
    assert issubclass(RouteMissingError, NotFoundError)
    for cls in (MethodNotAllowedError, AlreadyMemberError, NotMemberError, InviterMissingError):
        assert issubclass(cls, RejectedError)


def test_not_found_names_the_missing_user() -> None:
    exc = mapped(404, USER_MISSING, "/user/delete")
    assert isinstance(exc, NotFoundError)
    assert missing_user_id(exc) == "bob@example.com"
    assert missing_user_id(mapped(404, {"error": {"message": "User bob not found"}}, "/user/info")) is None


@pytest.mark.parametrize(
    ("error", "kind"),
    [
        (None, None),
        ("", None),
        ("User with email a@b.c already exists", RowErrorKind.ALREADY_EXISTS),
        ("User u-keep already exists", RowErrorKind.ALREADY_EXISTS),
        ("Duplicate user_email in request: A@example.com", RowErrorKind.DUPLICATE),
        ("Duplicate member in request", RowErrorKind.DUPLICATE),
        ("User already in team", RowErrorKind.ALREADY_MEMBER),
        ("User not found in team", RowErrorKind.NOT_A_MEMBER),
        ("User not found", RowErrorKind.NOT_FOUND),
        ("Team not found: t-x", RowErrorKind.NOT_FOUND),
        ("you may not grant proxy_admin", RowErrorKind.OTHER),
    ],
)
def test_row_error_kinds(error: str | None, kind: RowErrorKind | None) -> None:
    assert row_error_kind(error) is kind


async def test_already_a_member_is_a_join_done() -> None:
    client, _, sent = make(lambda r: httpx.Response(400, json=ALREADY_IN_TEAM))
    async with client:
        assert await client.add_team_members("t1", [("alice", "alice@x.com"), ("bob", None)]) == {"alice", "bob"}
    assert len(sent) == 1


async def test_not_a_member_is_a_leave_done_and_other_rejections_raise() -> None:
    client, _, _ = make(lambda r: httpx.Response(400, json={"detail": {"error": "User not found in team"}}))
    async with client:
        assert await client.remove_team_member("t1", "alice") is None
    client, _, _ = make(lambda r: httpx.Response(400, json={"detail": {"error": "Team id=t1 does not exist in db"}}))
    async with client:
        with pytest.raises(RejectedError) as info:
            await client.remove_team_member("t1", "alice")
    assert not isinstance(info.value, NotMemberError)


async def test_conflict_on_create_is_a_conflict_error() -> None:
    body = {"error": {"message": "{'error': 'User with email a@b.c already exists'}", "code": "409"}}
    client, _, sent = make(lambda r: httpx.Response(409, json=body))
    async with client:
        with pytest.raises(ConflictError):
            await client.create_user({"user_id": "a", "user_email": "a@b.c"})
    assert len(sent) == 1, "a conflict is an answer, not a failure to retry"


async def test_the_invitations_missing_maker_is_explained_by_type() -> None:
    client, _, _ = make(lambda r: httpx.Response(400, json=INVITER_MISSING))
    async with client:
        with pytest.raises(InviterMissingError) as info:
            await client.create_invitation("alice@example.com")
    assert explain_invitation_error(info.value) == f"{info.value.message} ({CALLER_ROW_HINT})"
    other = mapped(400, {"error": {"message": "invitation rejected"}}, "/invitation/new")
    assert explain_invitation_error(other) == "invitation rejected"


@pytest.mark.parametrize(("status", "body"), [(404, {"detail": "Not Found"}), (405, {"detail": "Method Not Allowed"})])
async def test_a_missing_batch_route_means_no_batch(status: int, body: Any) -> None:
    client, _, sent = make(lambda r: httpx.Response(status, json=body))
    async with client:
        assert await client.bulk_delete_users(["a", "b"]) is None
        assert await client.supports_bulk("delete") is False, "a missing route turns bulk off for that kind"
    assert sent[0].url.path == "/management/v1/users/bulk_delete"


async def test_a_404_that_is_not_the_route_raises() -> None:
    """A 404 problem from the batch route itself (an unknown team) is an answer, not a missing route."""
    problem = {"type": "urn:litellm:error:not-found", "title": "Not Found", "status": 404, "detail": "team t1"}
    client, _, _ = make(lambda r: httpx.Response(404, json=problem))
    async with client:
        with pytest.raises(NotFoundError) as info:
            await client.bulk_remove_team_members("t1", ["a"])
    assert not isinstance(info.value, RouteMissingError)


async def test_batch_rows_carry_their_kind() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if path.endswith("/users/bulk"):
            rows = [
                {"user_id": "a", "user_email": "a@x.com", "success": True, "teams": [], "key": None, "error": None},
                {
                    "user_id": "b",
                    "user_email": "b@x.com",
                    "success": False,
                    "error": "User with email b@x.com already exists",
                },
                {
                    "user_id": "c",
                    "user_email": "B@x.com",
                    "success": False,
                    "error": "Duplicate user_email in request: B@x.com",
                },
            ]
            return httpx.Response(200, json={"data": rows})
        if path.endswith("/users/bulk_delete"):
            rows = [
                {"user_id": "a", "success": True, "error": None},
                {"user_id": "gone", "success": False, "error": "User not found"},
                {"user_id": "x", "success": False, "error": "not allowed to delete x"},
            ]
            return httpx.Response(200, json={"data": rows})
        rows = [
            {"user_id": "a", "success": False, "error": "User not found in team"},
            {"user_id": "b", "success": False, "error": "Duplicate member in request"},
        ]
        return httpx.Response(200, json={"data": rows})

    client, _, _ = make(handler)
    async with client:
        created = await client.bulk_create_users([{"user_id": u, "user_email": f"{u}@x.com"} for u in "abc"])
        deleted = await client.bulk_delete_users(["a", "gone", "x"])
        left = await client.bulk_remove_team_members("t1", ["a", "b"])
    assert created is not None and deleted is not None and left is not None
    assert [(r.user_id, r.success, r.kind) for r in created] == [
        ("a", True, None),
        ("b", False, RowErrorKind.ALREADY_EXISTS),
        ("c", False, RowErrorKind.DUPLICATE),
    ]
    assert [(r.user_id, r.success, r.kind) for r in deleted] == [
        ("a", True, None),
        ("gone", True, None),  # already absent is the desired end state
        ("x", False, RowErrorKind.OTHER),
    ]
    assert [(r.user_id, r.success, r.kind) for r in left] == [("a", True, None), ("b", False, RowErrorKind.DUPLICATE)]


async def test_a_team_id_taken_on_create_is_a_conflict_error() -> None:
    """``--create-teams`` picks the id: a taken one is typed by the client (the executor reads it back)."""
    taken = {"error": {"message": "Team id = team-eng already exists. Please use a different team id."}}
    client, _, sent = make(lambda _r: httpx.Response(400, json=taken))
    async with client:
        with pytest.raises(ConflictError):
            await client.create_team("Eng", team_id="team-eng")
        with pytest.raises(RejectedError) as other:  # without an id of ours, the 400 stays what it was
            await client.create_team("Eng")
    assert type(other.value) is RejectedError and len(sent) == 2
