"""A placement of a gang of several nodes that power admission refused is kept with the state
version across passes (`_Cycle.keep_refused`, read by `_Cycle.place`, scheduler/cycle.py; the
memo `Capacity.placed`): such a gang (the ramp window) is placed again, the same way, at each
pass until the state moves.
Through random starts, stops, cordons, downs and statements rolled back, every answer must be
what the placement policy says of the state then, for each policy asked."""

from __future__ import annotations

import random

import pytest

import testkit
from cortex.scheduler.cycle import Policies, _Cycle
from cortex.scheduler.ordering import Fifo
from cortex.scheduler.placement import TopologyBestFit, alloc_size
from cortex.scheduler.reasons import Reason
from cortex.scheduler.snapshot import Snapshot
from cortex.scheduler.state import ClusterState, Placement
from cortex.scheduler.statement import Statement
from cortex.workload.job import Job


class _Reversed:
    """Another placement policy: the same nodes, listed backwards (a different answer)."""

    name = "reversed"

    def place(self, state: ClusterState, flavor: int, gpus: int) -> Placement | None:
        got = TopologyBestFit().place(state, flavor, gpus)
        return None if got is None else tuple(reversed(got))


def _cycle(st: ClusterState, pending: object, pol: Policies) -> _Cycle:
    snap = Snapshot(0.0, st, pending, lambda k, f: 1.0, lambda j, f, g: 3600.0)  # type: ignore[arg-type]
    return _Cycle(snap, pol, True)


@pytest.mark.parametrize("seed", range(6))
def test_a_kept_placement_is_what_the_policy_says_of_the_state_now(seed: int) -> None:
    rng = random.Random(seed)
    st, pending, _ = testkit.setup_cycle(testkit.MIXED)
    pols = [Policies(ordering=Fifo()), Policies(ordering=Fifo(), placement=_Reversed())]
    fresh: list[TopologyBestFit | _Reversed] = [TopologyBestFit(), _Reversed()]
    running: list[Job] = []
    jid = 0
    kept = 0  # answers handed back from the memo (the same object as the last answer)
    last: dict[tuple[int, int, int], object] = {}
    cycles = [_cycle(st, pending, p) for p in pols]
    for _ in range(400):
        op = rng.random()
        if op < 0.25:  # a start where the policy places it
            f = rng.randrange(len(st.gpn))
            gang = rng.choice([1, 3, st.gpn[f], st.gpn[f] + 1, 2 * st.gpn[f], 3 * st.gpn[f]])
            p = TopologyBestFit().place(st, f, gang)
            if p is not None:
                jid += 1
                running.append(testkit.running_job(st, jid, p))
        elif op < 0.4 and running:
            job = running.pop(rng.randrange(len(running)))
            st.stop(job, job.queue_idx)
        elif op < 0.47:
            n = rng.randrange(len(st.node_up))
            (st.cordon if rng.random() < 0.5 else st.uncordon)(n)
        elif op < 0.52:
            n = rng.randrange(len(st.node_up))
            if st.node_up[n] and not st.node_jobs[n] and rng.random() < 0.5:
                st.set_down(n)
            else:
                st.set_up(n)
        elif op < 0.6:  # a pass's tentative start, rolled back
            stmt = Statement(st)
            f = rng.randrange(len(st.gpn))
            p = TopologyBestFit().place(st, f, rng.choice([2 * st.gpn[f], 1]))
            if p is not None:
                jid += 1
                job = Job(jid, f"t{jid}", st.queues.queues[0].name, sum(k for _, k in p), 1e6)
                job.queue_idx = 0
                stmt.allocate(job, f, p)
                stmt.rollback()
        elif op < 0.7:  # a new pass (the memo outlives it)
            cycles = [_cycle(st, pending, p) for p in pols]
        for _ in range(4):
            f = rng.randrange(len(st.gpn))
            g = st.gpn[f]
            # 12 and 16 GPUs: several nodes on either flavor (8 and 4 GPUs a node)
            gang = rng.choice([1, g, g + 1, 2 * g, 3 * g, 4 * g + 2, 6 * g, 12, 16, 16])
            i = rng.randrange(len(pols))
            got = cycles[i].place(f, gang, alloc_size(gang, g))
            want = fresh[i].place(st, f, gang)
            if want is None:
                assert isinstance(got, Reason), (seed, f, gang)
            else:
                assert got == want, (seed, f, gang, i)
                assert not isinstance(got, Reason)
                key = (i, f, gang)
                kept += got is last.get(key) and gang > g
                last[key] = got
                if gang > g and rng.random() < 0.7:  # power admission refused it
                    cycles[i].keep_refused(f, gang, got)
    assert kept >= 10, kept  # the memo was read, across passes too
