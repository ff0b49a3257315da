"""Per-node summaries of the running jobs, and who holds each node: the arrays victim searches
filter the whole fleet with (moved out of state.py as it was; ClusterState inherits them).

Both are kept lazily. `ClusterState.start`/`adopt`/`stop` note each placement in `_stale`, and
the first read of a summary after them (a victim search, once in many events) brings the
touched nodes up to date (`flush_summaries`); `take`/`give` note placements in `_owner_stale`
for `np_owner`, which follows a Statement's tentative moves too. Statements never change the
summaries (see flush_summaries).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable
from operator import itemgetter

import numpy as np

from cortex.scheduler.capacity import FREE, SHARED, Capacity, Placement
from cortex.workload.job import Job

__all__ = [
    "EMPTY_PRIO",
    "FLUSH_SMALL_NODES",
    "FREE",
    "SHARED",
    "NodeSummaries",
    "queue_bit",
]

EMPTY_PRIO = -(2**62)  # max priority on a node that runs nothing
# np_top_queues' bits: queue q's is 1 << q; the queues from MANY_QUEUES_BIT on share the last.
MANY_QUEUES_BIT = 62


def queue_bit(q: int) -> int:
    """Queue q's bit in np_top_queues."""
    return 1 << (q if q < MANY_QUEUES_BIT else MANY_QUEUES_BIT)


# A flush of at most this many placed nodes runs in plain Python (NodeSummaries._flush_small).
FLUSH_SMALL_NODES = 1024


class NodeSummaries(Capacity):
    """The per-node summaries part of ClusterState (its base class), over the free capacity.

    A chain of single bases, not ClusterState(Capacity, NodeSummaries): the compiled core's
    mypyc supports no multiple inheritance of native classes."""

    # Kept by ClusterState; read here.
    np_node_flavor: np.ndarray
    running: dict[int, Job]

    def _init_summaries(self, nn: int, nf: int) -> None:
        """Summaries of `nn` idle nodes in `nf` flavors."""
        self._np_used = np.zeros(nn, dtype=np.int64)
        self._np_max_prio = np.full(nn, EMPTY_PRIO, dtype=np.int64)
        self._np_last_start = np.full(nn, -np.inf)
        # The queues (queue_bit) of the jobs of the node's highest class: what a same-class
        # reclaim asks of every such job, so a victim search can bound its good nodes before
        # judging them (PriorityReclaim.good_bound).
        self._np_top_queues = np.zeros(nn, dtype=np.int64)
        # Busy nodes per flavor by the highest priority running on them: a victim search for a
        # gang of k nodes at priority p needs k free or lower-priority nodes, a cheap bound.
        self._nodes_by_top_prio: list[dict[int, int]] = [{} for _ in range(nf)]
        # (job, placement) started or stopped on since the summaries were last read, keyed by
        # the placement object (an allocation's, the same at its start and its stop) and in
        # the order of each one's last note (see ClusterState._noted_start).
        self._stale: dict[int, tuple[int, Placement, bool]] = {}
        # Who holds each node now, tentative moves included: the one job if exactly one does,
        # SHARED if several, FREE if none. Victim searches judge a gang's nodes by their owner
        # in one pass over its distinct jobs. Kept lazily: take/give note the placement.
        self._owner = np.full(nn, FREE, dtype=np.int64)

    def _note_stop(self, jid: int, placement: Placement) -> None:
        """Driver stop: as ClusterState._noted_start, except that a job that started on this
        placement after the last flush, with no other note of it since, leaves no note at all:
        its nodes run what they ran at that flush (every other start or stop on them has a note
        of its own), so the flush would rewrite their summaries with what they hold already. On
        cortex-2026 most jobs start and stop between two flushes (section 74)."""
        stale = self._stale
        key = id(placement)
        got = stale.pop(key, None)
        if got is not None and got[2] and got[0] == jid:
            return
        stale[key] = (jid, placement, False)

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
    def np_top_queues(self) -> np.ndarray:
        """Per node, the queues (queue_bit) of the jobs of its highest class (0 when idle)."""
        if self._stale:
            self.flush_summaries()
        return self._np_top_queues

    @property
    def nodes_by_top_prio(self) -> list[dict[int, int]]:
        """Per flavor: busy nodes by the highest priority running on them."""
        if self._stale:
            self.flush_summaries()
        return self._nodes_by_top_prio

    def top_prio_as_flushed(self, f: int) -> tuple[dict[int, int], int]:
        """`nodes_by_top_prio[f]` as of the last flush, without flushing, and how many placed
        nodes of flavor f were noted since (once per noted placement object; a start and stop
        that cancelled left none, and changed no node's class): only those nodes can have
        changed class, each by one node, so the two bound every class's count now from both
        sides."""
        node_flavor = self.node_flavor
        moved = sum(len(p) for _, p, _ in self._stale.values() if node_flavor[p[0][0]] == f)
        return self._nodes_by_top_prio[f], moved

    def top_prio_moved(self, f: int, p: int, or_equal: bool) -> tuple[int, int]:
        """Tighter than `moved` (top_prio_as_flushed) for a job of priority `p` (or_equal: the
        classes up to p count, else below it): how many noted nodes of flavor f can have come
        into the counted classes or free whole nodes' count, and how many can have left them
        or be counted twice (freed). A node comes in by a stop (its top falls) or a counted
        class's start (on a free node: free now, so not as free); it leaves, or is freed, by a
        stop or a start above the counted classes. A note whose job does not run on its
        placement now is taken for a stop: counted both ways, which is always safe."""
        node_flavor = self.node_flavor
        running = self.running
        allocations = self.allocations
        stops = low = high = 0
        for jid, placement, _ in self._stale.values():
            if node_flavor[placement[0][0]] != f:
                continue
            job = running.get(jid)
            alloc = allocations.get(jid)
            if job is None or alloc is None or alloc.placement is not placement:
                stops += len(placement)
            elif job.priority < p or (or_equal and job.priority == p):
                low += len(placement)
            else:
                high += len(placement)
        return stops + low, stops + high

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
                        live.extend(map(itemgetter(0), placement))
                    else:
                        final.update(dict.fromkeys(map(itemgetter(0), placement), value))
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
        if not self._stale:
            return
        stale = [(jid, placement) for jid, placement, _ in self._stale.values()]
        self._stale = {}
        if sum(len(placement) for _, placement in stale) <= FLUSH_SMALL_NODES:
            self._flush_small(stale)
            return
        flat = np.fromiter(
            itertools.chain.from_iterable(map(itemgetter(0), p) for _, p in stale), dtype=np.int64
        )
        entry = np.repeat(np.arange(len(stale)), [len(p) for _, p in stale])
        # Only the last start or stop on a node decides its summary: keep each node once, with
        # the last entry that touched it.
        touched, rev_at = np.unique(flat[::-1], return_index=True)
        last_entry = entry[::-1][rev_at]
        old_top = self._np_max_prio[touched]
        order = np.argsort(last_entry, kind="stable")
        grouped = last_entry[order]
        starts = np.flatnonzero(np.r_[True, grouped[1:] != grouped[:-1]])
        self._summarize_groups(stale, grouped[starts].tolist(), touched[order], starts)
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

    def _summarize_groups(
        self,
        stale: list[tuple[int, Placement]],
        entries: list[int],
        nodes: np.ndarray,
        starts: np.ndarray,
    ) -> None:
        """The array flush's summaries: `nodes[starts[i]:starts[i + 1]]` are the nodes whose
        last note is `stale[entries[i]]`. `_summarize_gang`'s test and writes, by the same rule
        (`_gang_writes`), for every group at once (on cortex-2026 a flush meets ~1,400 groups,
        and one gang's five array calls cost more than its nodes; RESULTS.md, section 69). The
        groups' nodes are disjoint and the node path reads no summary, so the order of the
        writes cannot matter; a group that the rule declines, or whose owners disagree on a
        node, goes node by node, which is what the gang path writes anyway."""
        sizes = np.diff(np.r_[starts, len(nodes)])
        gang_writes = self._gang_writes
        # Per group: the owner the gang rule wants on all its nodes (SHARED: node by node), and
        # what it writes there.
        want: list[int] = []
        used: list[int] = []
        prio: list[int] = []
        start_s: list[float] = []
        queue: list[int] = []
        for e in entries:
            jid, placement = stale[e]
            w, u, p, t, q = gang_writes(jid, placement)
            want.append(w)
            used.append(u)
            prio.append(p)
            start_s.append(t)
            queue.append(q)
        want_arr = np.array(want, dtype=np.int64)
        if (want_arr != SHARED).any():
            matches = self.np_owner[nodes] == np.repeat(want_arr, sizes)
            ok = np.logical_and.reduceat(matches, starts) & (want_arr != SHARED)
        else:
            ok = np.zeros(len(entries), dtype=bool)
        on_nodes = np.repeat(ok, sizes)
        done = nodes[on_nodes]
        self._np_used[done] = np.repeat(np.array(used, dtype=np.int64)[ok], sizes[ok])
        self._np_max_prio[done] = np.repeat(np.array(prio, dtype=np.int64)[ok], sizes[ok])
        self._np_last_start[done] = np.repeat(np.array(start_s)[ok], sizes[ok])
        self._np_top_queues[done] = np.repeat(np.array(queue, dtype=np.int64)[ok], sizes[ok])
        for n in nodes[~on_nodes].tolist():
            self._summarize_node(n)

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
            # A single node never goes the gang way (_gang_writes): skip building its array.
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

    def _gang_writes(self, jid: int, placement: Placement) -> tuple[int, int, int, float, int]:
        """Which notes are written as a whole gang, the one rule of both flushes: the owner that
        every node of the placement must have, and what each of them then gets. A running job
        on exactly this placement of whole nodes (a multi-node gang, as placement gives them):
        its id, the node's GPUs, its priority, start and queue's bit. A multi-node placement no job
        runs on any more (stopped, restarted elsewhere, or taken again but not adopted): FREE,
        and an idle node. SHARED, which no owner matches, otherwise (a single node, a partial
        gang, a negative id): node by node. Wherever the owner matches, `_summarize_node` would
        write the same (the nodes hold exactly that job's GPUs, or nothing)."""
        if len(placement) > 1:
            job = self.running.get(jid)
            alloc = self.allocations.get(jid)
            if job is None or alloc is None or alloc.placement != placement:
                return FREE, 0, EMPTY_PRIO, -math.inf, 0
            g = self.gpn[alloc.flavor]
            if jid >= 0 and alloc.gpus == g * len(placement):
                return jid, g, job.priority, job.run_start_s, queue_bit(job.queue_idx)
        return SHARED, 0, EMPTY_PRIO, -math.inf, 0

    def _summarize_gang(self, jid: int, placement: Placement, nodes: np.ndarray) -> bool:
        """Set or clear `nodes` (those of the placement that nothing touched later) with one
        array write each, when `_gang_writes` allows it and np_owner agrees on every node (which
        a victim search right after needs up to date anyway). False: summarize each node alone."""
        want, used, prio, start_s, queue = self._gang_writes(jid, placement)
        if want == SHARED or not (self.np_owner[nodes] == want).all():
            return False
        self._np_used[nodes] = used
        self._np_max_prio[nodes] = prio
        self._np_last_start[nodes] = start_s
        self._np_top_queues[nodes] = queue
        return True

    def _summarize_node(self, n: int) -> None:
        running = self.running
        used = 0
        top = EMPTY_PRIO
        queues = 0
        last = -math.inf
        for jid, k in self.node_jobs[n].items():
            r = running.get(jid)
            if r is None:
                continue
            used += k
            p = r.priority
            if p > top:
                top = p
                queues = queue_bit(r.queue_idx)
            elif p == top:
                queues |= queue_bit(r.queue_idx)
            last = max(last, r.run_start_s)
        self._np_used[n] = used
        self._np_max_prio[n] = top
        self._np_last_start[n] = last
        self._np_top_queues[n] = queues
