"""Identity rules: emails and team names compared normalised, team resolution."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from litellm_usersync.identity import (
    DEFAULT_USER_ID,
    PROXY_ROLES,
    join_team_names,
    normalize_email,
    normalize_team_name,
    resolve_team,
    split_team_cell,
)


def test_constants() -> None:
    assert DEFAULT_USER_ID == "default_user_id"
    assert PROXY_ROLES == ("proxy_admin", "proxy_admin_viewer", "internal_user", "internal_user_viewer")


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("a@x.com", "a@x.com"),
        ("A@X.COM", "a@x.com"),
        ("  Alice@Example.com \t", "alice@example.com"),
        ("\ufeffa@x.com", "a@x.com"),
        ("\u200ba@x.com\u200b", "a@x.com"),
        ("\u00a0a@x.com\u00a0", "a@x.com"),
        (" \ufeff B@x.com \n", "b@x.com"),
        ("", ""),
    ],
)
def test_normalize_email(raw: str, expected: str) -> None:
    assert normalize_email(raw) == expected


@pytest.mark.parametrize(
    ("one", "other"),
    [
        ("jose\u0301@example.com", "jos\u00e9@example.com"),  # NFD (macOS, some Excel exports) vs NFC
        ("JOSE\u0301@Example.com", "jos\u00e9@example.com"),
        ("a@xn--mnchen-3ya.de", "a@m\u00fcnchen.de"),  # IDNA ASCII form vs Unicode form
        ("A@XN--MNCHEN-3YA.DE", "a@M\u00dcnchen.de"),
        ("a@sub.xn--mnchen-3ya.de", "a@sub.mu\u0308nchen.de"),  # ... and NFD in the domain
    ],
)
def test_emails_equal_in_nfc_nfd_and_idna_forms(one: str, other: str) -> None:
    assert normalize_email(one) == normalize_email(other)
    assert normalize_email(one) == normalize_email(normalize_email(one)), "the key is a fixed point"


def test_invalid_punycode_and_a_local_part_with_xn_are_kept_as_written() -> None:
    assert normalize_email("a@xn--zz.de") == "a@xn--zz.de"
    assert normalize_email("xn--mnchen-3ya@example.com") == "xn--mnchen-3ya@example.com"
    assert normalize_email("a@x.com") != normalize_email("a@y.com")


def test_normalize_email_keeps_inner_characters() -> None:
    assert normalize_email("first.last+tag@sub.example.com") == "first.last+tag@sub.example.com"


def test_normalize_email_is_idempotent() -> None:
    for raw in (" A@B.c ", "\ufeffX@y.Z", "q@w.e"):
        assert normalize_email(normalize_email(raw)) == normalize_email(raw)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Dev", "dev"),
        ("  Dev Team  ", "dev team"),
        ("Dev    Team", "dev team"),
        ("\ufeffOps", "ops"),
        ("STRASSE", "strasse"),
        ("Straße", "strasse"),
    ],
)
def test_normalize_team_name(raw: str, expected: str) -> None:
    assert normalize_team_name(raw) == expected


@pytest.mark.parametrize(
    ("cell", "expected"),
    [
        ("", ()),
        ("   ", ()),
        (";;", ()),
        ("dev", ("dev",)),
        ("a; b;;a", ("a", "b")),
        ("Dev;dev;DEV", ("Dev",)),
        (" R&D  Europe ; Ops ", ("R&D Europe", "Ops")),
        ("b;a", ("b", "a")),
        ("\ufeffa;b", ("a", "b")),
    ],
)
def test_split_team_cell(cell: str, expected: tuple[str, ...]) -> None:
    assert split_team_cell(cell) == expected


def test_join_then_split_roundtrips() -> None:
    names = ("alpha", "beta gamma", "delta")
    assert split_team_cell(join_team_names(names)) == names
    assert join_team_names(()) == ""


INDEX = {"dev": ["t-dev"], "ops": ["t-ops-2", "t-ops-1"], "r&d europe": ["t-rd"]}


@pytest.mark.parametrize(
    ("name", "expected"),
    [("dev", "t-dev"), ("DEV", "t-dev"), ("  Dev ", "t-dev"), ("R&D   Europe", "t-rd")],
)
def test_resolve_team_found(name: str, expected: str) -> None:
    assert resolve_team(name, INDEX) == (expected, None)


def test_resolve_team_not_found_uses_the_seed_wording_with_the_name_as_given() -> None:
    assert resolve_team("Marketing", INDEX) == (None, "Team not found: Marketing")


def test_resolve_team_ambiguous_alias_lists_the_ids_sorted() -> None:
    tid, err = resolve_team("Ops", INDEX)
    assert tid is None
    assert err == "Team name is ambiguous: Ops matches 2 teams (t-ops-1, t-ops-2)"


def test_resolve_team_empty_index() -> None:
    assert resolve_team("dev", {}) == (None, "Team not found: dev")


def _slow_normalize_email(raw: str) -> str:
    """The definition the ASCII fast path of ``normalize_email`` must agree with (every text through NFC)."""
    import unicodedata

    text = unicodedata.normalize("NFC", raw.strip().strip("\ufeff\u200b\u200c\u200d\u2060\u00a0").strip()).lower()
    _local, at, domain = text.rpartition("@")
    if at and "xn--" in domain:
        return normalize_email(text)  # the punycode labels: one path for both
    return unicodedata.normalize("NFC", text)


@given(st.text(alphabet=st.characters(max_codepoint=0x7F), max_size=30))
def test_ascii_fast_path_equals_the_definition(raw: str) -> None:
    assert normalize_email(raw) == _slow_normalize_email(raw)


@given(st.text(max_size=20))
def test_any_text_equals_the_definition(raw: str) -> None:
    assert normalize_email(raw) == _slow_normalize_email(raw)
