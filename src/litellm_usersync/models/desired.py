"""The desired state: the users a source of truth (the CSV) asks for."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

from litellm_usersync.identity import normalize_email


@dataclass(frozen=True, slots=True)
class DesiredUser:
    """One CSV row.

    ``role`` None means "not given": new users get the default role, existing users keep theirs.
    ``team_names`` None means "not given": existing users keep their teams.
    """

    email: str
    role: str | None = None
    team_names: tuple[str, ...] | None = None
    key_name: str | None = None
    line: int = 0

    @property
    def email_key(self) -> str:
        return normalize_email(self.email)


@dataclass(frozen=True)
class DesiredState:
    users: tuple[DesiredUser, ...]
    source: str = "<csv>"

    @cached_property
    def by_email_key(self) -> dict[str, DesiredUser]:
        return {u.email_key: u for u in self.users}
