"""Victim search: the cheapest set of eligible running jobs whose nodes would hold a gang.

Node-oriented, so that a large gang evicts whole nodes in one pod (or as few pods as possible)
rather than scattered jobs that free no usable block. The policy's vectorized node filter
narrows the fleet in a few array operations; only the chosen nodes are then checked job by job
with the policy's exact rule. Cost is the GPUs in use on the chosen nodes.
"""

from __future__ import annotations

import numpy as np

from cortex.scheduler.preemption import PreemptionPolicy
from cortex.scheduler.snapshot import Snapshot
from cortex.workload.job import Job

# Single-node gangs: how many of the cheapest candidate nodes to check exactly.
SINGLE_NODE_TRIES = 16


# Multi-node gangs: how often to retry after the exact check rejects some chosen nodes.
EXACT_RETRIES = 3


def _exact(
    snap: Snapshot, policy: PreemptionPolicy, job: Job, nodes: list[int]
) -> tuple[list[int], list[int]]:
    """(every job on these nodes, the nodes holding a job that may not be evicted)."""
    st = snap.state
    victims: dict[int, None] = {}
    bad = []
    for n in nodes:
        for jid in st.node_jobs[n]:
            if jid in victims:
                continue
            v = st.running.get(jid)  # None: started tentatively in this very cycle
            if v is None or not policy.eligible(snap, job, v):
                bad.append(n)
                break
            victims[jid] = None
    return list(victims), bad


def _single_node(
    snap: Snapshot, policy: PreemptionPolicy, job: Job, gang: int, cand: np.ndarray
) -> list[int] | None:
    st = snap.state
    nodes = np.flatnonzero(cand)
    if nodes.size == 0:
        return None
    order = nodes[np.lexsort((nodes, st.np_max_prio[nodes], st.np_used[nodes]))][:SINGLE_NODE_TRIES]
    for n in order.tolist():
        free = st.node_free[n]
        chosen = []
        for jid, k in sorted(st.node_jobs[n].items(), key=lambda x: (x[1], x[0])):
            if free >= gang:
                break
            v = st.running.get(jid)
            if v is not None and policy.eligible(snap, job, v):
                chosen.append(jid)
                free += k
        if free >= gang and chosen:
            return chosen
    return None


def find_victims(
    snap: Snapshot, policy: PreemptionPolicy, gang: int, flavor: int, job: Job
) -> list[int] | None:
    """Ids of running jobs to evict so that a gang of `gang` GPUs fits on `flavor`, or None."""
    st = snap.state
    g = st.gpn[flavor]
    base = (st.np_node_flavor == flavor) & st.np_up
    evictable = base & (st.np_used > 0) & policy.node_filter(snap, job)
    if gang <= g:
        return _single_node(snap, policy, job, gang, evictable)
    need = -(-gang // g)
    cand = evictable | (base & (st.np_used == 0))
    for _ in range(EXACT_RETRIES):
        nodes = _choose_nodes(snap, cand, need)
        if nodes is None:
            return None
        victims, bad = _exact(snap, policy, job, nodes)
        if not bad:
            return victims
        cand[bad] = False
    return None


def _choose_nodes(snap: Snapshot, cand: np.ndarray, need: int) -> list[int] | None:
    """`need` candidate nodes in the cheapest pod that holds them, else across as few pods (of
    as few halls) as possible. Cost: GPUs in use, then the highest priority on the node."""
    st = snap.state
    idx = np.flatnonzero(cand)
    if idx.size < need:
        return None
    pods = st.np_node_pod[idx]
    used = st.np_used[idx]
    order = np.lexsort((idx, st.np_max_prio[idx], used, pods))  # by pod, cheapest node first
    idx, pods, used = idx[order], pods[order], used[order]
    starts = np.flatnonzero(np.r_[True, pods[1:] != pods[:-1]])
    counts = np.diff(np.r_[starts, pods.size])
    rank = np.arange(pods.size) - np.repeat(starts, counts)
    ok = counts >= need
    if ok.any():
        cost = np.bincount(np.repeat(np.arange(starts.size), counts), weights=used * (rank < need))
        best = int(np.flatnonzero(ok)[np.argmin(cost[ok])])
        return list(idx[starts[best] : starts[best] + need].tolist())
    halls = st.np_node_hall[idx[starts]]
    per_hall = np.bincount(halls, weights=counts)
    hall_order = np.argsort(-per_hall, kind="stable")
    if per_hall[hall_order[0]] >= need:
        hall_order = hall_order[:1]
    hall_rank = np.full(per_hall.size, per_hall.size)
    hall_rank[hall_order] = np.arange(hall_order.size)
    pod_order = np.lexsort((-counts, hall_rank[halls]))
    nodes: list[int] = []
    for b in pod_order.tolist():
        if hall_rank[halls[b]] >= hall_order.size:
            break
        take = min(int(counts[b]), need - len(nodes))
        nodes.extend(idx[starts[b] : starts[b] + take].tolist())
        if len(nodes) == need:
            return nodes
    return None
