"""GET /v1/share: fair share you can read (like `sshare`): per team and flavor, the guaranteed
(nominal) GPUs, the borrowing limit, what it uses, borrows beyond its guarantee, leaves idle
and lends to teams that borrow; and the weighted dominant share that orders the queues
(PriorityFairShare: the lowest goes first).

A team sees its own row and the cohort's totals; another team's row is a 404 for it, worded as
a missing team (GET /v1/queues already shows every queue's quota, but not who holds what)."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException
from pydantic import BaseModel

from cortex.control import store
from cortex.control.api.deps import Svc, TeamName, Who

router = APIRouter(prefix="/v1")


class FlavorShare(BaseModel):
    flavor: str
    guaranteed: int
    borrowing_limit: int | None  # None: no limit
    used: int
    borrowed: int  # used beyond the guarantee
    idle: int  # guarantee not used
    lent: int  # of `idle`, what borrowing teams hold (split in proportion to idle guarantees)


class TeamShare(BaseModel):
    team: str
    weight: float
    dominant_share: float  # max over flavors of used / total, divided by the weight
    flavors: list[FlavorShare]


class CohortFlavor(BaseModel):
    flavor: str
    total: int
    used: int
    borrowed: int


class ShareOut(BaseModel):
    teams: list[TeamShare]
    cohort: list[CohortFlavor]


@router.get("/share", response_model=ShareOut, summary="Fair share per team and flavor")
def share(who: Who, svc: Svc, team: TeamName | None = None) -> ShareOut:
    if not who.admin:
        if team is not None and team != who.team:
            raise HTTPException(404, f"team {team} not found")
        team = who.team
    queues = svc.loop.mirror.queues  # replaced whole by the loop, never mutated
    flavors = svc.loop.topo.flavors
    totals = svc.loop.topo.flavor_gpus()
    names = [q.name for q in queues.queues]
    if team is not None and team not in names:
        raise HTTPException(404, f"team {team} not found")
    with svc.sessions() as s:
        used_by = store.used_by_team(s)
    used = [[used_by.get((q.name, f), 0) for f in flavors] for q in queues.queues]
    borrowed = [[max(0, u - n) for u, n in zip(us, q.nominal, strict=True)]
                for us, q in zip(used, queues.queues, strict=True)]  # fmt: skip
    idle = [[max(0, n - u) for u, n in zip(us, q.nominal, strict=True)]
            for us, q in zip(used, queues.queues, strict=True)]  # fmt: skip
    rows = []
    for i, q in enumerate(queues.queues):
        if team is not None and q.name != team:
            continue
        per = []
        for f, name in enumerate(flavors):
            lent = _lent(i, f, idle, borrowed)
            per.append(
                FlavorShare(
                    flavor=name,
                    guaranteed=q.nominal[f],
                    borrowing_limit=q.borrowing_limit[f],
                    used=used[i][f],
                    borrowed=borrowed[i][f],
                    idle=idle[i][f],
                    lent=lent,
                )
            )
        dominant = max((u / max(t, 1) for u, t in zip(used[i], totals, strict=True)), default=0)
        rows.append(
            TeamShare(team=q.name, weight=q.weight, dominant_share=dominant / q.weight, flavors=per)
        )
    cohort = [
        CohortFlavor(
            flavor=name,
            total=totals[f],
            used=sum(u[f] for u in used),
            borrowed=sum(b[f] for b in borrowed),
        )
        for f, name in enumerate(flavors)
    ]
    return ShareOut(teams=rows, cohort=cohort)


def _lent(i: int, f: int, idle: list[list[int]], borrowed: list[list[int]]) -> int:
    """Queue i's part of what the other queues borrow on flavor f: the borrowing comes out of
    the idle guarantees, split in proportion to them (rounded down)."""
    others = sum(b[f] for j, b in enumerate(borrowed) if j != i)
    pool = sum(x[f] for x in idle)
    if not others or not pool:
        return 0
    return min(idle[i][f], idle[i][f] * min(others, pool) // pool)
