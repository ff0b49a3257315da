"""What a cycle reads (Snapshot) and what it returns (Plan)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from cortex.scheduler.pending import PendingQueues
from cortex.scheduler.reasons import Code, Reason
from cortex.scheduler.state import ClusterState, Placement
from cortex.workload.job import Job

if TYPE_CHECKING:
    from cortex.scheduler.hetero import Targets
    from cortex.scheduler.power import PowerView


# Snapshot, Start (and capacity.Allocation) are not frozen: a frozen dataclass's __init__ sets
# each field through object.__setattr__, 3-4x the cost of a plain one (Snapshot 1.19 against
# 0.42 us), and the twin builds one Snapshot per pass and one Start per start: ~2% of its month.
# Nothing assigns to them after construction (the layer rule: policies only read); the tests
# hold every driver and profile to it (tests/frozen_views.py refuses re-assignment).
@dataclass(slots=True)
class Snapshot:
    """The cluster as a policy sees it. Policies read it and never mutate it; tentative moves go
    through a Statement. `speed(kind, flavor)` is the throughput table relative to the reference
    flavor; `estimate_s(job, flavor, gpus)` is the driver's runtime estimate for backfill."""

    now_s: float
    state: ClusterState
    pending: PendingQueues
    speed: Callable[[str, int], float]
    estimate_s: Callable[[Job, int, int], float]
    power: PowerView | None = None  # budgets for a power policy; None: power not modelled
    targets: Targets | None = None  # the last allocation solve (hetero profile); None: none
    # Seconds of a running job's work a preemption now would cost it (driver's rule: time since
    # its last checkpoint, or the write on the signal); victims are chosen by GPUs x this.
    # None: every job costs the same per GPU.
    lost_s: Callable[[Job], float] | None = None


@dataclass(slots=True)
class Start:
    """Start `job` with a gang of `gang_gpus` on `placement`, holding `alloc_gpus`."""

    job: Job
    flavor: int
    placement: Placement
    gang_gpus: int
    alloc_gpus: int
    cap_level: int = 0  # the power policy's cap level (index into PowerView.levels); 0: uncapped
    # What power admission read of the placement (node cap, GPUs held, GPUs per hall), for the
    # driver's books to book the start without reading the placement again; None: not admitted
    # by a power policy (the books then read the placement).
    power_shape: tuple[float, int, dict[int, int]] | None = field(default=None, compare=False)


@dataclass(frozen=True, slots=True)
class Preemption:
    """Stop `job` (it keeps the work up to its last checkpoint) so that another can start."""

    job: Job
    reason: Reason


@dataclass(slots=True)
class Plan:
    """A cycle's decisions. Jobs past `examined` share `rest_reason`."""

    starts: list[Start] = field(default_factory=list)
    preemptions: list[Preemption] = field(default_factory=list)
    blockers: dict[int, list[Reason]] = field(default_factory=dict)
    rest_reason: Reason | None = None
    examined: int = 0
    preempt_failed: list[int] = field(default_factory=list)  # victim searches that found none
    # The starts' GPUs are already taken on the state, the victims' given (see schedule).
    committed: bool = False
    # Site IT watts over idle left after the starts (None: no power policy ran).
    power_headroom_w: float | None = None
    # A pass run with explain=False: jobs blocked for GPUs once every flavor had a reserved
    # head, counted here instead of listed in `blockers` (each one's first reason would have
    # been INSUFFICIENT_CAPACITY).
    capacity_blocked: int = 0
    # A pass run with explain=False lists no blockers: it counts every other blocked job here
    # by its first reason's code, codes in the order they first appeared (`blockers` empty).
    first_codes: dict[Code, int] = field(default_factory=dict)
    explained: bool = True  # False: a pass run with explain=False (no blockers listed)

    def reasons_for(self, job_id: int) -> list[Reason]:
        """Blockers of a job this cycle did not start ([] if it started).

        Only an explained plan has them: a lean plan (explain=False) lists no blockers, and
        answering [] or `rest_reason` for its blocked jobs would be a wrong answer, not none."""
        if not self.explained:
            raise ValueError("this plan was made with explain=False: it lists no blockers")
        if job_id in self.blockers:
            return self.blockers[job_id]
        if any(s.job.id == job_id for s in self.starts):
            return []
        return [self.rest_reason] if self.rest_reason is not None else []
