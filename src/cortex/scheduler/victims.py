"""Victim search: the cheapest set of eligible running jobs whose nodes would hold a gang.

Node-oriented, so that a large gang evicts whole nodes in one pod (or as few pods as possible)
rather than scattered jobs that free no usable block. Cost is the GPUs the victims hold; a
multi-node victim costs its whole gang. One pass over the flavor's nodes per search.
"""

from __future__ import annotations

from cortex.scheduler.preemption import PreemptionPolicy
from cortex.scheduler.snapshot import Snapshot
from cortex.scheduler.state import ClusterState


def _node_cost(
    st: ClusterState, n: int, ok: dict[int, bool], judge: object
) -> tuple[int, list[int]] | None:
    """(cost, victims) to empty node n, or None if a job on it may not be evicted."""
    cost = 0
    victims = []
    for jid in st.node_jobs[n]:
        good = ok.get(jid)
        if good is None:
            good = ok[jid] = judge(jid)  # type: ignore[operator]
        if not good:
            return None
        victims.append(jid)
        cost += st.allocations[jid].gpus
    return cost, victims


def find_victims(
    snap: Snapshot, policy: PreemptionPolicy, job_gpus: int, flavor: int, job: object
) -> list[int] | None:
    """Ids of running jobs to evict so that a gang of `job_gpus` fits on `flavor`, or None."""
    st = snap.state
    g = st.gpn[flavor]
    ok: dict[int, bool] = {}
    running = st.running

    def judge(jid: int) -> bool:
        victim = running.get(jid)  # None: started tentatively in this very cycle
        return victim is not None and policy.eligible(snap, job, victim)  # type: ignore[arg-type]

    up = st.node_up
    if job_gpus <= g:
        best: tuple[int, list[int]] | None = None
        for n in st.flavor_node_ids[flavor]:
            if not up[n] or not st.node_jobs[n]:
                continue
            free = st.node_free[n]
            chosen = []
            cost = 0
            for jid, k in sorted(st.node_jobs[n].items(), key=lambda x: x[1]):
                if free >= job_gpus:
                    break
                good = ok.get(jid)
                if good is None:
                    good = ok[jid] = judge(jid)
                if good:
                    chosen.append(jid)
                    free += k
                    cost += st.allocations[jid].gpus
            if free >= job_gpus and (best is None or cost < best[0]):
                best = (cost, chosen)
                if cost <= job_gpus:
                    break
        return best[1] if best else None
    need = -(-job_gpus // g)
    # Per pod: candidate nodes (free or evictable), cheapest first.
    per_pod: dict[int, list[tuple[int, int, list[int]]]] = {}
    for n in st.flavor_node_ids[flavor]:
        if not up[n]:
            continue
        got = _node_cost(st, n, ok, judge) if st.node_jobs[n] else (0, [])
        if got is not None and (got[1] or st.node_free[n] == g):
            per_pod.setdefault(st.node_pod[n], []).append((got[0], n, got[1]))
    best_pod = None
    for p, cands in per_pod.items():
        if len(cands) >= need:
            cands.sort()
            cost = sum(c for c, _, _ in cands[:need])
            if best_pod is None or cost < best_pod[0]:
                best_pod = (cost, p)
    if best_pod is not None:
        picks = per_pod[best_pod[1]][:need]
    else:
        # Across pods of one hall (the hall with the most candidates), largest pods first.
        by_hall: dict[int, int] = {}
        for p, cands in per_pod.items():
            by_hall[st.pod_hall[p]] = by_hall.get(st.pod_hall[p], 0) + len(cands)
        if not by_hall:
            return None
        hall = max(by_hall, key=lambda h: (by_hall[h], -h))
        if by_hall[hall] < need:
            return None
        pods = sorted((p for p in per_pod if st.pod_hall[p] == hall),
                      key=lambda p: (-len(per_pod[p]), p))
        picks = []
        for p in pods:
            for cand in sorted(per_pod[p]):
                picks.append(cand)
                if len(picks) == need:
                    break
            if len(picks) == need:
                break
    victims: dict[int, None] = {}
    for _, _, vs in picks:
        victims.update(dict.fromkeys(vs))
    return list(victims)
