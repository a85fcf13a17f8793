"""Safety brakes against the real proxy: the mass-deletion brake, the empty CSV, protected users, dry run.

Arrange through the library, act through the CLI, assert through the library. "Nothing changed" is
checked on the proxy itself: every user row (role, email, teams, metadata, ``updated_at``) and every team
roster are compared before and after.
"""

from __future__ import annotations

import pathlib
from typing import Any

import pytest

from litellm_usersync.identity import DEFAULT_USER_ID
from litellm_usersync.proxy.client import ProxyClient

from .conftest import Proxy, create_users, write

DOMAIN = "safety.example"
FIELDS = ("user_email", "user_role", "teams", "metadata", "updated_at")


def arrange(proxy: Proxy, users: list[tuple[str, str | None]], team: str | None = None) -> None:
    """Create users ``(email, role)`` (role None: no role) in one batch, optionally all in ``team``."""

    async def go(c: ProxyClient) -> None:
        bodies = [
            {
                "user_id": email.lower(),
                "user_email": email,
                **({"user_role": role} if role else {}),
                "teams": [team] if team else [],
                "auto_create_key": False,
            }
            for email, role in users
        ]
        await create_users(c, bodies)

    proxy.run(go)


def state(proxy: Proxy) -> tuple[dict[str, dict[str, Any]], dict[str, Any]]:
    async def go(c: ProxyClient) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        return await c.read_all_users(), await c.read_all_teams()

    users, teams = proxy.run(go)
    return (
        {u["user_id"]: {k: u.get(k) for k in FIELDS} for u in users},
        {t["team_id"]: sorted(str(m.get("user_id")) for m in t.get("members_with_roles") or []) for t in teams},
    )


def emails(n: int, prefix: str = "u") -> list[str]:
    return [f"{prefix}{i:03d}@{DOMAIN}" for i in range(n)]


def csv_of(path: pathlib.Path, rows: list[str], header: str = "email,role,team_name") -> str:
    write(path, "\n".join([header, *rows]) + "\n")
    return str(path)


# ----------------------------------------------------------------------------------------------- mass deletion


def test_default_brake_refuses_before_any_change(
    clean_proxy: Proxy, make_teams: Any, workdir: pathlib.Path, cli_run: Any
) -> None:
    """30 managed users, a CSV keeping 5 (plus one add and one role change): 25 deletions > max(10, 20% of 30)."""
    team = make_teams("eng")["eng"]
    people = emails(30)
    arrange(clean_proxy, [(e, "internal_user") for e in people], team)
    before = state(clean_proxy)
    path = csv_of(
        workdir / "truncated.csv",
        [f"{e},internal_user,eng" for e in people[:4]] + [f"{people[4]},proxy_admin,eng", f"new@{DOMAIN},,eng"],
    )
    result = cli_run("sync", "--csv-file", path)
    assert result.exit_code == 3, result.output
    assert "would delete 25 users, more than the limit of 10" in result.output
    assert "--max-delete 25" in result.output
    assert state(clean_proxy) == before  # not even the add or the role change happened
    assert not (workdir / "user_sync_result.csv").exists()


def test_default_brake_is_twenty_percent_of_managed_users(
    clean_proxy: Proxy, workdir: pathlib.Path, cli_run: Any
) -> None:
    """60 managed users: the limit is 12. Deleting 13 is refused; deleting 12 runs."""
    people = emails(60)
    arrange(clean_proxy, [(e, "internal_user") for e in people])
    before = state(clean_proxy)
    refused = cli_run("sync", "--csv-file", csv_of(workdir / "a.csv", [f"{e},internal_user," for e in people[:47]]))
    assert refused.exit_code == 3, refused.output
    assert "would delete 13 users, more than the limit of 12 (60 managed users)" in refused.output
    assert state(clean_proxy) == before

    ran = cli_run("sync", "--csv-file", csv_of(workdir / "b.csv", [f"{e},internal_user," for e in people[:48]]))
    assert ran.exit_code == 0, ran.output
    users, _ = state(clean_proxy)
    assert {u for u in users if u.endswith(DOMAIN)} == set(people[:48])


def test_max_delete_raises_and_lowers_the_limit(clean_proxy: Proxy, workdir: pathlib.Path, cli_run: Any) -> None:
    people = emails(30)
    arrange(clean_proxy, [(e, "internal_user") for e in people])
    keep = csv_of(workdir / "keep5.csv", [f"{e},internal_user," for e in people[:5]])
    before = state(clean_proxy)

    for limit in ("24", "0"):
        result = cli_run("sync", "--csv-file", keep, "--max-delete", limit)
        assert result.exit_code == 3, result.output
        assert f"more than the limit of {limit}" in result.output
        assert state(clean_proxy) == before

    # a lowered limit also stops a small deletion that the default would allow
    two = csv_of(workdir / "keep28.csv", [f"{e},internal_user," for e in people[:28]])
    result = cli_run("sync", "--csv-file", two, "--max-delete", "1")
    assert result.exit_code == 3, result.output
    assert state(clean_proxy) == before

    result = cli_run("sync", "--csv-file", keep, "--max-delete", "25")
    assert result.exit_code == 0, result.output
    users, _ = state(clean_proxy)
    assert {u for u in users if u.endswith(DOMAIN)} == set(people[:5])


@pytest.mark.parametrize("header", ["email,role,team_name", "email", "\ufeffemail,role,team_name"])
def test_empty_csv_never_means_delete_everyone(
    header: str, clean_proxy: Proxy, make_teams: Any, workdir: pathlib.Path, cli_run: Any
) -> None:
    team = make_teams("eng")["eng"]
    arrange(clean_proxy, [(e, "internal_user") for e in emails(5)], team)
    before = state(clean_proxy)
    path = csv_of(workdir / "empty.csv", [], header=header)
    for extra in ((), ("--max-delete", "1000")):  # not even a raised limit lets an empty source delete
        result = cli_run("sync", "--csv-file", path, *extra)
        assert result.exit_code == 3, result.output
        assert "the CSV has no users" in result.output
        assert state(clean_proxy) == before


def test_csv_whose_rows_are_all_rejected_changes_nothing(
    clean_proxy: Proxy, workdir: pathlib.Path, cli_run: Any
) -> None:
    arrange(clean_proxy, [(e, "internal_user") for e in emails(5)])
    before = state(clean_proxy)
    path = csv_of(workdir / "bad.csv", ["not-an-email,internal_user,", "also bad,internal_user,"])
    result = cli_run("sync", "--csv-file", path, "--max-delete", "1000")
    assert result.exit_code == 2, result.output
    assert "nothing was sent to the proxy" in result.output
    assert state(clean_proxy) == before


def test_dry_run_never_writes_whatever_else_is_set(clean_proxy: Proxy, workdir: pathlib.Path, cli_run: Any) -> None:
    people = emails(12)
    arrange(clean_proxy, [(e, "internal_user") for e in people])
    before = state(clean_proxy)
    path = csv_of(workdir / "d.csv", [f"{people[0]},proxy_admin,", f"new@{DOMAIN},internal_user,"])
    result = cli_run("sync", "--csv-file", path, "--dry-run", "--max-delete", "1000", "--report", "r.csv")
    assert result.exit_code == 0, result.output
    assert "Users to delete: 11" in result.output
    assert state(clean_proxy) == before
    assert not (workdir / "r.csv").exists()


# ----------------------------------------------------------------------------------------------- protected users


def test_protect_email_is_never_deleted_or_demoted(
    clean_proxy: Proxy, make_teams: Any, workdir: pathlib.Path, cli_run: Any
) -> None:
    make_teams("eng")
    boss, cto = f"Boss@{DOMAIN}", f"cto@{DOMAIN}"
    people = emails(4)
    arrange(clean_proxy, [(boss, "proxy_admin"), (cto, "proxy_admin"), *((e, "internal_user") for e in people)])
    before, _ = state(clean_proxy)
    # boss is not in the CSV (would be deleted); cto is, demoted (would lose proxy_admin)
    path = csv_of(workdir / "p.csv", [f"{cto},internal_user,", *(f"{e},internal_user," for e in people)])
    protect = ("--protect", "BOSS@safety.example ", "--protect", cto)
    plan = cli_run("sync", "--csv-file", path, *protect, "--dry-run")
    assert plan.exit_code == 0, plan.output
    assert f"! {boss} (not deleted: protected (--protect))" in plan.output
    assert f"! {cto} (role change to internal_user refused: protected (--protect))" in plan.output
    result = cli_run("sync", "--csv-file", path, *protect)
    assert result.exit_code == 0, result.output
    after, _ = state(clean_proxy)
    assert after[boss.lower()] == before[boss.lower()]
    assert after[cto] == before[cto]


def test_protect_role_keeps_admins_out_of_reach(clean_proxy: Proxy, workdir: pathlib.Path, cli_run: Any) -> None:
    admins, others = emails(3, "admin"), emails(3, "user")
    arrange(clean_proxy, [*((e, "proxy_admin") for e in admins), *((e, "internal_user") for e in others)])
    before, _ = state(clean_proxy)
    path = csv_of(workdir / "r.csv", [f"{others[0]},internal_user,", f"{admins[0]},internal_user_viewer,"])
    result = cli_run("sync", "--csv-file", path, "--protect-role", "proxy_admin")
    assert result.exit_code == 0, result.output
    after, _ = state(clean_proxy)
    for a in admins:  # neither deleted nor demoted
        assert after[a] == before[a]
    assert set(others[1:]).isdisjoint(after)  # unprotected users not in the CSV are deleted as usual


def test_default_user_id_and_users_outside_management_are_never_touched(
    clean_proxy: Proxy, make_teams: Any, workdir: pathlib.Path, cli_run: Any
) -> None:
    """default_user_id (even with an email and an admin role), users without email or without role."""
    team = make_teams("eng")["eng"]  # creates default_user_id as the team's admin

    async def go(c: ProxyClient) -> None:
        await c.update_user(DEFAULT_USER_ID, user_email=f"root@{DOMAIN}", user_role="proxy_admin")
        await c.create_user({"user_id": "svc-no-email", "user_role": "internal_user", "teams": [team]})
        await c.create_user({"user_id": f"norole@{DOMAIN}", "user_email": f"norole@{DOMAIN}", "teams": [team]})

    clean_proxy.run(go)
    arrange(clean_proxy, [(e, "internal_user") for e in emails(2)], team)
    before, rosters = state(clean_proxy)
    assert before[DEFAULT_USER_ID]["user_email"] == f"root@{DOMAIN}"
    path = csv_of(workdir / "o.csv", [f"u000@{DOMAIN},internal_user,eng"])
    result = cli_run("sync", "--csv-file", path)
    assert result.exit_code == 0, result.output
    after, rosters_after = state(clean_proxy)
    for uid in (DEFAULT_USER_ID, "svc-no-email", f"norole@{DOMAIN}"):
        assert after[uid] == before[uid], uid
    assert f"u001@{DOMAIN}" not in after
    assert rosters_after[team] == sorted(set(rosters[team]) - {f"u001@{DOMAIN}"})


def test_own_identity_is_protected_even_when_the_proxy_cannot_say_who_we_are(
    clean_proxy: Proxy, workdir: pathlib.Path, cli_run: Any
) -> None:
    """Run with an admin's virtual key while ``/key/info`` (who am I?) fails with 503 on every attempt.

    The admin is not in the CSV. Not knowing the caller must not make its account fair game: the run
    stops before any change (exit 2) instead of planning with ``default_user_id`` as the caller."""
    from ..faultproxy import Decision, FaultConfig, FaultProxy

    me = f"ops-admin@{DOMAIN}"
    people = emails(3)
    arrange(clean_proxy, [(me, "proxy_admin"), *((e, "internal_user") for e in people)])

    async def key(c: ProxyClient) -> str:
        return await c.generate_key(me.lower())

    my_key = clean_proxy.run(key)
    before = state(clean_proxy)

    def script(method: str, target: str, n: int) -> Decision | None:
        return Decision("503") if target.split("?")[0] == "/key/info" else None

    with FaultProxy(clean_proxy.base_url, FaultConfig(script=script)) as fp:
        path = csv_of(workdir / "me.csv", [f"{e},internal_user," for e in people])
        result = cli_run("sync", "--csv-file", path, env={"LITELLM_BASE_URL": fp.url, "LITELLM_MASTER_KEY": my_key})
        fp.wait_idle()
        assert fp.counts["503"]
    users, _ = state(clean_proxy)
    assert me.lower() in users, result.output
    assert result.exit_code == 2, result.output
    assert state(clean_proxy) == before
