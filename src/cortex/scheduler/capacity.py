"""The free-capacity indices of ClusterState (split out of scheduler/state.py): counters and
bucketed indices kept by `take` and `give`, so that placement never scans the list of all GPUs.

Indices, per flavor f with g GPUs per node:
- `part[f][k]`: healthy nodes with exactly k free GPUs, 0 < k < g (a dict used as an ordered set);
- `pod_whole[p]`: healthy, completely free nodes of pod p;
- `pod_bucket[f][c]`: pods of flavor f with exactly c completely free nodes (c >= 1);
- `hall_whole[h][f]`: completely free nodes of flavor f in hall h.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import islice
from operator import itemgetter

from cortex.fleet.topology import Topology

Placement = tuple[tuple[int, int], ...]  # ((node, gpus), ...)
FREE, SHARED = -2, -1  # np_owner of a node nobody holds, and of one several jobs hold


@dataclass(slots=True)
class Allocation:
    """GPUs held by one job: one flavor, some nodes. Not frozen: built at every take (see
    scheduler/snapshot.py, Snapshot). Never assign to it (a Statement's rollback takes again
    from the object it saved) and do not hash it (a plain dataclass with eq has no hash)."""

    flavor: int
    placement: Placement
    gpus: int
    # A gang of whole nodes taken whole: its runs of one pod in placement order, (pod, nodes),
    # as `take` found them; None for any other placement. Read by `give` and `hall_gpus`.
    runs: list[tuple[int, int]] | None = field(default=None, compare=False, repr=False)


# Past this many placements noted since the last read of np_owner, the read recomputes every
# node instead (bounds the list when no victim search runs for long).
OWNER_STALE_MAX = 4096


class Capacity:
    """Free and held GPUs per node and the indices over them; allocations by job."""

    def __init__(self, topo: Topology) -> None:
        nf = len(topo.flavors)
        self.gpn = list(topo.flavor_gpus_per_node)
        self.node_flavor = topo.node_flavor
        self.node_pod = topo.node_pod
        self.node_hall = topo.node_hall
        self.pod_hall = topo.pod_hall
        self.node_free = [self.gpn[f] for f in topo.node_flavor]
        # (node, GPUs per node): a whole node's entry in a placement, made once per node. A gang
        # of thousands of whole nodes reuses them rather than build a pair per node at every
        # placement (bench/RESULTS.md section 85).
        self.whole_pair = [(n, self.gpn[f]) for n, f in enumerate(topo.node_flavor)]
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
        # Placements of gangs of several nodes that power admission refused at a version:
        # (version, the placement policy, {(flavor, gang): placement}), kept across passes
        # (scheduler/cycle.py, _Cycle.keep_refused): such a gang is placed again, the same way,
        # at each pass until the state moves.
        self.placed: tuple[int, object, dict[tuple[int, int], Placement]] = (-1, None, {})
        self.busy_gpus = [0] * nf
        self.allocations: dict[int, Allocation] = {}
        # Placements taken or given since np_owner was last read (ClusterState.np_owner): a
        # whole-node note says who holds its nodes now, None that they are read one by one.
        self._owner_stale: list[tuple[int | None, Placement]] = []
        self._owner_all = False  # too many noted: the next read recomputes every node

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

    def _none_cordoned(self, placement: Placement) -> bool:
        cordoned = self.cordoned
        return not cordoned or cordoned.keys().isdisjoint(map(itemgetter(0), placement))

    def take(self, job_id: int, flavor: int, placement: Placement) -> int:
        """Mark a placement's GPUs used by job_id; returns the GPUs taken.

        Whole nodes leaving a pod's free set update that pod's bucket and its hall's count once
        per pod, not once per node: a 32k-GPU gang touches 4,096 nodes but only ~128 pods."""
        cordoned = self.cordoned
        if len(placement) == 1 and not (cordoned and placement[0][0] in cordoned):
            # One node off cordon (most takes): the loop below for one pair, written out
            # without its per-pod counts (RESULTS §119: the same writes in the same order).
            n, k = placement[0]
            g = self.gpn[flavor]
            old = self.node_free[n]
            if old == g:
                p = self.node_pod[n]
                free_p = self.pod_whole[p]
                del free_p[n]
                c_new = len(free_p)
                buckets = self.pod_bucket[flavor]
                del buckets[c_new + 1][p]
                if c_new:
                    buckets[c_new][p] = None
                self.hall_whole[self.pod_hall[p]][flavor] -= 1
            elif old:
                del self.part[flavor][old][n]
            new = old - k
            if new:
                self.part[flavor][new][n] = None
            self.node_free[n] = new
            self.node_jobs[n][job_id] = k
            self.free_gpus[flavor] -= k
            self.version += 1
            self.busy_gpus[flavor] += k
            self.allocations[job_id] = Allocation(flavor, placement, k)
            stale = self._owner_stale
            stale.append(((job_id if job_id >= 0 else SHARED) if k == g else None, placement))
            if len(stale) > OWNER_STALE_MAX:
                self._all_owners_stale()
            return k
        g = self.gpn[flavor]
        node_free = self.node_free
        pod_whole = self.pod_whole
        node_jobs = self.node_jobs
        touched: dict[int, int] = {}
        held_out = 0
        if len(placement) > 1:
            # Each k <= g: the sum is g per node only if every node is taken whole.
            total = sum(map(itemgetter(1), placement))
            whole = total == g * len(placement) and self._none_cordoned(placement)
        else:
            total = placement[0][1]
            whole = False
        if whole:
            # A multi-node gang (placement gives them whole nodes): every node was completely
            # free, so it leaves its pod's free set and no partial bucket. Runs of one pod are
            # counted once (the same counts, in the same first-seen order, as node by node).
            # The per-node writes stay a Python loop, here and in `give`: the same writes as
            # map() over __setitem__/__delitem__ and dict.fromkeys were slower per node on
            # 3.11 (bench/node_writes.py, RESULTS 71). The runs of one pod are found by
            # comparing each node's pod with the last one's, not by groupby over map (~6%
            # fewer instructions per node taken and given back: the pairs unpacked in the
            # loop, no key function called per node).
            # The runs are kept on the allocation: `give` walks them rather than compare
            # each node's pod again (RESULTS §145).
            node_pod = self.node_pod
            runs: list[tuple[int, int]] = []
            cur = -1
            pw: dict[int, None] = {}
            before = 0
            for n, _ in placement:
                p = node_pod[n]
                if p != cur:
                    if cur >= 0:
                        c = before - len(pw)
                        runs.append((cur, c))
                        touched[cur] = touched.get(cur, 0) + c
                    cur = p
                    pw = pod_whole[p]
                    before = len(pw)
                del pw[n]
                node_free[n] = 0
                node_jobs[n][job_id] = g
            c = before - len(pw)
            runs.append((cur, c))
            touched[cur] = touched.get(cur, 0) + c
        else:
            part = self.part[flavor]
            node_pod = self.node_pod
            for n, k in placement:
                if cordoned and n in cordoned:  # a Statement's rollback puts a victim back there
                    cordoned[n] -= k
                    node_jobs[n][job_id] = k
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
        self.allocations[job_id] = Allocation(flavor, placement, total, runs if whole else None)
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
        placement = alloc.placement
        g = self.gpn[flavor]
        cordoned = self.cordoned
        if len(placement) == 1 and not (cordoned and placement[0][0] in cordoned):
            # One node off cordon (most gives): the loop below for one pair, written out.
            n, k = placement[0]
            del self.node_jobs[n][job_id]
            old = self.node_free[n]
            if old:
                del self.part[flavor][old][n]
            new = old + k
            if new == g:
                p = self.node_pod[n]
                free_p = self.pod_whole[p]
                free_p[n] = None
                c_new = len(free_p)
                buckets = self.pod_bucket[flavor]
                if c_new > 1:
                    del buckets[c_new - 1][p]
                buckets[c_new][p] = None
                self.hall_whole[self.pod_hall[p]][flavor] += 1
            else:
                self.part[flavor][new][n] = None
            self.node_free[n] = new
            self.free_gpus[flavor] += alloc.gpus
            self.version += 1
            self.busy_gpus[flavor] -= alloc.gpus
            stale = self._owner_stale
            stale.append((FREE if alloc.gpus == g else None, placement))
            if len(stale) > OWNER_STALE_MAX:
                self._all_owners_stale()
            return alloc
        node_free = self.node_free
        pod_whole = self.pod_whole
        node_jobs = self.node_jobs
        touched: dict[int, int] = {}
        held_out = 0
        runs = alloc.runs
        if runs is not None and self._none_cordoned(placement):
            # A gang taken whole: each node was held by this job alone (none free), so it
            # becomes completely free. The runs of one pod its take found, each a slice of the
            # placement in C: ~165 fewer instructions a node than comparing each node's pod
            # (RESULTS §145). One taken on a cordoned node (a rollback's) goes the general way,
            # which writes the same, node by node.
            nodes = iter(placement)
            for p, c in runs:
                pw = pod_whole[p]
                for n, _ in islice(nodes, c):
                    del node_jobs[n][job_id]
                    node_free[n] = g
                    pw[n] = None
                touched[p] = touched.get(p, 0) + c
        else:
            part = self.part[flavor]
            node_pod = self.node_pod
            for n, k in placement:
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
        stale.append((FREE if alloc.gpus == g * len(placement) else None, placement))
        if len(stale) > OWNER_STALE_MAX:
            self._all_owners_stale()
        return alloc

    def hall_gpus(self, job_id: int) -> dict[int, int] | None:
        """A whole-node gang's GPUs per hall, the halls in the order its placement first names
        them (scheduler/power.py's `hall_shares`, the same dict), from the node counts of its
        runs of one pod rather than a look-up per node; None for any other allocation. A run's
        first node is the first of its hall's nodes in the placement whenever its hall is new
        there, so the runs' order gives the halls'. The twin's start books its watts from it
        under no power policy, where no admission read the placement (RESULTS §145: 1.2M
        nodes a month)."""
        alloc = self.allocations[job_id]
        runs = alloc.runs
        if runs is None:
            return None
        g = self.gpn[alloc.flavor]
        pod_hall = self.pod_hall
        halls: dict[int, int] = {}
        for p, c in runs:
            h = pod_hall[p]
            halls[h] = halls.get(h, 0) + c * g
        return halls

    def _all_owners_stale(self) -> None:
        self._owner_stale.clear()
        self._owner_all = True
