"""Scopes (issue 17): parsing ``--scope`` / ``USERSYNC_SCOPE`` with located errors, the pure "in scope"
predicate, and the planners' scope step (sync and restore): nobody outside the scope is deleted, demoted or
moved; CSV rows naming such a user are left alone unless ``--adopt``; the brake counts in-scope users only."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from litellm_usersync.errors import InputError
from litellm_usersync.models import (
    AdoptUser,
    ChangeRole,
    DeleteUser,
    DesiredState,
    DesiredUser,
    ItemKind,
    LiveUser,
    PlanOptions,
    Scope,
    ScopeKind,
    ScopeTerm,
    Snapshot,
    Team,
    TeamMember,
    parse_scope,
    parse_scope_setting,
    parse_scope_term,
)
from litellm_usersync.plans.restore import build_restore_plan
from litellm_usersync.plans.sync import build_plan

# --------------------------------------------------------------------------------------------------
# parsing


@pytest.mark.parametrize(
    ("text", "term"),
    [
        ("managed", ScopeTerm(ScopeKind.MANAGED)),
        (" Managed ", ScopeTerm(ScopeKind.MANAGED)),
        ("domain:Corp.Example", ScopeTerm(ScopeKind.DOMAIN, "corp.example")),
        ("domain:@corp.example", ScopeTerm(ScopeKind.DOMAIN, "corp.example")),
        ("DOMAIN: corp.example. ", ScopeTerm(ScopeKind.DOMAIN, "corp.example")),
        # an internationalised domain is one domain in its xn-- and Unicode forms (identity.normalize_email)
        ("domain:xn--mnchen-3ya.de", ScopeTerm(ScopeKind.DOMAIN, "münchen.de")),
        ("domain:MÜNCHEN.de", ScopeTerm(ScopeKind.DOMAIN, "münchen.de")),
        ("team:Data  Science", ScopeTerm(ScopeKind.TEAM, "Data Science")),
        ("role:Internal_User", ScopeTerm(ScopeKind.ROLE, "internal_user")),
    ],
)
def test_parse_scope_term(text: str, term: ScopeTerm) -> None:
    assert parse_scope_term(text) == term


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("domian:corp.example", "--scope: 'domian:corp.example': unknown scope kind 'domian' (did you mean domain?)"),
        ("group:x", "unknown scope kind 'group'; expected managed, domain:DOMAIN, team:NAME or role:ROLE"),
        ("domain:", "--scope: 'domain:': empty domain; expected domain:DOMAIN"),
        ("domain:  ", "empty domain"),
        ("team:", "empty team; expected team:NAME"),
        ("domain:a@corp.example", "'a@corp.example' is not a domain; expected the part after the @"),
        ("domain:corp example", "is not a domain"),
        ("domain:corp..example", "is not a domain"),
        ("role:admin", "unknown role 'admin'; expected one of proxy_admin, proxy_admin_viewer, internal_user"),
        ("managed:yes", "'managed' takes no value"),
        ("", "--scope: empty scope"),
    ],
)
def test_a_bad_term_is_a_located_error(text: str, message: str) -> None:
    with pytest.raises(InputError) as exc:
        parse_scope_term(text)
    assert message in str(exc.value)


def test_a_scope_is_sorted_and_without_duplicates() -> None:
    scope = parse_scope(["team:Sales", "managed", "domain:corp.example", "MANAGED"])
    assert scope.values() == ["managed", "domain:corp.example", "team:Sales"]
    assert scope == parse_scope(["domain:CORP.example", "team:Sales", "managed"])
    assert Scope().is_default and Scope().describe() == "every managed user (no --scope)"
    assert scope.describe() == "managed, domain:corp.example, team:Sales"


def test_the_setting_splits_on_commas_and_spaces_and_keeps_quoted_values() -> None:
    scope = parse_scope_setting('managed, domain:corp.example  team:"Data Science",role:internal_user')
    assert scope.values() == ["managed", "domain:corp.example", "team:Data Science", "role:internal_user"]


def test_a_bad_value_of_the_setting_is_located() -> None:
    with pytest.raises(InputError) as exc:
        parse_scope_setting("managed domian:x")
    assert str(exc.value).startswith("USERSYNC_SCOPE, value 2: 'domian:x': unknown scope kind 'domian'")
    with pytest.raises(InputError, match="USERSYNC_SCOPE"):
        parse_scope_setting('team:"Data Science')  # unclosed quote


# --------------------------------------------------------------------------------------------------
# the predicate

TEAMS = (
    Team("t-sales", "Sales", (TeamMember("u-s1", "s1@corp.example", "user"),), roster_read=True),
    Team("t-ops", "Ops", (), roster_read=True),
    Team("t-dup1", "twin"),
    Team("t-dup2", "twin"),
)


def user(email: str | None, *, uid: str | None = None, role: str = "internal_user", marked: bool = False) -> LiveUser:
    return LiveUser(uid or f"u-{email}", email, role, managed_marker=marked)


def snap(*users: LiveUser, teams: tuple[Team, ...] = TEAMS) -> Snapshot:
    return Snapshot(users=users, teams=teams)


def test_contains_by_kind() -> None:
    s1 = user("s1@corp.example", uid="u-s1")
    other = user("x@other.example", marked=True, role="proxy_admin")
    idn = user("ana@xn--mnchen-3ya.de")
    s = snap(s1, other, idn)
    assert parse_scope(["managed"]).contains(other, s) and not parse_scope(["managed"]).contains(s1, s)
    assert parse_scope(["domain:corp.example"]).contains(s1, s)
    assert not parse_scope(["domain:example"]).contains(s1, s)  # a domain, not a suffix
    assert parse_scope(["domain:münchen.de"]).contains(idn, s)
    assert parse_scope(["team:sales"]).contains(s1, s) and not parse_scope(["team:Sales"]).contains(other, s)
    assert parse_scope(["role:proxy_admin"]).contains(other, s) and not parse_scope(["role:proxy_admin"]).contains(
        s1, s
    )
    # one kind: any of them; several kinds: all of them
    assert parse_scope(["domain:corp.example", "domain:other.example"]).contains(other, s)
    assert not parse_scope(["managed", "domain:corp.example"]).contains(other, s)
    assert parse_scope(["managed", "domain:other.example"]).contains(other, s)


def test_nobody_without_an_email_or_default_user_id_is_in_any_scope() -> None:
    s = snap(user(None, uid="svc"), user("admin@corp.example", uid="default_user_id"))
    for scope in (Scope(), parse_scope(["domain:corp.example"])):
        assert not any(scope.contains(u, s) for u in s.users)


def test_a_team_term_that_names_no_single_team_is_a_problem() -> None:
    s = snap()
    assert parse_scope(["team:Sales"]).team_problems(s) == []
    assert parse_scope(["team:Salse"]).team_problems(s) == [
        "--scope team:Salse: no such team; did you mean sales?; nothing outside a known team can be in the scope"
    ]
    assert "ambiguous: 2 teams have this name" in parse_scope(["team:twin"]).team_problems(s)[0]


def test_restrict_keeps_the_scopes_users_and_only_them_on_rosters() -> None:
    s1 = user("s1@corp.example", uid="u-s1")
    sales = Team("t-sales", "Sales", (TeamMember("u-s1", None, "user"), TeamMember("u-x", None, "user")), True)
    s = snap(s1, user("x@other.example", uid="u-x"), teams=(sales,))
    only = parse_scope(["domain:corp.example"]).restrict(s)
    assert [u.user_id for u in only.users] == ["u-s1"]
    assert [m.user_id for m in only.teams[0].members] == ["u-s1"]


# --------------------------------------------------------------------------------------------------
# the sync planner's scope step


def want(*emails: str, role: str | None = "internal_user", teams: tuple[str, ...] | None = None) -> DesiredState:
    return DesiredState(tuple(DesiredUser(e, role, teams, line=n + 2) for n, e in enumerate(emails)))


def opts(*scope: str, **kw: object) -> PlanOptions:
    return PlanOptions(scope=parse_scope(scope), **kw)  # type: ignore[arg-type]


def deleted(plan: object) -> list[str]:
    return sorted(a.user_id for a in plan.actions if isinstance(a, DeleteUser))  # type: ignore[attr-defined]


def test_sso_users_without_the_marker_survive_a_managed_scope() -> None:
    ours = [user(f"m{i}@corp.example", marked=True) for i in range(3)]
    sso = [user(f"sso{i}@corp.example") for i in range(4)]
    s = snap(*ours, *sso)
    plan = build_plan(want("m0@corp.example"), s, opts("managed"))
    assert deleted(plan) == ["u-m1@corp.example", "u-m2@corp.example"]
    assert plan.out_of_scope == 4
    assert not plan.skipped
    # the same CSV without a scope deletes the SSO users too (the seed's behaviour, unchanged)
    assert len(deleted(build_plan(want("m0@corp.example"), s, PlanOptions()))) == 6


def test_a_domain_scope_deletes_only_that_departments_leavers() -> None:
    s = snap(user("a@sales.example"), user("gone@sales.example"), user("b@ops.example"), user("gone@ops.example"))
    plan = build_plan(want("a@sales.example"), s, opts("domain:sales.example"))
    assert deleted(plan) == ["u-gone@sales.example"]
    assert plan.out_of_scope == 2


def test_a_team_scope_uses_the_snapshots_memberships() -> None:
    sales = Team(
        "t-sales",
        "Sales",
        (TeamMember("u-s1", None, "user"), TeamMember("u-s2", None, "user")),
        roster_read=True,
    )
    s1, s2 = user("s1@corp.example", uid="u-s1"), user("s2@corp.example", uid="u-s2")
    # u-o's own teams list names t-sales, but the roster is the truth (it is not on it)
    other = LiveUser("u-o", "o@corp.example", "internal_user", team_ids=("t-sales",))
    s = snap(s1, s2, other, teams=(sales,))
    plan = build_plan(want("s1@corp.example", teams=("Sales",)), s, opts("team:Sales"))
    assert deleted(plan) == ["u-s2"]
    assert plan.out_of_scope == 1


def test_an_unknown_team_in_the_scope_refuses_the_plan() -> None:
    plan = build_plan(want("a@corp.example"), snap(user("b@corp.example")), opts("team:Nope"))
    assert plan.refusals and plan.refusals[0].startswith("--scope team:Nope: no such team")
    assert deleted(plan) == []


def test_a_csv_row_naming_a_user_outside_the_scope_leaves_it_alone() -> None:
    sso = user("sso@corp.example", role="internal_user")
    plan = build_plan(want("SSO@corp.example", role="proxy_admin", teams=("Ops",)), snap(sso), opts("managed"))
    assert not plan.actions  # never promoted, demoted or moved
    assert [(s.user_id, s.reason) for s in plan.skipped] == [
        ("u-sso@corp.example", "outside the scope (managed); left alone (--adopt manages it)")
    ]
    assert plan.out_of_scope == 0  # it has its own line, not counted twice


def test_adopt_marks_then_manages() -> None:
    sso = user("sso@corp.example", role="internal_user")
    ours = user("m@corp.example", marked=True)
    plan = build_plan(
        want("sso@corp.example", "m@corp.example", role="proxy_admin"), snap(sso, ours), opts("managed", adopt=True)
    )
    by_user = {i.user_id: i for i in plan.items}
    adopted = by_user["u-sso@corp.example"]
    assert adopted.kind is ItemKind.UPDATE
    assert adopted.actions[0] == AdoptUser("u-sso@corp.example", "sso@corp.example")
    assert isinstance(adopted.actions[1], ChangeRole)
    # a user that has the marker already is not adopted again
    assert not any(isinstance(a, AdoptUser) for a in by_user["u-m@corp.example"].actions)
    assert plan.adoptions == 1


def test_adopt_of_an_unchanged_user_and_with_no_update() -> None:
    sso = user("sso@corp.example")
    plan = build_plan(want("sso@corp.example"), snap(sso), opts("managed", adopt=True))
    (item,) = plan.items
    assert (item.kind, item.actions) == (ItemKind.UPDATE, (AdoptUser(sso.user_id, "sso@corp.example"),))
    plan = build_plan(want("sso@corp.example", role="proxy_admin"), snap(sso), opts(adopt=True, allow_update=False))
    (item,) = plan.items
    assert item.actions == (AdoptUser(sso.user_id, "sso@corp.example"),)  # marked, role left as --no-update says
    assert item.role == "internal_user"


def test_the_brake_counts_only_the_users_in_the_scope() -> None:
    ours = [user(f"m{i:02}@corp.example", marked=True) for i in range(60)]
    sso = [user(f"sso{i:03}@corp.example") for i in range(200)]
    # 11 of our 60 leave: the default brake is max(10, 20% of 60 = 12) -> runs; without a scope 20% of 260
    plan = build_plan(want(*(u.email for u in ours[11:] if u.email)), snap(*ours, *sso), opts("managed"))
    assert len(deleted(plan)) == 11 and not plan.refusals and plan.delete_limit == 12
    # 13 leave: more than 12 -> refused, and the message counts the scope's users
    plan = build_plan(want(*(u.email for u in ours[13:] if u.email)), snap(*ours, *sso), opts("managed"))
    assert plan.refusals == (
        "this run would delete 13 users, more than the limit of 12 (60 managed users in the scope); check the CSV, "
        "or raise the limit with --max-delete 13",
    )


def test_adds_are_not_filtered_by_the_scope() -> None:
    """A new user is created with the marker: the CSV is its source, so it is in the managed scope from then on."""
    plan = build_plan(want("new@corp.example"), snap(), opts("managed"))
    assert [i.kind for i in plan.items] == [ItemKind.ADD]


# --------------------------------------------------------------------------------------------------
# restore's scope step


def test_a_scoped_restore_touches_nobody_outside_the_scope() -> None:
    kept = user("m@corp.example", marked=True, role="internal_user")
    sso = user("sso@corp.example", role="internal_user")
    gone_sso = user("gone-sso@corp.example")
    gone_ours = user("gone@corp.example", marked=True)
    backup = snap(kept, sso, gone_sso, gone_ours)
    now_kept = LiveUser(kept.user_id, kept.email, "proxy_admin", managed_marker=True)
    now_sso = LiveUser(sso.user_id, sso.email, "proxy_admin")
    added_sso = user("new-sso@corp.example")
    added_ours = user("new@corp.example", marked=True)
    current = snap(now_kept, now_sso, added_sso, added_ours)
    plan = build_restore_plan(backup, current, opts("managed"))
    touched = {(i.kind, i.user_id) for i in plan.items if i.actions}
    assert touched == {
        (ItemKind.UPDATE, kept.user_id),  # reverted (in the scope)
        (ItemKind.ADD, gone_ours.user_id),  # recreated (it was in the scope in the snapshot)
        (ItemKind.DELETE, added_ours.user_id),  # added since, in the scope
    }
    reasons = {s.user_id: s.reason for s in plan.skipped}
    assert reasons[sso.user_id] == "not reverted: outside the scope (managed)"
    assert reasons[gone_sso.user_id] == "deleted since the snapshot; not recreated: outside the scope (managed)"
    assert plan.out_of_scope == 1  # new-sso: added since, not deleted, counted
    # without a scope, the restore reverts the SSO user and deletes the one added since
    unscoped = {(i.kind, i.user_id) for i in build_restore_plan(backup, current).items if i.actions}
    assert (ItemKind.UPDATE, sso.user_id) in unscoped and (ItemKind.DELETE, added_sso.user_id) in unscoped


# --------------------------------------------------------------------------------------------------
# the invariant, on generated cases

DOMAINS = ("a.example", "b.example")
TEAM_POOL = (
    Team("t-a", "A", roster_read=True),
    Team("t-b", "B", roster_read=True),
)
TERMS = st.sampled_from(["managed", "domain:a.example", "domain:b.example", "team:A", "team:B", "role:internal_user"])


@st.composite
def cases(draw: st.DrawFn) -> tuple[Snapshot, DesiredState, PlanOptions]:
    n = draw(st.integers(0, 8))
    users, rosters = [], {"t-a": [], "t-b": []}  # type: ignore[var-annotated]
    for i in range(n):
        uid = f"u{i}"
        email = f"p{i}@{draw(st.sampled_from(DOMAINS))}"
        role = draw(st.sampled_from(["internal_user", "proxy_admin", "internal_user_viewer"]))
        users.append(LiveUser(uid, email, role, managed_marker=draw(st.booleans())))
        for t in draw(st.sets(st.sampled_from(["t-a", "t-b"]))):
            rosters[t].append(TeamMember(uid, email, "user"))
    teams = tuple(Team(t.team_id, t.alias, tuple(rosters[t.team_id]), True) for t in TEAM_POOL)
    listed = draw(st.lists(st.sampled_from(users), unique=True)) if users else []
    rows = tuple(
        DesiredUser(
            u.email or "",
            draw(st.sampled_from([None, "internal_user", "proxy_admin"])),
            draw(st.sampled_from([None, (), ("A",), ("B",), ("A", "B")])),
        )
        for u in listed
    )
    scope = parse_scope(draw(st.lists(TERMS, min_size=1, max_size=3)))
    return Snapshot(tuple(users), teams), DesiredState(rows), PlanOptions(scope=scope, max_delete=100)


@settings(max_examples=150, deadline=None)
@given(cases())
def test_a_plan_never_changes_a_user_outside_its_scope(case: tuple[Snapshot, DesiredState, PlanOptions]) -> None:
    snapshot, desired, options = case
    plan = build_plan(desired, snapshot, options)
    outside = {u.user_id for u in snapshot.users if not options.scope.contains(u, snapshot)}
    assert not [a for a in plan.actions if a.user_id in outside]
    listed = {r.email_key for r in desired.users}
    assert plan.out_of_scope == sum(1 for u in snapshot.users if u.user_id in outside and u.email_key not in listed)
    # with --adopt, only a listed user outside the scope is touched, its marker first when it has none yet
    adopted = build_plan(desired, snapshot, PlanOptions(**{**options.__dict__, "adopt": True}))
    for item in adopted.items:
        if item.user_id in outside and item.actions:
            assert item.email_key in listed
            marked = snapshot.users_by_id[item.user_id].managed_marker
            assert isinstance(item.actions[0], AdoptUser) is not marked


def test_adopt_also_marks_listed_users_inside_the_scope_that_have_no_marker() -> None:
    inside = user("in@corp.example")
    plan = build_plan(want("in@corp.example"), snap(inside), opts("domain:corp.example", adopt=True))
    assert plan.items[0].actions == (AdoptUser(inside.user_id, "in@corp.example"),)
    assert not build_plan(want("in@corp.example"), snap(inside), opts("domain:corp.example")).actions
