"""Running sums and fixed-size time bins: the twin's metrics never keep per-event records."""

from __future__ import annotations

import numpy as np


class Metrics:
    """Time integrals (allocated GPU-seconds, energy, queue length) in bins, plus counters."""

    def __init__(self, horizon_s: float, n_bins: int, n_causes: int) -> None:
        self.horizon_s = horizon_s
        self.n_bins = n_bins
        self.bin_s = horizon_s / n_bins
        # Python lists while the run adds to them (an add to a numpy element costs several
        # times a list's, on every event; float64 sums are the same), arrays when read.
        self._alloc = [0.0] * n_bins  # GPU-seconds allocated
        self._up = [0.0] * n_bins  # GPU-seconds in service
        self._queue = [0.0] * n_bins  # job-seconds pending
        self._energy = [0.0] * n_bins  # facility joules
        self.interrupt_bins = np.zeros(n_bins, dtype=np.int64)
        self.interrupts_by_cause = [0] * n_causes
        self.failures_total = 0
        self.now_s = 0.0
        self._bin_now = 0  # int(now_s / bin_s)
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

    @property
    def alloc_bins(self) -> np.ndarray:
        return np.array(self._alloc)

    @property
    def up_bins(self) -> np.ndarray:
        return np.array(self._up)

    @property
    def queue_bins(self) -> np.ndarray:
        return np.array(self._queue)

    @property
    def energy_bins(self) -> np.ndarray:
        return np.array(self._energy)

    def advance(self, t: float, alloc: int, up: int, queued: int, facility_w: float) -> None:
        """Integrate constant rates over [now, t)."""
        t0 = self.now_s
        if t <= t0:
            return
        dt = t - t0
        a = alloc * dt
        e = facility_w * dt
        self.alloc_gpu_s += a
        self.energy_j += e
        bin_s = self.bin_s
        n_bins = self.n_bins
        # Called at every instant: the bin of `now` is the last call's (int(now_s / bin_s)),
        # and the sums are the same products, each computed once.
        b0 = self._bin_now
        b1 = self._bin_now = int(t / bin_s)
        last = n_bins - 1
        if b0 == b1 or (b1 > last and b0 >= last):
            b = b0 if b0 < last else last
            self._alloc[b] += a
            self._up[b] += up * dt
            self._queue[b] += queued * dt
            self._energy[b] += e
        else:
            edge = t0
            for b in range(b0, min(b1, n_bins - 1) + 1):
                end = min((b + 1) * bin_s, t) if b < n_bins - 1 else t
                d = end - edge
                self._alloc[b] += alloc * d
                self._up[b] += up * d
                self._queue[b] += queued * d
                self._energy[b] += facility_w * d
                edge = end
        self.now_s = t

    def peak(self, facility_w: float) -> None:
        self.peak_facility_w = max(self.peak_facility_w, facility_w)

    def interrupt(self, t: float, cause: int) -> None:
        self.interrupts_by_cause[cause] += 1
        self.interrupt_bins[min(int(t / self.bin_s), self.n_bins - 1)] += 1
