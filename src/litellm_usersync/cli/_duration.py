"""``--full-read-after 12h``: a duration option (seconds, minutes, hours, days)."""

from __future__ import annotations

import re
from typing import Any

import click

_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_DURATION_RE = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*", re.IGNORECASE)


def parse_duration(text: str) -> float:
    """``"90"`` (seconds), ``"30m"``, ``"12h"``, ``"1d"``, ``"1.5h"`` → seconds; ValueError otherwise."""
    m = _DURATION_RE.fullmatch(text)
    if not m:
        raise ValueError(f"{text!r} is not a duration (e.g. 30m, 12h, 1d)")
    return float(m.group(1)) * _UNITS[(m.group(2) or "s").lower()]


class Duration(click.ParamType[float]):
    name = "duration"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> float:
        if isinstance(value, int | float):
            return float(value)
        try:
            return parse_duration(str(value))
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


DURATION = Duration()
