"""Team memberships: joins, leaves (with the roster read back), and the re-binding of team keys a move keeps.

Roster writes go in rounds (:func:`~.scheduling.rounds`): one team's writes are one batch, never parallel;
teams of one round run in parallel. Each team's batch goes through the shared applier: one roster write
with the whole member list, and per member (sequentially, inside the team) when that write fails.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from functools import partial

from litellm_usersync.errors import AuthError, ProxyError
from litellm_usersync.models import AddMembership, Outcome, RebindKeys, RemoveMembership
from litellm_usersync.proxy.client import ProxyClient

from .applier import apply_batched, done, failed, outcomes_from_rows, skipped
from .scheduling import Run, rounds, who

log = logging.getLogger("litellm_usersync.apply.memberships")

#: how many times one leave is sent while the team's roster read back still lists the user
LEAVE_ROUNDS = 3


class Memberships:
    """Joins and leaves through one :class:`ProxyClient`, scheduled by the run's :class:`Run`."""

    def __init__(self, client: ProxyClient, run: Run) -> None:
        self.client = client
        self.run = run

    # joins

    async def joins(self, actions: Sequence[AddMembership], *, progress: bool = True) -> list[Outcome]:
        """Joins, one ``member_add`` with a member list per team; teams in parallel, one team at a time."""
        if not actions:
            return []
        if progress:
            self.run.progress.start("adding team memberships", len(actions))
        outcomes: list[Outcome] = []
        for batches in rounds(actions):  # progress=False: part of another phase, which counts its own rows
            outcomes.extend(await self.run.each(list(batches.values()), self._join_team, advance=progress))
        return outcomes

    async def _join_team(self, batch: list[AddMembership]) -> list[Outcome]:
        tid = batch[0].team_id
        if log.isEnabledFor(logging.DEBUG):
            log.debug("step: team %s: add %s", self.run.label(tid), who(a.email for a in batch))
        return await apply_batched(
            self.run,
            batch,
            # one member at a time isolates the member that makes the batch fail
            batch=self._member_add if len(batch) > 1 else None,
            per_user=partial(self._join_one_by_one, tid),
            what=f"joins of team {self.run.label(tid)}",
            chunk=len(batch),
            advance=False,
        )

    async def _member_add(self, batch: list[AddMembership]) -> list[Outcome]:
        tid = batch[0].team_id
        ok = await self.client.add_team_members(tid, [(a.user_id, a.email) for a in batch])
        lost = f"not on team {self.run.label(tid)} after member_add"
        return [done(a) if a.user_id in ok else failed(a, lost) for a in batch]

    async def _join_one_by_one(self, tid: str, batch: list[AddMembership]) -> list[Outcome]:
        out: list[Outcome] = []
        for a in batch:
            try:
                out.extend(await self._member_add([a]))
            except AuthError:
                raise
            except ProxyError as exc:
                out.append(failed(a, exc))
        return out

    # leaves

    async def leaves(self, actions: Sequence[RemoveMembership], *, progress: bool = True) -> list[Outcome]:
        """Leaves, per team: the bulk members delete where the proxy has it, else one ``member_delete`` each."""
        if not actions:
            return []
        if progress:
            self.run.progress.start("removing team memberships", len(actions))
        bulk = await self.client.supports_bulk("leave")

        async def team(batch: list[RemoveMembership]) -> list[Outcome]:
            tid = batch[0].team_id
            if log.isEnabledFor(logging.DEBUG):
                log.debug("step: team %s: remove %s", self.run.label(tid), who(a.email for a in batch))
            return await apply_batched(
                self.run,
                batch,
                # one member too: the bulk route rewrites the roster once, under the team lock (contract §2.17),
                # where member_delete alone would need the roster read back (two requests a team)
                batch=self._bulk_leave if bulk else None,
                per_user=partial(self._leave_one_by_one, tid),
                what=f"leaves of team {self.run.label(tid)}",
                chunk=len(batch),
                advance=False,
            )

        outcomes: list[Outcome] = []
        for batches in rounds(actions):
            outcomes.extend(await self.run.each(list(batches.values()), team, advance=progress))
        return outcomes

    async def _bulk_leave(self, batch: list[RemoveMembership]) -> list[Outcome] | None:
        rows = await self.client.bulk_remove_team_members(batch[0].team_id, [a.user_id for a in batch])
        return None if rows is None else outcomes_from_rows(batch, rows, "not removed")

    async def _leave_one_by_one(self, tid: str, batch: list[RemoveMembership]) -> list[Outcome]:
        """``member_delete`` per user (sequential within one team), then the roster read back: a user it still
        lists gets the leave again, at most :data:`LEAVE_ROUNDS` times in all. An answer alone (200, or 400
        "not found in team") is not proof: older proxies write rosters without a lock, and the roster, not
        ``user.teams`` (which 1.74.15.post2 can leave repeating the team), is the truth for membership.

        A user still listed after the last round keeps its "done" outcome (every call answered success):
        the verification after the updates finds it and the fallback applies, as for any silent failure.
        """
        out: dict[str, Outcome] = {}
        pending = list(batch)
        for attempt in range(1, LEAVE_ROUNDS + 1):
            for a in pending:
                if self.run.stop.is_set():
                    break
                try:
                    await self.client.remove_team_member(tid, a.user_id)
                    out[a.key] = done(a)
                except AuthError:
                    raise
                except ProxyError as exc:
                    out[a.key] = failed(a, exc)
            answered = [a for a in pending if a.key in out and out[a.key].ok]
            if not answered or self.run.stop.is_set():
                break
            try:
                roster = (await self.client.read_team_rosters([tid])).get(tid, frozenset())
            except AuthError:
                raise
            except ProxyError as exc:  # not knowing is not "wrong": the verification reads again later
                log.info("could not read team %s back after its leaves (%s)", self.run.label(tid), exc)
                break
            pending = [a for a in answered if a.user_id in roster]
            if not pending:
                break
            if attempt < LEAVE_ROUNDS:
                log.info(
                    "%d user(s) still on team %s after a leave answered success (attempt %d of %d): sending again",
                    len(pending),
                    self.run.label(tid),
                    attempt,
                    LEAVE_ROUNDS,
                )
        return [out[a.key] for a in batch if a.key in out]

    async def apply_leaves(self, actions: Sequence[RemoveMembership], finished: Mapping[str, Outcome]) -> list[Outcome]:
        """The planned leaves whose prerequisites (the joins, the re-binds) are done; the others skipped."""
        ready: list[RemoveMembership] = []
        out: list[Outcome] = []
        for a in actions:
            missing = [k for k in a.requires if k not in finished or not finished[k].ok]
            if any(k.startswith("rebind:") for k in missing):
                out.append(skipped(a, "not removed from the old team because its team keys could not be re-bound"))
            elif missing:
                out.append(skipped(a, "not removed from the old team because joining the new team failed"))
            else:
                ready.append(a)
        return out + await self.leaves(ready)

    # team keys

    async def apply_rebinds(self, actions: Sequence[RebindKeys], finished: Mapping[str, Outcome]) -> list[Outcome]:
        """--keep-team-keys: bind the keys a leave would delete to the user's new team (``/key/update``)."""
        if not actions:
            return []
        self.run.progress.start("re-binding team keys", len(actions))

        async def one(a: RebindKeys) -> list[Outcome]:
            if any(k not in finished or not finished[k].ok for k in a.requires):
                return [skipped(a, "team keys not re-bound because joining the new team failed")]
            for token in a.tokens:
                try:
                    await self.client.update_key(token, team_id=a.to_team)
                except AuthError:
                    raise
                except ProxyError as exc:
                    return [failed(a, f"re-binding a team key to {self.run.label(a.to_team)} failed: {exc}")]
            return [done(a, note=f"{len(a.tokens)} team key(s) re-bound to {self.run.label(a.to_team)}")]

        return await self.run.each(actions, one)
