"""What the proxy's answers mean: the one module that reads the proxy's wording.

The proxy says "already in team", "User not found in team", "already exists" or "Not Found" in free text
(API contract §1.3 lists its four error shapes). Those words are read here, once, and turned into types:
an exception class per answer (:func:`error_class`) and a :class:`RowErrorKind` per row of a batch
answer. Nothing above ``proxy/`` matches the proxy's text (``tests/unit/test_typed_answers.py`` checks).
Also the value objects the client returns (:class:`RowResult`, :class:`CreatedUser`, :class:`Page`).
Pure: no I/O.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import Enum
from typing import Any

from litellm_usersync.errors import (
    AlreadyMemberError,
    AuthError,
    ConflictError,
    ForbiddenError,
    InviterMissingError,
    MethodNotAllowedError,
    NotFoundError,
    NotMemberError,
    ProxyError,
    RateLimitedError,
    RejectedError,
    RouteMissingError,
    ServerError,
)

#: the body of the web framework's own 404 and 405 (no route): ``{"detail": "Not Found"}``
_NO_ROUTE = "Not Found"
#: what ``/team/member_add`` says about a user on the roster already (400, API contract §2.11)
_ALREADY_MEMBER_TYPE = "team_member_already_in_team"
_ALREADY_MEMBER = "already in team"
#: what ``/team/member_delete`` and the bulk leave say about a user not on the roster (400, §2.12)
_NOT_MEMBER = ("not found in team", "doesn't exist in team")
#: what ``/invitation/new`` says when the *caller's* user row is missing (it blames the invited user id)
_INVITER_MISSING = "does not exist in 'litellm_usertable'"
#: ``/user/delete`` names the one unknown id that failed the whole request (404, §2.5)
_MISSING_USER_ID = re.compile(r"passed user_id=([^'\"}]+)")


def proxy_message(body: Any, fallback: str) -> tuple[str, str | None]:
    """The human message and error type from any of the proxy's four error shapes."""
    if isinstance(body, dict):
        err = body.get("error")
        if isinstance(err, dict):  # shape A
            return str(err.get("message") or fallback), (str(err["type"]) if err.get("type") else None)
        if isinstance(err, str):
            return err, None
        if "detail" in body:
            detail = body["detail"]
            if isinstance(detail, dict):  # shape B with {"error": ...}
                return str(detail.get("error") or detail), None
            if isinstance(detail, list):  # shape C (422)
                parts = []
                for d in detail:
                    if isinstance(d, dict):
                        loc = ".".join(str(x) for x in d.get("loc", ()) if x != "body")
                        parts.append(f"{loc}: {d.get('msg')}" if loc else str(d.get("msg")))
                return "; ".join(parts) or fallback, "validation_error"
            if "title" in body:  # shape D (problem+json)
                return f"{body.get('title')}: {detail}", str(body.get("type") or "") or None
            return str(detail), None
        if "title" in body:
            return str(body["title"]), None
    if isinstance(body, str) and body.strip():
        return body.strip(), None
    return fallback, None


def team_id_taken(exc: ProxyError) -> bool:
    """``/team/new``'s 400 for a ``team_id`` that exists (API contract §2.7: "Team id = X already exists")."""
    return isinstance(exc, RejectedError) and "already exists" in exc.message.lower()


def error_class(status: int, message: str, error_type: str | None, path: str) -> type[ProxyError]:
    """The one status table, refined by what the proxy says: which exception an error answer is.

    ``message`` is the proxy's message as the exception will carry it (masked, truncated)."""
    low = message.lower()
    if status == 401:
        return AuthError
    if status == 403:  # about this request, not the credentials (check_auth turns its own 403 into AuthError)
        return ForbiddenError
    if status == 404:
        return RouteMissingError if message == _NO_ROUTE else NotFoundError
    if status == 405:
        return MethodNotAllowedError
    if status == 409 or (status == 400 and "already exists" in low and "user" in low):
        return ConflictError
    if status == 429:
        return RateLimitedError
    if status >= 500:
        return ServerError
    if error_type == _ALREADY_MEMBER_TYPE or _ALREADY_MEMBER in low:
        return AlreadyMemberError
    if any(t in low for t in _NOT_MEMBER):
        return NotMemberError
    if path == "/invitation/new" and _INVITER_MISSING in low:
        return InviterMissingError
    return RejectedError


def is_route_missing(exc: ProxyError) -> bool:
    """The proxy has no route for this request: a framework 404, or a 405 (the path has no route for the method)."""
    return isinstance(exc, (RouteMissingError, MethodNotAllowedError))


def missing_user_id(exc: NotFoundError) -> str | None:
    """The user id that ``/user/delete``'s 404 names as unknown, or None when it names none."""
    m = _MISSING_USER_ID.search(exc.message)
    return m.group(1).strip() if m else None


class RowErrorKind(Enum):
    """Why one row of a batch answer failed, as a value (the proxy says it in free text)."""

    #: the user (email or id) exists already: ``User with email … already exists``
    ALREADY_EXISTS = "already_exists"
    #: the same email or member twice in one request: ``Duplicate user_email in request``
    DUPLICATE = "duplicate"
    #: the user is on the team's roster already
    ALREADY_MEMBER = "already_member"
    #: the user is not on the team's roster: ``User not found in team``
    NOT_A_MEMBER = "not_a_member"
    #: no such user: ``User not found``
    NOT_FOUND = "not_found"
    #: anything else: the row's ``error`` says what
    OTHER = "other"


def row_error_kind(error: str | None) -> RowErrorKind | None:
    """The kind of one batch row's ``error`` text; None when there is no error text."""
    if not error:
        return None
    low = error.lower()
    if "already exists" in low:
        return RowErrorKind.ALREADY_EXISTS
    if "duplicate" in low:
        return RowErrorKind.DUPLICATE
    if _ALREADY_MEMBER in low:
        return RowErrorKind.ALREADY_MEMBER
    if any(t in low for t in _NOT_MEMBER):
        return RowErrorKind.NOT_A_MEMBER
    if "not found" in low:
        return RowErrorKind.NOT_FOUND
    return RowErrorKind.OTHER


@dataclass(frozen=True)
class CreatedUser:
    user_id: str
    email: str | None
    api_key: str | None
    teams: tuple[str, ...]
    #: True when the create's answer was lost and the user was found by reading back (key unknown)
    recovered: bool = False


@dataclass(frozen=True)
class RowResult:
    """One row of a bulk endpoint's answer. ``kind`` says why a row failed (None when it did not, or when
    the tool, not the proxy, failed it); ``error`` is the text to show."""

    user_id: str | None
    email: str | None
    success: bool
    error: str | None = None
    api_key: str | None = None
    teams: tuple[str, ...] = ()
    kind: RowErrorKind | None = None


@dataclass(frozen=True)
class Page:
    items: list[dict[str, Any]]
    total: int
    total_pages: int
