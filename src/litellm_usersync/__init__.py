"""litellm-usersync: reconcile LiteLLM Proxy users, roles and team memberships with a CSV file.

The library in four steps::

    desired = read_users_csv("user_list.csv")
    async with ProxyClient(ClientSettings(base_url=..., master_key=...)) as client:
        snapshot = await read_snapshot(client)
        plan = build_plan(desired, snapshot, PlanOptions(allow_delete=False))
        report = await apply_plan(client, plan)
"""

from __future__ import annotations

__version__ = "0.1.0"

from litellm_usersync.apply.executor import apply_plan
from litellm_usersync.errors import (
    AuthError,
    ConfigError,
    ConflictError,
    CsvError,
    ForbiddenError,
    InputError,
    NotFoundError,
    ProxyError,
    RateLimitedError,
    RefusedError,
    RejectedError,
    ServerError,
    UnavailableError,
    UsersyncError,
)
from litellm_usersync.files.csvfile import InputFormat, parse_users_csv, read_users_csv
from litellm_usersync.models import (
    DesiredState,
    DesiredUser,
    LiveUser,
    Plan,
    PlanOptions,
    RunReport,
    Scope,
    Snapshot,
    Team,
    parse_scope,
)
from litellm_usersync.plans.sync import build_plan
from litellm_usersync.proxy.client import ProxyClient
from litellm_usersync.proxy.snapshot import read_snapshot
from litellm_usersync.render.report import render_plan, render_summary
from litellm_usersync.settings import ClientSettings, RetryPolicy

__all__ = [
    "AuthError",
    "ClientSettings",
    "ConfigError",
    "ConflictError",
    "CsvError",
    "DesiredState",
    "DesiredUser",
    "ForbiddenError",
    "InputError",
    "InputFormat",
    "LiveUser",
    "NotFoundError",
    "Plan",
    "PlanOptions",
    "ProxyClient",
    "ProxyError",
    "RateLimitedError",
    "RefusedError",
    "RejectedError",
    "RetryPolicy",
    "RunReport",
    "Scope",
    "ServerError",
    "Snapshot",
    "Team",
    "UnavailableError",
    "UsersyncError",
    "__version__",
    "apply_plan",
    "build_plan",
    "parse_scope",
    "parse_users_csv",
    "read_snapshot",
    "read_users_csv",
    "render_plan",
    "render_summary",
]
