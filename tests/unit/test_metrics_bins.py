"""Metrics.advance, called at every instant of a twin's run, keeps the bin of `now` from its
last call and computes each product once: under random instants (the same instant again,
instants inside one bin, across many, past the horizon) its sums and bins must be the very
doubles the straightforward integration gives."""

from __future__ import annotations

import math
import random

from cortex.sim.metrics import Metrics


def _edge(b: int, bin_s: float) -> float:
    """The least double t with int(t / bin_s) > b, by a search over doubles."""
    lo, hi = b * bin_s, (b + 2) * bin_s
    while math.nextafter(lo, math.inf) < hi:
        mid = (lo + hi) / 2
        if mid in (lo, hi):
            mid = math.nextafter(lo, math.inf)
        if int(mid / bin_s) > b:
            hi = mid
        else:
            lo = mid
    return hi


class _Plain:
    """The integration before the kept bin: every bin index from a division, every product
    computed where it is added."""

    def __init__(self, horizon_s: float, n_bins: int) -> None:
        self.n_bins = n_bins
        self.bin_s = horizon_s / n_bins
        self.bins: list[list[float]] = [[0.0] * n_bins for _ in range(4)]
        self.now_s = 0.0
        self.alloc_gpu_s = 0.0
        self.energy_j = 0.0

    def advance(self, t: float, alloc: int, up: int, queued: int, facility_w: float) -> None:
        t0 = self.now_s
        if t <= t0:
            return
        dt = t - t0
        self.alloc_gpu_s += alloc * dt
        self.energy_j += facility_w * dt
        bin_s, n_bins = self.bin_s, self.n_bins
        b0, b1 = int(t0 / bin_s), int(t / bin_s)
        rates = (alloc, up, queued, facility_w)
        if b0 == b1 or (b1 >= n_bins and b0 >= n_bins - 1):
            b = min(b0, n_bins - 1)
            for xs, r in zip(self.bins, rates, strict=True):
                xs[b] += r * dt
        else:
            edge = t0
            for b in range(b0, min(b1, n_bins - 1) + 1):
                end = min((b + 1) * bin_s, t) if b < n_bins - 1 else t
                for xs, r in zip(self.bins, rates, strict=True):
                    xs[b] += r * (end - edge)
                edge = end
        self.now_s = t


def test_advance_is_the_plain_integration_under_random_instants() -> None:
    rng = random.Random(19)
    for horizon_s, n_bins in ((86400.0, 96), (1000.0, 7), (3.0 * 86400.0, 1)):
        m, ref = Metrics(horizon_s, n_bins, 1), _Plain(horizon_s, n_bins)
        t = 0.0
        bin_s = horizon_s / n_bins
        for _ in range(4000):
            r = rng.random()
            if r < 0.1:
                pass  # the same instant again (and, below, an earlier one)
            elif r < 0.15:
                t -= rng.uniform(0.0, bin_s)
            elif r < 0.6:
                t += rng.uniform(0.0, bin_s / 50)  # most instants: inside a bin
            elif r < 0.65:
                t = (int(t / bin_s) + 1) * bin_s  # on a bin's edge
            elif r < 0.7:
                # on the least instant of the next bin by the division, or the double below
                t = _edge(int(t / bin_s), bin_s)
                if rng.random() < 0.5:
                    t = math.nextafter(t, -math.inf)
            elif r < 0.9:
                t += rng.uniform(0.0, 3 * bin_s)  # across bins
            else:
                t += rng.uniform(0.0, horizon_s / 4)  # far, up to past the horizon
            args = (
                t,
                rng.randrange(100_000),
                rng.randrange(100_000),
                rng.randrange(50),
                rng.uniform(0.0, 2e8),
            )
            m.advance(*args)
            ref.advance(*args)
            assert m.now_s == ref.now_s
            assert (m.alloc_gpu_s, m.energy_j) == (ref.alloc_gpu_s, ref.energy_j)
            if rng.random() < 0.05:  # read in the middle of a run, which then goes on
                assert m.alloc_bins.tolist() == ref.bins[0]
                assert m.energy_bins.tolist() == ref.bins[3]
        assert m.alloc_bins.tolist() == ref.bins[0]
        assert m.up_bins.tolist() == ref.bins[1]
        assert m.queue_bins.tolist() == ref.bins[2]
        assert m.energy_bins.tolist() == ref.bins[3]
        assert t > horizon_s  # the run went past the horizon


def test_the_kept_edge_is_the_division_s() -> None:
    """The edge each bin's instants are compared with is the least double the division puts in
    a later bin (fails on the product (b + 1) * bin_s taken as it is: it rounds to either side
    for these bin widths)."""
    off = 0
    for horizon_s, n_bins in ((1000.0, 7), (86400.0 * 30, 720), (0.3, 11), (86400.0, 96)):
        m = Metrics(horizon_s, n_bins, 1)
        for b in range(n_bins - 1):
            edge = m._next_edge(b)
            assert edge == _edge(b, m.bin_s), (horizon_s, n_bins, b)
            off += edge != (b + 1) * m.bin_s
        assert m._next_edge(n_bins - 1) == math.inf
    assert off > 0  # the search is needed for some of them


def test_instants_on_and_beside_each_edge() -> None:
    """Every bin's edge, the double below it and the product (b + 1) * bin_s, in order, where
    the product and the edge differ: the instant on the edge is the next bin's (fails on the
    kept edge compared with <=)."""
    for horizon_s, n_bins in ((1000.0, 7), (0.3, 11), (86400.0 * 30, 720)):
        m, ref = Metrics(horizon_s, n_bins, 1), _Plain(horizon_s, n_bins)
        bin_s = horizon_s / n_bins
        ts: list[float] = []
        for b in range(n_bins - 1):
            edge = _edge(b, bin_s)
            ts += sorted({math.nextafter(edge, -math.inf), edge, (b + 1) * bin_s})
            ts.append(edge + bin_s / 3)
        for k, t in enumerate([*ts, horizon_s * 2]):
            args = (t, 3 + k % 5, 7, k % 3, 1e6 + k)
            m.advance(*args)
            ref.advance(*args)
        assert m.alloc_bins.tolist() == ref.bins[0]
        assert m.up_bins.tolist() == ref.bins[1]
        assert m.queue_bins.tolist() == ref.bins[2]
        assert m.energy_bins.tolist() == ref.bins[3]
        assert (m.alloc_gpu_s, m.energy_j) == (ref.alloc_gpu_s, ref.energy_j)
