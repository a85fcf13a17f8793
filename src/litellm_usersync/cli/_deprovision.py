"""The options of issue 13: ``sync --deprovision delete|block``, ``--purge-blocked-after``, ``delete --block``."""

from __future__ import annotations

from typing import Any

import click

from litellm_usersync.models import DEPROVISION_MODES, parse_duration


def _duration(ctx: click.Context, param: click.Parameter, value: str | None) -> int | None:
    if value is None:
        return None
    try:
        return int(parse_duration(value).total_seconds())
    except ValueError as exc:
        raise click.BadParameter(str(exc), ctx=ctx, param=param) from None


def deprovision_options(f: Any) -> Any:
    opts = [
        click.option(
            "--deprovision",
            type=click.Choice(DEPROVISION_MODES),
            default="delete",
            show_default=True,
            envvar="USERSYNC_DEPROVISION",
            help="What happens to a user no longer in the CSV: 'delete' it (its keys are deleted with it), or "
            "'block' it: every key blocked, role internal_user_viewer, budget 0, teams and spend kept; it is "
            "reactivated when it is back in the CSV (env USERSYNC_DEPROVISION, also read from .env).",
        ),
        click.option(
            "--purge-blocked-after",
            metavar="DURATION",
            default=None,
            callback=_duration,
            envvar="USERSYNC_PURGE_BLOCKED_AFTER",
            help="With --deprovision block: delete the users the tool blocked longer ago than this "
            "(e.g. 30d, 12h, 2w), counted against --max-delete.",
        ),
    ]
    for d in reversed(opts):
        f = d(f)
    return f


def deprovision_plan_options(deprovision: str, purge_blocked_after_s: int | None) -> dict[str, Any]:
    """The ``PlanOptions`` fields of these options (the use case stamps the run's time: ``PlanOptions.now``)."""
    if purge_blocked_after_s is not None and deprovision != "block":
        raise click.UsageError("--purge-blocked-after needs --deprovision block (deleted users are not blocked).")
    return {"deprovision": deprovision, "purge_blocked_after_s": purge_blocked_after_s}
