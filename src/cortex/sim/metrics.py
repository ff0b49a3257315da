"""Running sums and fixed-size time bins: the twin's metrics never keep per-event records."""

from __future__ import annotations

import math

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
        # The bin the instants now fall in (`_bin_now`, the last one past the horizon) and the
        # first instant of the next (inf in the last): most instants stay in their bin, and
        # one comparison tells them so without a division (RESULTS §131).
        self._bin = 0
        self._bin_end = self._next_edge(0)
        # The bin's four sums while instants fall in it (an attribute adds with less work
        # than a list's item); written to the lists when the bin is left or they are read.
        self._a_bin = self._u_bin = self._q_bin = self._e_bin = 0.0
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
        self._flush()
        return np.array(self._alloc)

    @property
    def up_bins(self) -> np.ndarray:
        self._flush()
        return np.array(self._up)

    @property
    def queue_bins(self) -> np.ndarray:
        self._flush()
        return np.array(self._queue)

    @property
    def energy_bins(self) -> np.ndarray:
        self._flush()
        return np.array(self._energy)

    def _flush(self) -> None:
        """The current bin's sums into the lists (the same doubles: each list item was the
        sum the attribute started from)."""
        b = self._bin
        self._alloc[b] = self._a_bin
        self._up[b] = self._u_bin
        self._queue[b] = self._q_bin
        self._energy[b] = self._e_bin

    def _next_edge(self, b: int) -> float:
        """The least double t with int(t / bin_s) > b (inf from the last bin on): the instants
        below it fall in bin b, so that a comparison with it is the division's answer. The
        product (b + 1) * bin_s is within a step or two of it (a division rounds monotonically,
        so the edge is one double, found by stepping)."""
        if b >= self.n_bins - 1:
            return math.inf
        bin_s = self.bin_s
        t = (b + 1) * bin_s
        while int(t / bin_s) > b:
            t = math.nextafter(t, -math.inf)
        while int(t / bin_s) <= b:
            t = math.nextafter(t, math.inf)
        return t

    def advance(self, t: float, alloc: float, up: float, queued: int, facility_w: float) -> None:
        """Integrate constant rates over [now, t) (GPU counts as ints or as the same doubles)."""
        t0 = self.now_s
        if t <= t0:
            return
        dt = t - t0
        a = alloc * dt
        e = facility_w * dt
        self.alloc_gpu_s += a
        self.energy_j += e
        self.now_s = t
        if t < self._bin_end:  # int(t / bin_s) is the bin of now (or both past the last)
            self._a_bin += a
            self._u_bin += up * dt
            self._q_bin += queued * dt
            self._e_bin += e
            return
        # Into a later bin (t0 before the last one): the sums computed as they were, from the
        # lists with the current bin's sums written back.
        self._flush()
        bin_s = self.bin_s
        n_bins = self.n_bins
        b0 = self._bin_now
        b1 = self._bin_now = int(t / bin_s)
        edge = t0
        for b in range(b0, min(b1, n_bins - 1) + 1):
            end = min((b + 1) * bin_s, t) if b < n_bins - 1 else t
            d = end - edge
            self._alloc[b] += alloc * d
            self._up[b] += up * d
            self._queue[b] += queued * d
            self._energy[b] += facility_w * d
            edge = end
        b = self._bin = b1 if b1 < n_bins - 1 else n_bins - 1
        self._bin_end = self._next_edge(b)
        self._a_bin = self._alloc[b]
        self._u_bin = self._up[b]
        self._q_bin = self._queue[b]
        self._e_bin = self._energy[b]

    def peak(self, facility_w: float) -> None:
        self.peak_facility_w = max(self.peak_facility_w, facility_w)

    def interrupt(self, t: float, cause: int) -> None:
        self.interrupts_by_cause[cause] += 1
        self.interrupt_bins[min(int(t / self.bin_s), self.n_bins - 1)] += 1
