"""The ``litellm-usersync`` command: a click group over the library, one module per subcommand."""

from __future__ import annotations

import copy
from typing import Any

import click

from litellm_usersync import __version__

from ._common import Context, load_dotenv_once
from .add import add_command
from .delete import delete_command
from .listing import list_command
from .restore import restore_command
from .snapshot_cmd import snapshot_command
from .sync import sync_command

#: ``-h`` as well as ``--help``, on the group, every subcommand and every seed script
CONTEXT_SETTINGS: dict[str, Any] = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


@click.group(context_settings=CONTEXT_SETTINGS)
@click.version_option(__version__, prog_name="litellm-usersync")
@click.pass_context
def cli(ctx: click.Context) -> None:
    """Keep a LiteLLM Proxy's users, roles and team memberships in line with a CSV file.

    Every command reads LITELLM_BASE_URL and LITELLM_MASTER_KEY from the environment or from a .env
    file in the current directory. Start with `litellm-usersync sync --dry-run`.
    """
    ctx.ensure_object(Context)


cli.add_command(sync_command)
cli.add_command(add_command)
cli.add_command(delete_command)
cli.add_command(list_command)
cli.add_command(snapshot_command)
cli.add_command(restore_command)


def main(argv: list[str] | None = None) -> None:
    load_dotenv_once()
    cli.main(args=argv, prog_name="litellm-usersync")


def run_legacy(command: click.Command, prog_name: str, argv: list[str] | None = None) -> None:
    """Entry point of the seed's script names (``python sync_user.py ...``): ``-h`` and ``--version`` too.

    The command runs without the group, so it gets the group's context settings here, and a copy of it a
    ``--version`` option when it has none of its own (``litellm-usersync add --version`` stays a usage error
    in neither case: the group has ``--version``).
    """
    load_dotenv_once()
    if not any(isinstance(p, click.Option) and "--version" in p.opts for p in command.params):
        command = copy.copy(command)
        command.params = list(command.params)
        click.version_option(__version__, prog_name="litellm-usersync")(command)
    command.main(args=argv, prog_name=prog_name, obj=Context(), **CONTEXT_SETTINGS)


__all__ = ["cli", "main", "run_legacy"]
