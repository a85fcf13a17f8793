"""The use cases called from Python (no CLI): silent by default, typed results, hooks in order, the lock held.

Over the scripted proxy (reads only), so these cover what happens before the first change; the real runs
are in tests/integration (test_api_doc runs docs/api.md's example).
"""

from __future__ import annotations

import asyncio
import pathlib
import signal

import httpx
import pytest

from litellm_usersync import ClientSettings
from litellm_usersync.files.runlock import RunLockedError, acquire_run_lock
from litellm_usersync.models import ItemKind
from litellm_usersync.usecases import (
    DeleteOptions,
    Hooks,
    SafetyOptions,
    SnapshotOptions,
    SyncOptions,
    delete,
    list_users,
    snapshot,
    sync,
)
from litellm_usersync.usecases._base import run_stoppable

from ._scripted import KEY, TEAMS, fake_proxy, user

URL = "http://proxy.test"
SETTINGS = ClientSettings(base_url=URL, master_key=KEY)


@pytest.fixture
def here(tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> pathlib.Path:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "user_list.csv").write_text("email,role\nnew@x.com,internal_user\nold@x.com,proxy_admin\n")
    return tmp_path


def hooks(calls: list[str], events: list[str], users: list[dict[str, object]] | None = None) -> Hooks[object]:
    return Hooks(
        transport=httpx.MockTransport(fake_proxy(users if users is not None else [user("old@x.com")], TEAMS, calls)),
        say=lambda text: events.append(f"say {text}"),
        warn=lambda text: events.append(f"warn {text}"),
        started=lambda: events.append("started"),
        planned=lambda plan: events.append("planned"),
        applying=lambda plan, backup: events.append("applying"),
    )


def test_a_dry_run_is_silent_returns_the_plan_and_writes_nothing(
    here: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    calls: list[str] = []
    result = sync(
        SETTINGS,
        SyncOptions(dry_run=True),
        Hooks(transport=httpx.MockTransport(fake_proxy([user("old@x.com")], TEAMS, calls))),
    )

    assert result.report is None and result.report_file is None and not result.refused
    assert [(i.kind, i.email) for i in result.plan.items if i.kind is not ItemKind.UNCHANGED] == [
        (ItemKind.ADD, "new@x.com"),
        (ItemKind.UPDATE, "old@x.com"),
    ]
    assert result.features.version == "1.110.2"
    assert capsys.readouterr() == ("", "")  # the library prints nothing
    assert sorted(p.name for p in here.iterdir()) == ["user_list.csv"]
    assert all(c.startswith("GET ") for c in calls)


def test_the_hooks_see_the_run_in_order_and_a_refusal_changes_nothing(here: pathlib.Path) -> None:
    calls: list[str] = []
    events: list[str] = []
    many = [user(f"u{i}@x.com") for i in range(30)]

    result = sync(SETTINGS, SyncOptions(), hooks(calls, events, many))

    assert result.refused and result.report is None
    assert "this run would delete 30 users, more than the limit of 10" in result.plan.refusals[0]
    assert events == ["started", "planned"]  # never "applying": the brake said no
    assert all(c.startswith("GET ") for c in calls)
    assert not (here / "usersync-backups").exists() and not (here / "user_sync_result.csv").exists()


def test_a_real_run_holds_the_lock_from_before_the_first_read_until_it_returns(
    here: pathlib.Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    state = tmp_path_factory.mktemp("state")
    held: list[str] = []

    def try_lock(_plan: object) -> None:
        with pytest.raises(RunLockedError):
            acquire_run_lock(state, URL, command="test")
        held.append("locked")

    calls: list[str] = []
    refusing = hooks(calls, [], [user(f"u{i}@x.com") for i in range(30)])
    refusing = Hooks(transport=refusing.transport, planned=try_lock)
    sync(SETTINGS, SyncOptions(safety=SafetyOptions(state_dir=state)), refusing)

    assert held == ["locked"]
    acquire_run_lock(state, URL, command="test").release()  # released when the use case returned

    other = acquire_run_lock(state, URL, command="sync")
    try:
        calls.clear()
        with pytest.raises(RunLockedError):
            sync(SETTINGS, SyncOptions(safety=SafetyOptions(state_dir=state)), refusing)
        assert calls == []  # nothing was read
    finally:
        other.release()


def test_delete_and_snapshot_and_list_return_typed_results(here: pathlib.Path) -> None:
    (here / "gone.csv").write_text("email\nold@x.com\nnobody@x.com\n")
    calls: list[str] = []
    h = hooks(calls, [])

    deleted = delete(SETTINGS, DeleteOptions(csv_file="gone.csv", dry_run=True), h)
    assert deleted.report is None and [i.email for i in deleted.delete.plan.items] == ["old@x.com"]
    assert deleted.errors == (("nobody@x.com", "", "User not found in the system"),)

    written = snapshot(SETTINGS, SnapshotOptions(file="snap.json"), h)
    assert written.path == pathlib.Path("snap.json") and (here / "snap.json").exists()
    assert written.users_with_email == 1 and written.text is None
    as_text = snapshot(SETTINGS, SnapshotOptions(file="-"), h)
    assert as_text.path is None and as_text.text is not None and '"old@x.com"' in as_text.text

    assert [u.email for u in list_users(SETTINGS, h).users] == ["old@x.com"]


def test_the_first_signal_stops_cleanly_and_the_second_ends_the_run() -> None:
    seen: list[tuple[str, bool]] = []
    h: Hooks[object] = Hooks(signalled=lambda sig, second: seen.append((sig.name, second)))

    async def first_only(stop: asyncio.Event) -> str:
        signal.raise_signal(signal.SIGTERM)
        await asyncio.wait_for(stop.wait(), 5)
        return "finished what was in flight"

    assert run_stoppable(first_only, h) == "finished what was in flight"
    assert seen == [("SIGTERM", False)]

    async def both(stop: asyncio.Event) -> str:
        signal.raise_signal(signal.SIGINT)
        await asyncio.wait_for(stop.wait(), 5)
        signal.raise_signal(signal.SIGINT)
        await asyncio.sleep(5)
        return "not reached"

    seen.clear()
    with pytest.raises(KeyboardInterrupt):
        run_stoppable(both, h)
    assert seen == [("SIGINT", False), ("SIGINT", True)]


def test_a_dry_run_takes_no_lock(here: pathlib.Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    state = tmp_path_factory.mktemp("state")
    other = acquire_run_lock(state, URL, command="sync")
    try:
        result = sync(SETTINGS, SyncOptions(dry_run=True, safety=SafetyOptions(state_dir=state)), hooks([], []))
    finally:
        other.release()
    assert result.report is None and len(result.plan.items) == 2
