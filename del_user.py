#!/usr/bin/env python3
"""The seed's `python del_user.py --csv-file user_dellist.csv ...`: the same command as `litellm-usersync delete`."""

import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent / "src"))

from litellm_usersync.cli import run_legacy  # noqa: E402
from litellm_usersync.cli.delete import delete_command  # noqa: E402

if __name__ == "__main__":
    run_legacy(delete_command, "del_user.py")
