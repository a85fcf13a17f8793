"""The desired state: the users a source of truth (the CSV) asks for."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

from litellm_usersync.identity import normalize_email, normalize_team_name

from .fields import FieldValue


@dataclass(frozen=True, slots=True)
class DesiredUser:
    """One CSV row.

    ``role`` None means "not given": new users get the default role, existing users keep theirs.
    ``team_names`` None means "not given": existing users keep their teams.
    ``fields`` are the other managed columns whose cell was not empty (:mod:`.fields`): ``(name, value)``, a
    value of None clears the field; a column that is absent, or an empty cell, is not listed (left alone).
    """

    email: str
    role: str | None = None
    team_names: tuple[str, ...] | None = None
    key_name: str | None = None
    line: int = 0
    fields: tuple[tuple[str, FieldValue], ...] = ()

    @property
    def email_key(self) -> str:
        return normalize_email(self.email)


@dataclass(frozen=True, slots=True)
class DesiredTeam:
    """One row of a teams file (``--teams-file``): a team by name and the settings it should have."""

    name: str
    fields: tuple[tuple[str, FieldValue], ...] = ()
    line: int = 0

    @property
    def name_key(self) -> str:
        return normalize_team_name(self.name)


@dataclass(frozen=True)
class DesiredState:
    users: tuple[DesiredUser, ...]
    source: str = "<csv>"
    #: the teams file's rows (empty without ``--teams-file``)
    teams: tuple[DesiredTeam, ...] = ()
    teams_source: str | None = None

    @cached_property
    def by_email_key(self) -> dict[str, DesiredUser]:
        return {u.email_key: u for u in self.users}
