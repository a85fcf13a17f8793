"""The options of every command that reads a user file (sync, add, delete): the files admins really have.

``--delimiter`` (detected otherwise), ``--encoding``, ``--sheet`` (an .xlsx workbook) and ``--column``
(another system's header names). They are collected in the click context (``expose_value=False``), so the
commands' signatures stay as they are; :func:`input_format` builds the :class:`InputFormat` from them.
"""

from __future__ import annotations

import codecs
from collections.abc import Callable
from typing import Any, TypeVar

import click

from litellm_usersync.usecases import COLUMN_ALIASES, InputFormat

F = TypeVar("F", bound=Callable[..., Any])

_META = "litellm_usersync.input"
_DELIMITER_WORDS = {"tab": "\t", "\\t": "\t", "comma": ",", "semicolon": ";", "pipe": "|"}


def _store(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
    ctx.meta.setdefault(_META, {})[param.name] = value
    return value


def _delimiter(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    if value is not None:
        value = _DELIMITER_WORDS.get(value.lower(), value)
        if len(value) != 1 or value in '"\r\n':
            raise click.BadParameter(f"{value!r}: give one character, e.g. ',' ';' '|' or 'tab'")
    return _store(ctx, param, value)  # type: ignore[no-any-return]


def _encoding(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    if value is not None:
        try:
            codecs.lookup(value)
        except LookupError:
            raise click.BadParameter(f"unknown encoding {value!r}; e.g. utf-8, cp1252, latin-1") from None
    return _store(ctx, param, value)  # type: ignore[no-any-return]


def _columns(ctx: click.Context, param: click.Parameter, value: tuple[str, ...]) -> tuple[tuple[str, str], ...]:
    fields = {alias: f for f, aliases in COLUMN_ALIASES.items() for alias in (f, *aliases)}
    mapping: dict[str, str] = {}
    for item in value:
        field_name, eq, header = item.partition("=")
        canonical = fields.get(field_name.strip().lower())
        if not eq or not header.strip():
            raise click.BadParameter(f'{item!r}: expected FIELD=HEADER, e.g. --column email="Email Address"')
        if canonical is None:
            raise click.BadParameter(f"{field_name!r} is not a field; fields: {', '.join(COLUMN_ALIASES)}")
        if canonical in mapping:
            raise click.BadParameter(f"{canonical} is mapped twice")
        mapping[canonical] = header.strip()
    result = tuple(mapping.items())
    _store(ctx, param, result)
    return result


def input_options(f: F) -> F:
    """``--delimiter``, ``--encoding``, ``--sheet``, ``--column`` (documented in docs/sync.md, "Input files")."""
    decorators = [
        click.option(
            "--delimiter",
            default=None,
            metavar="CHAR",
            expose_value=False,
            callback=_delimiter,
            help="CSV delimiter: ',' ';' 'tab' or another character [default: detected among , ; tab].",
        ),
        click.option(
            "--encoding",
            default=None,
            metavar="NAME",
            expose_value=False,
            callback=_encoding,
            help="Text encoding of the CSV, e.g. cp1252 or latin-1 [default: UTF-8, with or without BOM].",
        ),
        click.option(
            "--sheet",
            default=None,
            metavar="NAME",
            expose_value=False,
            callback=_store,
            help="For an .xlsx workbook: the sheet to read [default: the first].",
        ),
        click.option(
            "--column",
            "column",
            multiple=True,
            metavar='FIELD="HEADER"',
            expose_value=False,
            callback=_columns,
            help='Read a field from a column of another name, e.g. --column email="Email Address" (repeatable).',
        ),
    ]
    for d in reversed(decorators):
        f = d(f)
    return f


def input_format() -> InputFormat:
    """The :class:`InputFormat` the current command was given."""
    given = click.get_current_context().meta.get(_META, {})
    return InputFormat(
        delimiter=given.get("delimiter"),
        encoding=given.get("encoding"),
        sheet=given.get("sheet"),
        columns=given.get("column") or (),
    )


#: the parameter names, for commands that must refuse them (sync --apply-plan reads no CSV)
INPUT_PARAMS = ("delimiter", "encoding", "sheet", "column")
