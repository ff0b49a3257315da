"""Statement: tentative allocations, evictions and watts within one cycle, rolled back at its end
(KAI-Scheduler's Statement). Policies try placements on the live indices without copying the
fleet, and the state is exactly as before once the cycle returns, down to the iteration order of
its indices: placement breaks ties by that order, so a rollback that re-inserted keys at the end
would make a second call on one snapshot place the same gang elsewhere."""

from __future__ import annotations

from collections.abc import Sequence
from operator import itemgetter
from typing import TYPE_CHECKING, cast

from cortex.scheduler.power import PowerView, Watts
from cortex.scheduler.state import Allocation, ClusterState, Placement
from cortex.workload.job import Job

if TYPE_CHECKING:
    from cortex.scheduler.snapshot import Plan

_ALLOCATE, _EVICT, _WATTS = 0, 1, 2  # kinds of log entries
# A watts entry holds what it changed as it was before: site, {hall: watts}, ramp, and the jobs
# it marked released. Restoring saved values, not subtracting again, keeps a rollback exact.
_WattsUndo = tuple[float, dict[int, float], float, tuple[int, ...]]


class Statement:
    """An undo log over a ClusterState."""

    __slots__ = (
        "_log",
        "_saved",
        "_seen",
        "evicted",
        "keep_order",
        "order_unsaved",
        "state",
        "watts",
    )

    def __init__(self, state: ClusterState, power: PowerView | None = None) -> None:
        self.state = state
        # What the cycle has left to spend under a power policy (None: no policy runs):
        # Watts.of(power), built here without the class method's call (once a pass).
        self.watts = (
            Watts(power.site_headroom_w, [*power.hall_headroom_w], power.ramp_headroom_w, set())
            if power is not None
            else None
        )
        self._log: list[tuple[int, int, int, Allocation | _WattsUndo]] = []
        self.evicted: set[int] = set()
        # Undoing an insertion (a delete) keeps the order of the other keys; undoing a deletion
        # (a re-insert) would put the key last. So each dict that is about to lose a key has
        # its key order saved once per mark: (log position, dict, keys).
        self._saved: list[tuple[int, dict, list]] = []
        self._seen: set[int] = set()  # ids of the dicts saved since the last mark
        # False while every allocation is sure to be committed, never undone (the cycle says
        # when: scheduler/cycle.py, `schedule`): their key orders and the watts their starts
        # spend need no saving then (a rollback restores neither; the cycle's watts are the
        # Statement's own and go with it).
        self.keep_order = True
        self.order_unsaved = False  # an allocation was made without its key orders saved

    def _save(self, d: dict) -> None:
        if id(d) not in self._seen:
            self._seen.add(id(d))
            self._saved.append((len(self._log), d, list(d)))

    def _before_take(self, flavor: int, placement: Placement) -> None:
        """Save the indices `take` deletes from: a node's old partial bucket, or its pod's
        whole set and that pod's old bucket."""
        st = self.state
        g = st.gpn[flavor]
        part = st.part[flavor]
        # The dicts to save, in order, saved below as `_save` would without a call each (once
        # per placement a pass makes: RESULTS section 126).
        dicts: list[dict] = []
        pods: dict[int, None]
        if len(placement) > 1 and sum(map(itemgetter(1), placement)) == g * len(placement):
            # A gang of whole nodes (each k <= g): all its pods, first seen first, read in C.
            pods = dict.fromkeys(map(st.node_pod.__getitem__, map(itemgetter(0), placement)))
        else:
            pods = {}
            for n, k in placement:
                old = g if k == g else st.node_free[n]
                if old == g:
                    pods[st.node_pod[n]] = None
                elif old:
                    dicts.append(part[old])
        buckets = st.pod_bucket[flavor]
        for p in pods:
            whole = st.pod_whole[p]
            dicts.append(whole)
            dicts.append(buckets[len(whole)])
        seen = self._seen
        at = len(self._log)
        for d in dicts:
            if id(d) not in seen:
                seen.add(id(d))
                self._saved.append((at, d, list(d)))

    def _before_give(self, alloc: Allocation) -> None:
        """Save the indices `give` deletes from: the allocations, each node's jobs and old
        partial bucket, and the old bucket of each pod that gains a whole node."""
        st = self.state
        g = st.gpn[alloc.flavor]
        part = st.part[alloc.flavor]
        self._save(st.allocations)
        pods: dict[int, None] = {}
        for n, k in alloc.placement:
            self._save(st.node_jobs[n])
            old = st.node_free[n]
            if old:
                self._save(part[old])
            if old + k == g:
                pods[st.node_pod[n]] = None
        buckets = st.pod_bucket[alloc.flavor]
        for p in pods:
            c_old = len(st.pod_whole[p])
            if c_old:
                self._save(buckets[c_old])

    def allocate(self, job: Job, flavor: int, placement: Placement) -> int:
        """Tentatively start job on placement; returns GPUs held."""
        st = self.state
        if self.keep_order:
            self._before_take(flavor, placement)
        else:
            self.order_unsaved = True
        jid = job.id
        team = job.queue_idx
        gpus = st.take(jid, flavor, placement)
        # add_usage written out: once per placement a pass makes (RESULTS section 126)
        st.usage[team][flavor] += gpus
        st.cohort_usage[flavor] += gpus
        st.usage_version[team] += 1
        self._log.append((_ALLOCATE, jid, team, st.allocations[jid]))
        return gpus

    def evict(self, job: Job) -> Allocation:
        """Tentatively free a running job's GPUs."""
        st = self.state
        st.flush_summaries()  # summaries describe the fleet before the cycle, not its evictions
        self._before_give(st.allocations[job.id])
        alloc = st.give(job.id)
        st.add_usage(job.queue_idx, alloc.flavor, -alloc.gpus)
        self.evicted.add(job.id)
        self._log.append((_EVICT, job.id, job.queue_idx, alloc))
        return alloc

    def spend_w(self, inc_w: float, halls_w: dict[int, float]) -> None:
        """Spend a granted start's watts: site, its halls and the ramp window."""
        w = self.watts
        assert w is not None, "spend_w without a power view"
        hall_w = w.hall_w
        if not self.keep_order:
            # Committed, never undone (keep_order): no undo entry (73.7k of the month's 87.2k
            # spends under `full`, RESULTS section 149). A full rollback, which only an error or
            # a pass that is dropped makes, then leaves these watts spent: its Statement, which
            # owns them, is dropped with the pass.
            if len(halls_w) == 1:
                [(h, x)] = halls_w.items()
                hall_w[h] -= x
            else:
                for h, x in halls_w.items():
                    hall_w[h] -= x
        elif len(halls_w) == 1:
            # One hall (nearly every start, once per start): the comprehension's and the
            # loop's one entry, without building a function for the comprehension.
            [(h, x)] = halls_w.items()
            self._log.append((_WATTS, 0, 0, (w.site_w, {h: hall_w[h]}, w.ramp_w, ())))
            hall_w[h] -= x
        else:
            undo: _WattsUndo = (w.site_w, {h: hall_w[h] for h in halls_w}, w.ramp_w, ())
            self._log.append((_WATTS, 0, 0, undo))
            for h, x in halls_w.items():
                hall_w[h] -= x
        w.site_w -= inc_w
        ramp_w = w.ramp_w - inc_w
        # max(ramp_w, 0.0) without the call: max keeps its first argument unless the second
        # is greater, so a -0.0 or a NaN stays as it was (the same double).
        w.ramp_w = 0.0 if ramp_w < 0.0 else ramp_w

    def credit_w(self, victims: Sequence[Job], credit: tuple[float, dict[int, float]]) -> None:
        """Give back the watts of evicted victims (`credit`, from `Watts.credit`), once each."""
        w = self.watts
        assert w is not None, "credit_w without a power view"
        site_w, halls_w = credit
        new = tuple(v.id for v in victims if v.id not in w.released)
        undo: _WattsUndo = (w.site_w, {h: w.hall_w[h] for h in halls_w}, w.ramp_w, new)
        self._log.append((_WATTS, 0, 0, undo))
        w.site_w += site_w
        for h, x in halls_w.items():
            w.hall_w[h] += x
        w.released.update(new)

    def hand_over(self, plan: Plan, untried: bool) -> bool:
        """Whether the cycle's moves may be kept instead of rolled back: with no victim search
        tried (`untried`) the log holds only the plan's starts; else only if it holds what the
        driver does with the plan: the victims' evictions, then the starts (watts are the
        cycle's own), in that order or in an order that `_commutes` shows leaves the same
        state. The state then is what a rollback and the driver's stops and starts would
        leave, down to every index's order, and the evictions' allocations go to
        `state.given` for those stops (bench/RESULTS.md, sections 108 and 113)."""
        if untried and not plan.preemptions:
            return True
        log = [(kind, jid, entry) for kind, jid, _, entry in self._log if kind != _WATTS]
        evicts = [p.job.id for p in plan.preemptions]
        starts = [s.job.id for s in plan.starts]
        if [(k, j) for k, j, _ in log] != [(_EVICT, j) for j in evicts] + [
            (_ALLOCATE, j) for j in starts
        ]:
            if [j for k, j, _ in log if k == _EVICT] != evicts:
                return False
            if [j for k, j, _ in log if k == _ALLOCATE] != starts:
                return False
            if not self._commutes(cast(list[tuple[int, int, Allocation]], log)):
                return False
        given = self.state.given
        for kind, jid, entry in log:
            if kind == _EVICT:
                given[jid] = cast(Allocation, entry)
        return True

    def _commutes(self, log: list[tuple[int, int, Allocation]]) -> bool:
        """Whether the log leaves the state that the driver's order (the evictions first, each
        kind in its own order) leaves, down to every index's key order. Only pairs of a start
        logged before an eviction change their order. An index's final order is the order in
        which its final keys last went in; a move's inserts depend only on the moves before it
        that touch the same node or pod, whose order changes only within such pairs. So it is
        enough that in each pair of one flavor (other flavors share no index) the start's
        inserts into the indices an eviction also inserts into (the partial buckets, a pod's
        free nodes, the pods' buckets) leave no final key: its nodes hold no free GPU at the
        end and its pods no free whole node. A start's other inserts (its allocation, its
        nodes' jobs) go where evictions only delete, and inserts and deletes of different
        keys commute (bench/RESULTS.md, section 113)."""
        st = self.state
        node_free = st.node_free
        pod_whole = st.pod_whole
        node_pod = st.node_pod
        flavors = [a.flavor for kind, _, a in log if kind == _EVICT]
        seen = 0  # evictions logged so far
        for kind, _, alloc in log:
            if kind == _EVICT:
                seen += 1
            elif alloc.flavor in flavors[seen:]:
                for n, _ in alloc.placement:
                    if node_free[n] or pod_whole[node_pod[n]]:
                        return False
        return True

    def mark(self) -> int:
        self._seen.clear()
        return len(self._log)

    def rollback(self, mark: int = 0) -> None:
        """Undo everything after `mark`, newest first (what was done with keep_order off:
        counts and members only, and no watts)."""
        st = self.state
        log = self._log
        while len(log) > mark:
            kind, job_id, team, entry = log.pop()
            if kind == _WATTS:
                assert self.watts is not None
                self._undo_watts(self.watts, cast(_WattsUndo, entry))
                continue
            alloc = cast(Allocation, entry)  # the kind says which; no isinstance in this loop
            if kind == _ALLOCATE:
                st.give(job_id)
                st.add_usage(team, alloc.flavor, -alloc.gpus)
            else:
                st.take(job_id, alloc.flavor, alloc.placement)
                st.add_usage(team, alloc.flavor, alloc.gpus)
                self.evicted.discard(job_id)
        # The keys are right again; put them back in their order at the mark, which the
        # oldest save of each dict since the mark holds (later saves are of later orders).
        # Keys the log inserted after the mark and removed again are skipped.
        saved = self._saved
        i = len(saved)
        while i and saved[i - 1][0] >= mark:
            i -= 1
        done: set[int] = set()
        for _, d, keys in saved[i:]:
            if id(d) not in done:
                done.add(id(d))
                items = [(k, d[k]) for k in keys if k in d]
                assert len(items) == len(d), "a key present at the mark was not saved"
                d.clear()
                d.update(items)
        del saved[i:]
        self._seen.clear()

    @staticmethod
    def _undo_watts(w: Watts, undo: _WattsUndo) -> None:
        site_w, halls_w, ramp_w, released = undo
        w.site_w = site_w
        for h, x in halls_w.items():
            w.hall_w[h] = x
        w.ramp_w = ramp_w
        w.released.difference_update(released)
