"""Reading an ``.xlsx`` sheet as the rows a CSV would hold: the header row (the first with something in it),
then each row's cells as text (numbers without a spurious ``.0``, dates as ISO), each with its row number.
openpyxl is imported only when a workbook is read."""

from __future__ import annotations

import io
import warnings
from collections.abc import Iterator
from datetime import datetime

from litellm_usersync.errors import CsvError, CsvProblem, InputError

#: a record's line (CSV) or row (sheet) and its cells; or the problem that ends reading
Record = tuple[int, list[str]] | CsvProblem


def xlsx_records(data: bytes, path: str, sheet: str | None) -> tuple[list[str], int, Iterator[Record], str]:
    """The header, its row number, the rows after it and the title of a workbook's sheet (the first one
    unless ``sheet``), as text cells."""
    # imported here: openpyxl costs ~0.2 s to import and only workbooks need it
    from openpyxl import load_workbook

    try:
        with warnings.catch_warnings():  # "Workbook contains no default style" and the like: noise to an admin
            warnings.simplefilter("ignore")
            book = load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except Exception as exc:  # openpyxl raises zipfile, KeyError, ValueError, ... for a damaged file
        raise CsvError([CsvProblem(path, 0, None, f"cannot read the workbook: {exc}")]) from None
    names = [ws.title for ws in book.worksheets]
    if not names:
        raise CsvError([CsvProblem(path, 0, None, "the workbook has no worksheet")])
    if sheet is not None and sheet not in names:
        listed = ", ".join(repr(n) for n in names)
        raise InputError(f"{path}: no sheet named {sheet!r} (--sheet); the workbook has {listed}")
    ws = book[sheet] if sheet is not None else book.worksheets[0]
    title = str(ws.title)
    rows = enumerate(ws.iter_rows(values_only=True), start=1)  # openpyxl yields empty rows too: numbers hold
    for header_row, values in rows:  # noqa: B007 - the header is the first row with something in it
        header = [cell_text(v) for v in values]
        if any(c.strip() for c in header):
            break
    else:
        book.close()
        raise CsvError(
            [CsvProblem(path, 0, None, "the sheet is empty: expected a header row with an 'email' column", title)]
        )

    def records() -> Iterator[Record]:
        try:
            for number, values in rows:
                yield number, [cell_text(v) for v in values]
        finally:
            book.close()

    return header, header_row, records(), title


def cell_text(value: object) -> str:
    """A sheet cell as the text a CSV would hold: numbers without a spurious ``.0``, dates as ISO."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)
