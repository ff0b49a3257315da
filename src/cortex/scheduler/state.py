"""ClusterState: the mechanism both drivers share. Free capacity is kept as counters and
bucketed indices so that placement never scans the list of all GPUs (scheduler/capacity.py);
this module adds per-queue usage, the running set, the ends the backfill shadow walks and the
per-node summaries the victim search reads.

Policies read this object through a Snapshot and never mutate it; tentative changes within a
cycle go through a Statement (statement.py), which rolls them back.
"""

from __future__ import annotations

import itertools

import numpy as np
from sortedcontainers import SortedList

from cortex.fleet.topology import Topology
from cortex.scheduler.capacity import Allocation, Placement
from cortex.scheduler.queues import QueueConfig
from cortex.scheduler.summaries import NodeSummaries
from cortex.workload.job import Job

# `ends` notes at which a read looks for a flavor to rebuild rather than apply one by one (below
# this, no flavor of a month's fleets has few enough ends for a rebuild to pay).
_SETTLE_MANY = 16


class ClusterState(NodeSummaries):
    """Free capacity (scheduler/capacity.py), per-queue usage, the running set, and the per-node
    summaries (scheduler/summaries.py)."""

    def __init__(self, topo: Topology, queues: QueueConfig) -> None:
        self.topo = topo
        self.queues = queues
        nf = len(topo.flavors)
        super().__init__(topo)
        self.usage = [[0] * nf for _ in queues.queues]
        self.cohort_usage = [0] * nf
        self.usage_version = [0] * len(queues.queues)  # bumps on every usage change
        self.running: dict[int, Job] = {}
        # Victims whose GPUs a committed cycle gave back (Statement.hand_over); the driver's
        # stop of each books the rest of it (running set, ends, summaries) without a give.
        self.given: dict[int, Allocation] = {}
        # Running jobs by expected end, per flavor: the EASY-backfill shadow walks this (`ends`).
        # Starts and stops are noted and applied when it is read: only deep passes read it, and
        # most runs of a month start and end between two reads (a sorted list's add and remove
        # cost several microseconds each; bench/RESULTS.md section 103).
        self._ends: list[SortedList] = [SortedList() for _ in range(nf)]
        self._ends_new: dict[tuple[float, int, int], int] = {}  # added since: entry -> flavor
        self._ends_gone: list[tuple[int, tuple[float, int, int]]] = []  # (flavor, entry) left
        # shadow.shadow's last answer per flavor, with the soonest ends it read (it checks them)
        self.shadow_memo: dict[int, tuple] = {}
        self.flavor_node_ids: list[list[int]] = [[] for _ in range(nf)]
        for n, f in enumerate(topo.node_flavor):
            self.flavor_node_ids[f].append(n)
        nn = topo.n_nodes
        self.np_node_pod = np.asarray(topo.node_pod, dtype=np.int64)
        self.np_node_hall = np.asarray(topo.node_hall, dtype=np.int64)
        self.np_node_flavor = np.asarray(topo.node_flavor, dtype=np.int64)
        self.np_up = np.ones(nn, dtype=bool)
        # Per flavor: priority -> nodes in the placements of running jobs of that priority
        # (a node shared by k jobs counts k times). Kept at every start and stop, so it bounds
        # nodes_by_top_prio from above without a flush: a node whose top priority is q runs
        # a job of priority q. `_prio_nodes_of`: job -> (flavor, priority, nodes) as counted.
        self.prio_nodes: list[dict[int, int]] = [{} for _ in range(nf)]
        self._prio_nodes_of: dict[int, tuple[int, int, int]] = {}
        self._init_summaries(nn, nf)  # the per-node summaries and owners (summaries.py)
        # Set when a pass that saved no key orders raised (scheduler/cycle.py, `schedule`):
        # its rollback restored the contents but not the indices' order; no pass runs on it.
        self.order_lost = False

    @property
    def ends(self) -> list[SortedList]:
        """Per flavor, the running jobs' (expected end, id, GPUs), sorted."""
        if self._ends_new or self._ends_gone:
            self._settle_ends()
        return self._ends

    def _settle_ends(self) -> None:
        ends = self._ends
        gone, new = self._ends_gone, self._ends_new
        if len(gone) + len(new) >= _SETTLE_MANY:
            self._settle_many()
            return
        for f, entry in gone:
            ends[f].remove(entry)
        gone.clear()
        for entry, f in new.items():
            ends[f].add(entry)
        new.clear()

    def _settle_many(self) -> None:
        """`_settle_ends` for many notes (a cap solve re-times ~80 runs at once): a flavor with
        notes for a quarter of its ends is rebuilt from what stays and what came (the same
        sorted list; a SortedList remove or add costs ~3.5k instructions in the month, a
        rebuild ~0.8k per entry), the rest one by one as there."""
        ends = self._ends
        gone: dict[int, list[tuple[float, int, int]]] = {}
        for f, entry in self._ends_gone:
            gone.setdefault(f, []).append(entry)
        came: dict[int, list[tuple[float, int, int]]] = {}
        for entry, f in self._ends_new.items():
            came.setdefault(f, []).append(entry)
        for f in gone.keys() | came.keys():
            sl = ends[f]
            out, add = gone.get(f, []), came.get(f, [])
            if (len(out) + len(add)) * 4 < len(sl):
                for entry in out:
                    sl.remove(entry)
                for entry in add:
                    sl.add(entry)
                continue
            drop = set(out)
            keep = list(itertools.filterfalse(drop.__contains__, sl))  # in C
            if len(sl) - len(keep) != len(out):  # as remove() would have refused
                raise ValueError("an end noted gone is not in its flavor's ends")
            keep.extend(add)
            sl.clear()
            sl.update(keep)
        # Cleared once every flavor took its notes: a refused read keeps them, so the next read
        # refuses too (as the one-by-one path's remove() does), never drops a running job's end.
        self._ends_gone.clear()
        self._ends_new.clear()

    def move_ends(self, moved: list[tuple[int, tuple, tuple]]) -> None:
        """Driver: running jobs' expected ends moved (flavor, the entry, its new entry), as a cap
        solve re-times its moved runs: noted as a stop's and a start's are, and applied when
        `ends` is next read. An end moved again, or whose run stops, before that read is never
        applied (~30% of a month's moved ends under `full`)."""
        came, gone = self._ends_new, self._ends_gone
        for f, was, now in moved:
            if came.pop(was, None) is None:
                gone.append((f, was))
            came[now] = f

    def add_usage(self, team: int, flavor: int, gpus: int) -> None:
        self.usage[team][flavor] += gpus
        self.cohort_usage[flavor] += gpus
        self.usage_version[team] += 1

    # ---- driver operations ------------------------------------------------------------------
    def start(self, job: Job, team: int, flavor: int, placement: Placement) -> int:
        """Driver: a job starts on a placement. Returns the GPUs it holds."""
        jid = job.id
        gpus = self.take(jid, flavor, placement)
        # Once per start (and stop, below) in both drivers: the usage and the ends' note written
        # out rather than called, the summaries' note and priority count in one call (RESULTS
        # section 126).
        self.usage[team][flavor] += gpus
        self.cohort_usage[flavor] += gpus
        self.usage_version[team] += 1
        self.running[jid] = job
        self._ends_new[(job.est_end_s, jid, gpus)] = flavor
        self._noted_start(job, flavor, placement)
        return gpus

    def _noted_start(self, job: Job, flavor: int, placement: Placement) -> None:
        """A start or an adoption: its placement's nodes are to be summarized again
        (summaries.py), and its nodes are counted in `prio_nodes`. A placement noted again
        moves to the end instead of being noted twice: its earlier note is the last on none
        of its nodes, and the flush reads only each node's last note (RESULTS.md, section 74:
        a third of cortex-2026's notes were such repeats). The flag says that this start is
        the placement's first note since the last flush (see NodeSummaries._note_stop)."""
        stale = self._stale
        key = id(placement)
        first = stale.pop(key, None) is None
        stale[key] = (job.id, placement, first)
        prio = job.priority
        nodes = len(placement)
        self._prio_nodes_of[job.id] = (flavor, prio, nodes)
        hist = self.prio_nodes[flavor]
        hist[prio] = hist.get(prio, 0) + nodes

    def adopt(self, job: Job) -> None:
        """Driver: a job whose GPUs a committed cycle already took starts running on them."""
        jid = job.id
        alloc = self.allocations[jid]
        self.running[jid] = job
        self._ends_new[(job.est_end_s, jid, alloc.gpus)] = alloc.flavor
        self._noted_start(job, alloc.flavor, alloc.placement)

    def stop(self, job: Job, team: int) -> Allocation:
        """Driver: a job leaves its GPUs (completed, preempted or interrupted)."""
        jid = job.id
        alloc = self.given.pop(jid, None)
        if alloc is None:
            alloc = self.give(jid)
            self.usage[team][alloc.flavor] -= alloc.gpus
            self.cohort_usage[alloc.flavor] -= alloc.gpus
            self.usage_version[team] += 1
        del self.running[jid]
        # An entry added since the last read is dropped from the notes: it was never applied.
        entry = (job.est_end_s, jid, alloc.gpus)
        if self._ends_new.pop(entry, None) is None:
            self._ends_gone.append((alloc.flavor, entry))
        self._note_stop(jid, alloc.placement)
        f, prio, nodes = self._prio_nodes_of.pop(jid)
        hist = self.prio_nodes[f]
        left = hist[prio] - nodes
        if left:
            hist[prio] = left
        else:
            del hist[prio]
        return alloc

    def free_whole_nodes(self, f: int) -> int:
        """Healthy, completely free nodes of flavor f."""
        # A loop, not sum() over a generator: asked at every gang placement and preemption
        # check (~25k times in ten days), where the generator's frame cost more than the adds.
        total = 0
        for hall in self.hall_whole:
            total += hall[f]
        return total

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
