"""The GPU-hour books by flavor: the split of sim/books.py for each flavor of a mixed fleet.

A run's GPU-seconds are booked against the flavor it ran on (a run never spans flavors), so
the job-level lines (productive, rework, restart, checkpoint writes, power and heat losses,
gang rounding, allocated) are summed per flavor where the fleet-wide sums are made
(sim/runs.py). Time in service per flavor is integrated only when a node goes down or comes
back (rare next to the per-event integrals of sim/metrics.py). Idle and down follow as in
sim/books.py, so each flavor's categories sum to its installed GPU-seconds and the flavors'
sums give the fleet's books up to floating-point rounding. The capacity planner's twin in the
loop reads goodput and availability per flavor from one run of a mixed fleet.
"""

from __future__ import annotations

# Rows of one flavor's job-level books (GPU-seconds).
PRODUCTIVE = 0
REWORK_FAILURE = 1
REWORK_PREEMPT = 2
RESTART = 3
CHECKPOINT = 4
CAP_LOSS = 5
HEAT_LOSS = 6
GANG_ROUNDING = 7
ALLOCATED = 8
UNALLOCATED_WRITE = 9  # victims' writes on devices already freed (in CHECKPOINT, not ALLOCATED)
IN_PROGRESS = 10  # of PRODUCTIVE: work not yet checkpointed at the end
N_ROWS = 11

# sim/books.py's category of each row (the memo lines have none).
ROW_CATEGORY = (
    (PRODUCTIVE, "productive"),
    (REWORK_FAILURE, "rework_after_failures"),
    (REWORK_PREEMPT, "rework_after_preemptions"),
    (RESTART, "restart_overhead"),
    (CHECKPOINT, "checkpoint_writes"),
    (CAP_LOSS, "lost_to_power_caps"),
    (HEAT_LOSS, "lost_to_heat"),
    (GANG_ROUNDING, "gang_rounding"),
)


class FlavorBooks:
    """Per-flavor rows of job-level GPU-seconds, and GPU-seconds in service per flavor."""

    def __init__(self, up_gpus: list[int]) -> None:
        n = len(up_gpus)
        self.rows: list[list[float]] = [[0.0] * N_ROWS for _ in range(n)]
        self.up_last: list[int] = list(up_gpus)  # GPUs in service since `_mark_s`
        self._mark_s = 0.0
        self._up_gpu_s = [0.0] * n

    def up_changed(self, now_s: float, up_gpus: list[int]) -> None:
        """Nodes went down or came back at `now_s`: book the old counts up to now."""
        dt = now_s - self._mark_s
        acc = self._up_gpu_s
        for f, u in enumerate(self.up_last):
            acc[f] += u * dt
        self.up_last = list(up_gpus)
        self._mark_s = now_s

    def up_gpu_s(self, horizon_s: float) -> list[float]:
        """GPU-seconds in service per flavor over the run (the counts since the last change
        held to the horizon)."""
        dt = horizon_s - self._mark_s
        return [a + u * dt for a, u in zip(self._up_gpu_s, self.up_last, strict=True)]
