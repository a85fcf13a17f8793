"""Teams on demand: the teams a plan creates (``--create-teams``, ``--teams-file``) or updates (``--teams-file``).

Pure. :func:`plan_teams` decides the team actions and returns the snapshot as it will be once they are applied
(the planned teams added), so that the user rows are planned against it exactly as against existing teams.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
from collections.abc import Iterable

from litellm_usersync.identity import normalize_team_name
from litellm_usersync.models import CreateTeam, DesiredState, PlanOptions, Snapshot, Team, UpdateTeam
from litellm_usersync.models.fields import canonical_models, diff_fields

#: team ids LiteLLM reserves (``/team/new`` refuses them)
RESERVED_TEAM_IDS = frozenset({"litellm-dashboard"})
TEAM_ID_PREFIX = "team-"


def new_team_id(name: str, taken: Iterable[str]) -> str:
    """A stable id for a team created with alias ``name``: ``team-<slug>`` (``-2``, ``-3`` when taken), so a
    create retried after a lost answer is recognised by its id."""
    slug = re.sub(r"[^a-z0-9]+", "-", normalize_team_name(name)).strip("-")[:48]
    if not slug:
        slug = hashlib.sha256(normalize_team_name(name).encode()).hexdigest()[:12]
    used = set(taken) | RESERVED_TEAM_IDS
    base = f"{TEAM_ID_PREFIX}{slug}"
    candidate, n = base, 1
    while candidate in used:
        n += 1
        candidate = f"{base}-{n}"
    return candidate


def _missing_names(desired: DesiredState, snapshot: Snapshot) -> list[str]:
    """Team names of the user rows that match no team at all (an ambiguous name is not missing), first spelling."""
    index = snapshot.team_ids_by_name
    seen: dict[str, str] = {}
    for u in desired.users:
        for name in u.team_names or ():
            key = normalize_team_name(name)
            if key not in index and key not in seen:
                seen[key] = name
    return [seen[k] for k in sorted(seen)]


def plan_teams(
    desired: DesiredState, snapshot: Snapshot, options: PlanOptions
) -> tuple[tuple[CreateTeam | UpdateTeam, ...], Snapshot, list[str]]:
    """``(team actions, snapshot with the planned teams, refusals)``.

    The teams file's rows create their missing teams and update the settings of existing ones; with
    ``options.create_teams`` every team a user row names that does not exist is created too (alias = the name,
    the settings of its teams-file row if it has one). An ambiguous teams-file name is refused.
    """
    index = snapshot.team_ids_by_name
    teams = snapshot.teams_by_id
    refusals: list[str] = []
    actions: list[CreateTeam | UpdateTeam] = []
    creates: dict[str, CreateTeam] = {}
    taken = set(teams)
    where = desired.teams_source or "the teams file"
    for row in sorted(desired.teams, key=lambda t: t.name_key):
        ids = index.get(row.name_key, [])
        if len(ids) > 1:
            refusals.append(
                f"{where}, line {row.line}: team {row.name!r} is ambiguous ({len(ids)} teams have this name: "
                f"{', '.join(sorted(ids))}); rename one of them"
            )
        elif ids:
            changes = diff_fields(row.fields, teams[ids[0]])
            if changes:
                actions.append(UpdateTeam(ids[0], teams[ids[0]].display_name, changes, row.line))
        else:
            tid = new_team_id(row.name, taken)
            taken.add(tid)
            wanted = tuple(f for f in row.fields if f[1] is not None)
            creates[row.name_key] = CreateTeam(tid, row.name, wanted, row.line)
    if options.create_teams:
        for name in _missing_names(desired, snapshot):
            if normalize_team_name(name) not in creates:
                tid = new_team_id(name, taken)
                taken.add(tid)
                creates[normalize_team_name(name)] = CreateTeam(tid, name)
    planned = tuple(_planned_team(c) for c in creates.values())
    after = dataclasses.replace(snapshot, teams=(*snapshot.teams, *planned)) if planned else snapshot
    ordered = sorted(creates.values(), key=lambda c: normalize_team_name(c.name))
    return (*ordered, *actions), after, refusals


def _planned_team(c: CreateTeam) -> Team:
    values = dict(c.fields)
    models = values.get("models")
    return Team(
        c.team_id,
        c.name,
        roster_read=True,
        max_budget=float(b) if isinstance(b := values.get("max_budget"), (int, float)) else None,
        budget_duration=d if isinstance(d := values.get("budget_duration"), str) else None,
        models=canonical_models(models if isinstance(models, tuple) else ()),
        tpm_limit=t if isinstance(t := values.get("tpm_limit"), int) else None,
        rpm_limit=r if isinstance(r := values.get("rpm_limit"), int) else None,
    )


def keep_used_creates(
    teams: tuple[CreateTeam | UpdateTeam, ...], used_team_ids: set[str], desired: DesiredState
) -> tuple[CreateTeam | UpdateTeam, ...]:
    """Drop the ``--create-teams`` creates no planned action joins (rows skipped, blocked or --no-update); the
    teams file's own rows are always kept."""
    listed = {t.name_key for t in desired.teams}
    return tuple(
        t
        for t in teams
        if not isinstance(t, CreateTeam) or t.team_id in used_team_ids or normalize_team_name(t.name) in listed
    )


def create_teams_refusal(teams: tuple[CreateTeam | UpdateTeam, ...], options: PlanOptions) -> str | None:
    """The brake on team creation: more than ``--max-create-teams`` teams refuse the whole run."""
    n = sum(1 for t in teams if isinstance(t, CreateTeam))
    if n <= options.max_create_teams:
        return None
    return (
        f"this run would create {n} teams, more than the limit of {options.max_create_teams}; check the team names "
        f"in the CSV, or raise the limit with --max-create-teams {n}"
    )
