"""The victim search as it was before its fast paths (commit 877b9b9), kept as the oracle of
tests/unit/test_victims_fast.py: the fast search must choose exactly what this one does. Its
cost has since gained the work the victims lose (GPUs x `Snapshot.lost_s`) between priority
and GPUs, as victims.py did; nothing else changed.

Victim search: the cheapest set of eligible running jobs whose nodes would hold a gang.

Node-oriented, so that a large gang evicts whole nodes in one pod (or as few pods as possible)
rather than scattered jobs that free no usable block. The policy's vectorized node filter
narrows the fleet in a few array operations; nodes are then judged job by job with the policy's
exact rule, and a node holding a job that may not be evicted is skipped, never the end of the
search.

Cost, compared in this order (Kueue and KAI evict the lowest priority first):
1. the highest priority among the victims;
2. the GPUs of the victims' whole allocations: evicting one node of a 4-node gang costs the
   gang's 32 GPUs, not the 8 on that node, because the whole gang stops and loses its work.
"""

from __future__ import annotations

import numpy as np

from cortex.scheduler.preemption import PreemptionPolicy
from cortex.scheduler.snapshot import Snapshot
from cortex.scheduler.state import ClusterState
from cortex.scheduler.summaries import EMPTY_PRIO
from cortex.workload.job import Job

# Single-node gangs: how many feasible nodes to compare exactly, and how many candidate nodes to
# look at in all (most of them may hold jobs that cannot be evicted).
SINGLE_NODE_TRIES = 16
# With victims costed by lost work, which no node summary orders by, more feasible nodes are
# compared exactly: the cheapest of the 64 likeliest (lowest top priority, fewest GPUs in use).
SINGLE_NODE_TRIES_LOST = 64
NODE_SCAN_MAX = 1024
# Gangs that fit in one pod: how many feasible pods to compare exactly. Pods are visited by a
# lower bound on their cost, so the search usually stops long before.
POD_TRIES = 8

Cost = tuple[int, float, int]  # (highest victim priority, GPU-seconds lost, GPUs)


class _Judge:
    """The policy's exact rule per running job, asked once per job in one search."""

    __slots__ = ("job", "policy", "seen", "snap")

    def __init__(self, snap: Snapshot, policy: PreemptionPolicy, job: Job) -> None:
        self.snap = snap
        self.policy = policy
        self.job = job
        self.seen: dict[int, Job | None] = {}

    def lost_gpu_s(self, v: Job, gpus: int) -> float:
        lost_s = self.snap.lost_s
        if lost_s is None:
            return 0.0
        lost = lost_s(v)
        return gpus * (lost if lost > 0.0 else 0.0)

    def victim(self, jid: int) -> Job | None:
        """The running job `jid` if it may be evicted, else None (also for a job started
        tentatively in this very cycle, which is not running yet)."""
        if jid in self.seen:
            return self.seen[jid]
        v = self.snap.state.running.get(jid)
        ok = v if v is not None and self.policy.eligible(self.snap, self.job, v) else None
        self.seen[jid] = ok
        return ok


def find_victims(
    snap: Snapshot, policy: PreemptionPolicy, gang: int, flavor: int, job: Job
) -> list[int] | None:
    """Ids of running jobs to evict so that a gang of `gang` GPUs fits on `flavor`, or None."""
    st = snap.state
    g = st.gpn[flavor]
    base = (st.np_node_flavor == flavor) & st.np_up
    evictable = base & (st.np_used > 0) & policy.node_filter(snap, job)
    judge = _Judge(snap, policy, job)
    if gang <= g:
        return _single_node(st, judge, gang, np.flatnonzero(evictable))
    need = -(-gang // g)
    idx = np.flatnonzero(evictable | (base & (st.np_used == 0)))
    if idx.size < need:
        return None
    found = _in_one_pod(st, judge, idx, need)
    if found is not None:
        return found
    return _across_pods(st, judge, idx, need)


# ---- single-node gangs -----------------------------------------------------------------------
def _single_node(st: ClusterState, judge: _Judge, gang: int, nodes: np.ndarray) -> list[int] | None:
    if nodes.size == 0:
        return None
    # Likely cheapest first: the lowest top priority on the node, then the fewest GPUs in use.
    order = nodes[np.lexsort((nodes, st.np_used[nodes], st.np_max_prio[nodes]))]
    best: tuple[Cost, list[int]] | None = None
    tries = 0
    limit = SINGLE_NODE_TRIES if judge.snap.lost_s is None else SINGLE_NODE_TRIES_LOST
    for n in order[:NODE_SCAN_MAX].tolist():
        got = _free_on_node(st, judge, n, gang)
        if got is None:
            continue
        if best is None or got[0] < best[0]:
            best = got
        tries += 1
        if tries == limit:
            break
    return None if best is None else best[1]


def _free_on_node(
    st: ClusterState, judge: _Judge, n: int, gang: int
) -> tuple[Cost, list[int]] | None:
    """The cheapest victims on node n that leave `gang` GPUs free there: lowest priority first,
    then the smallest whole allocation; then drop any that a later, larger one made needless."""
    free = st.node_free[n]
    cands = []
    for jid, k in st.node_jobs[n].items():
        v = judge.victim(jid)
        if v is not None:
            gpus = st.allocations[jid].gpus
            cands.append((v.priority, judge.lost_gpu_s(v, gpus), gpus, jid, k))
    cands.sort()
    chosen = []
    for c in cands:
        if free >= gang:
            break
        chosen.append(c)
        free += c[4]
    if free < gang or not chosen:
        return None
    for c in reversed(chosen[:-1]):
        if free - c[4] >= gang:
            chosen.remove(c)
            free -= c[4]
    cost = (max(c[0] for c in chosen), sum(c[1] for c in chosen), sum(c[2] for c in chosen))
    return cost, [c[3] for c in chosen]


# ---- gangs of whole nodes --------------------------------------------------------------------
def _pods(st: ClusterState, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Candidate nodes grouped by pod, each pod's nodes in likely-cheapest order (lowest top
    priority, then fewest GPUs in use, then id); with each pod's start and count."""
    pods = st.np_node_pod[idx]
    order = np.lexsort((idx, st.np_used[idx], st.np_max_prio[idx], pods))
    idx = idx[order]
    pods = pods[order]
    starts = np.flatnonzero(np.r_[True, pods[1:] != pods[:-1]])
    counts = np.diff(np.r_[starts, pods.size])
    return idx, starts, counts


def _in_one_pod(st: ClusterState, judge: _Judge, idx: np.ndarray, need: int) -> list[int] | None:
    """The cheapest pod that holds `need` nodes once its victims are gone, or None.

    Pods are visited by a lower bound on their cost from the node summaries: no `need` nodes of
    a pod have a lower top priority than its need-th lowest node, nor cost fewer GPUs than the
    `need` smallest in use (a victim's allocation holds at least its GPUs on those nodes). The
    visit stops at the first bound that cannot beat the best pod found."""
    idx, starts, counts = _pods(st, idx)
    ok = np.flatnonzero(counts >= need)
    if ok.size == 0:
        return None
    prio = st.np_max_prio[idx]
    bound_prio = prio[starts[ok] + need - 1]
    used = st.np_used[idx]
    pod_of = np.repeat(np.arange(starts.size), counts)
    by_used = np.lexsort((used, pod_of))  # same pod groups, by GPUs in use
    rank = np.arange(idx.size) - np.repeat(starts, counts)
    least = np.bincount(pod_of, weights=used[by_used] * (rank < need), minlength=starts.size)
    bound_used = least[ok].astype(np.int64)
    best: tuple[Cost, list[int]] | None = None
    tries = 0
    for i in np.lexsort((ok, bound_used, bound_prio)).tolist():
        if best is not None and (int(bound_prio[i]), 0.0, int(bound_used[i])) >= best[0]:
            break
        b = int(ok[i])
        got = _choose_in_pod(st, judge, idx[starts[b] : starts[b] + counts[b]].tolist(), need)
        if got is None:
            continue
        if best is None or got[0] < best[0]:
            best = got
        tries += 1
        if tries == POD_TRIES:
            break
    return None if best is None else best[1]


def _choose_in_pod(
    st: ClusterState, judge: _Judge, nodes: list[int], need: int
) -> tuple[Cost, list[int]] | None:
    """The cheapest victims that free `need` whole nodes among `nodes` (one pod).

    A unit is what one eviction decision frees: a multi-node victim frees all its nodes here at
    once (for its whole allocation's cost); a node shared by smaller jobs frees when all of them
    go. Units are taken lowest priority first, then cheapest, and units that a later, larger one
    made needless are dropped."""
    free = 0
    units: dict[int, tuple[int, float, int, list[int], list[int]]] = {}
    for n in nodes:
        jobs = st.node_jobs[n]
        if not jobs:
            free += 1
            continue
        vs = [judge.victim(jid) for jid in jobs]
        if any(v is None for v in vs):
            continue  # holds a job that may not be evicted: look at the other nodes
        victims = [v for v in vs if v is not None]
        allocs = [st.allocations[v.id] for v in victims]
        if len(victims) == 1 and len(allocs[0].placement) > 1:
            v, a = victims[0], allocs[0]
            unit = (v.priority, judge.lost_gpu_s(v, a.gpus), a.gpus, [], [v.id])
            units.setdefault(v.id, unit)[3].append(n)
        else:
            prio = max(v.priority for v in victims)
            lost = sum(judge.lost_gpu_s(v, a.gpus) for v, a in zip(victims, allocs, strict=True))
            units[-1 - n] = (prio, lost, sum(a.gpus for a in allocs), [n], [v.id for v in victims])
    short = need - free
    if short <= 0:
        return (EMPTY_PRIO, 0.0, 0), []
    ranked = sorted(units.values(), key=lambda u: (u[0], u[1], u[2], u[3][0]))
    taken = []
    got = 0
    for u in ranked:
        if got >= short:
            break
        taken.append(u)
        got += len(u[3])
    if got < short:
        return None
    for u in reversed(taken[:-1]):
        if got - len(u[3]) >= short:
            taken.remove(u)
            got -= len(u[3])
    cost = (max(u[0] for u in taken), sum(u[1] for u in taken), sum(u[2] for u in taken))
    return cost, [jid for u in taken for jid in u[4]]


def _node_ok(st: ClusterState, judge: _Judge, n: int) -> bool:
    """Whether every job on node n may be evicted (true of a free node)."""
    return all(judge.victim(jid) is not None for jid in st.node_jobs[n])


def _across_pods(st: ClusterState, judge: _Judge, idx: np.ndarray, need: int) -> list[int] | None:
    """No single pod holds the gang: `need` evictable or free nodes across as few pods (of as
    few halls) as possible, the pods with the most such nodes first.

    Nodes are judged exactly as the walk reaches them; one holding a job that may not go is
    skipped. If the halls chosen by the node summaries then run short, the choice is made again
    without the nodes found bad. Each round drops at least one node, so the search ends."""
    while idx.size >= need:
        nodes, bad = _walk_pods(st, judge, idx, need)
        if nodes is not None:
            victims: dict[int, None] = {}
            for n in nodes:
                victims.update(dict.fromkeys(st.node_jobs[n]))
            return list(victims)
        if not bad:
            return None
        idx = idx[~np.isin(idx, bad)]
    return None


def _walk_pods(
    st: ClusterState, judge: _Judge, idx: np.ndarray, need: int
) -> tuple[list[int] | None, list[int]]:
    """`need` good nodes from the pods of the chosen halls, or None; and the bad nodes seen."""
    idx, starts, counts = _pods(st, idx)
    halls = st.np_node_hall[idx[starts]]
    per_hall = np.bincount(halls, weights=counts)
    hall_order = np.argsort(-per_hall, kind="stable")
    if per_hall[hall_order[0]] >= need:
        hall_order = hall_order[:1]
    hall_rank = np.full(per_hall.size, per_hall.size)
    hall_rank[hall_order] = np.arange(hall_order.size)
    pod_order = np.lexsort((-counts, hall_rank[halls]))
    nodes: list[int] = []
    bad: list[int] = []
    for b in pod_order.tolist():
        if hall_rank[halls[b]] >= hall_order.size:
            break
        for n in idx[starts[b] : starts[b] + counts[b]].tolist():
            if not _node_ok(st, judge, n):
                bad.append(n)
                continue
            nodes.append(n)
            if len(nodes) == need:
                return nodes, bad
    return None, bad
