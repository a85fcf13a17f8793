"""Identity rules: how emails and team names are compared, and which accounts are out of reach.

Pure functions, no I/O.
"""

from __future__ import annotations

import difflib
import unicodedata
from collections.abc import Iterable, Mapping, Sequence

#: The user id of the master key and of the UI's admin login (LiteLLM ``LITELLM_PROXY_ADMIN_NAME``).
DEFAULT_USER_ID = "default_user_id"

#: The four proxy roles ``/user/new`` and ``/user/update`` accept.
PROXY_ROLES: tuple[str, ...] = ("proxy_admin", "proxy_admin_viewer", "internal_user", "internal_user_viewer")

#: Separator of several teams inside one ``team_name`` cell.
TEAM_SEPARATOR = ";"

_INVISIBLE = "\ufeff\u200b\u200c\u200d\u2060\u00a0"


def _domain_label(label: str) -> str:
    """An IDNA ``xn--`` label in its Unicode form (``xn--mnchen-3ya`` -> ``münchen``); anything else as is."""
    if label[:4].lower() != "xn--":
        return label
    try:
        return label[4:].encode("ascii").decode("punycode")
    except (UnicodeError, ValueError):
        return label  # not valid punycode: compare it as written


def normalize_email(raw: str) -> str:
    """The identity key of an email (the one place emails are keyed).

    BOM/zero-width characters and whitespace stripped, Unicode NFC (an NFD ``josé`` from a Mac or Excel equals
    the NFC one), lower-cased, and an internationalised domain in its Unicode form (``xn--mnchen-3ya.de`` equals
    ``münchen.de``).
    """
    if raw.isascii():
        # the common case, ~3x faster: an ASCII text is its own NFC and holds none of the invisible characters
        text = raw.strip().lower()
        if "xn--" not in text:
            return raw if text == raw else text  # the same string: 100,000 keys cost no second copy
    else:
        text = unicodedata.normalize("NFC", raw.strip().strip(_INVISIBLE).strip()).lower()
    local, at, domain = text.rpartition("@")
    if at and "xn--" in domain:
        domain = ".".join(_domain_label(label) for label in domain.split("."))
        text = f"{local}@{domain}"
    return unicodedata.normalize("NFC", text)


def nfc_email(raw: str) -> str:
    """An email as it is sent to the proxy for a new user: trimmed, in Unicode NFC, its case kept.

    The proxy's own duplicate check ignores case but not the Unicode form: an NFD address stored by us would
    let another client create a twin in NFC.
    """
    return unicodedata.normalize("NFC", raw.strip().strip(_INVISIBLE).strip())


def normalize_team_name(raw: str) -> str:
    """Team names are compared trimmed and case-insensitively."""
    return " ".join(raw.strip().strip(_INVISIBLE).split()).casefold()


def split_team_cell(cell: str) -> tuple[str, ...]:
    """``"a; b;;c"`` -> ``("a", "b", "c")`` (trimmed, empty parts dropped, order and case kept, deduplicated)."""
    seen: dict[str, str] = {}
    for part in cell.split(TEAM_SEPARATOR):
        name = " ".join(part.strip().strip(_INVISIBLE).split())
        if name and normalize_team_name(name) not in seen:
            seen[normalize_team_name(name)] = name
    return tuple(seen.values())


def join_team_names(names: Iterable[str]) -> str:
    return TEAM_SEPARATOR.join(names)


def team_problem(name: str, teams_by_name: Mapping[str, Sequence[str]]) -> str | None:
    """Why ``name`` resolves to no single team, in a few words (``no such team; did you mean x?``), or None."""
    ids = teams_by_name.get(normalize_team_name(name), ())
    if not ids:
        close = difflib.get_close_matches(normalize_team_name(name), list(teams_by_name), n=1, cutoff=0.8)
        return "no such team" + (f"; did you mean {close[0]}?" if close else "")
    if len(ids) > 1:
        return f"ambiguous: {len(ids)} teams have this name"
    return None


def resolve_team(name: str, teams_by_name: Mapping[str, Sequence[str]]) -> tuple[str | None, str | None]:
    """Find one team id for ``name`` in an index ``normalize_team_name(alias) -> [team_id, ...]``.

    Returns ``(team_id, None)`` or ``(None, error)`` with the seed's wording for a missing team.
    """
    ids = teams_by_name.get(normalize_team_name(name), ())
    if not ids:
        close = difflib.get_close_matches(normalize_team_name(name), list(teams_by_name), n=1, cutoff=0.8)
        hint = f" (did you mean {close[0]}?)" if close else ""
        return None, f"Team not found: {name}{hint}"
    if len(ids) > 1:
        return None, f"Team name is ambiguous: {name} matches {len(ids)} teams ({', '.join(sorted(ids))})"
    return ids[0], None
