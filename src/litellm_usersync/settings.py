"""Small value objects holding settings, with named defaults. Nothing here reads the environment."""

from __future__ import annotations

from dataclasses import dataclass, field, fields

DEFAULT_BASE_URL = "http://localhost:4000"
DEFAULT_TIMEOUT_S = 30.0
DEFAULT_CONNECT_TIMEOUT_S = 10.0
DEFAULT_CONCURRENCY = 8
DEFAULT_PAGE_SIZE = 100  # the proxy's maximum for /user/list and /v2/team/list
BULK_CHUNK = 500  # the proxy's maximum for every bulk endpoint
#: a bulk create's timeout grows by this per row beyond the first (500 rows: --timeout + 50 s)
BULK_ROW_TIMEOUT_S = 0.1

DEFAULT_RETRY_ATTEMPTS = 5
DEFAULT_RETRY_TOTAL_S = 60.0
DEFAULT_RETRY_INITIAL_S = 0.5
DEFAULT_RETRY_MAX_WAIT_S = 10.0
#: a Retry-After longer than this is capped (a misbehaving server must not stall a run for hours)
MAX_RETRY_AFTER_S = 60.0

MIN_DELETE_BRAKE = 10
DELETE_BRAKE_RATIO = 0.20


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = DEFAULT_RETRY_ATTEMPTS
    total_s: float = DEFAULT_RETRY_TOTAL_S
    initial_s: float = DEFAULT_RETRY_INITIAL_S
    max_wait_s: float = DEFAULT_RETRY_MAX_WAIT_S
    jitter_s: float = 0.5


@dataclass(frozen=True)
class ClientSettings:
    base_url: str = DEFAULT_BASE_URL
    #: never in the repr (see ``__repr__``): settings end up in logs, tracebacks and test failures
    master_key: str = field(default="", repr=False)
    timeout_s: float = DEFAULT_TIMEOUT_S
    connect_timeout_s: float = DEFAULT_CONNECT_TIMEOUT_S
    concurrency: int = DEFAULT_CONCURRENCY
    page_size: int = DEFAULT_PAGE_SIZE
    retry: RetryPolicy = RetryPolicy()
    #: "auto": detect the proxy version and use bulk endpoints where it has them; "never": per-user calls
    bulk: str = "auto"

    def __repr__(self) -> str:
        shown = [f"{f.name}={getattr(self, f.name)!r}" for f in fields(self) if f.repr]
        masked = f"'{self.master_key[:5]}…'" if len(self.master_key) > 5 else ("'…'" if self.master_key else "''")
        return f"ClientSettings({', '.join([*shown[:1], f'master_key={masked}', *shown[1:]])})"


def default_max_delete(managed_users: int) -> int:
    """The mass-deletion brake: the larger of 10 and 20% of the managed users."""
    return max(MIN_DELETE_BRAKE, int(managed_users * DELETE_BRAKE_RATIO))
