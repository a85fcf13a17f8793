"""Registering users in bulk (the ``add`` command, the seed's ``add_user.py``): plan, report rows, text.

Pure. The plan for new users is the planner's own (``build_plan`` with deletions and updates off), so
``add`` creates users exactly as ``sync`` does; rows whose user already exists are set aside first.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from litellm_usersync.identity import join_team_names
from litellm_usersync.masking import mask_secret
from litellm_usersync.models import (
    DesiredState,
    DesiredUser,
    ItemKind,
    ItemResult,
    LiveUser,
    Plan,
    PlanItem,
    PlanOptions,
    ReissueKey,
    RunReport,
    Snapshot,
)
from litellm_usersync.wording import count_users, listed

from .sync import build_plan, repair_only_item

RESULT_COLUMNS = ("email", "role", "user_id", "team_name", "models", "api_keys", "invitation_url")
ERROR_COLUMNS = ("email", "role", "error_reason")
EXISTING_COLUMNS = ("email", "role", "team_name")
ALREADY_EXISTS = "User already exists"


@dataclass(frozen=True)
class ExistingUser:
    """A CSV row whose email already belongs to a live user (or to several: ``user_ids`` > 1)."""

    want: DesiredUser
    user_ids: tuple[str, ...]
    #: the live user's role and team aliases (of the first match)
    role: str | None
    team_names: tuple[str, ...]

    @property
    def reason(self) -> str:
        if len(self.user_ids) > 1:
            return f"{ALREADY_EXISTS} ({len(self.user_ids)} live users share this email: {', '.join(self.user_ids)})"
        return ALREADY_EXISTS


@dataclass(frozen=True)
class AddPlan:
    """New users to create (``plan``: ADD items only, some blocked) and the rows set aside as existing."""

    plan: Plan
    existing: tuple[ExistingUser, ...]
    default_role: str
    #: users an interrupted ``add`` created whose invitation link was never recorded: they get a new one
    invite_repairs: tuple[str, ...] = ()

    @property
    def creatable(self) -> tuple[PlanItem, ...]:
        return tuple(i for i in self.plan.items if not i.blocked and i.kind is ItemKind.ADD)

    @property
    def repairs(self) -> tuple[PlanItem, ...]:
        """Rows of users an interrupted run created without recording their API key or invitation link."""
        return tuple(i for i in self.plan.items if i.kind is ItemKind.UPDATE)

    @property
    def has_changes(self) -> bool:
        return self.plan.has_changes or bool(self.invite_repairs)

    @property
    def blocked(self) -> tuple[PlanItem, ...]:
        return tuple(i for i in self.plan.items if i.blocked)

    def requested_role(self, want: DesiredUser) -> str:
        return want.role or self.default_role


def build_add_plan(
    desired: DesiredState,
    snapshot: Snapshot,
    *,
    default_role: str = "proxy_admin",
    create_keys: bool = True,
    invite: bool = True,
) -> AddPlan:
    """Split the CSV into existing users (matched by email, trimmed and case-insensitive) and a plan of creates.

    A new user whose team does not exist is a blocked item (``Team not found: NAME``): it fails, the
    others are still created.
    """
    by_email = snapshot.users_by_email_key
    existing: list[ExistingUser] = []
    new: list[DesiredUser] = []
    repairs: list[PlanItem] = []
    invite_repairs: list[str] = []
    for want in desired.users:
        matches = by_email.get(want.email_key, ())
        if not matches:
            new.append(want)
            continue
        if len(matches) == 1 and ((matches[0].key_pending and create_keys) or (matches[0].invite_pending and invite)):
            repairs.append(_repair_item(want, matches[0], snapshot, create_keys=create_keys))
            if matches[0].invite_pending and invite:
                invite_repairs.append(matches[0].user_id)
            continue
        ids = tuple(sorted(u.user_id for u in matches))
        first = sorted(matches, key=lambda u: u.user_id)[0]
        existing.append(ExistingUser(want, ids, first.role, snapshot.team_names_of(first.user_id)))
    options = PlanOptions(
        allow_add=True, allow_delete=False, allow_update=False, default_role=default_role, create_keys=create_keys
    )
    full = build_plan(DesiredState(users=tuple(new), source=desired.source), snapshot, options)
    # only the creates: with deletions off, every other live user would be listed as "left alone"
    plan = Plan(
        items=tuple(i for i in full.items if i.kind is ItemKind.ADD)
        + tuple(sorted(repairs, key=lambda i: i.email_key)),
        refusals=full.refusals,
        fingerprint=full.fingerprint,
        options=full.options,
        team_labels=full.team_labels,
    )
    existing.sort(key=lambda e: e.want.email_key)
    return AddPlan(
        plan=plan, existing=tuple(existing), default_role=default_role, invite_repairs=tuple(sorted(invite_repairs))
    )


def _repair_item(want: DesiredUser, live: LiveUser, snapshot: Snapshot, *, create_keys: bool) -> PlanItem:
    """An interrupted ``add`` created this user but died before recording its key (or link): repair it."""
    reissue = ReissueKey(live.user_id, live.email or want.email, want.key_name)
    return repair_only_item(want, live, snapshot, (reissue,) if live.key_pending and create_keys else ())


# --------------------------------------------------------------------------------------------------
# Rendering


def _key_text(item: PlanItem) -> str:
    create = item.actions[0] if item.actions else None
    alias = getattr(create, "key_alias", None)
    return f", Key Name: {alias}" if alias else ""


def describe_registration(i: PlanItem) -> str:
    """One ``+`` line of the add plan; a role from ``--user-role`` is marked, as sync marks it."""
    teams = ", ".join(i.team_names) or "-"
    default = " (default: no role in the CSV)" if i.role_from_default else ""
    return f"+ {i.email} (Role: {i.role}{default}, Team: {teams}{_key_text(i)})"


def render_add_counts(add: AddPlan) -> str:
    """The plan's counts on one line, the plan's last line (``| tail -1``)."""
    text = f"Registration plan: {len(add.creatable):,} to add, {len(add.existing):,} already exist"
    if add.blocked:
        text += f", {len(add.blocked):,} cannot be applied"
    return text + "."


def render_add_plan(add: AddPlan, *, dry_run: bool, limit: int | None = None) -> str:
    """The plan as text: counts, then one line per row (``+`` create, ``!`` exists, ``✗`` cannot be applied).

    ``limit``: list at most that many rows of each group (a terminal); the counts end the plan.
    """
    lines = [
        "Registration Plan:",
        f"  Users to add: {len(add.creatable)}",
        f"  Users that already exist: {len(add.existing)}",
    ]
    if add.repairs:
        lines.append(f"  Users to repair after an interrupted run: {len(add.repairs)}")
    if add.blocked:
        lines.append(f"  Rows that cannot be applied: {len(add.blocked)}")
    lines.append("")
    lines.append("DRY RUN - Users that would be created:" if dry_run else "Users to be created:")
    lines.extend(listed([describe_registration(i) for i in add.creatable], limit, "  "))
    if not add.creatable:
        lines.append("  (none)")
    if add.repairs:
        lines.append("")
        lines.append("  Repairs (created by an interrupted run that never recorded their secrets):")
        for i in add.repairs:
            what = []
            if i.actions:
                what.append("API key lost: revoke it, issue a new one")
            if i.user_id in add.invite_repairs:
                what.append("invitation link lost: create a new one")
            lines.append(f"  ↻ {i.email}: {'; '.join(what)}")
    if add.existing:
        lines.append("")
        lines.append("  Skipped (already exist; use sync to change them):")
        lines.extend(listed([f"! {e.want.email}: {e.reason}" for e in add.existing], limit, "  "))
    if add.blocked:
        lines.append("")
        lines.append("  Cannot be applied:")
        lines.extend(listed([f"✗ {i.email}: {i.blocked}" for i in add.blocked], limit, "  "))
    lines.append("")
    lines.append(render_add_counts(add))
    return "\n".join(lines)


@dataclass(frozen=True)
class Registration:
    """What happened to one created user beyond the create: its invitation link and its models."""

    invitation_url: str | None = None
    invitation_error: str | None = None
    models: tuple[str, ...] = ()
    #: the link is recorded, but the user's "invitation pending" marker could not be cleared
    marker_left: bool = False


@dataclass(frozen=True)
class AddOutcome:
    """Everything the ``add`` run produced, ready for the two report files."""

    report: RunReport
    registrations: Mapping[str, Registration] = field(default_factory=dict)

    @property
    def created(self) -> tuple[ItemResult, ...]:
        """Items whose user now exists (a create that failed only at joining a team still created the user)."""
        return tuple(r for r in self.report.results if r.success or _created_anyway(r))


def _created_anyway(r: ItemResult) -> bool:
    return not r.success and r.partial


def _models_text(models: Iterable[str]) -> str:
    models = list(models)
    return ";".join(models) if models else "All proxy models"


def result_rows(add: AddPlan, outcome: AddOutcome, *, show_keys: bool) -> list[tuple[str, ...]]:
    """Rows of ``user_reg_result.csv``: one per user created. ``show_keys`` False masks the API keys."""
    rows: list[tuple[str, ...]] = []
    for r in outcome.created:
        reg = outcome.registrations.get(r.item.user_id, Registration())
        key = r.api_key or ""
        rows.append(
            (
                r.item.email,
                r.item.role or add.default_role,
                r.item.user_id,
                join_team_names(r.item.team_names),
                _models_text(reg.models),
                key if show_keys else mask_secret(key),
                reg.invitation_url or "",
            )
        )
    return rows


def error_rows(add: AddPlan, outcome: AddOutcome | None) -> list[tuple[str, str, str]]:
    """Rows of ``user_reg_error.csv``: existing users, rows that cannot be applied, failed creates, and
    created users without an invitation link (the reason says the user was created)."""
    rows: list[tuple[str, str, str]] = []
    rows.extend((e.want.email, add.requested_role(e.want), e.reason) for e in add.existing)
    if outcome is None:
        rows.extend((i.email, i.role or add.default_role, i.blocked or "") for i in add.blocked)
        return rows
    for r in outcome.report.results:
        if not r.success:
            rows.append((r.item.email, r.item.role or add.default_role, r.error or "failed"))
    for r in outcome.created:
        reg = outcome.registrations.get(r.item.user_id)
        if reg is not None and reg.invitation_error:
            rows.append(
                (
                    r.item.email,
                    r.item.role or add.default_role,
                    f"user created, but no invitation link: {reg.invitation_error}",
                )
            )
    return rows


def existing_rows(add: AddPlan) -> list[tuple[str, str, str]]:
    """Rows for ``--update-existing``: the existing users in sync's input format, with their current role and
    teams, ready to be edited and fed to ``sync --no-delete``. Emails shared by several users are left out."""
    return [(e.want.email, e.role or "", join_team_names(e.team_names)) for e in add.existing if len(e.user_ids) == 1]


def render_add_summary(add: AddPlan, outcome: AddOutcome) -> str:
    created = tuple(r for r in outcome.created if r.item.kind is ItemKind.ADD)
    failed = [r for r in outcome.report.results if not r.success and not _created_anyway(r)]
    partial = [r for r in outcome.report.results if _created_anyway(r)]
    no_link = [r for r in created if (reg := outcome.registrations.get(r.item.user_id)) and reg.invitation_error]
    lines = [
        "Summary:",
        f"  Successfully created: {count_users(len(created))}",
        f"  Already existed (skipped): {count_users(len(add.existing))}",
        f"  Failed: {count_users(len(failed))}",
    ]
    if partial:
        lines.append(f"  Created but not in every team: {count_users(len(partial))}")
    if no_link:
        lines.append(f"  Created without an invitation link: {count_users(len(no_link))}")
    if add.repairs:
        lines.append(
            f"  Repaired after an interrupted run: {count_users(len(add.repairs))} (new keys / invitation links)"
        )
    if outcome.report.keys_unknown:
        lines.append(
            f"  Users with no known API key: {count_users(len(outcome.report.keys_unknown))} "
            "(run again: the next run issues new keys)"
        )
    if outcome.report.interrupted:
        lines.append("  Interrupted: the remaining users were not created; run again to finish.")
    return "\n".join(lines)


def render_add_result_counts(add: AddPlan, outcome: AddOutcome) -> str:
    """The run's counts on one line, the last line of a run (``| tail -1``)."""
    failed = sum(1 for r in outcome.report.results if not r.success and not _created_anyway(r))
    text = f"Registration result: {len(outcome.created):,} created, {len(add.existing):,} already existed, " + (
        f"{failed:,} FAILED" if failed else "0 failed"
    )
    return text + ("; interrupted." if outcome.report.interrupted else ".")
