"""Masking secrets: the one place that decides what a masked key looks like (``sk-ab…``).

Everything that may show a secret — the client's request log and exception messages, the audit log, the
report files shown on screen — masks it here, with one rule and one regex, so no two parts of the tool
can disagree on what is hidden. Pure: imports nothing of the package.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

#: how many leading characters of a secret are kept: ``sk-ab…`` (a key's prefix tells keys apart, its tail
#: is what grants access)
KEEP = 5
#: an ``sk-`` key in free text (three characters or more after ``sk-``); group 1 is what is kept
_KEY_RE = re.compile(r"\b(sk-[A-Za-z0-9_\-]{2})[A-Za-z0-9_\-]+")


def mask_secret(value: str | None, keep: int = KEEP) -> str:
    """``sk-abcdef123`` -> ``sk-ab…``. Empty stays empty; a value no longer than ``keep`` is all hidden (``…``)."""
    if not value:
        return ""
    if len(value) <= keep:
        return "…"
    return value[:keep] + "…"


def mask_text(text: str, secrets: Iterable[str] = ()) -> str:
    """``text`` with every ``sk-…`` key and every given secret masked as :func:`mask_secret` does.

    A given secret of ``KEEP`` characters or fewer is left as it is: its mask would be the secret itself
    (and replacing a two-letter word everywhere makes the text unreadable)."""
    for s in secrets:
        if s and len(s) > KEEP:
            text = text.replace(s, mask_secret(s))
    return _KEY_RE.sub(lambda m: m.group(1) + "…", text)
