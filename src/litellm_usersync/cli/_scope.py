"""``--scope`` (and ``USERSYNC_SCOPE``) and ``--adopt``: the options; the rules are in ``models/scope.py``."""

from __future__ import annotations

import os

import click

from litellm_usersync.models import SCOPE_ENV, Scope, parse_scope, parse_scope_setting

from ._common import F

SCOPE_HELP_READ = (
    "Only the users in this scope: managed (created or adopted by this tool), domain:DOMAIN, team:NAME, "
    "role:ROLE (repeatable; one kind: any of them, several kinds: all)."
)
SCOPE_HELP = (
    "Only these users are deleted, demoted or moved: managed (created or adopted by this tool), "
    "domain:DOMAIN, team:NAME, role:ROLE (repeatable; one kind: any of them, several kinds: all) "
    f"[default: env {SCOPE_ENV}, also read from .env; else every managed user]."
)


def scope_option(f: F) -> F:
    """``--scope TERM`` (repeatable) of the commands that change users; read it with :func:`given_scope`."""
    return click.option("--scope", "scope_values", multiple=True, metavar="TERM", help=SCOPE_HELP)(f)


def read_scope_option(f: F) -> F:
    """``--scope TERM`` of ``list`` and ``snapshot`` (never from ``USERSYNC_SCOPE``: they show what is asked)."""
    return click.option("--scope", "scope_values", multiple=True, metavar="TERM", help=SCOPE_HELP_READ)(f)


def adopt_option(f: F) -> F:
    return click.option(
        "--adopt",
        is_flag=True,
        help="Mark the existing users the CSV lists as managed by this tool (metadata.managed_by, shown in "
        "the plan), and manage them even outside the --scope.",
    )(f)


def given_scope(values: tuple[str, ...], *, from_env: bool = True) -> Scope | None:
    """The run's scope: ``--scope`` values, else ``USERSYNC_SCOPE`` (environment or ``.env``; only for the
    commands that change users, ``from_env``), else None (not given: the default, or a saved plan's or a
    snapshot's own). A bad term raises ``InputError`` naming it."""
    if values:
        return parse_scope(values, where="--scope")
    text = os.environ.get(SCOPE_ENV, "").strip() if from_env else ""
    return parse_scope_setting(text) if text else None
