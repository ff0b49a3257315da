"""ClusterState: the mechanism both drivers share. Free capacity is kept as counters and
bucketed indices so that placement never scans the list of all GPUs (scheduler/capacity.py);
this module adds per-queue usage, the running set, the ends the backfill shadow walks and the
per-node summaries the victim search reads.

Policies read this object through a Snapshot and never mutate it; tentative changes within a
cycle go through a Statement (statement.py), which rolls them back.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable

import numpy as np
from sortedcontainers import SortedList

from cortex.fleet.topology import Topology
from cortex.scheduler.capacity import (
    FREE,
    SHARED,
    Allocation,
    Capacity,
    Placement,
)
from cortex.scheduler.queues import QueueConfig
from cortex.workload.job import Job

EMPTY_PRIO = -(2**62)  # max priority on a node that runs nothing
# A flush of at most this many placed nodes runs in plain Python (ClusterState._flush_small).
FLUSH_SMALL_NODES = 1024


class ClusterState(Capacity):
    """Free capacity (scheduler/capacity.py), per-queue usage, the running set and the per-node
    summaries."""

    def __init__(self, topo: Topology, queues: QueueConfig) -> None:
        self.topo = topo
        self.queues = queues
        nf = len(topo.flavors)
        super().__init__(topo)
        self.usage = [[0] * nf for _ in queues.queues]
        self.cohort_usage = [0] * nf
        self.usage_version = [0] * len(queues.queues)  # bumps on every usage change
        self.running: dict[int, Job] = {}
        # Running jobs by expected end, per flavor: the EASY-backfill shadow walks this.
        self.ends: list[SortedList] = [SortedList() for _ in range(nf)]
        # shadow.shadow's last answer per flavor, with the soonest ends it read (it checks them)
        self.shadow_memo: dict[int, tuple] = {}
        self.flavor_node_ids: list[list[int]] = [[] for _ in range(nf)]
        for n, f in enumerate(topo.node_flavor):
            self.flavor_node_ids[f].append(n)
        # Per-node summaries of the running jobs, as arrays, so that victim searches filter the
        # whole fleet in a few vector operations. Kept lazily: start/stop note the placement,
        # and the first read after them (a victim search, once in many events) brings the
        # touched nodes up to date. Statements never change them (see flush_summaries).
        nn = topo.n_nodes
        self.np_node_pod = np.asarray(topo.node_pod, dtype=np.int64)
        self.np_node_hall = np.asarray(topo.node_hall, dtype=np.int64)
        self.np_node_flavor = np.asarray(topo.node_flavor, dtype=np.int64)
        self.np_up = np.ones(nn, dtype=bool)
        self._np_used = np.zeros(nn, dtype=np.int64)
        self._np_max_prio = np.full(nn, EMPTY_PRIO, dtype=np.int64)
        self._np_last_start = np.full(nn, -np.inf)
        # Busy nodes per flavor by the highest priority running on them: a victim search for a
        # gang of k nodes at priority p needs k free or lower-priority nodes, a cheap bound.
        self._nodes_by_top_prio: list[dict[int, int]] = [{} for _ in range(nf)]
        # (job, placement) started or stopped on since the summaries were last read
        self._stale: list[tuple[int, Placement]] = []
        # Per flavor: priority -> nodes in the placements of running jobs of that priority
        # (a node shared by k jobs counts k times). Kept at every start and stop, so it bounds
        # nodes_by_top_prio from above without a flush: a node whose top priority is q runs
        # a job of priority q. `_prio_nodes_of`: job -> (flavor, priority, nodes) as counted.
        self.prio_nodes: list[dict[int, int]] = [{} for _ in range(nf)]
        self._prio_nodes_of: dict[int, tuple[int, int, int]] = {}
        # Who holds each node now, tentative moves included: the one job if exactly one does,
        # SHARED if several, FREE if none. Victim searches judge a gang's nodes by their owner
        # in one pass over its distinct jobs. Kept lazily: take/give note the placement.
        self._owner = np.full(nn, FREE, dtype=np.int64)

    def add_usage(self, team: int, flavor: int, gpus: int) -> None:
        self.usage[team][flavor] += gpus
        self.cohort_usage[flavor] += gpus
        self.usage_version[team] += 1

    # ---- driver operations ------------------------------------------------------------------
    def start(self, job: Job, team: int, flavor: int, placement: Placement) -> int:
        """Driver: a job starts on a placement. Returns the GPUs it holds."""
        gpus = self.take(job.id, flavor, placement)
        self.add_usage(team, flavor, gpus)
        self.running[job.id] = job
        self.ends[flavor].add((job.est_end_s, job.id, gpus))
        self._stale.append((job.id, placement))
        self._count_prio_nodes(job, flavor, len(placement))
        return gpus

    def adopt(self, job: Job) -> None:
        """Driver: a job whose GPUs a committed cycle already took starts running on them."""
        alloc = self.allocations[job.id]
        self.running[job.id] = job
        self.ends[alloc.flavor].add((job.est_end_s, job.id, alloc.gpus))
        self._stale.append((job.id, alloc.placement))
        self._count_prio_nodes(job, alloc.flavor, len(alloc.placement))

    def stop(self, job: Job, team: int) -> Allocation:
        """Driver: a job leaves its GPUs (completed, preempted or interrupted)."""
        alloc = self.give(job.id)
        self.add_usage(team, alloc.flavor, -alloc.gpus)
        del self.running[job.id]
        self.ends[alloc.flavor].remove((job.est_end_s, job.id, alloc.gpus))
        self._stale.append((job.id, alloc.placement))
        f, prio, nodes = self._prio_nodes_of.pop(job.id)
        hist = self.prio_nodes[f]
        left = hist[prio] - nodes
        if left:
            hist[prio] = left
        else:
            del hist[prio]
        return alloc

    def _count_prio_nodes(self, job: Job, flavor: int, nodes: int) -> None:
        self._prio_nodes_of[job.id] = (flavor, job.priority, nodes)
        hist = self.prio_nodes[flavor]
        hist[job.priority] = hist.get(job.priority, 0) + nodes

    # ---- per-node summaries (victim search) --------------------------------------------------
    @property
    def np_used(self) -> np.ndarray:
        """GPUs held per node by running jobs."""
        if self._stale:
            self.flush_summaries()
        return self._np_used

    @property
    def np_max_prio(self) -> np.ndarray:
        """Highest priority running per node (EMPTY_PRIO on an idle node)."""
        if self._stale:
            self.flush_summaries()
        return self._np_max_prio

    @property
    def np_last_start(self) -> np.ndarray:
        """Latest start of a job running on each node (-inf on an idle node)."""
        if self._stale:
            self.flush_summaries()
        return self._np_last_start

    @property
    def nodes_by_top_prio(self) -> list[dict[int, int]]:
        """Per flavor: busy nodes by the highest priority running on them."""
        if self._stale:
            self.flush_summaries()
        return self._nodes_by_top_prio

    @property
    def np_owner(self) -> np.ndarray:
        """Per node: the id of the one job holding GPUs on it, SHARED, or FREE. Unlike the
        summaries above, this follows every take and give, a Statement's included. (A job with
        a negative id counts as SHARED, so readers judge its node job by job.)"""
        stale = self._owner_stale
        if stale or self._owner_all:
            # Whole-node notes say what they left, in order (the last one on a node wins);
            # nodes with a partial note are read as they are now, which is always right.
            final: dict[int, int] = {}
            if self._owner_all:
                live: Iterable[int] = range(len(self.node_jobs))
            else:
                live = []
                for value, placement in stale:
                    if value is None:
                        live.extend(n for n, _ in placement)
                    else:
                        final.update({n: value for n, _ in placement})
            self._owner_stale = []
            self._owner_all = False
            node_jobs = self.node_jobs
            for n in live:
                # The one holder's id (not if negative: it would read as FREE or SHARED)
                d = node_jobs[n]
                final[n] = (
                    (jid if len(d) == 1 and (jid := next(iter(d))) >= 0 else SHARED) if d else FREE
                )
            self._owner[list(final)] = list(final.values())
        return self._owner

    def flush_summaries(self) -> None:
        """Recompute the summaries of the nodes started or stopped on since the last read.

        They describe running jobs only: a job a committed cycle took GPUs for but the driver
        has not adopted yet, or a tentative start of a cycle, is not counted. A Statement calls
        this before its first eviction, so a read later in that cycle still sees the fleet as
        it was before the cycle, as it always has."""
        stale = self._stale
        if not stale:
            return
        self._stale = []
        if sum(len(placement) for _, placement in stale) <= FLUSH_SMALL_NODES:
            self._flush_small(stale)
            return
        lists = [[n for n, _ in placement] for _, placement in stale]
        flat = np.fromiter(itertools.chain.from_iterable(lists), dtype=np.int64)
        entry = np.repeat(np.arange(len(lists)), [len(x) for x in lists])
        # Only the last start or stop on a node decides its summary: keep each node once, with
        # the last entry that touched it.
        touched, rev_at = np.unique(flat[::-1], return_index=True)
        last_entry = entry[::-1][rev_at]
        old_top = self._np_max_prio[touched]
        order = np.argsort(last_entry, kind="stable")
        by_entry = np.split(touched[order], np.flatnonzero(np.diff(last_entry[order])) + 1)
        owners = np.unique(last_entry)
        for e, nodes_arr in zip(owners.tolist(), by_entry, strict=True):
            jid, placement = stale[e]
            if len(placement) > 1 and self._summarize_gang(jid, placement, nodes_arr):
                continue
            for n in nodes_arr.tolist():
                self._summarize_node(n)
        new_top = self._np_max_prio[touched]
        changed = old_top != new_top
        flavors = self.np_node_flavor[touched]
        for f, hist in enumerate(self._nodes_by_top_prio):
            sel = changed & (flavors == f)
            if not sel.any():
                continue
            for tops, sign in ((old_top[sel], -1), (new_top[sel], 1)):
                vals, counts = np.unique(tops[tops != EMPTY_PRIO], return_counts=True)
                for v, c in zip(vals.tolist(), counts.tolist(), strict=True):
                    hist[v] = hist.get(v, 0) + sign * c

    def _flush_small(self, stale: list[tuple[int, Placement]]) -> None:
        """flush_summaries for a few placements: the same steps in plain Python (the array
        path's dozen numpy calls cost more than the work when a flush touches a few nodes, as
        most flushes between two victim searches do). Same groups, same order, same counts."""
        last: dict[int, int] = {}
        for e, (_, placement) in enumerate(stale):
            for n, _ in placement:
                last[n] = e
        touched = sorted(last)
        old_top = self._np_max_prio[touched].tolist()
        groups: dict[int, list[int]] = {}
        for n in touched:  # each group's nodes ascending, as the array path splits them
            e = last[n]
            got = groups.get(e)
            if got is None:
                groups[e] = [n]
            else:
                got.append(n)
        for e in sorted(groups):
            nodes = groups[e]
            jid, placement = stale[e]
            if len(placement) > 1 and self._summarize_gang(
                jid, placement, np.array(nodes, dtype=np.int64)
            ):
                continue
            for n in nodes:
                self._summarize_node(n)
        new_top = self._np_max_prio[touched].tolist()
        node_flavor = self.node_flavor
        changed = [
            (node_flavor[n], o, t)
            for n, o, t in zip(touched, old_top, new_top, strict=True)
            if o != t
        ]
        for f, hist in enumerate(self._nodes_by_top_prio):
            sel = [(o, t) for g, o, t in changed if g == f]
            if not sel:
                continue
            for tops, sign in (([o for o, _ in sel], -1), ([t for _, t in sel], 1)):
                counts: dict[int, int] = {}
                for v in tops:
                    if v != EMPTY_PRIO:
                        counts[v] = counts.get(v, 0) + 1
                for v in sorted(counts):
                    hist[v] = hist.get(v, 0) + sign * counts[v]

    def _summarize_gang(self, jid: int, placement: Placement, nodes: np.ndarray) -> bool:
        """A multi-node gang holds whole nodes alone: set or clear `nodes` (those of its
        placement that nothing touched later) with one array write each. False when a node is
        shared after all (then each node is summarized alone). Who holds the nodes is read from
        np_owner, which a victim search right after needs up to date anyway."""
        owner = self.np_owner[nodes]
        job = self.running.get(jid)
        alloc = self.allocations.get(jid)
        if job is not None and alloc is not None and alloc.placement == placement:
            if jid < 0 or not (owner == jid).all():
                return False
            g = self.gpn[alloc.flavor]
            if alloc.gpus == g * len(placement):
                self._np_used[nodes] = g  # whole nodes, as placement gives multi-node gangs
            else:
                gpus = dict(placement)
                self._np_used[nodes] = [gpus[n] for n in nodes.tolist()]
            self._np_max_prio[nodes] = job.priority
            self._np_last_start[nodes] = job.run_start_s
            return True
        if not (owner == FREE).all():
            return False
        self._np_used[nodes] = 0
        self._np_max_prio[nodes] = EMPTY_PRIO
        self._np_last_start[nodes] = -math.inf
        return True

    def _summarize_node(self, n: int) -> None:
        running = self.running
        used = 0
        top = EMPTY_PRIO
        last = -math.inf
        for jid, k in self.node_jobs[n].items():
            r = running.get(jid)
            if r is None:
                continue
            used += k
            top = max(top, r.priority)
            last = max(last, r.run_start_s)
        self._np_used[n] = used
        self._np_max_prio[n] = top
        self._np_last_start[n] = last

    def free_whole_nodes(self, f: int) -> int:
        """Healthy, completely free nodes of flavor f."""
        return sum(hall[f] for hall in self.hall_whole)

    def jobs_on(self, n: int) -> list[int]:
        """Ids of jobs holding GPUs on node n."""
        return list(self.node_jobs[n])

    def cordon(self, n: int) -> None:
        """Driver: node n takes no new work (placements, or victims evicted to make room on
        it); its jobs run on, and what they free stays out of service until `uncordon` or
        `set_down`."""
        if n in self.cordoned or not self.node_up[n]:
            return
        free = self.node_free[n]
        self._set_free(n, 0)
        self.cordoned[n] = free
        self.free_gpus[self.node_flavor[n]] -= free
        self.np_up[n] = False
        self.version += 1

    def uncordon(self, n: int) -> None:
        """Driver: node n takes work again."""
        free = self.cordoned.pop(n, None)
        if free is None:
            return
        self._set_free(n, free)
        self.free_gpus[self.node_flavor[n]] += free
        self.np_up[n] = True
        self.version += 1

    def set_down(self, n: int) -> None:
        """Driver: node n leaves service. Jobs on it must be stopped first."""
        if not self.node_up[n]:
            return
        if self.node_jobs[n]:
            raise RuntimeError(f"node {n} still runs jobs {list(self.node_jobs[n])}")
        self.uncordon(n)
        f = self.node_flavor[n]
        self._set_free(n, 0)
        self.node_free[n] = self.gpn[f]  # all GPUs idle but unusable while down
        self.node_up[n] = False
        self.np_up[n] = False
        self.free_gpus[f] -= self.gpn[f]
        self.version += 1
        self.up_gpus[f] -= self.gpn[f]
        self.up_nodes[f] -= 1

    def set_up(self, n: int) -> None:
        """Driver: node n is repaired and back in service."""
        if self.node_up[n]:
            return
        f = self.node_flavor[n]
        self.node_up[n] = True
        self.np_up[n] = True
        self.node_free[n] = 0
        self._set_free(n, self.gpn[f])
        self.free_gpus[f] += self.gpn[f]
        self.version += 1
        self.up_gpus[f] += self.gpn[f]
        self.up_nodes[f] += 1

    # ---- read helpers for policies ----------------------------------------------------------
    def largest_free_pod_gpus(self, f: int) -> int:
        """GPUs in the largest set of completely free nodes inside one pod."""
        buckets = self.pod_bucket[f]
        for c in range(len(buckets) - 1, 0, -1):
            if buckets[c]:
                return c * self.gpn[f]
        return 0

    def largest_free_node_gpus(self, f: int) -> int:
        if any(self.pod_bucket[f][1:]):
            return self.gpn[f]
        for k in range(self.gpn[f] - 1, 0, -1):
            if self.part[f][k]:
                return k
        return 0
