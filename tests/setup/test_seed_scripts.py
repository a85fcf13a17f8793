"""The seed scripts as processes: ``python sync_user.py ...`` with -h, --version, and with a Python that lacks
the dependencies (they re-exec inside the project's environment, keeping arguments, stdin, stdout and exit
code). Fast: no package is installed here (tests/setup/test_fresh_clone.py does the real first-run set-up)."""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys
import tomllib

import pytest

REPO = pathlib.Path(__file__).resolve().parents[2]
SCRIPTS = ["sync_user.py", "add_user.py", "del_user.py", "list_user.py"]
sys.path.insert(0, str(REPO / "src"))
import _seed_bootstrap  # noqa: E402


def run(
    python: str, *args: str, env: dict[str, str] | None = None, stdin: str = ""
) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("LITELLM_", "USERSYNC_"))}
    return subprocess.run(
        [python, *args], cwd=REPO, env={**clean, **(env or {})}, input=stdin, capture_output=True, text=True, timeout=60
    )


@pytest.mark.parametrize("script", SCRIPTS)
@pytest.mark.parametrize("flag", ["-h"])
def test_help_on_every_seed_script(script: str, flag: str) -> None:
    done = run(sys.executable, script, flag)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"Usage: {script} [OPTIONS]")
    assert done.stderr == "", "deps importable: no set-up, nothing on stderr"


@pytest.mark.parametrize("script", SCRIPTS)
def test_version_on_every_seed_script(script: str) -> None:
    done = run(sys.executable, script, "--version")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "litellm-usersync, version 0.1.0"


def test_required_modules_match_the_dependencies() -> None:
    deps = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    names = {d.split(">")[0].split("<")[0].split("=")[0].strip().lower() for d in deps}
    import_name = {"email-validator": "email_validator", "python-dotenv": "dotenv"}
    assert {import_name.get(n, n) for n in names} == set(_seed_bootstrap.REQUIRED_MODULES)


@pytest.fixture
def bare_python() -> str:
    """The interpreter this venv was made from: it has none of the dependencies (as the machine's python)."""
    base = getattr(sys, "_base_executable", "") or "/usr/bin/python3"
    probe = subprocess.run([base, "-c", "import httpx"], capture_output=True)
    if probe.returncode == 0:
        pytest.skip(f"{base} has httpx: it cannot play the bare Python")
    return base


@pytest.fixture
def ready_venv(tmp_path: pathlib.Path) -> pathlib.Path:
    """A project environment that is already set up: its python is this test venv's."""
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    py = venv / "bin" / "python"
    py.write_text(f'#!/bin/sh\nexec {sys.executable} "$@"\n')
    py.chmod(0o755)
    (venv / ".installed").touch()
    return venv


def test_bare_python_reexecs_in_the_environment(bare_python: str, ready_venv: pathlib.Path) -> None:
    done = run(bare_python, "list_user.py", "-h", env={"USERSYNC_VENV": str(ready_venv)})
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("Usage: list_user.py [OPTIONS]")
    assert done.stderr == "", "already set up: nothing to say"


def test_reexec_keeps_arguments_stdin_stdout_and_exit_code(
    bare_python: str, ready_venv: pathlib.Path, tmp_path: pathlib.Path
) -> None:
    bad = tmp_path / "bad list.csv"  # a space: arguments pass through unsplit
    bad.write_text("email,role\nnot-an-email,internal_user\n")
    done = run(
        bare_python,
        "sync_user.py",
        "--csv-file",
        str(bad),
        "--dry-run",
        env={"USERSYNC_VENV": str(ready_venv), "LITELLM_MASTER_KEY": "sk-test-only"},
        stdin="ignored\n",
    )
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert f"{bad}:2 (column 1 (email)): invalid email 'not-an-email'" in done.stderr
    assert done.stdout == ""


def test_a_broken_environment_fails_once_with_a_message(bare_python: str, tmp_path: pathlib.Path) -> None:
    """A venv whose python still lacks the dependencies: one clear error, no exec loop."""
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    py = venv / "bin" / "python"
    py.write_text(f'#!/bin/sh\nexec {bare_python} "$@"\n')
    py.chmod(0o755)
    (venv / ".installed").touch()
    done = run(bare_python, "del_user.py", "-h", env={"USERSYNC_VENV": str(venv)})
    assert done.returncode == 2, "nothing could be done"
    assert "still cannot import httpx" in done.stderr
    assert done.stdout == ""


def test_too_old_python_is_named() -> None:
    code = (
        "import sys; sys.version_info = (3, 10, 0); sys.path.insert(0, 'src'); import _seed_bootstrap;"
        "_seed_bootstrap.ensure_environment('sync_user.py')"
    )
    done = run(sys.executable, "-c", code)
    assert done.returncode == 2
    assert "litellm-usersync: needs Python 3.11 or newer; this is" in done.stderr


def test_a_failed_set_up_exits_2_and_says_what_to_do(bare_python: str, tmp_path: pathlib.Path) -> None:
    """pip cannot install (here: the venv's "python" fails): exit 2, nothing on stdout, the way out named."""
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    py = venv / "bin" / "python"
    py.write_text("#!/bin/sh\necho 'no network' >&2\nexit 1\n")
    py.chmod(0o755)  # no .installed stamp: the set-up runs pip through it
    done = run(bare_python, "sync_user.py", "--dry-run", env={"USERSYNC_VENV": str(venv)})
    assert done.returncode == 2
    assert done.stdout == ""
    assert "no network" in done.stderr and "setting up the environment failed" in done.stderr
    assert "pipx install ." in done.stderr
    assert not (venv / ".installed").exists(), "a failed install is retried next time"


def test_reexec_is_an_exec_same_process_and_signals_reach_the_command(
    bare_python: str, ready_venv: pathlib.Path
) -> None:
    """The set-up replaces the process (os.execv), it does not wrap a child: a supervisor's SIGTERM and the
    exit status are the command's own."""
    import signal
    import time

    if not pathlib.Path("/proc/self/cmdline").exists():
        pytest.skip("needs /proc")
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("LITELLM_", "USERSYNC_"))}
    env = {**clean, "USERSYNC_VENV": str(ready_venv), "LITELLM_MASTER_KEY": "sk-test-only"}
    # --csv-file /dev/stdin: the command blocks reading its input, inside the re-executed interpreter
    proc = subprocess.Popen(
        [bare_python, "sync_user.py", "--csv-file", "/dev/stdin", "--dry-run"],
        cwd=REPO,
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        cmdline = pathlib.Path(f"/proc/{proc.pid}/cmdline")
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            argv = cmdline.read_bytes().split(b"\0")
            if argv and argv[0] == sys.executable.encode():
                break
            time.sleep(0.05)
        else:
            pytest.fail(f"pid {proc.pid} never became {sys.executable}: {argv!r}")
        assert argv[1:4] == [str(REPO / "sync_user.py").encode(), b"--csv-file", b"/dev/stdin"]
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == -signal.SIGTERM
    finally:
        proc.kill()
        proc.communicate()
