"""docs/api.md's example, extracted from the page and run as a script against the real proxy.

The page is the library's front door: if its code stops working (a renamed option, a changed result), this
test fails, not a reader.
"""

from __future__ import annotations

import json
import os
import pathlib
import re
import stat
import subprocess
import sys

from litellm_usersync.proxy.client import ProxyClient

from .conftest import REPO, Proxy, create_users, live_users, write


def api_example() -> str:
    page = (REPO / "docs" / "api.md").read_text(encoding="utf-8")
    blocks = re.findall(r"^```python\n(.*?)^```$", page, flags=re.S | re.M)
    assert blocks, "docs/api.md has no python code block"
    return blocks[0]


def run_example(proxy: Proxy, workdir: pathlib.Path) -> subprocess.CompletedProcess[str]:
    script = write(workdir / "example.py", api_example())
    env = {**os.environ, **proxy.env()}
    return subprocess.run(
        [sys.executable, str(script)], cwd=workdir, env=env, capture_output=True, text=True, timeout=300
    )


def test_the_api_example_syncs_safely(clean_proxy: Proxy, workdir: pathlib.Path) -> None:
    async def arrange(c: ProxyClient) -> None:
        await create_users(c, [{"user_id": "keep", "user_email": "keep@example.com", "user_role": "internal_user"}])

    clean_proxy.run(arrange)
    write(workdir / "user_list.csv", "email,role\nnew@example.com,internal_user\nkeep@example.com,proxy_admin\n")

    done = run_example(clean_proxy, workdir)

    assert done.returncode == 0, done.stdout + done.stderr
    users = live_users(clean_proxy)
    assert users["new@example.com"]["user_role"] == "internal_user"
    assert users["keep@example.com"]["user_role"] == "proxy_admin"  # updated, not recreated
    # the plan was shown, saved, and exactly it applied
    assert "new@example.com" in done.stdout and "keep@example.com" in done.stdout
    saved = json.loads((workdir / "plan.json").read_text())
    assert {i["email"] for i in saved["items"]} == {"new@example.com", "keep@example.com"}
    # the safety net: the backup before the first change, the audit log, the report 0600 with the new key
    backups = sorted((workdir / "usersync-backups").glob("snapshot-*-sync.json"))
    assert len(backups) == 1 and f"backup: {backups[0].relative_to(workdir)}" in done.stdout
    assert (workdir / "usersync-backups" / "audit.jsonl").read_text().count("\n") >= 2
    report = workdir / "user_sync_result.csv"
    assert stat.S_IMODE(report.stat().st_mode) == 0o600
    assert "sk-" in report.read_text()
    assert "Backup of the current state" in done.stderr


def test_the_api_example_changes_nothing_when_the_file_is_bad(clean_proxy: Proxy, workdir: pathlib.Path) -> None:
    write(workdir / "user_list.csv", "email,role\nnot-an-email,internal_user\n")

    done = run_example(clean_proxy, workdir)

    assert done.returncode == 1 and done.stderr.startswith("Error: "), done.stdout + done.stderr
    assert live_users(clean_proxy) == {}
    assert not (workdir / "plan.json").exists() and not (workdir / "usersync-backups").exists()
