"""No API key is ever lost (issue 16), on the real proxy: what a killed run leaves (users created, their
"key pending" marker still set, keys nobody saw) is found on the proxy itself and repaired by the next run,
sync and add alike, from any folder; a key a journal holds is kept, never revoked.

The killed run is arranged through the library exactly as the tool leaves it (``/user/new`` with the
markers and ``auto_create_key``, answer thrown away); the SIGKILL cases in ``test_faults.py`` do it for real.
"""

from __future__ import annotations

import csv
import json
import pathlib
from typing import Any

from litellm_usersync.apply.executor import KEPT_NOTE, REISSUED_NOTE
from litellm_usersync.files.audit import read_audit_log
from litellm_usersync.models import INVITE_PENDING, KEY_PENDING
from litellm_usersync.proxy.client import ProxyClient

from ._keys import key_hash, key_info, pending_markers, user_keys
from .conftest import Proxy, write


def _killed_run_leftovers(proxy: Proxy, emails: list[str], *, invite: bool = False) -> dict[str, str]:
    """Users as a killed run leaves them; returns ``user_id -> the key it minted`` (that nobody saw)."""

    async def go(c: ProxyClient) -> dict[str, str]:
        out = {}
        await c.create_team("keys-team")  # creates default_user_id's row (invitations need it)
        for e in emails:
            md: dict[str, Any] = {"managed_by": "litellm-usersync", KEY_PENDING: True}
            if invite:
                md[INVITE_PENDING] = True
            created = await c.create_user(
                {"user_id": e, "user_email": e, "user_role": "internal_user", "auto_create_key": True, "metadata": md}
            )
            assert created.api_key
            out[e] = created.api_key
        return out

    return proxy.run(go)


def _users(proxy: Proxy) -> list[dict[str, Any]]:
    async def go(c: ProxyClient) -> list[dict[str, Any]]:
        return await c.read_all_users()

    return proxy.run(go)


def test_sync_from_another_folder_revokes_the_unseen_keys_and_reports_new_ones(
    clean_proxy: Proxy, workdir: pathlib.Path, cli_run: Any
) -> None:
    lost = _killed_run_leftovers(clean_proxy, ["lost1@keys.example", "lost2@keys.example"])
    csv_path = write(workdir / "users.csv", "email,role\n" + "".join(f"{e},internal_user\n" for e in lost))

    dry = cli_run("sync", "--csv-file", str(csv_path), "--dry-run", "--output", "json")
    assert dry.exit_code == 0, dry.output
    plan = json.loads(dry.stdout)
    assert plan["summary"]["reissue_keys"] == 2 and plan["summary"]["update"] == 2
    text = cli_run("sync", "--csv-file", str(csv_path), "--dry-run")
    assert "API keys to reissue (lost by an interrupted run): 2" in text.output
    assert "~ lost1@keys.example (API key lost by an interrupted run: revoke it, issue a new one)" in text.output

    result = cli_run("sync", "--csv-file", str(csv_path), "--backup-dir", str(workdir / "bk"))
    assert result.exit_code == 0, result.output
    with (workdir / "user_sync_result.csv").open(newline="", encoding="utf-8") as f:
        rows = {r["email"]: r for r in csv.DictReader(f)}
    info = key_info(clean_proxy, set(lost.values()) | {r["api_keys"] for r in rows.values()})
    live = user_keys(clean_proxy, list(lost))
    for uid, old in lost.items():
        r = rows[uid]
        assert (r["action"], r["status"], r["error_reason"]) == ("UPDATED", "SUCCESS", REISSUED_NOTE)
        assert info[r["api_keys"]] == (uid, "active")  # the new key works
        assert info[old][1] == "deleted"  # the unseen one is revoked
        assert live[uid] == {key_hash(r["api_keys"])}
    assert pending_markers(_users(clean_proxy)) == set()
    audit = [a for a in read_audit_log(workdir / "bk" / "audit.jsonl") if a["kind"] == "reissue_key"]
    assert sorted(a["user_id"] for a in audit) == sorted(lost) and all(a["status"] == "done" for a in audit)
    assert not any("sk-" in json.dumps(a) for a in audit)
    # converged: nothing left to repair
    again = cli_run("sync", "--csv-file", str(csv_path), "--dry-run", "--detailed-exitcode")
    assert again.exit_code == 0, again.output


def test_a_key_a_journal_holds_is_kept_and_reported_not_revoked(
    clean_proxy: Proxy, workdir: pathlib.Path, cli_run: Any
) -> None:
    """Killed after the key was journaled, before the marker was cleared: the rerun keeps that key."""
    lost = _killed_run_leftovers(clean_proxy, ["kept@keys.example"])
    journal = workdir / "user_sync_result.csv.journal"
    journal.write_text(
        json.dumps(
            {"schema": "litellm-usersync/journal", "user_id": "kept@keys.example", "api_key": lost["kept@keys.example"]}
        )
        + "\n"
    )
    csv_path = write(workdir / "users.csv", "email,role\nkept@keys.example,internal_user\n")
    result = cli_run("sync", "--csv-file", str(csv_path), "--no-backup")
    assert result.exit_code == 0, result.output
    assert "An earlier run was interrupted: the API keys it received are kept in" in result.output
    with (workdir / "user_sync_result.csv").open(newline="", encoding="utf-8") as f:
        (row,) = list(csv.DictReader(f))
    assert row["api_keys"] == lost["kept@keys.example"] and row["error_reason"] == KEPT_NOTE
    assert key_info(clean_proxy, {row["api_keys"]})[row["api_keys"]][1] == "active"
    assert user_keys(clean_proxy, ["kept@keys.example"])["kept@keys.example"] == {key_hash(row["api_keys"])}
    assert pending_markers(_users(clean_proxy)) == set()
    assert not journal.exists() and list(workdir.glob("user_sync_result.csv.journal.*"))  # moved aside, kept


def test_add_repairs_the_key_and_the_invitation_link_of_an_interrupted_add(
    clean_proxy: Proxy, workdir: pathlib.Path, cli_run: Any
) -> None:
    lost = _killed_run_leftovers(clean_proxy, ["half@keys.example"], invite=True)
    csv_path = write(workdir / "add.csv", "email,role\nhalf@keys.example,internal_user\n")
    dry = cli_run("add", "--csv-file", str(csv_path), "--dry-run")
    assert "↻ half@keys.example: API key lost: revoke it, issue a new one; invitation link lost" in dry.output
    result = cli_run("add", "--csv-file", str(csv_path), "--no-backup")
    assert result.exit_code == 0, result.output
    with (workdir / "user_reg_result.csv").open(newline="", encoding="utf-8") as f:
        (row,) = list(csv.DictReader(f))
    assert row["api_keys"].startswith("sk-") and "invitation_id=" in row["invitation_url"]
    info = key_info(clean_proxy, {row["api_keys"], lost["half@keys.example"]})
    assert info[row["api_keys"]] == ("half@keys.example", "active")
    assert info[lost["half@keys.example"]][1] == "deleted"
    with (workdir / "user_reg_error.csv").open(newline="", encoding="utf-8") as f:
        assert list(csv.DictReader(f)) == []  # not "User already exists"
    users = _users(clean_proxy)
    (u,) = [x for x in users if x["user_id"] == "half@keys.example"]
    assert not (u.get("metadata") or {}).get(KEY_PENDING) and not (u.get("metadata") or {}).get(INVITE_PENDING)


def test_a_normal_run_leaves_no_marker_and_no_journal(clean_proxy: Proxy, workdir: pathlib.Path, cli_run: Any) -> None:
    csv_path = write(workdir / "users.csv", "email,role\nn1@keys.example,internal_user\nn2@keys.example,proxy_admin\n")
    for cmd, report in (("sync", "user_sync_result.csv"),):
        result = cli_run(cmd, "--csv-file", str(csv_path), "--no-backup")
        assert result.exit_code == 0, result.output
        assert not (workdir / f"{report}.journal").exists()
    assert pending_markers(_users(clean_proxy)) == set()
    # add whose /invitation/new is refused (no default_user_id row yet): the link never existed, the marker stays
    a = write(workdir / "add.csv", "email,role\nn3@keys.example,internal_user\n")
    result = cli_run("add", "--csv-file", str(a), "--no-backup")
    assert result.exit_code == 1 and "no invitation link" in result.output
    assert not (workdir / "user_reg_result.csv.journal").exists()
    md = {u["user_id"]: u.get("metadata") or {} for u in _users(clean_proxy)}
    assert not md["n3@keys.example"].get(KEY_PENDING) and md["n3@keys.example"].get(INVITE_PENDING)
    # the next add (once invitations work) gives the user its link, instead of "User already exists"
    clean_proxy.run(lambda c: c.create_team("keys-team"))
    again = cli_run("add", "--csv-file", str(a), "--no-backup")
    assert again.exit_code == 0, again.output
    assert "↻ n3@keys.example: invitation link lost: create a new one" in again.output
    with (workdir / "user_reg_result.csv").open(newline="", encoding="utf-8") as f:
        (row,) = list(csv.DictReader(f))
    assert "invitation_id=" in row["invitation_url"] and row["api_keys"] == ""  # its key was recorded before
    md = {u["user_id"]: u.get("metadata") or {} for u in _users(clean_proxy)}
    assert not md["n3@keys.example"].get(INVITE_PENDING)
