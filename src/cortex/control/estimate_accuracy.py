"""How good are start estimates? In a seeded twin run, predict sampled jobs' starts when they
arrive (the live state run forward with the same `schedule()`: control/estimate.py), then
compare with the start the same simulation gives them.

Two predictors, one forward simulation, only the runtimes differ:
- Cortex: the runtimes the driver has (in the twin, the true remaining durations:
  docs/ARCHITECTURE.md limitation (c)); what it cannot know is failures and later arrivals.
- Slurm-style (`squeue --start`: the backfill plan from requested wall times): every runtime is
  the requested wall time, taken as `requested_over_actual` times the true one (2 by default:
  Tsafrir, Etsion and Feitelson, IEEE TPDS 18(6), 2007, find actual runtimes commonly about half
  of the requested ones). An assumption standing in for users' limits.

The twin runs deep passes at most every `backfill_interval_s` (60 s by default, for speed); the
live loop, like the estimator, runs one every tick. Measured with the twin's default, an
arriving job that backfills at once in the forward run starts a pass or two later in the twin,
and that cadence, not the estimate, decides the error (RESULTS §23). So the measurement runs
the twin at the live loop's cadence (`LIVE_PASS_S`, control/loop.py's IDLE_CYCLE_S).

The score is the median over jobs that waited at least `min_wait_s` of
|predicted - actual| / wait.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass, field
from typing import Any

from cortex.control import estimate as est
from cortex.control.loop import IDLE_CYCLE_S
from cortex.fleet.topology import Topology
from cortex.sim.twin import SimConfig, Twin
from cortex.workload.job import Job

LIVE_PASS_S = IDLE_CYCLE_S
REQUESTED_OVER_ACTUAL = 2.0


@dataclass(frozen=True)
class Prediction:
    job_id: int
    at_s: float  # when it was made (the job's arrival)
    cortex_s: float | None  # None: not started within the forward run's bounds
    slurm_s: float | None


def score(
    preds: list[Prediction], starts: dict[int, float | None], min_wait_s: float
) -> dict[str, Any]:
    """Median |error| / wait of each predictor over the jobs that started and waited at least
    `min_wait_s`; the counts of the others. `starts`: each job's actual start (None: never)."""
    ours: list[float] = []
    slurm: list[float] = []
    waits: list[float] = []
    counts = {"no_estimate": 0, "never_started": 0, "short_wait": 0}
    # A predictor's "none" (not started within the forward run's bounds: `squeue --start`'s
    # N/A) is counted apart; the errors compare the two on the jobs both gave a time for.
    none = {"cortex": 0, "slurm": 0}
    for p in preds:
        start = starts.get(p.job_id)
        none["cortex"] += p.cortex_s is None
        none["slurm"] += p.slurm_s is None
        if p.cortex_s is None or p.slurm_s is None:
            counts["no_estimate"] += 1
            continue
        if start is None:
            counts["never_started"] += 1
            continue
        wait = start - p.at_s
        if wait < min_wait_s:
            counts["short_wait"] += 1
            continue
        waits.append(wait)
        ours.append(abs(p.cortex_s - start) / wait)
        slurm.append(abs(p.slurm_s - start) / wait)

    def med(xs: list[float]) -> float | None:
        return round(statistics.median(xs), 4) if xs else None

    return {
        "predicted": len(preds),
        "scored": len(ours),
        **counts,
        "cortex_none": none["cortex"],
        "slurm_none": none["slurm"],
        "min_wait_s": min_wait_s,
        "median_wait_s": med(waits),
        "cortex_median_rel_error": med(ours),
        "slurm_median_rel_error": med(slurm),
    }


@dataclass
class _Observer:
    """Predicts sampled arrivals at the first pass that sees them."""

    every: int
    min_gpus: int
    max_predictions: int
    warmup_s: float
    requested_over_actual: float
    seen: set[int] = field(default_factory=set)
    preds: list[Prediction] = field(default_factory=list)
    cpu_s: float = 0.0

    def __call__(self, tw: Twin) -> None:
        arrived = [j for lst in tw.pending.lists for _, j in lst if j.id not in self.seen]
        self.seen.update(j.id for j in arrived)
        new = [j.id for j in arrived if j.gpus >= self.min_gpus]
        if tw.now < self.warmup_s or len(self.preds) >= self.max_predictions:
            return
        targets = sorted(i for i in new if i % self.every == 0)
        targets = targets[: self.max_predictions - len(self.preds)]
        if targets:
            t0 = time.process_time()
            self._predict(tw, set(targets))
            self.cpu_s += time.process_time() - t0

    def _predict(self, tw: Twin, targets: set[int]) -> None:
        st = tw.state
        running = [(st.running[j], a.flavor, a.placement) for j, a in st.allocations.items()]
        pending = [j for lst in tw.pending.lists for _, j in lst]
        got: list[dict[int, float]] = []
        for factor in (1.0, self.requested_over_actual):

            def scale(_jid: int, f: float = factor) -> float:
                return f

            got.append(
                est._simulate(
                    st.topo,
                    st.queues,
                    tw.pol,
                    tw.now,
                    running,
                    pending,
                    tw._estimate_s,
                    tw._speed,
                    scale,
                    targets,
                )
            )
        for jid in sorted(targets):
            self.preds.append(Prediction(jid, tw.now, got[0].get(jid), got[1].get(jid)))


class _ObservedTwin(Twin):
    observer: _Observer

    def _cycle(self) -> None:
        if self.pending:
            self.observer(self)
        super()._cycle()


def measure(
    topo: Topology,
    jobs: list[Job],
    cfg: SimConfig,
    *,
    warmup_s: float,
    every: int = 3,
    min_gpus: int = 1,
    max_predictions: int = 300,
    min_wait_s: float = 60.0,
    requested_over_actual: float = REQUESTED_OVER_ACTUAL,
    details: bool = False,
) -> dict[str, Any]:
    """Run the twin on `jobs`, predicting every `every`-th arrival of `min_gpus` GPUs or more
    (ids in arrival order) after `warmup_s`, and score
    the predictions against the run's own starts. `details`: also each prediction, as
    [job id, made at, cortex, slurm-style, actual start]."""
    if every < 1 or max_predictions < 0 or min_wait_s < 0 or requested_over_actual <= 0:
        raise ValueError("every >= 1, max_predictions >= 0, min_wait_s >= 0, factor > 0")
    obs = _Observer(every, min_gpus, max_predictions, warmup_s, requested_over_actual)
    tw = _ObservedTwin(topo, jobs, cfg)
    tw.observer = obs
    tw.run()
    starts = {j.id: (j.first_start_s if j.first_start_s >= 0 else None) for j in jobs}
    out = score(obs.preds, starts, min_wait_s)
    out["prediction_cpu_s"] = round(obs.cpu_s, 2)
    out["backfill_interval_s"] = tw.backfill_interval_s
    out["min_gpus"] = min_gpus
    if details:
        out["predictions"] = [
            [p.job_id, p.at_s, p.cortex_s, p.slurm_s, starts.get(p.job_id)] for p in obs.preds
        ]
    return out
