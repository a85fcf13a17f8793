"""Output that reads at 2,000 users (issue 11): a terminal groups and truncates, colour only on a terminal,
refusals on stderr, --output markdown, --detailed-exitcode as terraform's."""

from __future__ import annotations

import pathlib
from collections.abc import Callable

import pytest
from click.testing import Result

from litellm_usersync.cli import _common

from ._scripted import user

Run = Callable[..., tuple[Result, list[str]]]


def _csv(tmp: pathlib.Path, rows: list[str]) -> None:
    (tmp / "user_list.csv").write_text("email,role,team_name\n" + "".join(r + "\n" for r in rows), encoding="utf-8")


@pytest.fixture
def tty(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_common, "stdout_is_tty", lambda: True)
    monkeypatch.delenv("NO_COLOR", raising=False)


def _many(tmp: pathlib.Path, n: int = 45) -> list[dict[str, object]]:
    _csv(tmp, [f"new{i:03d}@x.com,internal_user,development" for i in range(n)])
    return [user(f"old{i:03d}@x.com") for i in range(3)]


def test_a_terminal_lists_the_first_20_of_each_kind_and_ends_with_the_counts(
    run: Run, tmp_path: pathlib.Path, tty: None
) -> None:
    result, _ = run("sync", "--dry-run", "--max-delete", "10", users=_many(tmp_path))
    assert result.exit_code == 0, result.output
    lines = [_strip(x) for x in result.stdout.splitlines()]
    assert sum(1 for x in lines if x.startswith("    + ")) == 20
    assert "    … and 25 more — `--show-all`" in lines
    assert sum(1 for x in lines if x.startswith("    - ")) == 3
    assert lines[-1] == "Synchronization plan: 45 to add, 3 to delete, 0 to update, 0 unchanged."


def test_show_all_lists_everyone_on_a_terminal(run: Run, tmp_path: pathlib.Path, tty: None) -> None:
    result, _ = run("sync", "--dry-run", "--show-all", "--max-delete", "10", users=_many(tmp_path))
    assert sum(1 for x in result.stdout.splitlines() if _strip(x).startswith("    + ")) == 45
    assert "more — `--show-all`" not in result.stdout


def test_piped_output_lists_everyone_plain_and_ends_with_the_counts(run: Run, tmp_path: pathlib.Path) -> None:
    result, _ = run("sync", "--dry-run", "--max-delete", "10", users=_many(tmp_path))
    assert sum(1 for x in result.stdout.splitlines() if x.startswith("    + ")) == 45
    assert "\x1b[" not in result.stdout
    assert result.stdout.splitlines()[-1] == "Synchronization plan: 45 to add, 3 to delete, 0 to update, 0 unchanged."


def test_colour_on_a_terminal(run: Run, tmp_path: pathlib.Path, tty: None) -> None:
    _csv(tmp_path, ["new@x.com,internal_user,development", "stay@x.com,proxy_admin,suport"])
    result, _ = run("sync", "--dry-run", users=[user("stay@x.com"), user("old@x.com")])
    out = result.stdout
    assert "    \x1b[32m+ new@x.com" in out  # green
    assert "    \x1b[31m- old@x.com" in out  # red
    assert "    \x1b[33m~ stay@x.com" in out  # yellow
    assert "\x1b[1m✗ suport (no such team; did you mean support?)" in out  # bold


def test_no_color_turns_colour_off_on_a_terminal(run: Run, tmp_path: pathlib.Path, tty: None) -> None:
    _csv(tmp_path, ["new@x.com,internal_user,development"])
    result, _ = run("sync", "--dry-run", env={"NO_COLOR": "1"})
    assert "\x1b[" not in result.stdout
    assert "    + new@x.com (Role: internal_user, Team: development)" in result.stdout


def test_a_brake_refusal_goes_to_stderr(run: Run, tmp_path: pathlib.Path) -> None:
    _csv(tmp_path, ["keep@x.com,internal_user,"])
    users = [user("keep@x.com"), *[user(f"gone{i:02d}@x.com") for i in range(12)]]
    result, calls = run("sync", "--dry-run", users=users)
    assert result.exit_code == 3
    assert "Refused: this run would delete 12 users" in result.stderr
    assert "Refused:" not in result.stdout
    assert result.stdout.splitlines()[-1].endswith("REFUSED (see the reason on stderr); nothing was changed.")
    # a real run too: stdout dropped by cron, stderr still says why it exited 3
    result, calls = run("sync", users=users)
    assert result.exit_code == 3 and "Refused: this run would delete 12 users" in result.stderr
    assert all(c.startswith("GET ") for c in calls)


def test_markdown_plan(run: Run, tmp_path: pathlib.Path) -> None:
    _csv(tmp_path, ["new@x.com,internal_user,development", "stay@x.com,proxy_admin,suport"])
    result, _ = run("sync", "--dry-run", "--output", "markdown", users=[user("stay@x.com"), user("old@x.com")])
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[:5] == [
        "### Synchronization plan (dry run)",
        "",
        "**1 to add, 1 to delete, 1 to update, 0 unchanged, 1 cannot be applied**",
        "",
        "| | user | role | teams | note |",
    ]
    assert "| + add | `new@x.com` | internal_user | development |  |" in result.stdout
    assert "| - delete | `old@x.com` | internal_user | - | destroys 2 API key(s), spend $1.50 |" in result.stdout
    assert (
        "| ~ update | `stay@x.com` | internal_user → proxy_admin | - → ✗ suport (no such team; did you mean support?)"
        " | **✗ will FAIL:** Team not found: suport (did you mean support?) |"
    ) in result.stdout


def test_markdown_refusal_is_on_top_and_on_stderr(run: Run, tmp_path: pathlib.Path) -> None:
    _csv(tmp_path, [])
    result, _ = run("sync", "--dry-run", "--output", "markdown", users=[user("a@x.com")])
    assert result.exit_code == 3
    assert "> **Refused, nothing will be changed:** the CSV has no users" in result.stdout
    assert "Refused: the CSV has no users" in result.stderr


def test_detailed_exitcode_without_dry_run_is_a_usage_error_1(run: Run, tmp_path: pathlib.Path) -> None:
    _csv(tmp_path, ["a@x.com,internal_user,"])
    result, calls = run("sync", "--detailed-exitcode")
    assert result.exit_code == 1
    assert "--detailed-exitcode needs --dry-run" in result.stderr
    assert calls == []


def test_detailed_exitcode_usage_errors_are_1(run: Run, tmp_path: pathlib.Path) -> None:
    result, calls = run("sync", "--dry-run", "--detailed-exitcode", "--no-such-option")
    assert result.exit_code == 1 and "No such option" in result.stderr
    result, calls = run("sync", "--dry-run", "--no-such-option")
    assert result.exit_code == 2  # without the flag: click's usual 2
    assert calls == []


def _strip(text: str) -> str:
    import re

    return re.sub(r"\x1b\[[0-9;]*m", "", text)


def test_snapshot_output_is_a_format_and_the_file_has_its_own_option(run: Run, tmp_path: pathlib.Path) -> None:
    import json

    result, _ = run("snapshot", "--file", "s.json", "--output", "json", users=[user("a@x.com")])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["schema"] == "litellm-usersync/snapshot-written"
    assert (doc["file"], doc["users"], doc["teams"]) == ("s.json", 1, 2)
    assert json.loads((tmp_path / "s.json").read_text())["counts"] == {"users": 1, "teams": 2}


def test_snapshot_output_path_is_the_old_spelling_of_file(run: Run, tmp_path: pathlib.Path) -> None:
    result, _ = run("snapshot", "--output", "old.json", users=[user("a@x.com")])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "old.json").exists()
    assert "deprecated" in result.stderr and "--file old.json" in result.stderr
    assert result.stdout.startswith("Snapshot written to old.json")


def test_a_restore_plan_is_headed_as_a_restore(run: Run, tmp_path: pathlib.Path) -> None:
    users = [user("a@x.com")]
    assert run("snapshot", "--file", "s.json", users=users)[0].exit_code == 0
    result, _ = run("restore", "s.json", "--dry-run", users=[*users, user("b@x.com")])
    assert result.exit_code == 0, result.output
    assert "Restore Plan:\n" in result.stdout and "Synchronization" not in result.stdout
    assert "DRY RUN - Changes the restore would make:" in result.stdout
    assert result.stdout.splitlines()[-1] == "Restore plan: 0 to add, 1 to delete, 0 to update, 1 unchanged."


def test_add_marks_a_role_from_the_user_role_default(run: Run, tmp_path: pathlib.Path) -> None:
    (tmp_path / "user_addlist.csv").write_text("email\nnew@x.com\n", encoding="utf-8")
    result, _ = run("add", "--dry-run")
    assert result.exit_code == 0, result.output
    assert "  + new@x.com (Role: proxy_admin (default: no role in the CSV), Team: -)" in result.stdout
    assert result.stdout.splitlines()[-1] == "Registration plan: 1 to add, 0 already exist."


def test_table_fits_the_terminal(run: Run, monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 11: at 160 columns every email, team id and microsecond timestamp wrapped onto two lines."""
    import os
    import shutil

    from litellm_usersync.cli import listing as listing_cli

    monkeypatch.setattr(listing_cli, "stdout_is_tty", lambda: True)
    monkeypatch.setattr(shutil, "get_terminal_size", lambda *a: os.terminal_size((80, 24)))
    users = [
        {**user("someone.long@example.com", teams=("t-dev", "t-sup")), "created_at": "2026-11-27T03:07:38.123456Z"}
    ]
    result, _ = run("list", "--format", "table", users=users)
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert all(len(x) <= 80 for x in lines[:-1]), result.stdout
    row = next(x for x in lines if "someone.long@example.com" in x)
    assert "development, support" in row  # team names, not ids, on the user's one line
    assert "t-dev" not in result.stdout
    assert lines[-1].startswith("1 user(s); left out to fit 80 columns: ")


def test_list_markdown(run: Run) -> None:
    result, _ = run(
        "list", "--output", "markdown", "--columns", "user_email,team_names", users=[user("a@x.com", teams=("t-dev",))]
    )
    assert result.exit_code == 0
    assert result.stdout == "| user_email | team_names |\n|---|---|\n| a@x.com | development |\n"


def test_a_dead_proxy_says_it_is_retrying_instead_of_silence(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import httpx
    from click.testing import CliRunner

    from litellm_usersync.cli import cli
    from litellm_usersync.cli._common import Context

    from ._scripted import KEY

    monkeypatch.chdir(tmp_path)
    _csv(tmp_path, ["a@x.com,internal_user,"])

    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("Connection refused", request=request)

    slept: list[float] = []

    async def sleep(s: float) -> None:
        slept.append(s)

    result = CliRunner().invoke(
        cli,
        ["sync", "--dry-run"],
        obj=Context(transport=httpx.MockTransport(refuse), sleep=sleep),
        env={"LITELLM_MASTER_KEY": KEY, "LITELLM_BASE_URL": "http://proxy.test"},
    )
    assert result.exit_code == 2
    lines = result.stderr.splitlines()
    retries = [x for x in lines if x.startswith("retrying (")]
    # each request the run needed says so, attempt by attempt (the default policy: 5 attempts)
    assert [x.split(")")[0] for x in retries[:4]] == [
        "retrying (2/5",
        "retrying (3/5",
        "retrying (4/5",
        "retrying (5/5",
    ]
    assert "cannot connect to http://proxy.test" in retries[0]
    assert len(slept) == len(retries) >= 4
    assert lines[-1].startswith("Error: Connection failed")
    assert KEY not in result.stderr


def test_debug_explains_why_each_user_is_in_the_plan_and_the_master_keys_404(run: Run, tmp_path: pathlib.Path) -> None:
    _csv(tmp_path, ["new@x.com,internal_user,development", "stay@x.com,proxy_admin,support", "same@x.com,,"])
    users = [user("stay@x.com", "internal_user", ("t-dev",)), user("old@x.com"), user("same@x.com")]
    result, _ = run("sync", "--dry-run", "--debug", users=users)
    assert result.exit_code == 0, result.output
    err = result.stderr
    assert "plan: new@x.com: in CSV line 2, no user with this email in the proxy → create" in err
    assert (
        "plan: stay@x.com: role internal_user in the proxy, proxy_admin in CSV line 3; teams [development] in the "
        "proxy, [support] in CSV line 3 → role:stay@x.com, join:stay@x.com:t-sup, leave:stay@x.com:t-dev"
    ) in err
    assert "plan: same@x.com: role and teams match CSV line 4 → nothing to do" in err
    assert "plan: old@x.com (user_id old@x.com, role internal_user): in the proxy, not in the source → delete" in err
    key_info = next(x for x in err.splitlines() if "← 404 GET /key/info" in x)
    assert "expected, not an error: the master key is not a stored key" in key_info
    assert "Key not found" not in key_info


def test_a_real_run_whose_rows_all_fail_still_shows_them_and_the_plan_counts(run: Run, tmp_path: pathlib.Path) -> None:
    # seen in the trial: a real run of a CSV whose only change is a mistyped team printed the summary alone
    # ("Rows that cannot be applied: 1"), not which row, nor the plan's counts line the dry run ends with
    _csv(tmp_path, ["stay@x.com,internal_user,suport"])
    result, calls = run("sync", users=[user("stay@x.com")])
    assert result.exit_code == 1, result.output
    lines = result.stdout.splitlines()
    assert "Changes to be made:" in lines
    assert any("✗ suport (no such team; did you mean support?)" in x for x in lines)
    assert "Synchronization plan: 0 to add, 0 to delete, 1 to update, 0 unchanged, 1 cannot be applied." in lines
    assert all(c.startswith("GET ") for c in calls)  # nothing was sent for the failing row
