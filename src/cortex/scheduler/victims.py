"""Victim search: the cheapest set of eligible running jobs whose nodes would hold a gang.

Node-oriented, so that a large gang evicts whole nodes in one pod (or as few pods as possible)
rather than scattered jobs that free no usable block. The policy's vectorized node filter
narrows the fleet in a few array operations; nodes are then judged job by job with the policy's
exact rule, and a node holding a job that may not be evicted is skipped, never the end of the
search.

Cost, compared in this order (Kueue and KAI evict the lowest priority first):
1. the highest priority among the victims;
2. the work they lose: GPU-seconds of the victims' whole allocations times what a preemption
   now costs each (`Snapshot.lost_s`: the time since its last checkpoint, or only the write of
   one on the signal). A gang that checkpointed a minute ago is cheaper to stop than a smaller
   one that has not for an hour;
3. the GPUs of the victims' whole allocations: evicting one node of a 4-node gang costs the
   gang's 32 GPUs, not the 8 on that node, because the whole gang stops.
Without `lost_s` the second term is 0 for every job and the GPUs decide.
"""

from __future__ import annotations

from collections.abc import Iterable
from itertools import chain

import numpy as np

from cortex.scheduler.preemption import PreemptionPolicy
from cortex.scheduler.snapshot import Snapshot
from cortex.scheduler.state import ClusterState
from cortex.scheduler.summaries import EMPTY_PRIO, FREE, SHARED
from cortex.workload.job import Job

# Single-node gangs: how many feasible nodes to compare exactly, and how many candidate nodes to
# look at in all (most of them may hold jobs that cannot be evicted).
SINGLE_NODE_TRIES = 16
# With victims costed by lost work, which no node summary orders by, more feasible nodes are
# compared exactly: the cheapest of the 64 likeliest (lowest top priority, fewest GPUs in use).
SINGLE_NODE_TRIES_LOST = 64
NODE_SCAN_MAX = 1024
# Gangs of whole nodes with more candidate nodes than this judge each pod's nodes only when the
# visit of pods reaches it, a few pods at a time (doubling), instead of all candidates first:
# on cortex-2026 a search has ~14,000 candidates and ends in a few pods of 32.
JUDGE_ALL_MAX = 8192
# Gangs that fit in one pod: how many feasible pods to compare exactly. Pods are visited by a
# lower bound on their cost, so the search usually stops long before.
POD_TRIES = 8

# (highest victim priority, GPU-seconds the victims lose, GPUs of their whole allocations)
Cost = tuple[int, float, int]
_Unit = tuple[int, float, int, list[int], list[int]]  # a cost's three terms, nodes, victim ids


class _Judge:
    """The policy's exact rule per running job, asked once per job in one search."""

    __slots__ = ("_lost", "job", "lost_s", "ok", "policy", "running", "seen", "snap")

    def __init__(
        self, snap: Snapshot, policy: PreemptionPolicy, job: Job, banned: Iterable[int] = ()
    ) -> None:
        self.snap = snap
        self.policy = policy
        self.job = job
        # A banned job is judged not evictable without asking the policy.
        self.seen: dict[int, Job | None] = dict.fromkeys(banned)
        self.lost_s = snap.lost_s
        self._lost: dict[int, float] = {}
        # The policy's rule with what depends only on the job read once (a search judges ~120
        # jobs; the state does not change during one).
        self.ok = policy.judge(snap, job)
        self.running = snap.state.running

    def lost_gpu_s(self, v: Job, gpus: int) -> float:
        """GPU-seconds a preemption now costs victim v holding `gpus` (0 without a rule)."""
        if self.lost_s is None:
            return 0.0
        got = self._lost.get(v.id)
        if got is None:
            lost = self.lost_s(v)
            # Not `max(lost, 0.0)`: NaN would pass it and break the sort; NaN counts as 0.
            got = self._lost[v.id] = gpus * (lost if lost > 0.0 else 0.0)
        return got

    def victim(self, jid: int) -> Job | None:
        """The running job `jid` if it may be evicted, else None (also for a job started
        tentatively in this very cycle, which is not running yet)."""
        seen = self.seen
        if jid in seen:
            return seen[jid]
        v = self.running.get(jid)
        got = seen[jid] = v if v is not None and self.ok(v) else None
        return got


# Searches after a victim set `admits` refused (each bans at least one job).
RESEARCH_MAX = 4


def find_victims(
    snap: Snapshot,
    policy: PreemptionPolicy,
    gang: int,
    flavor: int,
    job: Job,
    summaries_exact: bool = False,
) -> list[int] | None:
    """Ids of running jobs to evict so that a gang of `gang` GPUs fits on `flavor`, or None
    (also when no set found may go together: `PreemptionPolicy.admits`).

    A set the policy refuses takes more from some queue than that queue borrows: the victims
    past what it can give are banned and the search runs again, as Kueue's minimalPreemptions
    passes over a queue once it stops borrowing and takes the next candidate. Bounded by
    RESEARCH_MAX rounds (each bans at least one job).

    `summaries_exact`: no job was evicted since the node summaries were last brought up to
    date (a statement with no evictions), so the policy's `good_bound` over them holds."""
    run = snap.state.running
    banned: set[int] = set()
    for _ in range(RESEARCH_MAX + 1):
        ids = _search(snap, policy, gang, flavor, job, banned, summaries_exact)
        if not ids or policy.admits(snap, job, [run[i] for i in ids]):
            return ids
        before = len(banned)
        kept: dict[int, list[Job]] = {}
        # Largest first: `admits` lets the largest of a queue go last, so keeping the large
        # ones keeps the most GPUs per victim.
        for i in sorted(ids, key=lambda i: (-snap.state.allocations[i].gpus, i)):
            v = run[i]
            if v.queue_idx == job.queue_idx:
                continue
            keep = kept.setdefault(v.queue_idx, [])
            if policy.admits(snap, job, [*keep, v]):
                keep.append(v)
            else:
                banned.add(v.id)
        if len(banned) == before:
            return None
    return None


def _search(
    snap: Snapshot,
    policy: PreemptionPolicy,
    gang: int,
    flavor: int,
    job: Job,
    banned: set[int],
    summaries_exact: bool = False,
) -> list[int] | None:
    st = snap.state
    g = st.gpn[flavor]
    # Only the span from the flavor's first node to its last is read (on cortex-2024 each
    # flavor is one half of the fleet, in one span): the arrays below are that span's, and the
    # nodes found are shifted back by its first node. Nodes of other flavors inside the span
    # are masked out as before.
    used = st.np_used  # the first read of the summaries flushes them, as it always has
    ids = st.flavor_node_ids[flavor]
    if not ids:
        return None
    lo = ids[0]
    span = slice(lo, ids[-1] + 1)
    base = st.np_up[span]
    if ids[-1] + 1 - lo != len(ids):
        base = base & (st.np_node_flavor[span] == flavor)
    used = used[span]
    filt = policy.node_filter(snap, job, span)
    judge = _Judge(snap, policy, job, banned)
    if gang <= g:
        return _single_node(st, judge, gang, np.flatnonzero(base & (used > 0) & filt) + lo)
    need = -(-gang // g)
    # Evictable (busy and past the filter) or free: a free node passes whatever the filter says.
    idx = np.flatnonzero(base & (filt | (used == 0))) + lo
    if idx.size < need:
        return None
    # The nodes that may be good (the policy's bound; None: all of them): fewer than needed,
    # and judging them all would find too few (most failing searches); else only they are
    # judged. The bound holds every good node, so nothing else changes.
    maybe = policy.good_bound(snap, job, flavor, idx) if summaries_exact else None
    if maybe is not None:
        if np.count_nonzero(maybe) < need:
            return None
        if maybe.all():
            maybe = None
    if idx.size > JUDGE_ALL_MAX:
        # Judged pod by pod as the visit reaches them (the search mostly ends in a few pods).
        found = _in_one_pod(st, judge, idx, None, need)
        if found is not None:
            return found
    if maybe is None:
        good = _good_nodes(st, judge, idx)
    else:
        good = np.zeros(idx.size, dtype=bool)
        good[maybe] = _good_nodes(st, judge, idx[maybe])
    # Both ways below free only good nodes, so with fewer than `need` they find nothing (most
    # failed searches end here, before the pods are sorted).
    if np.count_nonzero(good) < need:
        return None
    if idx.size <= JUDGE_ALL_MAX:
        found = _in_one_pod(st, judge, idx, good, need)
        if found is not None:
            return found
    return _across_pods(st, idx, good, need)


def _good_nodes(st: ClusterState, judge: _Judge, idx: np.ndarray) -> np.ndarray:
    """Whether every job on each node in idx may be evicted (true of a free node), judged once
    per distinct job: a node held by one job (a multi-node gang holds hundreds) is as good as
    that job, and only nodes that several jobs share are judged one by one."""
    owner = st.np_owner[idx]
    good = owner == FREE
    sole = np.flatnonzero(owner >= 0)
    # The judge's memo read here first: most holders met again in one search are answered
    # without a method call (~360,000 runs and ~23,000 shared nodes in 1,111 searches over
    # cortex-2024's 10 days, ~134,000 distinct holders: RESULTS.md, section 118).
    seen = judge.seen
    victim = judge.victim
    if sole.size:
        # A gang's nodes lie side by side in idx: one run of one holder (a few hundred, not
        # thousands of nodes). Runs repeat holders (a gang across pods, or around a shared
        # node: ~361,000 runs of ~134,000 holders in 1,111 searches of cortex-2024's 10 days),
        # so each distinct holder is asked once, the memo read first (RESULTS.md section 125).
        held = owner[sole]
        edge = np.empty(held.size, dtype=bool)
        edge[0] = True
        np.not_equal(held[1:], held[:-1], out=edge[1:])
        holders, which = np.unique(held[edge], return_inverse=True)
        ok = [(seen[j] if j in seen else victim(j)) is not None for j in holders.tolist()]
        # Each position's run is the count of run starts up to it, less one; `which` maps a
        # run to its holder.
        good[sole] = np.array(ok, dtype=bool)[which[np.cumsum(edge) - 1]]
    shared = np.flatnonzero(owner == SHARED)
    if shared.size:
        node_jobs = st.node_jobs
        good[shared] = [
            all((seen[j] if j in seen else victim(j)) is not None for j in node_jobs[n])
            for n in idx[shared].tolist()
        ]
    return good


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
def _pods(
    st: ClusterState, idx: np.ndarray, good: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Candidate nodes grouped by pod, each pod's nodes in likely-cheapest order (lowest top
    priority, then fewest GPUs in use, then id), with their `good`; each pod's start and count."""
    idx, order, starts, counts = _pod_order(st, idx)
    return idx, good[order], starts, counts


def _pod_order(
    st: ClusterState, idx: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """`_pods` without `good`: the nodes in that order, the order itself, starts and counts."""
    pods = st.np_node_pod[idx]
    order = np.lexsort((idx, st.np_used[idx], st.np_max_prio[idx], pods))
    idx = idx[order]
    pods = pods[order]
    starts = np.flatnonzero(np.r_[True, pods[1:] != pods[:-1]])
    counts = np.diff(np.r_[starts, pods.size])
    return idx, order, starts, counts


def _in_one_pod(
    st: ClusterState, judge: _Judge, idx: np.ndarray, good: np.ndarray | None, need: int
) -> list[int] | None:
    """The cheapest pod that holds `need` nodes once its victims are gone, or None.

    Pods are visited by a lower bound on their cost from the node summaries: no `need` nodes of
    a pod have a lower top priority than its need-th lowest node, nor cost fewer GPUs than the
    `need` smallest in use (a victim's allocation holds at least its GPUs on those nodes). The
    visit stops at the first bound that cannot beat the best pod found.

    A pod with fewer than `need` good nodes is one `_choose_in_pod` finds nothing in (it can
    free only those): it is left out of the visit. That changes no outcome: it would not count
    as a try, and the bounds rise along the visit, so a stop it would trigger the next pod
    visited triggers too. With `good` None, a pod's good nodes are counted when the visit
    reaches it (judging the next pods of the visit with it, twice as many each time): the same
    pods are left out, and a stop at one of them is the stop at the next pod visited."""
    if good is not None:
        # The pods left out of the visit (fewer than `need` good nodes) are dropped before the
        # sorts, whole: a kept pod's nodes, order and bounds are what they were, and the kept
        # pods keep their order (on cortex-2024's 10 days they hold 12% of the nodes).
        pods = st.np_node_pod[idx]
        keep = np.bincount(pods, weights=good)[pods] >= need
        if not keep.any():
            return None
        idx = idx[keep]
    idx, _, starts, counts = _pod_order(st, idx)
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
    visit = np.lexsort((ok, bound_used, bound_prio))
    pod_good: list[int] = []
    batch = 1
    if good is None:
        pod_good = [-1] * visit.size  # good nodes per pod in visit order, -1: not judged yet
    best: tuple[Cost, list[int]] | None = None
    tries = 0
    for k, i in enumerate(visit.tolist()):
        # No victim loses less than nothing: 0 bounds the work lost from below.
        if best is not None and (int(bound_prio[i]), 0.0, int(bound_used[i])) >= best[0]:
            break
        if good is None:
            if pod_good[k] < 0:
                pods = ok[visit[k : k + batch]]
                _judge_pods(st, judge, idx, starts[pods], counts[pods], pod_good, k)
                batch *= 2
            if pod_good[k] < need:
                continue
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


def _judge_pods(
    st: ClusterState,
    judge: _Judge,
    idx: np.ndarray,
    starts: np.ndarray,
    counts: np.ndarray,
    pod_good: list[int],
    at: int,
) -> None:
    """Good nodes of the pods idx[starts[j]:starts[j] + counts[j]], into pod_good[at + j]."""
    first = np.cumsum(counts) - counts
    nodes = idx[np.arange(int(counts.sum())) + np.repeat(starts - first, counts)]
    good = _good_nodes(st, judge, nodes).astype(np.int64)
    pod_good[at : at + counts.size] = np.add.reduceat(good, first).tolist()


def _choose_in_pod(
    st: ClusterState, judge: _Judge, nodes: list[int], need: int
) -> tuple[Cost, list[int]] | None:
    """The cheapest victims that free `need` whole nodes among `nodes` (one pod).

    A unit is what one eviction decision frees: a multi-node victim frees all its nodes here at
    once (for its whole allocation's cost); a node shared by smaller jobs frees when all of them
    go. Units are taken lowest priority first, then cheapest, and units that a later, larger one
    made needless are dropped."""
    free = 0
    # unit: (top priority, GPU-seconds lost, GPUs, nodes it frees, victim ids)
    units: dict[int, _Unit] = {}
    node_jobs = st.node_jobs
    allocations = st.allocations
    seen = judge.seen  # the judge's memo read first, as in _good_nodes
    victim = judge.victim
    for n in nodes:
        jobs = node_jobs[n]
        if not jobs:
            free += 1
            continue
        if len(jobs) == 1:
            jid = next(iter(jobs))
            v = seen[jid] if jid in seen else victim(jid)
            if v is None:
                continue  # holds a job that may not be evicted: look at the other nodes
            a = allocations[v.id]
            if len(a.placement) > 1:
                # A gang's node: its unit is built at its first node here and gains the rest
                # (the cost is the whole allocation's, the same from every node).
                unit = units.get(v.id)
                if unit is None:
                    units[v.id] = (v.priority, judge.lost_gpu_s(v, a.gpus), a.gpus, [n], [v.id])
                else:
                    unit[3].append(n)
                continue
            victims = [v]
            allocs = [a]
        else:
            vs = [seen[jid] if jid in seen else victim(jid) for jid in jobs]
            if any(v is None for v in vs):
                continue
            victims = [v for v in vs if v is not None]
            allocs = [allocations[v.id] for v in victims]
        prio = max(v.priority for v in victims)
        lost = sum(judge.lost_gpu_s(v, a.gpus) for v, a in zip(victims, allocs, strict=True))
        gpus = sum(a.gpus for a in allocs)
        units[-1 - n] = (prio, lost, gpus, [n], [v.id for v in victims])
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


def _across_pods(
    st: ClusterState, idx: np.ndarray, good: np.ndarray, need: int
) -> list[int] | None:
    """No single pod holds the gang: `need` good nodes (free, or holding only evictable jobs)
    across as few pods (of as few halls) as possible, the pods with the most candidates first.

    The walk takes good nodes and skips bad ones. If the halls chosen by the node summaries
    then run short, the choice is made again without the bad nodes seen. Each round drops at
    least one node, so the search ends."""
    while idx.size >= need:
        nodes, bad = _walk_pods(st, idx, good, need)
        if nodes is not None:
            # Every job on the nodes, once each, in the order first met (one chain, not a dict
            # update per node: a chosen set is hundreds of nodes).
            return list(dict.fromkeys(chain.from_iterable(map(st.node_jobs.__getitem__, nodes))))
        if not bad.size:
            return None
        keep = ~np.isin(idx, bad)
        idx = idx[keep]
        good = good[keep]
    return None


def _walk_pods(
    st: ClusterState, idx: np.ndarray, good: np.ndarray, need: int
) -> tuple[list[int] | None, np.ndarray]:
    """The first `need` good nodes in walk order over the chosen halls' pods, or None; and the
    bad nodes the walk passed (all of them, when it falls short)."""
    idx, good, starts, counts = _pods(st, idx, good)
    halls = st.np_node_hall[idx[starts]]
    per_hall = np.bincount(halls, weights=counts)
    hall_order = np.argsort(-per_hall, kind="stable")
    if per_hall[hall_order[0]] >= need:
        hall_order = hall_order[:1]
    hall_rank = np.full(per_hall.size, per_hall.size)
    hall_rank[hall_order] = np.arange(hall_order.size)
    pod_order = np.lexsort((-counts, hall_rank[halls]))
    # Pods of the chosen halls come first in pod_order; the walk visits only those, each
    # pod's nodes in their order: lay the visited positions out flat.
    walked = pod_order[hall_rank[halls[pod_order]] < hall_order.size]
    lens = counts[walked]
    first = np.cumsum(lens) - lens
    pos = np.arange(int(lens.sum())) + np.repeat(starts[walked] - first, lens)
    seq = idx[pos]
    ok = good[pos]
    taken = np.cumsum(ok)
    if taken.size and taken[-1] >= need:
        end = int(np.searchsorted(taken, need)) + 1
        return seq[:end][ok[:end]].tolist(), seq[:end][~ok[:end]]
    return None, seq[~ok]
