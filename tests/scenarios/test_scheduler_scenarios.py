"""Scheduler scenario tables: small fleets, a few jobs, placements and start times computed by
hand. Time-based cases run the twin (failures off, invariants checked after every event);
single-cycle cases call `schedule` directly and check that the state is left as it was.

Fleets: `tiny` is 2 pods x 4 nodes x 8 H100 (nodes 0-3 in pod 0, 4-7 in pod 1). H100-SXM5 runs
every kind at speed 1.0, so a job of `work_s` runs `work_s` seconds (plus checkpoint writes,
plus the restart overhead of 600 s after a preemption or failure).
"""

from __future__ import annotations

import heapq
from typing import Any

import pytest
from scenario_kit import (
    QUOTA,
    TINY,
    WIDE,
    _cycle,
    _job,
    _nodes,
    _pend,
    _run,
    _setup,
    _twin,
    _use,
)

from cortex.drive import runs
from cortex.fleet.topology import Topology
from cortex.scheduler.cycle import Policies
from cortex.scheduler.ordering import Fifo
from cortex.scheduler.reasons import Code
from cortex.scheduler.state import Placement
from cortex.sim.report import build_report
from cortex.workload.job import Job
from cortex.workload.states import JobState

# ---- FIFO, priority and EASY backfill over time (twin) --------------------------------------
# Each job: (id, gpus, work_s, submit_s, class). Expected: id -> (first start, end); -1 = never.
ORDER_JOBS = [(1, 64, 1000, 0, "normal"), (2, 32, 500, 1, "normal"), (3, 64, 100, 2, "normal"),
              (4, 32, 200, 3, "normal")]  # fmt: skip
CLASS_JOBS = [(1, 64, 500, 0, "normal"), (2, 64, 100, 1, "normal"),
              (3, 64, 100, 2, "production")]  # fmt: skip


@pytest.mark.parametrize(
    ("policy", "backfill", "jobs", "expected"),
    [
        # 1 holds everything until 1000. Then 2 (32) starts and 3 (64) is the blocked head,
        # reserved for 1500 when 2 ends; 4 (32 GPUs, 200 s) ends at 1200 <= 1500: backfilled.
        ("fifo", True, ORDER_JOBS,
         {1: (0, 1000), 2: (1000, 1500), 3: (1500, 1600), 4: (1000, 1200)}),
        # Without backfill 4 never jumps the head: it waits for 3.
        ("fifo", False, ORDER_JOBS,
         {1: (0, 1000), 2: (1000, 1500), 3: (1500, 1600), 4: (1600, 1800)}),
        # The priority profile lets the production job 3 go before the earlier normal job 2
        # (job 1 ends before it could be preempted: it runs 500 s < min_runtime 600 s).
        ("priority", True, CLASS_JOBS, {1: (0, 500), 2: (600, 700), 3: (500, 600)}),
        # FIFO ignores the class.
        ("fifo", True, CLASS_JOBS, {1: (0, 500), 2: (500, 600), 3: (600, 700)}),
    ],
    ids=["fifo-backfill", "fifo-no-backfill", "priority-class-first", "fifo-ignores-class"],
)  # fmt: skip
def test_order_and_backfill_over_time(
    policy: str, backfill: bool, jobs: list[tuple], expected: dict[int, tuple[float, float]]
) -> None:
    js = [_job(i, g, w, s, pc) for i, g, w, s, pc in jobs]
    tw = _twin(js, policy=policy, backfill=backfill)
    got = {j.id: (j.first_start_s, j.end_s) for j in js}
    assert got == expected
    assert all(j.state is JobState.COMPLETED for j in js)
    assert tw.metrics.preemptions == 0


def test_backfilled_job_history() -> None:
    js = [_job(i, g, w, s, pc) for i, g, w, s, pc in ORDER_JOBS]
    tw = _twin(js, policy="fifo", keep_history=True)
    assert [j.id for j in tw.completed] == [1, 4, 2, 3]
    assert [(t, s) for t, s, _ in js[3].history or []] == [
        (3.0, JobState.QUEUED), (1000.0, JobState.ADMITTED), (1000.0, JobState.RUNNING),
        (1200.0, JobState.COMPLETED)]  # fmt: skip


def test_backfill_never_delays_the_head_of_a_checkpointing_job() -> None:
    # 1 holds 56 GPUs until 1000; head 2 needs all 64, reserved for t=1000. Job 3 (8 GPUs,
    # 990 s of compute, a 10 s write every 200 s) is estimated to end at 992 but runs
    # 990 + 4 x 10 = 1030 s, to 1032: the head must still start at 1000.
    jobs = [
        _job(1, 56, 1000, 0),
        _job(2, 64, 100, 1),
        _job(3, 8, 990, 2, ckpt_write_s=10.0, ckpt_interval_s=200.0),
    ]
    _twin(jobs, policy="fifo")
    assert jobs[1].first_start_s == 1000.0


def test_fifo_single_gpu_jobs_match_list_scheduling() -> None:
    # 300 one-GPU jobs in bursts of 50 every 7 s: more than 64 wait, so the twin runs quick
    # passes between deep ones. FIFO on 64 identical GPUs is list scheduling: each job starts
    # when it has arrived and the earliest GPU is free.
    jobs = [_job(i, 1, 100 + (i * 37) % 91, (i // 50) * 7.0) for i in range(300)]
    tw = _twin(jobs, policy="fifo")
    free = [0.0] * 64
    expected = {}
    for j in jobs:
        t = max(heapq.heappop(free), j.submit_s)
        expected[j.id] = t
        heapq.heappush(free, t + j.work_s)
    assert {j.id: j.first_start_s for j in jobs} == expected
    assert len(tw.completed) == 300


# ---- gangs and topology best-fit in one cycle ------------------------------------------------
@pytest.mark.parametrize(
    ("topo", "used", "jobs", "starts", "blocked"),
    [
        # Node 0 has 3 free, node 4 has 5 free, node 5 none; whole: 1, 2, 3 (pod 0), 6, 7 (pod 1).
        # Jobs are placed in FIFO order, each seeing the ones before it.
        (TINY, {0: 5, 4: 3, 5: 8},
         [(1, 2), (2, 4), (3, 8), (4, 16), (5, 1), (6, 16), (7, 1), (8, 1)],
         {1: [0],  # fullest node that fits: node 0 (3 free) before node 4 (5 free)
          2: [4],  # node 0 now has 1 free: node 4
          3: [6],  # a whole node in the pod with the fewest free nodes (pod 1: 2)
          4: [1, 2],  # pod 0 (3 free) is the only pod that holds 2 nodes
          5: [0],  # node 0's last GPU
          6: [3, 7],  # one free node per pod: no pod holds it, so it spans pods
          7: [4]},  # node 4's last GPU
         {8: Code.INSUFFICIENT_CAPACITY}),  # nothing left
        # A 16-GPU gang takes two whole nodes of ONE pod: pod 1 (6, 7), never node 3 + one of pod 1.
        (TINY, {0: 8, 1: 8, 2: 8, 4: 8, 5: 1}, [(1, 16)], {1: [6, 7]}, {}),
        # The pod with the fewest free nodes that still holds it: pod 1 (2) over pod 0 (3).
        (TINY, {0: 8, 4: 8, 5: 8}, [(1, 16)], {1: [6, 7]}, {}),
        # 9 GPUs round up to two whole nodes.
        (TINY, {0: 8, 4: 8, 5: 8}, [(1, 9)], {1: [6, 7]}, {}),
        # A 40-GPU gang (5 nodes) stays in one pod when one holds it: the tighter one.
        (WIDE, {}, [(1, 40)], {1: [0, 1, 2, 3, 4]}, {}),
        (WIDE, {0: 8}, [(1, 40)], {1: [1, 2, 3, 4, 5]}, {}),  # pod 0: 5 free, pod 1: 6
        (WIDE, {0: 8, 1: 8, 6: 8, 7: 8}, [(1, 40)], {1: [2, 3, 4, 5, 8]}, {}),  # 4 + 4: spans
        # On tiny no pod holds 5 nodes: it always spans, as few pods as possible: all of pod 1
        # (4 free nodes), then one of pod 0's two.
        (TINY, {0: 8, 1: 8}, [(1, 40)], {1: [2, 4, 5, 6, 7]}, {}),
        # All or nothing: 48 GPUs free, no whole node, so no part of the gang starts.
        (TINY, dict.fromkeys(range(8), 2), [(1, 16), (2, 6)], {2: [0]},
         {1: Code.TOPOLOGY_UNAVAILABLE}),
    ],
    ids=["sequence", "gang-one-pod", "gang-tightest-pod", "gang-rounds-up", "wide-free",
         "wide-tightest", "wide-spans", "tiny-40-spans", "all-or-nothing"],
)  # fmt: skip
def test_placement_in_one_cycle(
    topo: Topology,
    used: dict[int, int],
    jobs: list[tuple[int, int]],
    starts: dict[int, list[int]],
    blocked: dict[int, Code],
) -> None:
    st, pend, pol = _setup(topo)
    _use(st, used)
    for jid, gpus in jobs:
        _pend(pend, jid, gpus, 10.0)
    plan = _cycle(st, pend, pol)
    assert _nodes(plan) == starts
    assert {j: r[0].code for j, r in plan.blockers.items()} == blocked
    for s in plan.starts:
        assert s.alloc_gpus == sum(k for _, k in s.placement) == max(s.gang_gpus, s.alloc_gpus)
        if s.gang_gpus > 8:
            assert all(k == 8 for _, k in s.placement)


# ---- EASY backfill in one cycle --------------------------------------------------------------
# Running: nodes 0-3 until t=1000, nodes 4-6 until t=5000; node 7 free. Head (id 1): 40 GPUs
# (or 32), 8 free: blocked, reserved for t=1000 when 32 more come back. Candidate: id 2, 8 GPUs.
@pytest.mark.parametrize(
    ("head", "now", "gpus", "work", "backfill", "expect"),
    [
        (40, 0.0, 8, 500.0, True, "start"),  # ends at 500 <= 1000
        (40, 0.0, 8, 1000.0, True, "start"),  # ends exactly at the reserved start
        (40, 0.0, 8, 1001.0, True, 1000.0),  # would delay the head
        (40, 0.0, 1, 5000.0, True, 1000.0),
        (40, 200.0, 8, 800.0, True, "start"),  # 200 + 800 = 1000
        (40, 200.0, 8, 801.0, True, 1000.0),
        (40, 0.0, 8, 500.0, False, 0.0),  # no backfill: nothing jumps a blocked head
        (40, 0.0, 1, 1.0, False, 0.0),
        (32, 0.0, 8, 5000.0, True, "start"),  # 40 free at t=1000 for a head of 32: 8 spare
    ],
)
def test_easy_backfill_table(
    *, head: int, now: float, gpus: int, work: float, backfill: bool, expect: str | float
) -> None:
    st, pend, _ = _setup()
    pol = Policies(ordering=Fifo(), backfill=backfill)
    _run(st, 101, ((0, 8), (1, 8), (2, 8), (3, 8)), end=1000.0)
    _run(st, 102, ((4, 8), (5, 8), (6, 8)), end=5000.0)
    _pend(pend, 1, head, 100.0)
    _pend(pend, 2, gpus, work)
    plan = _cycle(st, pend, pol, now=now)
    head_reason = plan.blockers[1][0]
    assert head_reason.code is Code.INSUFFICIENT_CAPACITY
    assert (head_reason.detail["need"], head_reason.detail["free"]) == (head, 8)
    if expect == "start":
        assert _nodes(plan) == {2: [7]}
    else:
        assert plan.starts == []
        (r,) = plan.blockers[2]
        assert r.code is Code.RESERVED_FOR_HEAD
        assert r.detail == {"head": 1, "shadow_s": expect, "flavor": "H100-SXM5"}
        assert r.message == f"would delay job 1 reserved to start at t={expect:.0f}s on H100-SXM5"


# ---- preemption over time (twin) -------------------------------------------------------------
# Job 1 (32 GPUs, pod 0) checkpoints every 200 s with 10 s writes; job 2 (32 GPUs, pod 1); both
# start at 0 for 10,000 s. Job 3 (16 GPUs, 1,000 s) arrives at `x_at`. Optional job 4 (64 GPUs)
# arrives at `poke_at`, only to make the twin run a cycle then. min_runtime_s is 600.
# At t=700 job 1 has done 3 periods of 210 s + 70 s: 600 s saved, 70 s lost. At t=650: 600 saved.
@pytest.mark.parametrize(
    ("c1", "c2", "c3", "x_at", "poke_at", "victim", "x_start", "done1", "restart1"),
    [
        # Production arrives after min_runtime: preempts at once; equal costs, pod 0 first.
        ("normal", "normal", "production", 700, None, 1, 700, 600, 1700),
        # Arrives at 300: victims too young; the twin wakes for the retry after the 300 s backoff
        # and preempts at 600 (2 periods of 210 s + 180 s: 400 s saved).
        ("normal", "normal", "production", 300, 650, 1, 600, 400, 1600),
        # Normal may preempt preemptible only.
        ("preemptible", "normal", "normal", 700, None, 1, 700, 600, 1700),
        ("normal", "preemptible", "normal", 700, None, 2, 700, 0, 0),
        # Never the same class.
        ("normal", "normal", "normal", 700, None, None, -1, 0, 0),
        ("production", "production", "production", 700, None, None, -1, 0, 0),
    ],
    ids=["prod-after-min-runtime", "prod-retry", "normal-vs-preemptible",
         "normal-vs-preemptible-pod1", "same-class-normal", "same-class-production"],
)  # fmt: skip
def test_preemption_over_time(
    *,
    c1: str,
    c2: str,
    c3: str,
    x_at: float,
    poke_at: float | None,
    victim: int | None,
    x_start: float,
    done1: float,
    restart1: float,
) -> None:
    # Victims that cannot checkpoint on the signal keep only their periodic checkpoints
    # (test_preemption_rule_decides_completion_times covers the ones that can).
    jobs = [
        _job(1, 32, 10_000, 0, c1, ckpt_write_s=10.0, ckpt_interval_s=200.0, ckpt_on_signal=False),
        _job(2, 32, 10_000, 0, c2, ckpt_on_signal=False),
        _job(3, 16, 1000, x_at, c3),
    ]
    if poke_at is not None:
        jobs.append(_job(4, 64, 100, poke_at, "normal"))
    tw = _twin(jobs)
    j1, j2, j3 = jobs[:3]
    assert j3.first_start_s == x_start
    assert tw.metrics.preemptions == (victim is not None)
    expected_preemptions = {None: (0, 0), 1: (1, 0), 2: (0, 1)}[victim]
    assert (j1.preemptions, j2.preemptions) == expected_preemptions
    if x_start >= 0:
        assert j3.end_s == x_start + 1000 and j3.state is JobState.COMPLETED
    assert j1.done_s == done1
    assert j2.done_s == 0.0  # no checkpoints: a preempted job 2 keeps nothing
    if victim == 1:
        # Back at 3's end, in pod 0, owing the 60 s preemption restart overhead; the work left takes
        # chunks of 200 s with a 10 s write between two chunks (9,400 s: 47 chunks, 46 writes).
        left = 10_000 - done1
        assert j1.run_start_s == restart1 and j1.state is JobState.RUNNING
        assert j1.run_overhead_s == 60.0
        assert j1.est_end_s == restart1 + 60 + left + 10 * (-(-left // 200) - 1)
        assert j1.restarts == 1
        # Lost: the compute since the last completed checkpoint (every 210 s of wall time).
        last_ckpt = (x_start // 210) * 210
        assert tw.metrics.rework_preempt_gpu_s == pytest.approx(32 * (x_start - last_ckpt))
    if victim == 2:
        assert tw.metrics.rework_preempt_gpu_s == pytest.approx(32 * x_start)  # all of it
    if victim is None:
        assert j1.run_start_s == 0.0 and j2.run_start_s == 0.0


def test_preempted_job_loses_exactly_the_work_since_its_last_checkpoint() -> None:
    # Job 1 checkpoints every 200 s (10 s writes) but not on the signal. Preempted at 700: it
    # did 600 + 70 s of compute, saved 600 s; 70 s x 32 GPUs is rework, 3 writes x 10 s x 32
    # GPUs were writes.
    jobs = [
        _job(1, 32, 10_000, 0, "normal", ckpt_write_s=10.0, ckpt_interval_s=200.0,
             ckpt_on_signal=False),
        _job(2, 32, 10_000, 0, "normal", ckpt_on_signal=False),
        _job(3, 16, 1000, 700, "production"),
    ]  # fmt: skip
    tw = _twin(jobs)
    m = tw.metrics
    assert jobs[0].done_s == 600.0
    assert m.rework_preempt_gpu_s == pytest.approx(32 * 70)
    # The second run starts at 1700 with the 60 s preemption restart overhead, then computes
    # 400 s to the horizon (2160): one 200 s chunk, one 10 s write, 190 s not yet saved.
    assert m.checkpoint_gpu_s == pytest.approx(32 * (3 * 10 + 10))
    assert m.restart_gpu_s == pytest.approx(32 * 60)
    # Work done but not yet saved at the horizon is productive too; in_progress says how much.
    assert m.in_progress_gpu_s == pytest.approx(32 * 190 + 32 * 2160)  # job 2 never saves
    assert m.productive_gpu_s == pytest.approx(
        32 * 600 + 16 * 1000 + 32 * 200 + m.in_progress_gpu_s
    )


@pytest.mark.parametrize(
    ("write_s", "on_signal", "x_end", "j1_done_at_stop", "j1_end", "writes_s", "rework_s"),
    [
        # Periods of 210 s (200 compute, 10 write). At 700: 3 periods done (600 s saved) and
        # 70 s computed. The signal's 10 s write fits the 30 s grace: 670 s kept; 3 (32 GPUs)
        # waits 10 s for it and ends at 700 + 10 + 1000 = 1710. 1 restarts then, owing 60 s:
        # 9,330 s left = 47 chunks, 46 writes: 1710 + 60 + 9330 + 460 = 11,560.
        # Writes: 3 + the signal's + 46, x 10 s.
        (10.0, True, 1710.0, 670.0, 11_560.0, 500.0, 0.0),
        # Cannot checkpoint on the signal: exits at once with its 600 s; 3 ends at 1700; 9,400
        # left = 47 chunks, 46 writes: 1700 + 60 + 9400 + 460 = 11,620. The 70 s are rework.
        (10.0, False, 1700.0, 600.0, 11_620.0, 490.0, 70.0),
        # Periods of 240 s (200 + 40). At 700: 2 periods (400 s saved), 200 s computed, 20 s into
        # the third write. The signal's 40 s write outlasts the grace: SIGKILL at 30 s, 400 s
        # kept, 200 s rework. 3 ends at 700 + 30 + 1000 = 1730; 1 has 9,600 left = 48 chunks,
        # 47 writes: 1730 + 60 + 9600 + 1880 = 13,270. Writes: 80 + 20 (cut) + 30 (killed) +
        # 47 x 40 = 2,010 s.
        (40.0, True, 1730.0, 400.0, 13_270.0, 2010.0, 200.0),
    ],
    ids=["checkpoints-on-signal", "cannot-checkpoint-on-signal", "write-outlasts-grace"],
)
def test_preemption_rule_decides_completion_times(
    write_s: float,
    on_signal: bool,
    x_end: float,
    j1_done_at_stop: float,
    j1_end: float,
    writes_s: float,
    rework_s: float,
) -> None:
    # 1 (normal, 32 GPUs) is the only possible victim: 2 is production. 3 (production, 32)
    # arrives at 700, past the minimum runtime, and can only take 1's four nodes.
    def make() -> list[Job]:
        return [
            _job(1, 32, 10_000, 0, "normal", ckpt_write_s=write_s, ckpt_interval_s=200.0,
                 ckpt_on_signal=on_signal),
            _job(2, 32, 10_000, 0, "production"),
            _job(3, 32, 1000, 700, "production"),
        ]  # fmt: skip

    early = make()
    _twin(early, days=1000 / 86_400)  # 1 waits in the queue at the horizon: what it kept
    assert early[0].done_s == j1_done_at_stop and early[0].state is JobState.REQUEUED
    jobs = make()
    tw = _twin(jobs, days=0.16)
    j1, j2, j3 = jobs
    m = tw.metrics
    assert m.preemptions == 1 and j1.preemptions == 1 and j2.preemptions == 0
    assert j3.first_start_s == 700.0 and j3.end_s == x_end
    assert j1.run_start_s == x_end and j1.run_overhead_s == 60.0
    assert j1.end_s == pytest.approx(j1_end) and j1.state is JobState.COMPLETED
    assert j2.end_s == 10_000.0
    assert m.checkpoint_gpu_s == pytest.approx(32 * writes_s)
    assert m.rework_preempt_gpu_s == pytest.approx(32 * rework_s)
    assert m.restart_gpu_s == pytest.approx(32 * 60)  # 3's wait is 1's write, not a restart
    assert m.unallocated_write_gpu_s == pytest.approx(0.0, abs=1e-9)  # 3 took all of 1's GPUs
    # Every job completed by the horizon: the makespan runs from the first submission (0) to
    # the last completion, 1's.
    jobs_report = build_report(tw)["jobs"]
    assert jobs_report["last_completion_s"] == pytest.approx(j1_end)
    assert jobs_report["makespan_s"] == pytest.approx(j1_end)


def test_production_job_preempts_once_victims_pass_min_runtime_without_other_events() -> None:
    jobs = [
        _job(1, 32, 10_000, 0, "normal"),
        _job(2, 32, 10_000, 0, "normal"),
        _job(3, 16, 1000, 300, "production"),
    ]
    _twin(jobs)
    # At 300 both victims have run 300 s < min_runtime_s (600): the search fails and job 3 backs
    # off by max(600 / 2, backfill interval 60) = 300 s, to 300 + 300 = 600, a tick on the 60 s
    # grid. No other event happens in between (jobs 1 and 2 end at 10,000). At 600 both have
    # run 600 s: equal victims (normal, 32 GPUs), the first pod (job 1) goes.
    assert jobs[2].first_start_s == 600.0
    assert jobs[2].end_s == 600.0 + 1000.0
    assert (jobs[0].preemptions, jobs[1].preemptions) == (1, 0)


def test_a_failed_search_retries_when_the_only_victims_protection_ends(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Issue 11: the twin's doubling backoff ran past the victim's protection end (the control
    # plane retried there). 1 (normal, 32 GPUs, pod 0; checkpoints every 200 s, 10 s writes,
    # also on the signal) is the only possible victim: 2 is production. 3 (production, 32)
    # arrives at 100, while 1 is protected (min_runtime_s 600, to t=600).
    jobs = [
        _job(1, 32, 10_000, 0, "normal", ckpt_write_s=10.0, ckpt_interval_s=200.0),
        _job(2, 32, 10_000, 0, "production"),
        _job(3, 32, 1000, 100, "production"),
    ]
    searches: list[float] = []  # when a search failed
    backoff = runs.preempt_backoff

    def spy(job: Job, now: float, *args: Any) -> float:
        searches.append(now)
        return backoff(job, now, *args)

    monkeypatch.setattr(runs, "preempt_backoff", spy)
    _twin(jobs)
    j1, j2, j3 = jobs
    # At 100 the search fails; the backoff, max(600 / 2, 60) = 300 s, is sooner than the
    # protection end: next try 400, woken on the 60 s grid at 420. It fails again; the backoff
    # doubles to 600 s (1020) but the protection ends at 600, so the next search is then. (The
    # doubling alone started 3 at 1020.)
    assert searches == [100.0, 420.0]
    assert j3.first_start_s == 600.0 and j1.preemptions == 1 and j2.preemptions == 0
    # 1 ran 2 periods of 210 s and 180 s more: its 10 s write on the signal fits the 30 s
    # grace (580 s kept) and 3 waits for it: 600 + 10 + 1000.
    assert j3.run_wait_s == 10.0 and j3.end_s == 1610.0
    assert j1.run_start_s == 1610.0 and j1.done_s == 580.0


def test_victim_of_equal_size_is_the_lowest_priority_one() -> None:
    jobs = [
        _job(1, 32, 10_000, 0, "normal"),
        _job(2, 32, 10_000, 0, "preemptible"),
        _job(3, 16, 1000, 700, "production"),
    ]
    _twin(jobs)
    assert (jobs[0].preemptions, jobs[1].preemptions) == (0, 1)


# ---- reclaim of borrowed quota in one cycle --------------------------------------------------

C_GANG = (((6, 8), (7, 8)),)  # c: one 16-GPU job
C_SMALL = (((6, 4),), ((7, 4),))  # c: two 4-GPU jobs


@pytest.mark.parametrize(
    ("c_jobs", "now", "gpus", "victims", "nodes", "code"),
    [
        # a borrows 16 beyond its 32; c is at its nominal 16. b (nominal 16, no borrowing)
        # reclaims 16 GPUs: the cheapest eligible victim is a's 16-GPU job on nodes 4, 5.
        (C_GANG, 1000.0, 16, [102], [4, 5], None),
        (C_GANG, 1000.0, 8, [102], [4], None),
        # c runs two 4-GPU jobs (within its quota, so not victims) on nodes 6 and 7.
        (C_SMALL, 1000.0, 16, [102], [4, 5], None),
        (C_GANG, 500.0, 16, [], [], Code.INSUFFICIENT_CAPACITY),  # a's jobs ran < 600 s
    ],
)
def test_reclaim_table(
    *,
    c_jobs: tuple[Placement, ...],
    now: float,
    gpus: int,
    victims: list[int],
    nodes: list[int],
    code: Code | None,
) -> None:
    pol = Policies()
    st, pend, _ = _setup(QUOTA, pol, ("a", "b", "c"))
    _run(st, 101, ((0, 8), (1, 8), (2, 8), (3, 8)), team=0)
    _run(st, 102, ((4, 8), (5, 8)), team=0)
    for i, placement in enumerate(c_jobs):
        _run(st, 103 + i, placement, team=2)
    job = _pend(pend, 1, gpus, 100.0, team=1)
    plan = _cycle(st, pend, pol, now=now)
    assert [p.job.id for p in plan.preemptions] == victims
    if code is None:
        assert _nodes(plan) == {1: nodes}
        assert all(p.reason.detail["by"] == 1 for p in plan.preemptions)
    else:
        assert plan.starts == [] and plan.blockers[job.id][0].code is code
        assert plan.preempt_failed == [1]


@pytest.mark.parametrize(
    ("b_prio", "now", "victims", "nodes"),
    [
        (100, 1000.0, [101], [0, 1]),  # reclaim: a's 16-GPU job on nodes 0, 1
        (100, 599.0, [], []),  # a's jobs have run less than min_runtime_s
        (1000, 1000.0, [101], [0, 1]),  # a higher class needs no reclaim; same cheapest block
    ],
)
def test_reclaim_from_the_queue_that_borrows(
    b_prio: int, now: float, victims: list[int], nodes: list[int]
) -> None:
    # a (32 nominal) holds 48: 16 on nodes 0, 1 and 32 on nodes 2-5; c holds its 16 on 6, 7.
    pol = Policies()
    st, pend, _ = _setup(QUOTA, pol, ("a", "b", "c"))
    _run(st, 101, ((0, 8), (1, 8)), team=0)
    _run(st, 102, ((2, 8), (3, 8), (4, 8), (5, 8)), team=0)
    _run(st, 103, ((6, 8), (7, 8)), team=2)
    _pend(pend, 1, 16, 100.0, team=1, prio=b_prio)
    plan = _cycle(st, pend, pol, now=now)
    assert [p.job.id for p in plan.preemptions] == victims
    assert _nodes(plan) == ({1: nodes} if nodes else {})
