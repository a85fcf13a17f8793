"""`list`, `add` and `delete` over a scripted proxy (httpx.MockTransport through the click context): what
the real proxy cannot easily be made to do — rows carrying secret fields, a deletion failing for one user,
a bad master key."""

from __future__ import annotations

import csv
import json
import pathlib
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from click.testing import CliRunner, Result

from litellm_usersync.cli import cli
from litellm_usersync.cli._common import Context
from litellm_usersync.render.listing import LIST_COLUMNS

from ._scripted import route_probe

KEY = "sk-master-secret-0123456789"
SECRETS = {"password": "hunter2-plain", "hashed_password": "pbkdf2$deadbeef", "salt": "s4lt-value", "token": "tok-9f8e"}


def user(uid: str, email: str | None, role: str | None = "internal_user", **extra: Any) -> dict[str, Any]:
    return {"user_id": uid, "user_email": email, "user_role": role, "teams": [], "key_count": 0, "spend": 0.0, **extra}


Handler = Callable[[httpx.Request], httpx.Response | None]


def scripted(users: list[dict[str, Any]], calls: list[str], extra: Handler | None = None) -> Handler:
    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(f"{request.method} {request.url.path}")
        if request.headers.get("authorization") != f"Bearer {KEY}":
            return httpx.Response(401, json={"error": {"message": "Authentication Error, invalid key"}})
        if (probed := route_probe(request)) is not None:
            return probed
        path = request.url.path
        if path == "/health/readiness/details":
            return httpx.Response(200, json={"status": "healthy", "litellm_version": "1.110.2"})
        if path == "/key/info":
            return httpx.Response(404, json={"error": {"message": "Key not found"}})
        if path == "/user/list":
            return httpx.Response(200, json={"users": users, "total": len(users), "page": 1, "total_pages": 1})
        if path == "/v2/team/list":
            return httpx.Response(200, json={"teams": [], "total": 0, "page": 1, "total_pages": 0})
        if extra is not None and (answer := extra(request)) is not None:
            return answer
        return httpx.Response(500, json={"detail": f"unexpected {path}"})

    return handler  # type: ignore[return-value]


@pytest.fixture
def run(tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> Callable[..., tuple[Result, list[str]]]:
    monkeypatch.chdir(tmp_path)

    def go(
        *args: str, users: list[dict[str, Any]], extra: Handler | None = None, key: str = KEY
    ) -> tuple[Result, list[str]]:
        calls: list[str] = []
        transport = httpx.MockTransport(scripted(users, calls, extra))
        result = CliRunner().invoke(
            cli,
            list(args),
            obj=Context(transport=transport),
            env={"LITELLM_MASTER_KEY": key, "LITELLM_BASE_URL": "http://proxy.test"},
        )
        return result, calls

    return go


@pytest.mark.parametrize("fmt", ["tsv", "csv", "json", "table"])
def test_list_never_prints_secret_fields_even_when_the_proxy_sends_them(
    run: Callable[..., tuple[Result, list[str]]], fmt: str
) -> None:
    users = [
        user("a@x.com", "a@x.com", **SECRETS),
        user("svc", None, None, **SECRETS),
        user("default_user_id", None, "proxy_admin", **SECRETS),
    ]
    for columns in ([], ["--columns", ",".join(LIST_COLUMNS)]):
        result, calls = run("list", "--show-all", "--format", fmt, *columns, users=users)
        assert result.exit_code == 0, result.output
        assert "a@x.com" in result.output
        for name, value in SECRETS.items():
            assert value not in result.output, name
        assert all(c.startswith("GET ") for c in calls), "list only reads"


def test_list_tsv_exact(run: Callable[..., tuple[Result, list[str]]]) -> None:
    users = [
        user("b", "B@x.com", "proxy_admin", created_at="2025-01-02", updated_at="2025-01-03", models=["gpt-4"]),
        user("a", "a@x.com", "internal_user_viewer", created_at="2025-01-01", updated_at="2025-01-01"),
        user("c", "c@x.com", "customer"),
    ]
    result, _ = run("list", users=users)
    assert result.stdout == (
        "user_id\tuser_email\tuser_role\tteams\tteam_names\tcreated_at\tupdated_at\n"
        "a\ta@x.com\tinternal_user_viewer\t[]\t[]\t2025-01-01\t2025-01-01\n"
        "b\tB@x.com\tproxy_admin\t[]\t[]\t2025-01-02\t2025-01-03\n"
    )
    result, _ = run("list", "--role", "customer", "--format", "json", "--columns", "user_id,models", users=users)
    assert json.loads(result.stdout) == [{"user_id": "c", "models": []}]


def test_bad_master_key_exits_2_and_is_never_shown(
    run: Callable[..., tuple[Result, list[str]]], tmp_path: pathlib.Path
) -> None:
    (tmp_path / "user_addlist.csv").write_text("email\na@x.com\n", encoding="utf-8")
    (tmp_path / "user_dellist.csv").write_text("email\na@x.com\n", encoding="utf-8")
    wrong = "sk-wrong-key-abcdefghijkl"
    for command in ("list", "add", "delete"):
        result, calls = run(command, users=[], key=wrong)
        assert result.exit_code == 2, (command, result.output)
        assert "Error: Unauthorized" in result.output
        assert wrong not in result.output
        assert not any(c.startswith("POST") for c in calls)


def test_delete_records_a_per_user_failure_and_exits_1(
    run: Callable[..., tuple[Result, list[str]]], tmp_path: pathlib.Path
) -> None:
    users = [user("a@x.com", "a@x.com", key_count=2, spend=3.5), user("b@x.com", "b@x.com")]

    def bulk_delete(request: httpx.Request) -> httpx.Response | None:
        if request.url.path != "/management/v1/users/bulk_delete":
            return None
        assert json.loads(request.content) == {"user_ids": ["a@x.com", "b@x.com"]}
        return httpx.Response(
            200,
            json={
                "data": [
                    {"user_id": "a@x.com", "user_email": "a@x.com", "success": True, "error": None},
                    {"user_id": "b@x.com", "user_email": "b@x.com", "success": False, "error": "locked by a test"},
                ]
            },
        )

    (tmp_path / "user_dellist.csv").write_text("email\nA@X.com\nb@x.com\n", encoding="utf-8")
    result, calls = run("delete", users=users, extra=bulk_delete)
    assert result.exit_code == 1, result.output
    assert "- a@x.com (user_id: a@x.com, Role: internal_user, Team: -) — destroys 2 API key(s), spend $3.50" in (
        result.output
    )
    assert calls.count("POST /management/v1/users/bulk_delete") == 1
    with (tmp_path / "user_del_result.csv").open(newline="") as fh:
        assert list(csv.reader(fh)) == [["email", "user_id", "status"], ["a@x.com", "a@x.com", "Deleted"]]
    with (tmp_path / "user_del_error.csv").open(newline="") as fh:
        rows = list(csv.reader(fh))
    assert rows == [["email", "user_id", "error_reason"], ["b@x.com", "b@x.com", "locked by a test"]]


def test_delete_dry_run_sends_only_reads(run: Callable[..., tuple[Result, list[str]]], tmp_path: pathlib.Path) -> None:
    (tmp_path / "user_dellist.csv").write_text("email\na@x.com\n", encoding="utf-8")
    result, calls = run("delete", "--dry-run", users=[user("a@x.com", "a@x.com")])
    assert result.exit_code == 0, result.output
    assert all(c.startswith("GET ") for c in calls)
    assert not (tmp_path / "user_del_result.csv").exists()


def test_add_reads_the_users_once_not_once_per_row(
    run: Callable[..., tuple[Result, list[str]]], tmp_path: pathlib.Path
) -> None:
    rows = [f"new{i}@x.com" for i in range(20)]

    def writes(request: httpx.Request) -> httpx.Response | None:
        if request.url.path == "/management/v1/users/bulk":
            body = json.loads(request.content)["users"]
            data = [
                {
                    "user_id": u["user_id"],
                    "user_email": u["user_email"],
                    "success": True,
                    "teams": [],
                    "key": "sk-k" + u["user_id"],
                }
                for u in body
            ]
            return httpx.Response(200, json={"data": data, "meta": {}})
        if request.url.path == "/invitation/new":
            return httpx.Response(200, json={"id": "inv-" + json.loads(request.content)["user_id"]})
        return None

    (tmp_path / "user_addlist.csv").write_text("email\n" + "\n".join(["Old@x.com", *rows]) + "\n", encoding="utf-8")
    result, calls = run("add", users=[user("old@x.com", "old@x.com")], extra=writes)
    assert result.exit_code == 1, result.output  # the existing user is an error row
    # one page of the snapshot + one read-back of the created users' models: not one lookup per row
    assert calls.count("GET /user/list") == 2
    assert calls.count("POST /management/v1/users/bulk") == 1
    assert calls.count("POST /invitation/new") == 20
    with (tmp_path / "user_reg_result.csv").open(newline="") as fh:
        got = list(csv.DictReader(fh))
    assert [r["email"] for r in got] == sorted(rows)
    assert got[0]["invitation_url"] == "http://proxy.test/ui/?invitation_id=inv-new0@x.com&action=reset_password"


def test_delete_reads_the_users_once_not_once_per_row(
    run: Callable[..., tuple[Result, list[str]]], tmp_path: pathlib.Path
) -> None:
    (tmp_path / "user_dellist.csv").write_text(
        "email\n" + "".join(f"u{i}@x.com\n" for i in range(30)), encoding="utf-8"
    )
    result, calls = run("delete", "--dry-run", users=[user(f"u{i}@x.com", f"u{i}@x.com") for i in range(5)])
    assert result.exit_code == 0, result.output
    assert calls.count("GET /user/list") == 1  # one snapshot page, not one lookup per row
    assert result.output.count("User not found in the system") == 25
