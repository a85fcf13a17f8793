"""The JSON documents of ``--output json``: a plan (``litellm-usersync/plan``) and a run's result
(``litellm-usersync/result``), each with its version; an item has the one shape of ``models/documents`` — pure."""

from __future__ import annotations

from typing import Any

from litellm_usersync.masking import mask_secret
from litellm_usersync.models import (
    CreateTeam,
    ItemKind,
    ItemResult,
    Plan,
    RunReport,
    TeamAction,
)
from litellm_usersync.models.documents import item_to_dict, skipped_to_dict
from litellm_usersync.models.fields import (
    changes_to_list,
    fields_to_dict,
)

from .report import count_reissues

PLAN_SCHEMA_VERSION = 1
RESULT_SCHEMA_VERSION = 1


def plan_to_dict(plan: Plan) -> dict[str, Any]:
    c = plan.counts
    return {
        "schema": "litellm-usersync/plan",
        "version": PLAN_SCHEMA_VERSION,
        "summary": {
            "add": c[ItemKind.ADD],
            "delete": c[ItemKind.DELETE],
            "update": c[ItemKind.UPDATE],
            "unchanged": c[ItemKind.UNCHANGED],
            "block": c[ItemKind.BLOCK],
            "reactivate": c[ItemKind.REACTIVATE],
            "skipped": len(plan.skipped),
            "blocked": sum(1 for i in plan.items if i.blocked),
            "reissue_keys": count_reissues(plan),
            "team_keys_destroyed": plan.team_keys_destroyed,
            "adopt": plan.adoptions,
            "out_of_scope": plan.out_of_scope,
            **({"teams_create": len(plan.team_creates), "teams_update": len(plan.team_updates)} if plan.teams else {}),
        },
        "scope": plan.options.scope.values(),
        "refusals": list(plan.refusals),
        "fingerprint": plan.fingerprint,
        "items": [item_to_dict(i) for i in plan.items],
        "skipped": [skipped_to_dict(s) for s in plan.skipped],
        "teams": [_team_dict(t) for t in plan.teams],
    }


def _team_dict(t: TeamAction) -> dict[str, Any]:
    d: dict[str, Any] = {"action": "CREATE" if isinstance(t, CreateTeam) else "UPDATE", "team_id": t.team_id}
    d["name"] = t.name
    if isinstance(t, CreateTeam):
        d["fields"] = fields_to_dict(t.fields)
    else:
        d["changes"] = changes_to_list(t.changes)
    return d


def _result_dict(r: ItemResult) -> dict[str, Any]:
    d = item_to_dict(r.item)
    d.update(
        status="SUCCESS" if r.success else "FAILED",
        error=r.error,
        note=r.note,
        recreated=r.recreated,
        api_key=mask_secret(r.api_key) if r.api_key else None,
    )
    return d


def report_to_dict(report: RunReport) -> dict[str, Any]:
    return {
        "schema": "litellm-usersync/result",
        "version": RESULT_SCHEMA_VERSION,
        "ok": report.ok,
        "interrupted": report.interrupted,
        "aborted": report.aborted,
        "scope": list(report.scope),
        "summary": {
            "succeeded": sum(1 for r in report.results if r.success),
            "failed": len(report.failed),
            "keys_unknown": len(report.keys_unknown),
        },
        "results": [_result_dict(r) for r in report.results],
    }
