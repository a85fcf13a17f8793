"""The exception tree of litellm-usersync.

Everything the library raises on purpose is a :class:`UsersyncError`. Programming mistakes stay
``TypeError``/``RuntimeError`` and are deliberately outside this tree so that no handler swallows them.

    UsersyncError
    ├── InputError            bad input given by the operator
    │   └── CsvError          a CSV file that cannot be read; carries every located problem
    ├── ConfigError           missing/invalid settings (no master key, bad URL, ...)
    ├── RefusedError          a safety brake tripped, an empty source, a stale plan
    └── ProxyError            anything the proxy answered with (or failed to answer)
        ├── AuthError         401, or a 403 on the identity check
        ├── ForbiddenError    403 on one operation
        ├── NotFoundError     404
        │   └── RouteMissingError      the proxy has no such route (an older proxy, a wrong base URL)
        ├── ConflictError     409, or a duplicate email: it already exists
        ├── RejectedError     400/422
        │   ├── MethodNotAllowedError  405: the path has no route for this method
        │   ├── AlreadyMemberError     the user is on the team's roster already
        │   ├── NotMemberError         the user is not on the team's roster
        │   └── InviterMissingError    an invitation's maker (the caller) has no user row
        ├── RateLimitedError  429 (carries retry_after_s)
        ├── ServerError       5xx
        └── UnavailableError  transport failure: connect error, timeout, reset
"""

from __future__ import annotations

from dataclasses import dataclass


class UsersyncError(Exception):
    """Root of every error this package raises on purpose."""


class InputError(UsersyncError):
    """The operator's input is unusable."""


@dataclass(frozen=True)
class CsvProblem:
    """One located problem in a CSV file, or in a sheet of a workbook (``sheet``; ``line`` is then its row)."""

    path: str
    line: int
    column: str | None
    message: str
    sheet: str | None = None

    def __str__(self) -> str:
        if self.sheet is not None:
            where = f"{self.path}, sheet {self.sheet}" + (f", row {self.line}" if self.line else "")
            if self.column:
                where += f", column {self.column}"
            return f"{where}: {self.message}"
        where = f"{self.path}:{self.line}"
        if self.column:
            where += f" (column {self.column})"
        return f"{where}: {self.message}"


class CsvError(InputError):
    """A CSV file with one or more problems. Nothing is sent to the proxy when this is raised."""

    def __init__(self, problems: list[CsvProblem]) -> None:
        self.problems = list(problems)
        first = str(self.problems[0]) if self.problems else "invalid CSV"
        more = f" (and {len(self.problems) - 1} more problem(s))" if len(self.problems) > 1 else ""
        super().__init__(first + more)

    def render(self) -> str:
        return "\n".join(str(p) for p in self.problems)


class ConfigError(UsersyncError):
    """Settings are missing or invalid."""


class RefusedError(UsersyncError):
    """The tool refuses to go on: a safety brake, an empty source or a stale plan. Nothing was changed."""


class ProxyError(UsersyncError):
    """The proxy answered with an error, or could not be reached.

    ``message`` is the proxy's own text, truncated and with secrets masked.
    """

    def __init__(
        self,
        message: str,
        *,
        method: str = "",
        path: str = "",
        status: int | None = None,
        error_type: str | None = None,
    ) -> None:
        self.message = message
        self.method = method
        self.path = path
        self.status = status
        self.error_type = error_type
        super().__init__(str(self))

    def __str__(self) -> str:
        where = f"{self.method} {self.path}".strip()
        status = f" -> {self.status}" if self.status is not None else ""
        prefix = f"{where}{status}: " if where else ""
        return f"{prefix}{self.message}"


class AuthError(ProxyError):
    """Bad credentials: a 401, or a 403 on the identity check. Ends the run."""


class ForbiddenError(ProxyError):
    """A 403 on one operation that is not about the credentials (the licence's seat limit, "not allowed for this
    team", a route the key may not use): the proxy refuses this request, so that row fails with the proxy's
    message and the run goes on. Only a 403 on the identity check is bad credentials (:class:`AuthError`)."""


class NotFoundError(ProxyError):
    """404."""


class RouteMissingError(NotFoundError):
    """A 404 from the proxy's web framework itself (``{"detail": "Not Found"}``): no route has this path. An
    older proxy without a batch route, or a base URL that is not the proxy's root."""


class ConflictError(ProxyError):
    """409, or a duplicate email/id: what a create names already exists."""


class RejectedError(ProxyError):
    """400/422: the proxy rejected the request."""


class MethodNotAllowedError(RejectedError):
    """405: the path exists, but not for this method (a GET on a POST route tells that the route exists)."""


class AlreadyMemberError(RejectedError):
    """A join that was not needed: the user is on the team's roster already (``team_member_already_in_team``)."""


class NotMemberError(RejectedError):
    """A leave that was not needed: the user is not on the team's roster ("User not found in team")."""


class InviterMissingError(RejectedError):
    """``/invitation/new`` cannot record who made the invitation: the caller (for the master key,
    ``default_user_id``) has no user row. The proxy's message blames the invited user id instead."""


class RateLimitedError(ProxyError):
    """429. ``retry_after_s`` is the server's Retry-After, when it sent one."""

    def __init__(self, message: str, *, retry_after_s: float | None = None, **kw: object) -> None:
        self.retry_after_s = retry_after_s
        super().__init__(message, **kw)  # type: ignore[arg-type]


class ServerError(ProxyError):
    """5xx."""


class UnavailableError(ProxyError):
    """Transport failure: could not connect, timed out, connection reset.

    ``maybe_sent`` is true when the request may have reached the server (a read timeout, a reset after
    sending): for a write, the outcome is then uncertain.
    """

    def __init__(self, message: str, *, maybe_sent: bool = True, **kw: object) -> None:
        self.maybe_sent = maybe_sent
        super().__init__(message, **kw)  # type: ignore[arg-type]
