#!/usr/bin/env python3
"""The seed's `python sync_user.py ...`: the same command as `litellm-usersync sync`."""

import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent / "src"))

if __name__ == "__main__":
    # any Python >= 3.11: set up the project's .venv on first use and re-exec inside it (see the module)
    from _seed_bootstrap import ensure_environment

    ensure_environment(__file__)

from litellm_usersync.cli import run_legacy  # noqa: E402
from litellm_usersync.cli.sync import sync_command  # noqa: E402

if __name__ == "__main__":
    run_legacy(sync_command, "sync_user.py")
