"""Masking secrets: the one place that decides what a masked key looks like (``sk-ab…``).

Everything that may show a secret — the client's request log and exception messages, the audit log, the
report files shown on screen — masks it here, with one rule and one regex, so no two parts of the tool
can disagree on what is hidden. Pure: imports nothing of the package.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator

#: how many leading characters of a secret are kept: ``sk-ab…`` (a key's prefix tells keys apart, its tail
#: is what grants access)
KEEP = 5
#: an ``sk-`` key in free text (three characters or more after ``sk-``); group 1 is what is kept
_KEY_RE = re.compile(r"\b(sk-[A-Za-z0-9_\-]{2})[A-Za-z0-9_\-]+")
#: a maximal run of the characters keys and invitation ids are made of (what SecretSet looks up)
_TOKEN_RE = re.compile(r"[A-Za-z0-9_\-]+")


def mask_secret(value: str | None, keep: int = KEEP) -> str:
    """``sk-abcdef123`` -> ``sk-ab…``. Empty stays empty; a value no longer than ``keep`` is all hidden (``…``)."""
    if not value:
        return ""
    if len(value) <= keep:
        return "…"
    return value[:keep] + "…"


class SecretSet:
    """The values to mask, bounded in cost whatever their number (20,000 new keys in one run, issue 14).

    Token-shaped secrets (``[A-Za-z0-9_-]``: keys, invitation ids) live in a set and are found by one scan of
    the text for such tokens; only the rare secret of another shape (a master key with ``+/=``) is searched
    for on its own. Remembering is O(1); masking is one pass over the text, not one pass per secret."""

    __slots__ = ("_odd", "_tokens")

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._tokens: set[str] = set()
        self._odd: list[str] = []
        for s in secrets:
            self.add(s)

    def add(self, secret: str | None) -> None:
        if not secret or len(secret) <= KEEP:
            return
        if _TOKEN_RE.fullmatch(secret):
            self._tokens.add(secret)
        elif secret not in self._odd:
            self._odd.append(secret)

    def __contains__(self, secret: object) -> bool:
        return secret in self._tokens or secret in self._odd

    def __len__(self) -> int:
        return len(self._tokens) + len(self._odd)

    def __iter__(self) -> Iterator[str]:
        yield from self._odd
        yield from self._tokens

    def mask(self, text: str) -> str:
        for s in self._odd:
            text = text.replace(s, mask_secret(s))
        if self._tokens:
            tokens = self._tokens
            text = _TOKEN_RE.sub(lambda m: mask_secret(m.group(0)) if m.group(0) in tokens else m.group(0), text)
        return text


def mask_text(text: str, secrets: Iterable[str] = ()) -> str:
    """``text`` with every ``sk-…`` key and every given secret masked as :func:`mask_secret` does.

    A given secret of ``KEEP`` characters or fewer is left as it is: its mask would be the secret itself
    (and replacing a two-letter word everywhere makes the text unreadable)."""
    if isinstance(secrets, SecretSet):
        text = secrets.mask(text)
    else:
        for s in secrets:
            if s and len(s) > KEEP:
                text = text.replace(s, mask_secret(s))
    return _KEY_RE.sub(lambda m: m.group(1) + "…", text)
