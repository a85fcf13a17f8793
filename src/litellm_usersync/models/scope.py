"""Scopes: which live users one run is responsible for (``--scope``, ``USERSYNC_SCOPE``). Pure, no I/O.

A proxy often has several sources of users: SSO creates users on first login, another team's script adds
more, service accounts are made by hand. A scope says which of them a CSV answers for; the planners never
delete, block, demote or move a user outside it.

Terms (``--scope`` is repeatable):

* ``managed``: users this tool created or adopted (``metadata.managed_by = "litellm-usersync"``);
* ``domain:corp.example``: users whose email is at that domain (exactly; IDN-aware: ``xn--`` and Unicode
  forms are one domain);
* ``team:NAME``: members of that team (by alias as in the CSV, or by id);
* ``role:ROLE``: users with that proxy role (a user the tool blocked: the role before its block, from its record).

Terms of one kind are alternatives (``domain:a.example domain:b.example``: either domain); terms of different
kinds must all hold (``managed domain:a.example``: managed users at that domain). No term: every managed user
(the seed's behaviour).
"""

from __future__ import annotations

import dataclasses
import difflib
import enum
import shlex
from collections.abc import Iterable
from dataclasses import dataclass

from litellm_usersync.errors import InputError
from litellm_usersync.identity import PROXY_ROLES, normalize_email, normalize_team_name, team_problem

from .live import LiveUser, Snapshot


class ScopeKind(enum.StrEnum):
    MANAGED = "managed"
    DOMAIN = "domain"
    TEAM = "team"
    ROLE = "role"


_USAGE = "managed, domain:DOMAIN, team:NAME or role:ROLE"
_PLACEHOLDER = {ScopeKind.DOMAIN: "DOMAIN (e.g. domain:corp.example)", ScopeKind.TEAM: "NAME", ScopeKind.ROLE: "ROLE"}
#: the environment variable (also read from ``.env``) that holds the default scope
SCOPE_ENV = "USERSYNC_SCOPE"


@dataclass(frozen=True, slots=True)
class ScopeTerm:
    kind: ScopeKind
    #: the domain in its normalised Unicode form, the team name as given, the role; empty for ``managed``
    value: str = ""

    def __str__(self) -> str:
        return self.kind.value if self.kind is ScopeKind.MANAGED else f"{self.kind.value}:{self.value}"


def parse_scope_term(text: str, where: str = "--scope") -> ScopeTerm:
    """``"domain:Corp.Example"`` -> ``ScopeTerm(DOMAIN, "corp.example")``; a bad term raises :class:`InputError`
    naming ``where`` and what was expected."""
    raw = text.strip()
    kind_text, colon, value = raw.partition(":")
    kind_key = kind_text.strip().lower()
    value = value.strip()
    if not raw:
        raise InputError(f"{where}: empty scope; expected {_USAGE}")
    try:
        kind = ScopeKind(kind_key)
    except ValueError:
        close = difflib.get_close_matches(kind_key, [k.value for k in ScopeKind], n=1, cutoff=0.6)
        hint = f" (did you mean {close[0]}?)" if close else ""
        raise InputError(f"{where}: {raw!r}: unknown scope kind {kind_text!r}{hint}; expected {_USAGE}") from None
    if kind is ScopeKind.MANAGED:
        if colon:
            raise InputError(f"{where}: {raw!r}: 'managed' takes no value; expected {_USAGE}")
        return ScopeTerm(kind)
    if not value:
        raise InputError(f"{where}: {raw!r}: empty {kind.value}; expected {kind.value}:{_PLACEHOLDER[kind]}")
    if kind is ScopeKind.DOMAIN:
        return ScopeTerm(kind, _domain(value, raw, where))
    if kind is ScopeKind.ROLE:
        role = value.lower()
        if role not in PROXY_ROLES:
            raise InputError(f"{where}: {raw!r}: unknown role {value!r}; expected one of {', '.join(PROXY_ROLES)}")
        return ScopeTerm(kind, role)
    return ScopeTerm(kind, " ".join(value.split()))


def _domain(value: str, raw: str, where: str) -> str:
    domain = value[1:] if value.startswith("@") else value
    if not domain or "@" in domain or any(c.isspace() for c in domain) or domain.startswith(".") or ".." in domain:
        raise InputError(
            f"{where}: {raw!r}: {value!r} is not a domain; expected the part after the @, e.g. domain:corp.example"
        )
    # the identity rule of emails: lower case, NFC, an xn-- label in its Unicode form
    return normalize_email(f"x@{domain.rstrip('.')}").rpartition("@")[2]


@dataclass(frozen=True)
class Scope:
    """The users a run answers for. ``terms`` without duplicates, by kind (managed, domain, team, role) then value
    (build it with :meth:`of`, so two spellings of one scope are equal); empty: every managed user."""

    terms: tuple[ScopeTerm, ...] = ()

    @classmethod
    def of(cls, terms: Iterable[ScopeTerm]) -> Scope:
        order = list(ScopeKind)
        return cls(tuple(sorted(set(terms), key=lambda t: (order.index(t.kind), t.value))))

    @property
    def is_default(self) -> bool:
        return not self.terms

    def values(self) -> list[str]:
        """The terms as ``--scope`` values (what a plan file and the audit log record)."""
        return [str(t) for t in self.terms]

    def describe(self) -> str:
        """``managed, domain:corp.example`` for the plan and the report; the default says what it means."""
        return ", ".join(self.values()) if self.terms else "every managed user (no --scope)"

    def _of(self, kind: ScopeKind) -> list[ScopeTerm]:
        return [t for t in self.terms if t.kind is kind]

    def team_problems(self, snapshot: Snapshot) -> list[str]:
        """Why a ``team:`` term names no single team of ``snapshot`` (one line each; empty when all resolve)."""
        index = snapshot.team_ids_by_name
        problems = []
        for t in self._of(ScopeKind.TEAM):
            why = team_problem(t.value, index)
            if why is not None:
                problems.append(f"--scope {t}: {why}; nothing outside a known team can be in the scope")
        return problems

    def contains(self, user: LiveUser, snapshot: Snapshot) -> bool:
        """True when ``user`` is in this scope (team terms read ``snapshot``'s memberships). Pure."""
        if not user.is_manageable:
            return False
        if not self.terms:  # the default scope: every manageable user (most runs; asked once per user)
            return True
        checks = (
            (ScopeKind.MANAGED, lambda _t: user.managed_marker),
            (ScopeKind.DOMAIN, lambda t: user.email_key.rpartition("@")[2] == t.value),
            (ScopeKind.ROLE, lambda t: scope_role(user) == t.value),
            (ScopeKind.TEAM, lambda t: bool(_team_ids(t, snapshot) & snapshot.team_ids_of(user.user_id))),
        )
        for kind, matches in checks:
            terms = self._of(kind)
            if terms and not any(matches(t) for t in terms):
                return False
        return True

    def restrict(self, snapshot: Snapshot) -> Snapshot:
        """``snapshot`` with only the users in this scope, and only them on the team rosters (``snapshot
        --scope``): a restore of it answers for these users and nobody else."""
        users = tuple(u for u in snapshot.users if self.contains(u, snapshot))
        kept = {u.user_id for u in users}
        teams = tuple(
            dataclasses.replace(t, members=tuple(m for m in t.members if m.user_id in kept)) for t in snapshot.teams
        )
        keys = tuple(k for k in snapshot.team_keys if k.user_id in kept)
        user_keys = tuple(k for k in snapshot.user_keys if k.user_id in kept)
        return dataclasses.replace(
            snapshot,
            users=users,
            teams=teams,
            team_keys=keys,
            user_keys=user_keys,
            user_keys_read=snapshot.user_keys_read & kept,
        )


def scope_role(user: LiveUser) -> str | None:
    """The role a ``role:`` term reads: a user the tool blocked (``--deprovision block``) holds the blocked
    role for now, so its record's role (the one before the block) says whose it is; else its role. Without
    this a ``role:internal_user`` scope would lose its own blocked users: never purged nor reactivated."""
    record = user.block_record
    if record is not None and record.role:
        return record.role
    return user.role


def _team_ids(term: ScopeTerm, snapshot: Snapshot) -> frozenset[str]:
    ids = snapshot.team_ids_by_name.get(normalize_team_name(term.value), ())
    return frozenset(ids) if len(ids) == 1 else frozenset()


def parse_scope(values: Iterable[str], where: str = "--scope") -> Scope:
    """The scope of ``--scope`` values (one term each). Raises :class:`InputError` naming the bad one."""
    return Scope.of(parse_scope_term(v, where) for v in values)


def split_scope_setting(text: str, where: str = SCOPE_ENV) -> list[str]:
    """``USERSYNC_SCOPE`` -> its terms: separated by commas or spaces; a value with spaces is quoted
    (``team:"Data Science"``)."""
    lexer = shlex.shlex(text, posix=True)
    lexer.whitespace += ","
    lexer.whitespace_split = True
    lexer.commenters = ""
    try:
        return list(lexer)
    except ValueError as exc:  # an unclosed quote
        raise InputError(f"{where}: {text!r}: {exc}") from None


def parse_scope_setting(text: str, where: str = SCOPE_ENV) -> Scope:
    """The scope of ``USERSYNC_SCOPE``; each bad term is located as ``USERSYNC_SCOPE, value N``."""
    parts = split_scope_setting(text, where)
    return Scope.of(parse_scope_term(p, f"{where}, value {n}") for n, p in enumerate(parts, 1))
