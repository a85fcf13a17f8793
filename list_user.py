#!/usr/bin/env python3
"""The seed's `python list_user.py ...`: the same command as `litellm-usersync list`."""

import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent / "src"))

from litellm_usersync.cli import run_legacy  # noqa: E402
from litellm_usersync.cli.listing import list_command  # noqa: E402

if __name__ == "__main__":
    run_legacy(list_command, "list_user.py")
