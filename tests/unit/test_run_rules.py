"""drive/runs.py: the one backoff formula, how a run's end is judged and what is final, with
each driver's numbers read from drive/data/run_rules.csv."""

from __future__ import annotations

import pytest

from cortex.drive import runs
from cortex.workload.job import Job
from cortex.workload.states import JobState

RULES = runs.RunRules(preempt_backoff_max_s=1000.0, preempt_backoff_min_runtime_frac=0.5)


def _job() -> Job:
    return Job(1, "j", "a", 8, 3600.0)


def test_preempt_backoff_doubles_from_the_floor_to_the_cap() -> None:
    job = _job()
    # Floor: max(min_runtime 300 * 0.5 = 150, interval 60) = 150; then 300, 600, capped 1000.
    waits = []
    for now in (0.0, 10.0, 20.0, 30.0, 40.0):
        next_try = runs.preempt_backoff(job, now, 300.0, 60.0, RULES)
        waits.append(job.preempt_backoff_s)
        assert next_try == job.next_preempt_try_s == now + job.preempt_backoff_s
    assert waits == [150.0, 300.0, 600.0, 1000.0, 1000.0]


def test_the_pass_interval_is_the_floor_when_the_minimum_runtime_share_is_shorter() -> None:
    job = _job()
    runs.preempt_backoff(job, 5.0, 0.0, 0.2, RULES)  # max(0 * 0.5, 0.2) = 0.2
    assert (job.preempt_backoff_s, job.next_preempt_try_s) == (0.2, 5.2)


def test_a_protection_end_brings_the_next_search_forward_and_keeps_the_doubling() -> None:
    job = _job()
    # Backoff 150 s from t=100 would retry at 250; a victim's protection ends at 180.
    assert runs.preempt_backoff(job, 100.0, 300.0, 60.0, RULES, retry_by_s=180.0) == 180.0
    assert (job.preempt_backoff_s, job.next_preempt_try_s) == (150.0, 180.0)
    # A protection ending after the backoff changes nothing; the doubling went on (300 s).
    assert runs.preempt_backoff(job, 200.0, 300.0, 60.0, RULES, retry_by_s=900.0) == 500.0


def test_beginning_a_run_clears_the_preempt_backoff() -> None:
    job = _job()
    runs.preempt_backoff(job, 0.0, 300.0, 60.0, RULES)
    runs.begin(job, 50.0, 1, 8, 8, 900.0)
    assert (job.preempt_backoff_s, job.next_preempt_try_s) == (0.0, 0.0)
    assert (job.run_start_s, job.run_flavor, job.run_gpus, job.est_end_s) == (50.0, 1, 8, 900.0)


def test_each_driver_reads_its_own_named_rows_once() -> None:
    twin, control = runs.rules("twin"), runs.rules("control")
    assert runs.rules("twin") is twin  # loaded once
    # The two drivers' caps are two rows of one file, not two constants in code.
    assert twin.preempt_backoff_max_s != control.preempt_backoff_max_s
    assert control.retry_backoff_base_s <= control.retry_backoff_max_s
    assert isinstance(control.max_exit75_requeues, int)
    # The retry rule's numbers are shared rows: one default for both drivers.
    assert (twin.max_retries, twin.retry_backoff_base_s, twin.retry_backoff_max_s) == (
        control.max_retries, control.retry_backoff_base_s, control.retry_backoff_max_s
    )  # fmt: skip
    assert isinstance(twin.max_retries, int) and twin.max_retries >= 1


def test_a_default_both_drivers_share_is_one_row_each_reads() -> None:
    """The 30 s grace was written twice (sim/data/defaults.csv and control/settings.py): one
    could change without the other, and the twin would no longer model the live cluster's
    preemptions. Now one `both.` row that each driver and the settings read."""
    from cortex.control.settings import Settings
    from cortex.sim.failures import load_defaults

    twin, control = runs.rules("twin"), runs.rules("control")
    assert twin.preempt_grace_s == control.preempt_grace_s == Settings().grace_s == 30.0
    assert "preempt_grace_s" not in load_defaults()  # no second copy


def test_the_preemption_floors_differ_on_purpose_each_with_its_row() -> None:
    """The control plane's 60 s floor is a row with its source and why; the fleet files' 600 s
    (the twin's) stays in the fleet layer, which reads no driver's data: the row says why."""
    import csv
    from importlib import resources

    from cortex.control.settings import Settings
    from cortex.fleet.spec import QueuesSpec

    assert Settings().min_runtime_s == runs.rules("control").min_runtime_s == 60.0
    assert QueuesSpec.model_fields["min_runtime_s"].default == 600.0
    text = resources.files("cortex.drive").joinpath("data/run_rules.csv").read_text()
    rows = {r["name"]: r for r in csv.DictReader(text.splitlines())}
    for name in ("shared.preempt_grace_s", "control.min_runtime_s"):
        assert rows[name]["source"] and rows[name]["why"], name
    assert "600 s" in rows["control.min_runtime_s"]["source"]


def test_retry_backoff_doubles_and_caps() -> None:
    assert [runs.retry_backoff_s(n, 1.0, 5.0) for n in range(5)] == [0.0, 1.0, 2.0, 4.0, 5.0]
    assert runs.retry_backoff_s(3, 0.0, 5.0) == 0.0  # base 0: retry at once


NODE = runs.NODE_FAILURE_REQUEUE
SELF = runs.SELF_REQUEUE
U75 = {"exit75_unasked": True}
CLUSTER = runs.CLUSTER_FAILURE_REQUEUE
LIMITS = runs.RetryLimits(max_retries=2, base_s=10.0, max_s=1000.0, max_exit75=3)


@pytest.mark.parametrize(
    ("outcome", "kw", "state", "requeue", "delay"),
    [
        ("completed", {}, JobState.COMPLETED, None, 0.0),
        ("cancelled", {}, JobState.CANCELLED, None, 0.0),
        ("failed", {"cancel_requested": True}, JobState.CANCELLED, None, 0.0),
        # Failure 1 of 2 retries: 10 s; failure 2: 20 s; failure 3: out of retries, final.
        ("failed", {}, JobState.FAILED, "retry 1 of 2", 10.0),
        ("failed", {"failures": 1}, JobState.FAILED, "retry 2 of 2", 20.0),
        ("failed", {"failures": 2}, JobState.FAILED, None, 0.0),
        ("preempted", {}, JobState.PREEMPTED, "back to queue after preemption", 0.0),
        # The 3rd unasked exit 75 in a row waits 10 * 2^2 = 40 s; the 4th is over the limit of 3.
        ("preempted", {**U75, "self_requeues": 2}, JobState.PREEMPTED, f"{SELF} (3)", 40.0),
        ("preempted", {**U75, "self_requeues": 3}, JobState.FAILED, None, 0.0),
        # Only an unasked exit 75 counts, and the count before it alone is no verdict.
        ("preempted", {"self_requeues": 3}, JobState.PREEMPTED, runs.BACK_AFTER_PREEMPTION, 0),
        # Blamed on a node: requeued at once, however many retries were spent, none spent.
        ("failed", {"blame": "node"}, JobState.FAILED, runs.NODE_FAILURE_REQUEUE, 0.0),
        ("failed", {"failures": 2, "blame": "node"}, JobState.FAILED, NODE, 0.0),
        ("failed", {"blame": "node", "cancel_requested": True}, JobState.CANCELLED, None, 0.0),
        # The executor's cluster lost the run (the Ray head): the same, naming no node.
        ("failed", {"blame": "cluster"}, JobState.FAILED, runs.CLUSTER_FAILURE_REQUEUE, 0.0),
        ("failed", {"failures": 2, "blame": "cluster"}, JobState.FAILED, CLUSTER, 0.0),
        ("failed", {"blame": "cluster", "cancel_requested": True}, JobState.CANCELLED, None, 0),
    ],
)
def test_judging_a_runs_end(
    outcome: str, kw: dict, state: JobState, requeue: str | None, delay: float
) -> None:
    args = {"cancel_requested": False, "failures": 0, "blame": "job", **kw}
    v = runs.judge_exit(outcome, "detail", limits=LIMITS, **args)
    assert (v.state, v.requeue, v.delay_s) == (state, requeue, delay)
    # Only the job's own failure spends a retry.
    spends = outcome == "failed" and not kw.get("cancel_requested") and args["blame"] == "job"
    assert v.count_failure == spends
    assert v.final == (requeue is None)
    assert runs.is_final(v.state) or not v.final  # a final verdict leaves a final state


def test_over_the_exit75_limit_the_detail_says_so_and_no_retry_is_counted() -> None:
    v = runs.judge_exit(
        "preempted", "exit 75", cancel_requested=False, exit75_unasked=True, self_requeues=3,
        failures=0, limits=LIMITS, blame="job",
    )  # fmt: skip
    assert v.detail == f"exit 75 ({SELF} 4 times in a row without a checkpoint; limit 3)"
    assert v.final and v.self_requeues == 4
    assert not v.count_failure and not v.count_preemption


def test_a_run_that_kept_work_resets_the_failures_in_a_row_before_it_is_judged() -> None:
    """`failures` is the count in a row: a checkpoint later than the run's start sets it to 0
    first, so the job's own failure after such a run is retry 1 again; a checkpoint from
    before the run (an earlier attempt's), at its start, or none, keeps it, and the count
    past max_retries (2) fails the job."""
    args = {"cancel_requested": False, "failures": 2, "blame": "job"}
    kept = runs.judge_exit(
        "failed", "d", limits=LIMITS, run_start_s=100.0, last_checkpoint_s=100.5, **args
    )
    assert (kept.requeue, kept.delay_s, kept.in_a_row, kept.count_failure) == (
        "retry 1 of 2", 10.0, 1, True,
    )  # fmt: skip
    for ckpt in (None, 50.0, 100.0):
        v = runs.judge_exit("failed", "d", limits=LIMITS, run_start_s=100.0,
                            last_checkpoint_s=ckpt, **args)  # fmt: skip
        assert (v.final, v.in_a_row) == (True, 3)
    # Unknown start: nothing proves progress.
    v = runs.judge_exit("failed", "d", limits=LIMITS, last_checkpoint_s=1e9, **args)
    assert v.final
    # A run blamed on a node or the cluster, or preempted, spends none; its progress resets.
    for outcome, blame in (("failed", "node"), ("failed", "cluster"), ("preempted", "job")):
        a = {**args, "blame": blame}
        v = runs.judge_exit(
            outcome, "d", limits=LIMITS, run_start_s=0.0, last_checkpoint_s=1.0, **a
        )
        assert (v.final, v.in_a_row, v.count_failure) == (False, 0, False)
        v = runs.judge_exit(outcome, "d", limits=LIMITS, run_start_s=0.0, **a)
        assert (v.final, v.in_a_row) == (False, 2)
    assert runs.failures_in_a_row(5, 10.0, 11.0) == 0
    assert runs.failures_in_a_row(5, 10.0, 10.0) == 5
    assert runs.failures_in_a_row(5, None, 11.0) == 5


def test_finality() -> None:
    final = {s for s in JobState if runs.is_final(s)}
    assert final == {JobState.COMPLETED, JobState.REJECTED, JobState.CANCELLED, JobState.FAILED}
    assert {s for s in JobState if runs.unfinished(s)} == {
        JobState.QUEUED,
        JobState.REQUEUED,
        JobState.ADMITTED,
        JobState.RUNNING,
    }


def test_only_a_preemption_for_another_job_counts_toward_the_budget() -> None:
    """The one eviction rule the twin, the loop and the start estimator share."""
    from cortex.scheduler.reasons import Code

    job = _job()
    for code in (Code.PREEMPTED, Code.POWER_CAP, Code.PREEMPTED, Code.POWER_RAMP):
        runs.evicted(job, code)
    assert job.evictions == 2


def test_the_control_planes_max_retries_is_the_shared_row_and_the_variable_overrides_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from cortex.control.settings import Settings

    monkeypatch.delenv("CORTEX_MAX_RETRIES", raising=False)
    assert Settings().max_retries == runs.rules("twin").max_retries == 2
    monkeypatch.setenv("CORTEX_MAX_RETRIES", "7")
    assert Settings().max_retries == 7


def test_a_checkpoint_stamped_after_the_runs_end_is_no_progress() -> None:
    """A checkpoint later than the run's end (a job's clock ahead, a bogus report) is not
    this run's work: it would stay the newest checkpoint known and reset the count at every
    later failure. Within [start, end] it still resets it; at the end itself too."""
    args = {"cancel_requested": False, "failures": 2, "blame": "job"}
    for ckpt, final in ((100.5, False), (200.0, False), (200.5, True), (1e11, True)):
        v = runs.judge_exit(
            "failed", "d", limits=LIMITS, run_start_s=100.0, last_checkpoint_s=ckpt,
            run_end_s=200.0, **args,
        )  # fmt: skip
        assert v.final is final, ckpt
    assert runs.failures_in_a_row(5, 10.0, 11.0, 12.0) == 0
    assert runs.failures_in_a_row(5, 10.0, 13.0, 12.0) == 5
    assert not runs.kept_work(10.0, 13.0, 12.0) and runs.kept_work(10.0, 13.0)


@pytest.mark.parametrize(
    ("why", "delay_s", "reason", "read_back"),
    [
        ("retry 1 of 2", 1.0, "retry 1 of 2; retry in 1 s", 1.0),
        ("retry 2 of 2", 300.0, "retry 2 of 2; retry in 300 s", 300.0),
        ("retry 1 of 2", 0.25, "retry 1 of 2; retry in 0.25 s", 0.25),
        (runs.NODE_FAILURE_REQUEUE, 0.0, runs.NODE_FAILURE_REQUEUE, None),  # at once: no delay
    ],
)
def test_a_requeues_reason_names_its_delay_in_one_wording_read_back_by_recovery(
    why: str, delay_s: float, reason: str, read_back: float | None
) -> None:
    """Both drivers record a requeue with requeue_reason; the control plane's recovery reads
    the delay back with retry_delay_s (a restart does not cut it short)."""
    assert runs.requeue_reason(why, delay_s) == reason
    assert runs.retry_delay_s(reason) == read_back


@pytest.mark.parametrize("reason", ["", "retry in 5 s", "x; retry in s", "x; retry in 1e+- s"])
def test_a_reason_naming_no_delay_reads_as_none(reason: str) -> None:
    assert runs.retry_delay_s(reason) is None


def test_self_requeues_are_counted_in_a_row_and_reset_by_a_run_that_kept_work() -> None:
    """An unasked exit 75 after a checkpoint within the run is the 1st again (mend17: they
    counted over the job's life); without one it adds to the count, and over the limit (3)
    the job fails for good. A failure or a node's in between neither adds nor resets."""
    a = {"cancel_requested": False, "failures": 0, "blame": "job", "limits": LIMITS}
    kept = runs.judge_exit(
        "preempted",
        "d",
        exit75_unasked=True,
        self_requeues=3,
        run_start_s=10.0,
        last_checkpoint_s=11.0,
        run_end_s=20.0,
        **a,
    )
    assert (kept.final, kept.requeue, kept.self_requeues) == (False, f"{SELF} (1)", 1)
    kept_none = runs.judge_exit(
        "preempted",
        "d",
        exit75_unasked=True,
        self_requeues=3,
        run_start_s=10.0,
        last_checkpoint_s=9.0,
        run_end_s=20.0,
        **a,
    )
    assert (kept_none.final, kept_none.self_requeues) == (True, 4)
    for outcome, blame in (("failed", "job"), ("failed", "node"), ("completed", "job")):
        v = runs.judge_exit(outcome, "d", self_requeues=2, **{**a, "blame": blame})
        assert v.self_requeues == 2
    v = runs.judge_exit("failed", "d", self_requeues=2, run_start_s=0.0, last_checkpoint_s=1.0,
                        **a)  # fmt: skip
    assert v.self_requeues == 0
