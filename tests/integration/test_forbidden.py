"""A 403 that is not about the credentials fails its rows, on the real proxy (issue 9 §4).

Only a 401, or a 403 on the identity check (``/key/info``), stops a run as bad credentials. Any other 403
— the licence's seat limit, "not allowed for this team", a route the key may not use — fails the rows it
concerns with the proxy's own message, and the rest of the run goes on.

The 403s of LiteLLM 1.110.2 (read in its source, `internal_user_endpoints.py`, `team_endpoints.py`,
`bulk_user_creation.py`, and tried on the real proxy):

* ``/user/new``: "License is over limit ..." (seat limit; needs a signed licence, so injected below with the
  real proxy's exact body), "Only proxy admins can create administrative users ...";
* ``/management/v1/users/bulk``: the seat limit as a 403 problem document;
* ``/team/member_add``: "Call not allowed. User not proxy admin OR team admin. ..." (an internal user's key);
* every write route with a ``proxy_admin_viewer`` key: "user not allowed to access this route, role=
  proxy_admin_viewer ..." (real, below), while reads are allowed.
"""

from __future__ import annotations

import csv
import pathlib
from collections.abc import Callable
from typing import Any

import pytest
from click.testing import Result

from litellm_usersync.proxy.client import ProxyClient

from ..faultproxy import Decision, FaultConfig, FaultProxy
from .conftest import Proxy, live_users, write

SEAT_LIMIT = "License is over limit. Please contact support@berri.ai to upgrade your license."


def report(path: pathlib.Path) -> dict[str, dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as fh:
        return {r["email"]: r for r in csv.DictReader(fh)}


def roles(proxy: Proxy) -> dict[str, str | None]:
    return {e: u.get("user_role") for e, u in live_users(proxy).items()}


def _arrange(proxy: Proxy, team: str) -> None:
    async def go(c: ProxyClient) -> None:
        for email, role, teams in (
            ("keep@example.com", "internal_user", [team]),
            ("role@example.com", "internal_user", []),
            ("gone@example.com", "internal_user", []),
        ):
            await c.create_user(
                {"user_id": email, "user_email": email, "user_role": role, "teams": teams, "auto_create_key": False}
            )

    proxy.run(go)


CSV = (
    "email,role,team_name\n"
    "keep@example.com,internal_user,dev\n"
    "role@example.com,proxy_admin_viewer,\n"
    "new1@example.com,internal_user,dev\n"
    "new2@example.com,internal_user,\n"
)


def test_a_seat_limit_403_fails_the_creates_and_the_rest_is_applied(
    make_teams: Callable[..., dict[str, str]],
    cli_run: Callable[..., Result],
    clean_proxy: Proxy,
    workdir: pathlib.Path,
) -> None:
    """Before: the first create's 403 ended the run as 'Unauthorized ... check --master-key' (exit 2), and
    the role change and the deletion of the same run were never made."""
    t = make_teams("dev")
    _arrange(clean_proxy, t["dev"])
    write(workdir / "users.csv", CSV)

    def seat_limit(method: str, target: str, n: int) -> Decision | None:
        path = target.split("?")[0]
        if method == "POST" and path == "/user/new":  # shape A, as IUE::new_user raises it
            body: Any = {"error": {"message": SEAT_LIMIT, "type": "auth_error", "param": None, "code": "403"}}
            return Decision("answer", answer=(403, body))
        if method == "POST" and path == "/management/v1/users/bulk":  # shape D, as BUC::bulk_create_users does
            problem = "urn:litellm:error:license-limit-exceeded"
            body = {"type": problem, "title": "License limit exceeded", "status": 403, "detail": SEAT_LIMIT}
            return Decision("answer", answer=(403, body))
        return None

    with FaultProxy(clean_proxy.base_url, FaultConfig(script=seat_limit)) as fp:
        r = cli_run("sync", "--csv-file", "users.csv", env={"LITELLM_BASE_URL": fp.url})
        fp.wait_idle()
    assert r.exit_code == 1, r.output
    assert "Unauthorized" not in r.output and "run stopped" not in r.output
    rows = report(workdir / "user_sync_result.csv")
    for email in ("new1@example.com", "new2@example.com"):
        assert rows[email]["status"] == "FAILED" and SEAT_LIMIT in rows[email]["error_reason"], rows[email]
    assert rows["role@example.com"]["status"] == "SUCCESS"
    assert rows["gone@example.com"]["status"] == "SUCCESS"
    assert roles(clean_proxy) == {"keep@example.com": "internal_user", "role@example.com": "proxy_admin_viewer"}


@pytest.mark.litellm(">=1.100", reason="1.74 answers a proxy_admin_viewer key 403 on /user/list")
def test_a_key_that_may_read_but_not_write_fails_each_row_with_the_proxys_message(
    make_teams: Callable[..., dict[str, str]],
    cli_run: Callable[..., Result],
    clean_proxy: Proxy,
    workdir: pathlib.Path,
) -> None:
    """The real proxy's own 403: a proxy_admin_viewer key reads everything, and every write is refused with
    'user not allowed to access this route'. Each row says so; nothing is reported as bad credentials."""
    t = make_teams("dev")
    _arrange(clean_proxy, t["dev"])

    async def viewer_key(c: ProxyClient) -> str:
        email = "viewer@example.com"
        await c.create_user(
            {"user_id": email, "user_email": email, "user_role": "proxy_admin_viewer", "auto_create_key": False}
        )
        return await c.generate_key(email)

    key = clean_proxy.run(viewer_key)
    write(workdir / "users.csv", CSV + "viewer@example.com,proxy_admin_viewer,\n")
    before = roles(clean_proxy)
    r = cli_run("sync", "--csv-file", "users.csv", env={"LITELLM_MASTER_KEY": key})
    assert r.exit_code == 1, r.output
    assert "Unauthorized" not in r.output and "run stopped" not in r.output
    assert key not in r.output
    rows = report(workdir / "user_sync_result.csv")
    for email in ("new1@example.com", "new2@example.com", "role@example.com", "gone@example.com"):
        assert rows[email]["status"] == "FAILED", rows[email]
        assert "user not allowed to access this route" in rows[email]["error_reason"], rows[email]
    assert roles(clean_proxy) == before


def test_a_403_on_the_identity_check_is_still_bad_credentials(
    cli_run: Callable[..., Result], clean_proxy: Proxy, workdir: pathlib.Path
) -> None:
    """The credentials cannot even describe themselves: stop before any change, exit 2."""
    write(workdir / "users.csv", "email,role,team_name\nnew@example.com,internal_user,\n")

    def who_am_i(method: str, target: str, n: int) -> Decision | None:
        if target.split("?")[0] == "/key/info":
            return Decision("answer", answer=(403, {"detail": {"error": "not allowed"}}))
        return None

    with FaultProxy(clean_proxy.base_url, FaultConfig(script=who_am_i)) as fp:
        r = cli_run("sync", "--csv-file", "users.csv", env={"LITELLM_BASE_URL": fp.url})
    assert r.exit_code == 2, r.output
    assert "Unauthorized by the proxy" in r.stderr
    assert "new@example.com" not in live_users(clean_proxy)


def test_a_403_on_the_first_read_stops_with_the_proxys_message_and_a_hint(
    cli_run: Callable[..., Result], clean_proxy: Proxy, workdir: pathlib.Path
) -> None:
    """A read refused with 403 (LiteLLM's own answer to a caller that may not list users): exit 2, said plainly.

    (On the real proxy an internal user's key is already refused with a 401 on /health/readiness/details, so
    the 403 of IUE::_authorize_user_list_request is put in front of it here.)"""
    refused = {"detail": {"error": "Only proxy admins and organization admins can list users."}}

    def no_list(method: str, target: str, n: int) -> Decision | None:
        return Decision("answer", answer=(403, refused)) if target.split("?")[0] == "/user/list" else None

    write(workdir / "users.csv", "email,role,team_name\nnew@example.com,internal_user,\n")
    with FaultProxy(clean_proxy.base_url, FaultConfig(script=no_list)) as fp:
        r = cli_run("sync", "--csv-file", "users.csv", env={"LITELLM_BASE_URL": fp.url})
    assert r.exit_code == 2, r.output
    assert "GET /user/list -> 403: Only proxy admins and organization admins can list users." in r.stderr
    assert "The credentials in use may not do this" in r.stderr
    assert "new@example.com" not in live_users(clean_proxy)
