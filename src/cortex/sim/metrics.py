"""Running sums and fixed-size time bins: the twin's metrics never keep per-event records."""

from __future__ import annotations

import numpy as np


class Metrics:
    """Time integrals (allocated GPU-seconds, energy, queue length) in bins, plus counters."""

    def __init__(self, horizon_s: float, n_bins: int, n_causes: int) -> None:
        self.horizon_s = horizon_s
        self.n_bins = n_bins
        self.bin_s = horizon_s / n_bins
        self.alloc_bins = np.zeros(n_bins)  # GPU-seconds allocated
        self.up_bins = np.zeros(n_bins)  # GPU-seconds in service
        self.queue_bins = np.zeros(n_bins)  # job-seconds pending
        self.energy_bins = np.zeros(n_bins)  # facility joules
        self.interrupt_bins = np.zeros(n_bins, dtype=np.int64)
        self.interrupts_by_cause = [0] * n_causes
        self.failures_total = 0
        self.now_s = 0.0
        self.alloc_gpu_s = 0.0
        self.energy_j = 0.0
        self.peak_facility_w = 0.0
        # Allocated time, split by what it was spent on (sums to alloc_gpu_s plus
        # unallocated_write_gpu_s at the end; sim/books.py adds idle and down).
        self.productive_gpu_s = 0.0
        self.rework_failure_gpu_s = 0.0
        self.rework_preempt_gpu_s = 0.0
        self.restart_gpu_s = 0.0
        self.checkpoint_gpu_s = 0.0
        self.fragment_gpu_s = 0.0  # GPUs held by a multi-node gang beyond its size
        # Preempted victims' checkpoint writes on devices the state had already freed and no
        # start took before the write ended (booked in checkpoint_gpu_s, outside alloc_gpu_s).
        self.unallocated_write_gpu_s = 0.0
        self.in_progress_gpu_s = 0.0  # of productive: work not yet checkpointed at the end
        self.cap_loss_gpu_s = 0.0  # throughput given up to power caps
        self.heat_loss_gpu_s = 0.0  # throughput lost to outdoor heat
        self.preemptions = 0
        self.cycles = 0
        self.cycle_s: list[float] = []
        self.blocked: dict[str, int] = {}

    def advance(self, t: float, alloc: int, up: int, queued: int, facility_w: float) -> None:
        """Integrate constant rates over [now, t)."""
        t0 = self.now_s
        if t <= t0:
            return
        dt = t - t0
        self.alloc_gpu_s += alloc * dt
        self.energy_j += facility_w * dt
        b0 = int(t0 / self.bin_s)
        b1 = int(t / self.bin_s)
        if b0 == b1 or (b1 >= self.n_bins and b0 >= self.n_bins - 1):
            b = min(b0, self.n_bins - 1)
            self.alloc_bins[b] += alloc * dt
            self.up_bins[b] += up * dt
            self.queue_bins[b] += queued * dt
            self.energy_bins[b] += facility_w * dt
        else:
            edge = t0
            for b in range(b0, min(b1, self.n_bins - 1) + 1):
                end = min((b + 1) * self.bin_s, t) if b < self.n_bins - 1 else t
                d = end - edge
                self.alloc_bins[b] += alloc * d
                self.up_bins[b] += up * d
                self.queue_bins[b] += queued * d
                self.energy_bins[b] += facility_w * d
                edge = end
        self.now_s = t

    def peak(self, facility_w: float) -> None:
        self.peak_facility_w = max(self.peak_facility_w, facility_w)

    def interrupt(self, t: float, cause: int) -> None:
        self.interrupts_by_cause[cause] += 1
        self.interrupt_bins[min(int(t / self.bin_s), self.n_bins - 1)] += 1
