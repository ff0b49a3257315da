"""ClusterState: the mechanism both drivers share. Free capacity is kept as counters and
bucketed indices so that placement never scans the list of all GPUs.

Indices, per flavor f with g GPUs per node:
- `part[f][k]`: healthy nodes with exactly k free GPUs, 0 < k < g (a dict used as an ordered set);
- `pod_whole[p]`: healthy, completely free nodes of pod p;
- `pod_bucket[f][c]`: pods of flavor f with exactly c completely free nodes (c >= 1);
- `hall_whole[h][f]`: completely free nodes of flavor f in hall h.

Policies read this object through a Snapshot and never mutate it; tentative changes within a
cycle go through a Statement (statement.py), which rolls them back.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sortedcontainers import SortedList

from cortex.fleet.topology import Topology
from cortex.scheduler.queues import QueueConfig
from cortex.scheduler.summaries import FREE, OWNER_STALE_MAX, SHARED, NodeSummaries, Placement
from cortex.workload.job import Job


@dataclass(frozen=True, slots=True)
class Allocation:
    """GPUs held by one job: one flavor, some nodes."""

    flavor: int
    placement: Placement
    gpus: int


class ClusterState(NodeSummaries):
    """Free capacity, allocations, per-queue usage and the running set."""

    def __init__(self, topo: Topology, queues: QueueConfig) -> None:
        self.topo = topo
        self.queues = queues
        nf = len(topo.flavors)
        self.gpn = list(topo.flavor_gpus_per_node)
        self.node_flavor = topo.node_flavor
        self.node_pod = topo.node_pod
        self.node_hall = topo.node_hall
        self.pod_hall = topo.pod_hall
        self.node_free = [self.gpn[f] for f in topo.node_flavor]
        self.node_up = [True] * topo.n_nodes
        # Cordoned nodes (a drain waiting for its jobs to end): node -> its free GPUs, held out
        # of the free indices (node_free says 0) so that no new work lands there.
        self.cordoned: dict[int, int] = {}
        self.node_jobs: list[dict[int, int]] = [{} for _ in range(topo.n_nodes)]
        self.part: list[list[dict[int, None]]] = [[{} for _ in range(g)] for g in self.gpn]
        self.pod_whole: list[dict[int, None]] = [dict.fromkeys(ns) for ns in topo.pod_nodes]
        self.max_pod_nodes = [0] * nf
        for p, ns in enumerate(topo.pod_nodes):
            f = topo.pod_flavor[p]
            self.max_pod_nodes[f] = max(self.max_pod_nodes[f], len(ns))
        self.pod_bucket: list[list[dict[int, None]]] = [
            [{} for _ in range(m + 1)] for m in self.max_pod_nodes
        ]
        for p, ns in enumerate(topo.pod_nodes):
            self.pod_bucket[topo.pod_flavor[p]][len(ns)][p] = None
        self.hall_whole = [[0] * nf for _ in topo.hall_names]
        for n, f in enumerate(topo.node_flavor):
            self.hall_whole[topo.node_hall[n]][f] += 1
        self.total_gpus = topo.flavor_gpus()
        self.up_gpus = list(self.total_gpus)
        self.up_nodes = topo.flavor_nodes()
        self.total_nodes = list(self.up_nodes)
        self.free_gpus = list(self.total_gpus)
        # Bumps on every change to the capacity indices (membership or order): a cycle may reuse
        # what placement answered while the version stays the same.
        self.version = 0
        self.busy_gpus = [0] * nf
        self.allocations: dict[int, Allocation] = {}
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

    # ---- capacity indices -------------------------------------------------------------------
    def _whole_add(self, n: int) -> None:
        p = self.node_pod[n]
        pw = self.pod_whole[p]
        c = len(pw)
        buckets = self.pod_bucket[self.node_flavor[n]]
        if c:
            del buckets[c][p]
        buckets[c + 1][p] = None
        pw[n] = None
        self.hall_whole[self.node_hall[n]][self.node_flavor[n]] += 1

    def _whole_remove(self, n: int) -> None:
        p = self.node_pod[n]
        pw = self.pod_whole[p]
        c = len(pw)
        buckets = self.pod_bucket[self.node_flavor[n]]
        del buckets[c][p]
        if c > 1:
            buckets[c - 1][p] = None
        del pw[n]
        self.hall_whole[self.node_hall[n]][self.node_flavor[n]] -= 1

    def _set_free(self, n: int, new: int) -> None:
        old = self.node_free[n]
        f = self.node_flavor[n]
        g = self.gpn[f]
        if old == g:
            self._whole_remove(n)
        elif old:
            del self.part[f][old][n]
        if new == g:
            self._whole_add(n)
        elif new:
            self.part[f][new][n] = None
        self.node_free[n] = new

    def take(self, job_id: int, flavor: int, placement: Placement) -> int:
        """Mark a placement's GPUs used by job_id; returns the GPUs taken.

        Whole nodes leaving a pod's free set update that pod's bucket and its hall's count once
        per pod, not once per node: a 32k-GPU gang touches 4,096 nodes but only ~128 pods."""
        g = self.gpn[flavor]
        part = self.part[flavor]
        node_free = self.node_free
        node_pod = self.node_pod
        pod_whole = self.pod_whole
        node_jobs = self.node_jobs
        touched: dict[int, int] = {}
        total = held_out = 0
        cordoned = self.cordoned
        for n, k in placement:
            if cordoned and n in cordoned:  # a Statement's rollback puts a victim back there
                cordoned[n] -= k
                node_jobs[n][job_id] = k
                total += k
                held_out += k
                continue
            old = node_free[n]
            if old == g:
                p = node_pod[n]
                del pod_whole[p][n]
                touched[p] = touched.get(p, 0) + 1
            elif old:
                del part[old][n]
            new = old - k
            if new:
                part[new][n] = None
            node_free[n] = new
            node_jobs[n][job_id] = k
            total += k
        buckets = self.pod_bucket[flavor]
        for p, cnt in touched.items():
            c_new = len(pod_whole[p])
            del buckets[c_new + cnt][p]
            if c_new:
                buckets[c_new][p] = None
            self.hall_whole[self.pod_hall[p]][flavor] -= cnt
        self.free_gpus[flavor] -= total - held_out
        self.version += 1
        self.busy_gpus[flavor] += total
        self.allocations[job_id] = Allocation(flavor, placement, total)
        # Noted for np_owner: a gang of whole nodes leaves each of them held by it alone.
        stale = self._owner_stale
        stale.append(
            (
                (job_id if job_id >= 0 else SHARED) if total == g * len(placement) else None,
                placement,
            )
        )
        if len(stale) > OWNER_STALE_MAX:
            self._all_owners_stale()
        return total

    def give(self, job_id: int) -> Allocation:
        """Return a job's GPUs to the free indices; returns what it held. Nodes never go down
        under a job (drivers stop the job first), so every node here is healthy."""
        alloc = self.allocations.pop(job_id)
        flavor = alloc.flavor
        g = self.gpn[flavor]
        part = self.part[flavor]
        node_free = self.node_free
        node_pod = self.node_pod
        pod_whole = self.pod_whole
        node_jobs = self.node_jobs
        touched: dict[int, int] = {}
        held_out = 0
        cordoned = self.cordoned
        for n, k in alloc.placement:
            del node_jobs[n][job_id]
            if cordoned and n in cordoned:  # stays out of service until the drain ends
                cordoned[n] += k
                held_out += k
                continue
            old = node_free[n]
            if old:
                del part[old][n]
            new = old + k
            if new == g:
                p = node_pod[n]
                pod_whole[p][n] = None
                touched[p] = touched.get(p, 0) + 1
            else:
                part[new][n] = None
            node_free[n] = new
        buckets = self.pod_bucket[flavor]
        for p, cnt in touched.items():
            c_new = len(pod_whole[p])
            c_old = c_new - cnt
            if c_old:
                del buckets[c_old][p]
            buckets[c_new][p] = None
            self.hall_whole[self.pod_hall[p]][flavor] += cnt
        self.free_gpus[flavor] += alloc.gpus - held_out
        self.version += 1
        self.busy_gpus[flavor] -= alloc.gpus
        # Noted for np_owner: whole nodes a job held are free now.
        stale = self._owner_stale
        stale.append((FREE if alloc.gpus == g * len(alloc.placement) else None, alloc.placement))
        if len(stale) > OWNER_STALE_MAX:
            self._all_owners_stale()
        return alloc

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
