"""Make ``python sync_user.py ...`` (and the other seed scripts) work with any Python >= 3.11.

The original manual's first command is ``python sync_user.py --csv-file user_list.csv --dry-run``, run
with whatever ``python`` the admin has. That Python rarely has httpx, click, ... installed. So, before the
seed script imports anything of ours:

* when every dependency is importable already (an activated venv, ``pip install -e .``, the project's
  ``.venv/bin/python``), nothing happens: the script just runs;
* otherwise the project's environment (``.venv`` next to the scripts, or ``$USERSYNC_VENV``) is used,
  created and installed first when needed (as ``scripts/bootstrap`` does, saying so on stderr), and the
  script is *re-executed* inside it with ``os.execv``: same arguments, same stdin/stdout/stderr, the same
  process (so signals reach it and its exit code is the command's).

Standard library only, and importable on its own (it is not part of the ``litellm_usersync`` package, whose
``__init__`` needs the dependencies). Not installed with the wheel: an installed tool has its dependencies.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

#: import names of the runtime dependencies in pyproject.toml (keep in step with it; a test checks)
REQUIRED_MODULES = ("httpx", "click", "rich", "tenacity", "email_validator", "dotenv", "openpyxl")

#: set in the re-executed process, so a broken environment fails once with a message instead of looping
_MARKER = "USERSYNC_SEED_BOOTSTRAPPED"

MIN_PYTHON = (3, 11)


def missing_modules() -> list[str]:
    """The dependencies this interpreter cannot import."""
    return [m for m in REQUIRED_MODULES if importlib.util.find_spec(m) is None]


def venv_dir(repo: Path) -> Path:
    return Path(os.environ.get("USERSYNC_VENV") or repo / ".venv")


def venv_python(venv: Path) -> Path:
    return venv / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def _say(text: str) -> None:
    print(f"litellm-usersync: {text}", file=sys.stderr, flush=True)


#: the documented exit code for "nothing could be done" (cli._common.ExitCode.UNUSABLE)
UNUSABLE = 2


def _fail(text: str) -> SystemExit:
    """Say why on stderr; the caller raises the result (exit 2: nothing could be done)."""
    print(f"litellm-usersync: {text}", file=sys.stderr, flush=True)
    return SystemExit(UNUSABLE)


def _installed(venv: Path, repo: Path) -> bool:
    """The same stamps as scripts/bootstrap: installed, and not older than pyproject.toml."""
    pyproject = (repo / "pyproject.toml").stat().st_mtime
    stamps = [venv / ".installed", venv / ".installed-test"]
    return any(s.is_file() and s.stat().st_mtime >= pyproject for s in stamps)


def _run(cmd: list[str]) -> None:
    # pip's chatter goes to stderr: stdout belongs to the command (a JSON plan, a list piped elsewhere)
    done = subprocess.run(cmd, stdout=sys.stderr.fileno(), check=False)
    if done.returncode != 0:
        raise _fail(
            f"setting up the environment failed ({' '.join(cmd)} exited {done.returncode}).\n"
            "Fix the problem above and run the command again, or install the tool yourself: "
            "pipx install . (see README.md, 'Installing it as a tool')."
        )


@contextlib.contextmanager
def _locked(venv: Path) -> Iterator[None]:
    """One set-up at a time (two cron jobs starting together must not install over each other)."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        yield
        return
    venv.parent.mkdir(parents=True, exist_ok=True)
    with open(venv.with_name(venv.name + ".lock"), "w") as fh:  # .venv.lock, git-ignored
        fcntl.flock(fh, fcntl.LOCK_EX)
        yield


def set_up(repo: Path, venv: Path) -> Path:
    """Create ``venv`` (if needed) and install the project into it (if needed). Returns its python."""
    python = venv_python(venv)
    # already inside that venv and still missing a dependency: its install stamp is not to be trusted
    inside = Path(sys.prefix).resolve() == venv.resolve()
    if not python.exists():
        _say(f"first run: creating the project's environment in {venv} (needs a few seconds, once) ...")
        _run([sys.executable, "-m", "venv", str(venv)])
        if not python.exists():
            raise _fail(f"{sys.executable} -m venv did not create {python}")
    if inside or not _installed(venv, repo):
        _say(f"installing litellm-usersync and its dependencies into {venv} (pip install -e {repo}) ...")
        _run([str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", "-e", str(repo)])
        (venv / ".installed").touch()
        _say("environment ready; running the command.")
    return python


def ensure_environment(script: str) -> None:
    """Return when this interpreter can run ``script``; else re-execute it inside the project's venv."""
    if sys.version_info < MIN_PYTHON:
        raise _fail(
            f"needs Python {'.'.join(map(str, MIN_PYTHON))} or newer; "
            f"this is {sys.version.split()[0]} ({sys.executable})."
        )
    missing = missing_modules()
    if not missing:
        return
    if os.environ.get(_MARKER):
        raise _fail(
            f"{sys.executable} still cannot import {', '.join(missing)} after setting up "
            f"its environment; remove {venv_dir(Path(script).resolve().parent)} and run again."
        )
    repo = Path(script).resolve().parent
    venv = venv_dir(repo)
    with _locked(venv):
        python = set_up(repo, venv)
    argv = [str(python), str(Path(script).resolve()), *sys.argv[1:]]
    os.environ[_MARKER] = "1"
    sys.stdout.flush()
    sys.stderr.flush()
    if os.name == "nt":  # pragma: no cover - no exec on Windows: wait for the child and pass its exit code on
        raise SystemExit(subprocess.call(argv))
    os.execv(argv[0], argv)
