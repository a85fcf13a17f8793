"""Run the real ``litellm-usersync`` CLI and, at exit, write the client's request counts to a file.

``bench/run.py`` starts this as a subprocess instead of the console script, so the counts come from
``ProxyClient.request_counts`` (maintained on every request whatever the log level) without ``--debug``
and without changing the package: the only addition is a wrapper around ``ProxyClient.__init__`` that
remembers the instances. Everything else (argument parsing, reading, planning, applying, the report, the
exit code) is the installed CLI's own code, in a process of its own, so the peak RSS is the tool's.

Usage: ``BENCH_COUNTS_FILE=/tmp/counts.json python bench/_cli.py sync --csv-file ...``
"""

from __future__ import annotations

import atexit
import json
import os
import sys
from typing import Any

from litellm_usersync.apply import cached_read as _cached_read
from litellm_usersync.cli import main
from litellm_usersync.proxy import client as _client
from litellm_usersync.usecases import sync as _sync_usecase  # noqa: F401  (imported: its read_for_run is wrapped)

_instances: list[Any] = []
_original_init = _client.ProxyClient.__init__
_original_read = _cached_read.read_for_run
#: how each run's snapshot was read (full or incremental, and why): ``ReadOutcome`` as a dict
_reads: list[dict[str, Any]] = []


def _remembering_init(self: Any, *args: Any, **kwargs: Any) -> None:
    _original_init(self, *args, **kwargs)
    _instances.append(self)


async def _remembering_read(*args: Any, **kwargs: Any) -> Any:
    read = await _original_read(*args, **kwargs)
    o = read.outcome
    _reads.append({"mode": o.mode, "reason": o.reason, "users_reread": o.users_reread, "cached": o.cached})
    return read


def _dump_counts() -> None:
    path = os.environ.get("BENCH_COUNTS_FILE")
    if not path:
        return
    counts: dict[str, int] = {}
    for c in _instances:
        for key, n in c.request_counts.items():
            counts[key] = counts.get(key, 0) + n
    with open(path, "w", encoding="utf-8") as fh:
        json.dump({"clients": len(_instances), "counts": counts, "reads": _reads}, fh)


_client.ProxyClient.__init__ = _remembering_init  # type: ignore[method-assign]
# wherever the CLI (or a use case) imported it by name
for _mod in [m for name, m in sys.modules.items() if name.startswith("litellm_usersync")]:
    if getattr(_mod, "read_for_run", None) is _original_read:
        _mod.read_for_run = _remembering_read  # type: ignore[attr-defined]
atexit.register(_dump_counts)

if __name__ == "__main__":
    main(sys.argv[1:])
