"""Runs, written once for both drivers: beginning a run, requeueing a job, the backoffs between
tries (a victim search that found none, a failed run), how a run's end is judged, and whether
a job is final. The numbers are rows of `data/run_rules.csv`, loaded once: `shared.*` rows hold
for both drivers; where the twin and the control plane differ they are two named rows
(`twin.*`, `control.*`), never constants in code.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Literal

from cortex.scheduler.reasons import Code
from cortex.workload.job import Job
from cortex.workload.states import PENDING, TERMINAL, JobState

Driver = Literal["twin", "control"]
# Whom a failed run is blamed on: a node (lost, or named by the executor: infrastructure), the
# executor's cluster as a whole (the Ray head lost: infrastructure naming no node) or the job
# itself (its own code, its software stack). judge_exit charges only the job's own failures.
Blame = Literal["node", "cluster", "job"]
NODE_FAILURE_REQUEUE = "requeued after a node failure (no retry spent)"
BACK_AFTER_PREEMPTION = "back to queue after preemption"
CLUSTER_FAILURE_REQUEUE = "requeued after a cluster failure (no retry spent)"
# The bound on max_retries, for CORTEX_MAX_RETRIES and `cortex sim --max-retries` alike.
MAX_RETRIES_LIMIT = 1000

#: States a job leaves without anyone asking (waiting, placed, running).
UNFINISHED: frozenset[JobState] = PENDING | {JobState.ADMITTED, JobState.RUNNING}
UNFINISHED_VALUES: tuple[str, ...] = tuple(sorted(s.value for s in UNFINISHED))

# The reason recorded for an exit 75 that no stop request asked for (a self-requeue).
SELF_REQUEUE = "exited 75 without a stop request"


@dataclass(frozen=True)
class RunRules:
    """One driver's rows of data/run_rules.csv."""

    preempt_backoff_max_s: float
    preempt_backoff_min_runtime_frac: float
    retry_backoff_base_s: float = 0.0
    retry_backoff_max_s: float = 0.0
    max_exit75_requeues: int = 0
    preempt_grace_s: float = 0.0  # shared.* (every driver's `rules()` has the file's)
    min_runtime_s: float = 0.0  # control.* only: the twin's queues take their fleet file's
    max_retries: int = 0
    fallback_checkpoint_interval_s: float = 0.0  # shared.*: drive/run_estimate.interval_s


@cache
def _table() -> dict[str, float]:
    text = resources.files("cortex.drive").joinpath("data/run_rules.csv").read_text()
    return {row["name"]: float(row["value"]) for row in csv.DictReader(text.splitlines())}


@cache
def rules(driver: Driver) -> RunRules:
    """The run rules of one driver (the shared rows, then its own), read once."""
    rows: dict[str, float | int] = {}
    for prefix in ("shared.", f"{driver}."):
        rows |= {k.split(".", 1)[1]: v for k, v in _table().items() if k.startswith(prefix)}
    for count in ("max_exit75_requeues", "max_retries"):
        if count in rows:
            rows[count] = int(rows[count])
    return RunRules(**rows)  # type: ignore[arg-type]


def is_final(state: JobState | str) -> bool:
    """Will the job never run again? Completed, rejected and cancelled jobs are; a job left
    failed (no retry left: a retried run is requeued in the same step) is too."""
    st = JobState(state)
    return st in TERMINAL or st is JobState.FAILED


def unfinished(state: JobState | str) -> bool:
    """Is the job still to run, or running (a driver's mirror holds it)?"""
    return state in UNFINISHED_VALUES


# ---- beginning and ending runs ----------------------------------------------------------------
def begin(job: Job, now: float, flavor: int, gang: int, alloc: int, est_end_s: float) -> None:
    """A run starts (or is admitted to start) now: where and how big, when it should end; a new
    run owes no victim search."""
    job.run_flavor = flavor
    job.run_gpus = gang
    job.alloc_gpus = alloc
    job.run_start_s = now
    job.est_end_s = est_end_s
    job.preempt_backoff_s = 0.0
    job.next_preempt_try_s = 0.0


def evicted(job: Job, code: Code) -> None:
    """A plan takes the job's run away. Only a preemption for a more important job counts
    toward its queue's preemption budget; a stop for power or a drain does not."""
    if code is Code.PREEMPTED:
        job.evictions += 1


def requeued(job: Job) -> None:
    """A run ended and the job waits again: one restart more, and estimates made for its old
    remaining work are stale."""
    job.restarts += 1
    job.est_cache = None
    job.est_gang_s = None


# ---- backoffs ----------------------------------------------------------------------------------
def preempt_backoff(
    job: Job,
    now: float,
    min_runtime_s: float,
    interval_s: float,
    r: RunRules,
    retry_by_s: float | None = None,
) -> float:
    """A victim search for `job` found none: wait before the next one. The wait doubles from
    the driver's pass interval (or a share of the minimum runtime that protects victims, if
    longer: the shortest of the queues', as a victim of that queue is free soonest) up to the
    driver's cap, but the next search comes no later than `retry_by_s` when given (when the
    protected victims could hold the job: drive/protection.py's `retry_by_s`, which both
    drivers pass; the doubling knows nothing of it, and a job waited up to the cap past that
    moment). Returns when the next search may run."""
    job.preempt_backoff_s = min(
        max(
            job.preempt_backoff_s * 2,
            min_runtime_s * r.preempt_backoff_min_runtime_frac,
            interval_s,
        ),
        r.preempt_backoff_max_s,
    )
    job.next_preempt_try_s = now + job.preempt_backoff_s
    if retry_by_s is not None:
        job.next_preempt_try_s = min(job.next_preempt_try_s, retry_by_s)
    return job.next_preempt_try_s


# How a requeue's reason says its delay, for users and for the control plane's recovery (which
# reads it back from the job's last transition, so a restart does not cut the delay short).
_RETRY_IN = re.compile(r"; retry in ([0-9][0-9.e+-]*) s$")


def requeue_reason(why: str, delay_s: float) -> str:
    """The reason a requeue is recorded with, in both drivers: the verdict's (`Verdict.requeue`)
    and, when the job waits a delay first, "; retry in X s"."""
    return f"{why}; retry in {delay_s:g} s" if delay_s > 0 else why


def retry_delay_s(reason: str) -> float | None:
    """The delay a requeue's reason names (`requeue_reason`), or None if it names none."""
    found = _RETRY_IN.search(reason)
    if found is None:
        return None
    try:
        return float(found.group(1))
    except ValueError:  # "1e+-" and the like: the pattern is loose
        return None


def retry_backoff_s(n: int, base_s: float, max_s: float) -> float:
    """Delay before the n-th retry (n >= 1): base, 2 base, 4 base, ... capped at max_s."""
    if n < 1 or base_s <= 0:
        return 0.0
    return min(max_s, base_s * 2.0 ** min(n - 1, 60))


# ---- how a run's end is judged ----------------------------------------------------------------
@dataclass(frozen=True)
class RetryLimits:
    """A driver's retry settings (data/run_rules.csv's shared defaults; the control plane's
    settings and `cortex sim --max-retries` override)."""

    max_retries: int
    base_s: float
    max_s: float
    max_exit75: int


@dataclass(frozen=True)
class Verdict:
    """What a run's end does to its job: the state it moves to, what is counted, and whether
    (and after what delay, with what reason) it is requeued; `requeue` None: final."""

    state: JobState
    detail: str
    requeue: str | None = None
    delay_s: float = 0.0
    count_preemption: bool = False
    count_failure: bool = False  # the run spends one of the job's retries (its own failure)
    # The job's failures in a row without progress after this run (`failures_in_a_row`): the
    # retries it has spent; the driver stores it beside its total of failures.
    in_a_row: int = 0
    # Its self-requeues (unasked exits 75) in a row without progress after this run.
    self_requeues: int = 0

    @property
    def final(self) -> bool:
        return self.requeue is None


def unasked_exit75(outcome: str, stop: str | None, cancel_requested: bool) -> bool:
    """An exit 75 ('requeue me') that no stop request asked for: a self-requeue."""
    return outcome == "preempted" and stop != "preempt" and not cancel_requested


def kept_work(
    run_start_s: float | None, last_checkpoint_s: float | None, run_end_s: float | None = None
) -> bool:
    """Did the run keep work: is the job's last known checkpoint later than the run's start,
    and no later than its end (`run_end_s`, when the run's end is judged)? An unknown start or
    no checkpoint proves nothing, so it is not progress; nor does a checkpoint stamped after
    the run ended: the job's own clock or report says so (a progress line may be stamped up
    to control/progress.py's FUTURE_SLACK_S ahead of the service's clock, and so may an API
    report's `checkpoint_at`), and as the newest checkpoint known it would reset the count at
    every later failure, a job retried without end."""
    if run_start_s is None or last_checkpoint_s is None:
        return False
    if run_end_s is not None and last_checkpoint_s > run_end_s:
        return False
    return last_checkpoint_s > run_start_s


def failures_in_a_row(
    count: int,
    run_start_s: float | None,
    last_checkpoint_s: float | None,
    run_end_s: float | None = None,
) -> int:
    """The job's failures in a row without progress as a run ends, before its end is judged:
    `count` (those before the run), or 0 when the run kept work (`kept_work`). Both drivers
    call it, through judge_exit or, for a run ended without a verdict (the twin's
    preemptions), directly."""
    return 0 if kept_work(run_start_s, last_checkpoint_s, run_end_s) else count


def judge_exit(
    outcome: str,
    detail: str,
    *,
    cancel_requested: bool,
    failures: int,
    limits: RetryLimits,
    blame: Blame,
    run_start_s: float | None = None,
    last_checkpoint_s: float | None = None,
    run_end_s: float | None = None,
    exit75_unasked: bool = False,
    self_requeues: int = 0,
) -> Verdict:
    """Judge a run's end. `failures` is the job's failures IN A ROW WITHOUT PROGRESS before
    this run (not its total): a run that kept work (its job's last checkpoint,
    `last_checkpoint_s`, is later than the run's start, `run_start_s`, and no later than its
    end, `run_end_s`: both drivers pass the moment they judge it) sets that count to 0
    before its end is judged, so a failure of the job's own after such a run is retry 1
    again (`Verdict.in_a_row` is the count after this run). `exit75_unasked`: the run ended
    with an exit 75 that no stop request asked for (`unasked_exit75`), a self-requeue;
    `self_requeues`: the job's self-requeues in a row without progress before this run,
    reset by the same progress (`Verdict.self_requeues` is the count after it).
    Self-requeues over `max_exit75` fail the job for good, however many ordinary retries
    are left.

    Why self-requeues in a row too (mend17; they counted over the job's life): an exit 75
    after a checkpoint is the job protocol working, a job yielding with its work saved (to
    split a long run into chunks, or to leave a node it finds unfit), and a life limit ended
    such a job after `max_exit75` chunks however much it did. The limit is there for a job
    that exits 75 without doing anything, which keeps no work, so it still meets it. Slurm
    bounds a batch job's automatic requeues over its life (MaxBatchRequeue, 5 by default,
    "before being marked as JobHeldAdmin": held for an administrator, not failed;
    slurm.schedmd.com/slurm.conf.html), and a Kubernetes Job may exempt an exit code from its
    backoffLimit altogether (a podFailurePolicy rule `onExitCodes` with `action: Ignore`, the
    batch/v1 PodFailurePolicyRule reference): the rule here is between the two, bounded
    unless the job shows progress.

    Why in a row: a training job that crashes once a day after writing checkpoints is not
    broken; one that crashes `max_retries` + 1 times without keeping any work is. A retry
    budget over the job's whole life ends most multi-day runs of a large gang (bench/RESULTS.md
    section 94). The kubelet resets a container's restart back-off the same way: "Once a
    container has executed for 10 minutes without any problems, the kubelet resets the restart
    backoff timer for that container" (kubernetes.io/docs/concepts/workloads/pods/pod-lifecycle,
    "Container restart policy"); progress here is a checkpoint, not ten minutes, as a run that
    keeps nothing has gained nothing however long it ran. A Kubernetes Job's backoffLimit does
    not reset: it counts the job's failed pods ("The number of Pods with .status.phase =
    Failed", kubernetes.io/docs/concepts/workloads/controllers/job, "Pod backoff failure
    policy"), which is why long training jobs on Kubernetes set it high or run under a
    restart controller.

    A failed run blamed on a node (`blame` "node": the node was lost, or the executor named
    it) is requeued at once and spends no retry: the job did nothing wrong, and a node that
    keeps failing is drained by node health, not charged to the jobs it ran. A run the
    executor's cluster lost as a whole (`blame` "cluster": the Ray head gone, and every gang
    with it) is requeued the same way, naming no node and striking none: infrastructure, not
    the job, whose retries would otherwise go one per outage. Kubernetes does
    the same with a Job's podFailurePolicy rule `action: Ignore` on the DisruptionTarget pod
    condition: "the counter towards the .backoffLimit is not incremented and a replacement pod
    is created" (the batch/v1 PodFailurePolicyRule API reference;
    kubernetes.io/docs/tasks/job/pod-failure-policy shows the rule), and Slurm
    requeues a batch job whose node failed (NODE_FAIL) unless it was submitted with
    --no-requeue (slurm.schedmd.com/sbatch.html, `--requeue`; JobRequeue in slurm.conf). A
    failure of the job itself (`blame` "job") spends one retry and waits the retry backoff;
    past `max_retries` failures in a row the job fails for good, as a Kubernetes Job past its
    backoffLimit."""
    k = failures_in_a_row(failures, run_start_s, last_checkpoint_s, run_end_s)
    s = failures_in_a_row(self_requeues, run_start_s, last_checkpoint_s, run_end_s)
    if exit75_unasked:
        s += 1
    if exit75_unasked and s > limits.max_exit75:
        over = f"{SELF_REQUEUE} {s} times in a row without a checkpoint"
        detail = f"{detail} ({over}; limit {limits.max_exit75})"
        return Verdict(JobState.FAILED, detail, in_a_row=k, self_requeues=s)
    if cancel_requested or outcome == "cancelled":
        return Verdict(JobState.CANCELLED, detail, in_a_row=k, self_requeues=s)
    if outcome == "completed":
        return Verdict(JobState.COMPLETED, detail, in_a_row=k, self_requeues=s)
    if outcome == "preempted":
        why, delay = BACK_AFTER_PREEMPTION, 0.0
        if exit75_unasked:
            delay = retry_backoff_s(s, limits.base_s, limits.max_s)
            why = f"{SELF_REQUEUE} ({s})"
        return Verdict(
            JobState.PREEMPTED, detail, why, delay, count_preemption=True, in_a_row=k,
            self_requeues=s,
        )  # fmt: skip
    if blame == "node":
        return Verdict(JobState.FAILED, detail, NODE_FAILURE_REQUEUE, in_a_row=k, self_requeues=s)
    if blame == "cluster":
        why = CLUSTER_FAILURE_REQUEUE
        return Verdict(JobState.FAILED, detail, why, in_a_row=k, self_requeues=s)
    n = k + 1
    if n <= limits.max_retries:
        delay = retry_backoff_s(n, limits.base_s, limits.max_s)
        why = f"retry {n} of {limits.max_retries}"
        return Verdict(
            JobState.FAILED, detail, why, delay, count_failure=True, in_a_row=n, self_requeues=s
        )
    return Verdict(JobState.FAILED, detail, count_failure=True, in_a_row=n, self_requeues=s)
