"""``litellm-usersync list`` (and ``python list_user.py``): the proxy's users as TSV, CSV, JSON or a table."""

from __future__ import annotations

import sys

import click

from litellm_usersync.render.listing import (
    DEFAULT_COLUMNS,
    FORMATS,
    LIST_COLUMNS,
    SYNC_INPUT_COLUMNS,
    TABLE_COLUMNS,
    TABLE_FOLDABLE,
    ListFilter,
    build_rows,
    build_sync_rows,
    csv_value,
    fit_columns,
    parse_columns,
    render_csv,
    render_json,
    render_markdown,
    render_tsv,
    select_users,
    table_cell,
)
from litellm_usersync.usecases import list_users

from ._common import (
    build_settings,
    colour_enabled,
    common_options,
    err,
    handle_errors,
    make_hooks,
    setup_logging,
    stdout_is_tty,
)
from ._scope import given_scope, read_scope_option


def _columns(_ctx: click.Context, _param: click.Parameter, value: str | None) -> tuple[str, ...] | None:
    if value is None:
        return None
    try:
        return parse_columns(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


@click.command("list")
@click.option("--role", default=None, help="Only users with this role (e.g. internal_user; any case).")
@click.option("--email-like", default=None, metavar="TEXT", help="Only users whose email contains TEXT (any case).")
@click.option(
    "--columns",
    default=None,
    callback=_columns,
    metavar="A,B,...",
    help=f"Columns to show, comma-separated [default: {','.join(DEFAULT_COLUMNS)}; "
    f"csv format: {','.join(SYNC_INPUT_COLUMNS)}]. Available: {', '.join(LIST_COLUMNS)}, metadata.KEY "
    "(the names sync reads, e.g. email,role,team_name,max_budget,models,metadata.cost_center, round-trip).",
)
@click.option(
    "--show-all",
    is_flag=True,
    help="Also list users without an email (default_user_id, ...) and users with other roles.",
)
@click.option(
    "--format",
    "--output",
    "fmt",
    type=click.Choice([*FORMATS, "text"]),
    default="tsv",
    show_default=True,
    help="tsv (also text): tab-separated, header first (the seed's); csv: sync's input format; json: an array "
    "of objects; table: a table that fits the terminal; markdown: a Markdown table. --output is the same "
    "option (as on the other commands).",
)
@read_scope_option
@common_options
def list_command(
    role: str | None,
    email_like: str | None,
    columns: tuple[str, ...] | None,
    show_all: bool,
    fmt: str,
    scope_values: tuple[str, ...],
    base_url: str,
    master_key: str | None,
    debug: bool,
    concurrency: int,
    timeout_s: float,
    bulk: bool,
) -> None:
    """List the proxy's users (never their passwords, salts or tokens).

    By default only users with an email and one of the four proxy roles are listed (the users sync
    manages); --show-all lists everyone. List values (teams, team_names, models) are JSON arrays;
    team_names are the aliases of the teams in the teams column, in the same order.

    With --format csv and no --columns the output is sync's input (email,role,team_name; several
    teams joined with ';'), so `list --format csv > users.csv`, an edit, and
    `sync --csv-file users.csv --dry-run` plans exactly that edit.

    \b
    Examples:
      litellm-usersync list > backup.txt
      litellm-usersync list --role proxy_admin --email-like @company.com
      litellm-usersync list --columns user_email,user_role,key_count,spend --format table
      litellm-usersync list --format csv > user_list.csv
      litellm-usersync list --scope managed --scope domain:corp.example

    Exit codes: 0 listed (also when no user matches), 2 nothing could be done (bad option, bad
    credentials, proxy unreachable).
    """
    setup_logging(debug)
    with handle_errors(debug):
        settings = build_settings(base_url, master_key, concurrency, timeout_s, bulk)
        scope = given_scope(scope_values, from_env=False)
        snapshot = list_users(settings, make_hooks(debug), scope=scope)

    users = select_users(snapshot, ListFilter(role=role, email_like=email_like, show_all=show_all, scope=scope))
    if not users:
        err("No users found.")
    if fmt == "csv" and columns is None:
        sync_rows, left_out = build_sync_rows(users, snapshot)
        click.echo(render_csv(SYNC_INPUT_COLUMNS, sync_rows), nl=False)
        if left_out:
            err(f"{left_out} user(s) without an email left out: sync's input needs an email.")
        return
    if fmt == "table":
        _print_table(build_rows(users, snapshot, columns or TABLE_COLUMNS), columns or TABLE_COLUMNS, fit=not columns)
        return
    cols = columns or DEFAULT_COLUMNS
    rows = build_rows(users, snapshot, cols)
    if fmt in ("tsv", "text"):
        click.echo(render_tsv(rows, cols), nl=False)
    elif fmt == "csv":
        click.echo(render_csv(cols, ([csv_value(c, r[c]) for c in cols] for r in rows)), nl=False)
    elif fmt == "json":
        click.echo(render_json(rows), nl=False)
    else:
        click.echo(render_markdown(rows, cols), nl=False)


def _print_table(rows: list[dict[str, object]], cols: tuple[str, ...], *, fit: bool) -> None:
    """A table that fits the terminal: team names (not ids), short timestamps, one line per user where there is
    room; ``fit`` (no --columns given) leaves out the lowest-priority columns that do not fit."""
    import shutil

    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    cells = [{c: table_cell(c, r[c]) for c in cols} for r in rows]
    tty = stdout_is_tty()
    # on a terminal: its width; piped: as wide as the content (a folded table is useless in a file)
    width = shutil.get_terminal_size().columns if tty else 100_000
    shown = fit_columns(cells, cols, width) if fit and tty else cols
    table = Table(show_lines=False, header_style="bold")
    for c in shown:
        numeric = c in ("spend", "max_budget", "key_count")
        table.add_column(
            c,
            overflow="fold",
            no_wrap=c not in TABLE_FOLDABLE,
            justify="right" if numeric else "left",
        )
    for r in cells:
        table.add_row(*(Text(r[c]) for c in shown))  # Text: no markup
    Console(file=sys.stdout, width=width, soft_wrap=False, no_color=not colour_enabled()).print(table)
    left_out = [c for c in cols if c not in shown]
    note = f"; left out to fit {width} columns: {', '.join(left_out)} (--columns chooses)" if left_out else ""
    click.echo(f"{len(rows)} user(s){note}")
