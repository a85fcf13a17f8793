"""``--full-read-after``'s durations."""

from __future__ import annotations

import pytest

from litellm_usersync.cli._duration import parse_duration


@pytest.mark.parametrize(("text", "seconds"), [("90", 90), ("30m", 1800), ("12h", 43200), ("1d", 86400),
                                               ("1.5h", 5400), ("0", 0), (" 2D ", 172800)])  # fmt: skip
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "1w", "h", "-1d", "1 day"])
def test_bad_durations(text: str) -> None:
    with pytest.raises(ValueError, match="not a duration"):
        parse_duration(text)
