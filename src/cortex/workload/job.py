"""Job: the runtime record both drivers keep per submitted job.

A plain slotted class, not a pydantic model: the twin holds hundreds of thousands of them and
touches them on every event, so validation happens once, at the edge (JobSpec), never here.
"""

from __future__ import annotations

from cortex.workload.spec import JobSpec
from cortex.workload.states import TRANSITIONS, IllegalTransitionError, JobState


class Job:
    """A job's identity, its demand, and where it stands. Mutated only by drivers."""

    __slots__ = (
        "alloc_gpus",
        "attained_gpu_s",
        "ckpt_interval_s",
        "ckpt_on_signal",
        "ckpt_write_s",
        "done_s",
        "elastic_max",
        "elastic_min",
        "end_s",
        "epoch",
        "est_cache",
        "est_end_s",
        "est_gang_s",
        "evictions",
        "failures",
        "failures_in_a_row",
        "first_start_s",
        "flavor_ids",
        "flavors",
        "gpus",
        "history",
        "id",
        "interruptions",
        "key",
        "kind",
        "name",
        "next_preempt_try_s",
        "owed_overhead_s",
        "preempt_backoff_s",
        "preemptions",
        "priority",
        "priority_class",
        "queue_idx",
        "restarts",
        "run_dur_s",
        "run_flavor",
        "run_gpus",
        "run_k",
        "run_overhead_s",
        "run_speed",
        "run_start_s",
        "run_tau_s",
        "run_vacc",
        "run_vmark",
        "run_wait_gpus",
        "run_wait_s",
        "state",
        "submit_s",
        "team",
        "warm",
        "work_s",
    )

    def __init__(
        self,
        id: int,
        name: str,
        team: str,
        gpus: int,
        work_s: float,
        *,
        priority_class: str = "normal",
        priority: int = 0,
        flavors: tuple[str, ...] = (),
        kind: str = "generic",
        submit_s: float = 0.0,
        ckpt_write_s: float | None = None,
        ckpt_interval_s: float | None = None,
        elastic_min: int | None = None,
        elastic_max: int | None = None,
        ckpt_on_signal: bool = True,
    ) -> None:
        self.id = id
        self.name = name
        self.team = team
        self.queue_idx = -1  # index of the team's cluster queue, set when the job is accepted
        self.gpus = gpus
        self.work_s = work_s  # reference-flavor seconds on the requested gang
        self.priority_class = priority_class
        self.priority = priority
        self.flavors = flavors
        self.flavor_ids: tuple[int, ...] = ()
        self.kind = kind
        self.submit_s = submit_s
        self.ckpt_write_s = ckpt_write_s
        self.ckpt_interval_s = ckpt_interval_s
        self.ckpt_on_signal = ckpt_on_signal  # checkpoints within the grace period when preempted
        self.elastic_min = elastic_min
        self.elastic_max = elastic_max
        self.state = JobState.QUEUED
        self.done_s = 0.0  # committed (checkpointed) reference seconds
        self.epoch = 0  # bumps at each start: stale completion events are ignored
        self.run_start_s = 0.0
        self.run_flavor = -1
        self.run_gpus = 0  # gang size of the current run (elastic jobs may differ from gpus)
        self.alloc_gpus = 0  # GPUs held (a multi-node gang holds whole nodes)
        self.run_speed = 1.0
        self.run_tau_s = 0.0
        self.run_overhead_s = 0.0
        # A run's own clock: throughput kept under a power cap (k) and heat slow it down. The
        # twin keeps run seconds done as vacc + k * (global clock - vmark); run_dur_s is the
        # run's length on that clock.
        self.run_k = 1.0
        self.run_vacc = 0.0
        self.run_vmark = 0.0
        self.run_dur_s = 0.0
        self.owed_overhead_s = 0.0  # restart cost to pay at the next start
        # The first run_wait_s of a run are spent waiting for preempted victims to write their
        # checkpoints on run_wait_gpus of its GPUs (booked as their writes, not as its restart).
        self.run_wait_s = 0.0
        self.run_wait_gpus = 0
        self.est_end_s = 0.0
        # Driver's runtime estimates per (flavor, gang) while the job waits; cleared when its
        # remaining work or owed overhead changes.
        self.est_cache: dict[tuple[int, int], float] | None = None
        # The same estimates for the whole gang (`gpus`), by flavor (None: not made yet), for
        # the deep pass's judge to read without building a key; cleared with est_cache.
        self.est_gang_s: list[float | None] | None = None
        self.first_start_s = -1.0
        self.end_s = -1.0
        self.attained_gpu_s = 0.0
        self.restarts = 0
        self.preemptions = 0
        # Preemptions by another job's start (the scheduler's rule), not power pauses: what a
        # queue's preemption budget counts.
        self.evictions = 0
        self.interruptions = 0
        self.failures = 0  # failed runs charged to the job (drive/runs.judge_exit), in all
        self.failures_in_a_row = 0  # those since its last run that kept work: retries spent
        self.key: tuple = ()
        self.next_preempt_try_s = 0.0  # backoff after a failed victim search
        self.preempt_backoff_s = 0.0
        self.history: list[tuple[float, JobState, str]] | None = None
        self.warm = False  # under way before the run began (a warm start); done_s says how far

    @classmethod
    def from_spec(
        cls, job_id: int, spec: JobSpec, priority: int, ckpt_write_s: float | None
    ) -> Job:
        """Build a runtime job from a validated spec; the caller resolves priority and I/O."""
        el = spec.elastic
        return cls(
            job_id,
            spec.name,
            spec.team,
            spec.gpus,
            spec.reference_duration_s,
            priority_class=spec.priority_class,
            priority=priority,
            flavors=tuple(spec.flavors),
            kind=spec.kind.value,
            submit_s=spec.submit_s,
            ckpt_write_s=ckpt_write_s,
            ckpt_interval_s=spec.checkpoint_interval_s,
            elastic_min=el.min_gpus if el else None,
            elastic_max=el.max_gpus if el else None,
            ckpt_on_signal=spec.checkpoint_on_signal,
        )

    def move(self, dst: JobState, now_s: float, reason: str = "") -> None:
        """Change state through the transition table; record it when history is kept."""
        # check_transition's test, without its call: a few moves a run (RESULTS section 126)
        if dst not in TRANSITIONS[self.state]:
            raise IllegalTransitionError(self.id, self.state, dst, reason)
        self.state = dst
        if self.history is not None:
            self.history.append((now_s, dst, reason))

    @property
    def remaining_s(self) -> float:
        """Reference seconds of work still to do on the requested gang."""
        return self.work_s - self.done_s

    def __repr__(self) -> str:
        return (
            f"Job({self.id}, {self.name!r}, team={self.team}, gpus={self.gpus}, {self.state.value})"
        )
