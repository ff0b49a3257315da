"""take, give and Statement._before_take as they were before gangs of whole nodes had their
own path (scheduler/state.py and scheduler/statement.py, main 5e60867), kept verbatim as the
reference that tests/unit/test_capacity_whole.py compares the indices with."""

from __future__ import annotations

from cortex.scheduler.capacity import FREE, OWNER_STALE_MAX, SHARED, Allocation
from cortex.scheduler.state import ClusterState, Placement
from cortex.scheduler.statement import Statement

# ruff: noqa


class ReferenceState(ClusterState):
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


class ReferenceStatement(Statement):
    def _before_take(self, flavor: int, placement: Placement) -> None:
        """Save the indices `take` deletes from: a node's old partial bucket, or its pod's
        whole set and that pod's old bucket."""
        st = self.state
        g = st.gpn[flavor]
        part = st.part[flavor]
        pods: dict[int, None] = {}
        for n, k in placement:
            old = g if k == g else st.node_free[n]
            if old == g:
                pods[st.node_pod[n]] = None
            elif old:
                self._save(part[old])
        buckets = st.pod_bucket[flavor]
        for p in pods:
            self._save(st.pod_whole[p])
            self._save(buckets[len(st.pod_whole[p])])
