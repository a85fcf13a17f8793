"""Every command has help, is in the README, and every one of its options is documented (as sqlite-utils does)."""

from __future__ import annotations

import pathlib

import click
import pytest
from click.testing import CliRunner

from litellm_usersync.cli import cli

REPO = pathlib.Path(__file__).resolve().parents[2]
DOC_PAGE = {
    "sync": "sync.md",
    "add": "add.md",
    "delete": "delete.md",
    "list": "list.md",
    "snapshot": "plans-and-restore.md",
    "restore": "plans-and-restore.md",
}
COMMON = {"--base-url", "--master-key", "--debug", "--concurrency", "--timeout", "--bulk", "--no-bulk", "--help"}


def test_every_command_is_known() -> None:
    assert set(cli.commands) == set(DOC_PAGE)


@pytest.mark.parametrize("name", sorted(DOC_PAGE))
def test_command_has_help_and_is_in_the_readme(name: str) -> None:
    result = CliRunner().invoke(cli, [name, "--help"])
    assert result.exit_code == 0
    assert "Usage:" in result.output and "Examples:" in result.output
    assert f"`litellm-usersync {name}" in (REPO / "README.md").read_text()


@pytest.mark.parametrize("name", sorted(DOC_PAGE))
def test_every_option_is_documented(name: str) -> None:
    command = cli.commands[name]
    page = (REPO / "docs" / DOC_PAGE[name]).read_text()
    missing = []
    for param in command.params:
        if isinstance(param, click.Option):
            for opt in [*param.opts, *param.secondary_opts]:
                if opt.startswith("--") and opt not in COMMON and opt not in page:
                    missing.append(opt)
    assert not missing, f"docs/{DOC_PAGE[name]} does not mention {missing}"


def test_common_options_are_documented_once() -> None:
    page = (REPO / "docs" / "sync.md").read_text()
    for opt in COMMON - {"--help", "--no-bulk"}:
        assert opt in page, opt


@pytest.mark.parametrize("name", sorted(DOC_PAGE))
def test_short_help_option_on_every_command(name: str) -> None:
    result = CliRunner().invoke(cli, [name, "-h"])
    assert result.exit_code == 0, result.output
    assert result.output.startswith("Usage: ") and f" {name} [OPTIONS]" in result.output.splitlines()[0]
    assert "-h, --help" in result.output


def test_files_that_hold_keys_or_emails_in_the_readme_workflow_are_git_ignored() -> None:
    """The README says a `git add .` where the tool runs commits no key or email. Trial: its own daily workflow,
    `python list_user.py > backup_$(date +%Y%m%d).txt` (every user's email), was not ignored."""
    import shutil
    import subprocess

    if shutil.which("git") is None or not (REPO / ".git").exists():
        pytest.skip("not a git checkout")
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert "python list_user.py > backup_$(date +%Y%m%d).txt" in readme
    paths = [
        "backup_20261201.txt",
        "user_sync_result.csv",
        "user_sync_result.20261201T223721Z.csv",
        "user_reg_result.csv",
        "user_update_list.csv",
        "usersync-backups/audit.jsonl",
        ".env",
    ]
    done = subprocess.run(
        ["git", "-C", str(REPO), "check-ignore", "--no-index", *paths], capture_output=True, text=True, check=False
    )
    assert sorted(done.stdout.split()) == sorted(paths), done.stdout + done.stderr
