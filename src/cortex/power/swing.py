"""The power swing of one large synchronous training job, and what each remedy does to it.

A synchronous job alternates a compute phase (every GPU near its compute draw) and a
communication phase (every GPU waiting on a collective, near idle). Because all GPUs move together
the site sees a square wave of `gpus x (compute_w - comm_w) x PUE` peak to trough, at the
iteration frequency. Sub-second samples are kept; the grid-side figures use one-second averages,
which is what a utility meter (and NVML's averaged reading) reports.

Remedies, each a pure function of the baseline profile:
- filler work raises the trough by running low-priority kernels during the communication phase;
- a GPU power floor (like NVIDIA's power smoothing) burns power in the trough;
- a battery charges in troughs and discharges at peaks so the grid sees a smoothed draw.

Per-GPU phase draws live in `data/swing_draw.csv` (measured H100 trace), node overhead and TDP in
the fleet catalog, battery units in `data/battery_units.csv`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import cache
from typing import Any

import numpy as np

from cortex.errors import InputError
from cortex.fleet.catalog import load_catalog
from cortex.power.datafile import number, read_rows

SOURCE = "swing"
COMPUTE, COMM, STALL = 0, 1, 2
PHASE_NAMES = ("compute", "comm", "stall")
_S_PER_H = 3600.0


@dataclass(frozen=True, slots=True)
class SwingDraw:
    """A flavor's per-GPU draw in each phase, with its node size, overhead and TDP."""

    flavor: str
    gpus_per_node: int
    compute_w: float
    comm_w: float
    stall_w: float
    tdp_w: float
    busy_w: float
    node_overhead_w: float
    source: str


@cache
def load_swing_draws() -> dict[str, SwingDraw]:
    """The shipped phase draws (data/swing_draw.csv) joined with the accelerator catalog."""
    catalog = load_catalog()
    out: dict[str, SwingDraw] = {}
    src = "cortex/power/data/swing_draw.csv"
    for i, row in enumerate(read_rows("swing_draw.csv")):
        name = row["flavor"]
        where = f"row {i + 1} ({name})"
        acc = catalog.get(name)
        if acc is None:
            raise InputError(src, f"{where}.flavor", "not in the accelerator catalog")
        out[name] = SwingDraw(
            flavor=name,
            gpus_per_node=int(number(row, "gpus_per_node", src, where)),
            compute_w=number(row, "compute_w", src, where),
            comm_w=number(row, "comm_w", src, where),
            stall_w=number(row, "stall_w", src, where),
            tdp_w=acc.tdp_w,
            busy_w=acc.busy_w,
            node_overhead_w=acc.node_overhead_w,
            source=row.get("source", ""),
        )
    return out


def swing_draw(flavor: str) -> SwingDraw:
    """The phase draws of `flavor`; an unknown flavor is an input error listing the known ones."""
    draws = load_swing_draws()
    if flavor not in draws:
        raise InputError(SOURCE, "flavor", f"unknown flavor {flavor!r}; known: {', '.join(draws)}")
    return draws[flavor]


@dataclass(frozen=True, slots=True)
class BatteryUnit:
    """One grid-scale battery product (for reporting sizes in whole units)."""

    name: str
    power_mw: float
    energy_mwh: float
    round_trip_efficiency: float
    source: str


@cache
def megapack() -> BatteryUnit:
    """The reference battery unit (data/battery_units.csv, first row)."""
    src = "cortex/power/data/battery_units.csv"
    row = read_rows("battery_units.csv")[0]
    where = f"row 1 ({row['name']})"
    return BatteryUnit(
        name=row["name"],
        power_mw=number(row, "power_mw", src, where),
        energy_mwh=number(row, "energy_mwh", src, where),
        round_trip_efficiency=number(row, "round_trip_efficiency", src, where),
        source=row.get("source", ""),
    )


@dataclass(frozen=True, slots=True)
class SwingJob:
    """One synchronous job: compute for (1 - comm_fraction) of each iteration, then communicate.

    Optionally every `checkpoint_every_s` seconds of training the job stalls for
    `checkpoint_stall_s` seconds (a blocking checkpoint write) at the flavor's stall draw.
    """

    gpus: int
    flavor: str
    iteration_s: float
    comm_fraction: float
    pue: float = 1.0
    checkpoint_every_s: float | None = None
    checkpoint_stall_s: float = 0.0

    def validate(self) -> SwingDraw:
        """Check every field; return the flavor's draws. Bad input raises InputError."""
        if not isinstance(self.gpus, int) or self.gpus <= 0:
            raise InputError(SOURCE, "gpus", f"must be a positive integer, got {self.gpus}")
        if not (math.isfinite(self.iteration_s) and self.iteration_s > 0):
            raise InputError(SOURCE, "iteration_s", f"must be > 0, got {self.iteration_s}")
        if not 0.0 <= self.comm_fraction < 1.0:
            raise InputError(
                SOURCE, "comm_fraction", f"must be in [0, 1), got {self.comm_fraction}"
            )
        if not (math.isfinite(self.pue) and self.pue >= 1.0):
            raise InputError(SOURCE, "pue", f"must be >= 1, got {self.pue}")
        if self.checkpoint_every_s is not None and not self.checkpoint_every_s > 0:
            raise InputError(
                SOURCE, "checkpoint_every_s", f"must be > 0, got {self.checkpoint_every_s}"
            )
        if not (math.isfinite(self.checkpoint_stall_s) and self.checkpoint_stall_s >= 0):
            raise InputError(
                SOURCE, "checkpoint_stall_s", f"must be >= 0, got {self.checkpoint_stall_s}"
            )
        return swing_draw(self.flavor)


@dataclass(frozen=True)
class Profile:
    """Sampled per-GPU draw of a job and the constants that turn it into site power.

    Sample i holds over [t_s[i], t_s[i] + dt_s); its phase is taken at the sample's midpoint.
    """

    job: SwingJob
    draw: SwingDraw
    sample_hz: int
    t_s: np.ndarray
    phase: np.ndarray
    gpu_w: np.ndarray

    @property
    def dt_s(self) -> float:
        return 1.0 / self.sample_hz

    @property
    def nodes(self) -> int:
        return -(-self.job.gpus // self.draw.gpus_per_node)

    def site_mw(self, gpu_w: np.ndarray) -> np.ndarray:
        """Facility MW for a per-GPU draw series: (GPUs x draw + node overhead) x PUE."""
        it_w = self.job.gpus * gpu_w + self.nodes * self.draw.node_overhead_w
        return np.asarray(it_w * self.job.pue / 1e6, dtype=float)


def job_profile(job: SwingJob, seconds: float = 120.0, sample_hz: int = 10) -> Profile:
    """Sample the job's per-GPU draw for `seconds` at `sample_hz` (an integer, so whole seconds
    hold whole numbers of samples for the grid-side one-second averages)."""
    draw = job.validate()
    if not (isinstance(sample_hz, int) and sample_hz >= 1):
        raise InputError(SOURCE, "sample_hz", f"must be an integer >= 1, got {sample_hz}")
    if not (math.isfinite(seconds) and seconds >= 1 and float(seconds).is_integer()):
        raise InputError(SOURCE, "seconds", f"must be a whole number >= 1, got {seconds}")
    if job.iteration_s < 2.0 / sample_hz:  # below two samples the phases alias into noise
        raise InputError(
            SOURCE,
            "iteration_s",
            f"{job.iteration_s:g} s is shorter than two samples at {sample_hz} Hz "
            f"({2.0 / sample_hz:g} s): raise --sample-hz",
        )
    n = int(seconds) * sample_hz
    t_s = np.arange(n) / sample_hz
    mid = t_s + 0.5 / sample_hz
    train_s = mid
    phase = np.full(n, COMPUTE, dtype=np.int8)
    if job.checkpoint_every_s is not None and job.checkpoint_stall_s > 0:
        cycle = job.checkpoint_every_s + job.checkpoint_stall_s
        k, u = np.divmod(mid, cycle)
        stalled = u >= job.checkpoint_every_s
        # Training time excludes stalls, so iterations resume where they stopped.
        train_s = k * job.checkpoint_every_s + np.minimum(u, job.checkpoint_every_s)
        phase[stalled] = STALL
    in_iter = np.mod(train_s, job.iteration_s)
    comm = (in_iter >= (1.0 - job.comm_fraction) * job.iteration_s) & (phase != STALL)
    phase[comm] = COMM
    gpu_w = np.choose(phase, [draw.compute_w, draw.comm_w, draw.stall_w]).astype(float)
    return Profile(job=job, draw=draw, sample_hz=sample_hz, t_s=t_s, phase=phase, gpu_w=gpu_w)


def one_second_mean(mw: np.ndarray, sample_hz: int) -> np.ndarray:
    """The grid-side series: the mean of each whole second of samples."""
    return np.asarray(mw.reshape(-1, sample_hz).mean(axis=1), dtype=float)


@dataclass
class RemedyResult:
    """What the grid sees under one remedy, with its throughput effect."""

    name: str
    grid_mw: np.ndarray  # sub-second samples the grid supplies
    sample_hz: int
    main_throughput_rel: float  # iterations per second relative to the job without the remedy
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def grid_1s_mw(self) -> np.ndarray:
        return one_second_mean(self.grid_mw, self.sample_hz)

    @property
    def amplitude_mw(self) -> float:
        """Peak to trough of the sub-second samples: what the grid's fast oscillations see."""
        return float(self.grid_mw.max() - self.grid_mw.min())

    @property
    def amplitude_1s_mw(self) -> float:
        """Peak to trough of the one-second averages: what a one-second meter sees."""
        s = self.grid_1s_mw
        return float(s.max() - s.min())

    @property
    def mean_mw(self) -> float:
        return float(self.grid_mw.mean())

    @property
    def energy_mwh(self) -> float:
        return float(self.grid_mw.sum() / self.sample_hz / _S_PER_H)

    @property
    def max_ramp_mw_per_s(self) -> float:
        """Largest change between consecutive one-second averages."""
        s = self.grid_1s_mw
        return float(np.abs(np.diff(s)).max()) if s.size > 1 else 0.0

    def summary(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "amplitude_mw": round(self.amplitude_mw, 4),
            "amplitude_1s_mw": round(self.amplitude_1s_mw, 4),
            "peak_mw": round(float(self.grid_mw.max()), 4),
            "trough_mw": round(float(self.grid_mw.min()), 4),
            "mean_mw": round(self.mean_mw, 4),
            "energy_mwh": round(self.energy_mwh, 6),
            "max_ramp_mw_per_s": round(self.max_ramp_mw_per_s, 4),
            "main_throughput_rel": round(self.main_throughput_rel, 6),
            **{k: round(v, 6) if isinstance(v, float) else v for k, v in self.details.items()},
        }


def baseline(p: Profile) -> RemedyResult:
    """The job as it is."""
    stall_frac = float((p.phase == STALL).mean())
    return RemedyResult(
        "baseline",
        p.site_mw(p.gpu_w),
        p.sample_hz,
        1.0,
        {"stall_fraction": stall_frac},
    )


def with_filler(p: Profile, filler_fraction: float) -> RemedyResult:
    """Low-priority filler kernels occupy `filler_fraction` of each GPU during the communication
    phase, raising its draw toward the compute draw: comm_w + f x (compute_w - comm_w).

    Assumption: the main job is unchanged (filler runs in a low-priority stream on SMs the
    collective does not use and yields at kernel boundaries), so main_throughput_rel is 1. The
    gain is `filler_gpu_h`: GPU-hours of filler work done at the main job's compute rate.
    """
    if not 0.0 <= filler_fraction <= 1.0:
        raise InputError(SOURCE, "filler_fraction", f"must be in [0, 1], got {filler_fraction}")
    d = p.draw
    comm = p.phase == COMM
    gpu_w = p.gpu_w.copy()
    gpu_w[comm] = d.comm_w + filler_fraction * (d.compute_w - d.comm_w)
    filler_gpu_s = p.job.gpus * filler_fraction * float(comm.sum()) / p.sample_hz
    base = p.site_mw(p.gpu_w)
    grid = p.site_mw(gpu_w)
    extra_mwh = float((grid - base).sum() / p.sample_hz / _S_PER_H)
    return RemedyResult(
        "filler",
        grid,
        p.sample_hz,
        1.0,
        {
            "filler_fraction": filler_fraction,
            "filler_gpu_h": filler_gpu_s / _S_PER_H,
            "filler_energy_mwh": extra_mwh,
        },
    )


def with_floor(p: Profile, floor_w: float) -> RemedyResult:
    """Every GPU draws at least `floor_w` (burning power when it would draw less). Throughput is
    unchanged; the extra energy is waste, reported as `wasted_energy_mwh`."""
    if not (math.isfinite(floor_w) and floor_w >= 0):
        raise InputError(SOURCE, "floor_w", f"must be >= 0, got {floor_w}")
    if floor_w > p.draw.tdp_w:
        raise InputError(
            SOURCE, "floor_w", f"must not exceed the flavor's TDP {p.draw.tdp_w:g} W, got {floor_w}"
        )
    gpu_w = np.maximum(p.gpu_w, floor_w)
    base = p.site_mw(p.gpu_w)
    grid = p.site_mw(gpu_w)
    wasted = float((grid - base).sum() / p.sample_hz / _S_PER_H)
    return RemedyResult(
        "floor", grid, p.sample_hz, 1.0, {"floor_w": floor_w, "wasted_energy_mwh": wasted}
    )


@dataclass(frozen=True, slots=True)
class Battery:
    """A battery beside the job, and the controller that dispatches it.

    The controller aims the grid at the trailing mean of the load over `window_s` (the job's
    repeat period when None: one iteration, or one checkpoint cycle), plus a slow term pulling
    the state of charge back to `initial_soc_frac` over `restore_s` (10 windows when None).
    The losses of the last window are added to the grid's aim, so the battery does not drain
    paying them.
    Round-trip losses are split evenly: sqrt(efficiency) on the way in and on the way out.
    """

    power_mw: float
    energy_mwh: float
    round_trip_efficiency: float
    initial_soc_frac: float = 0.5
    window_s: float | None = None
    restore_s: float | None = None

    def validate(self) -> None:
        if not (math.isfinite(self.power_mw) and self.power_mw >= 0):
            raise InputError(SOURCE, "battery_mw", f"must be >= 0, got {self.power_mw}")
        if not (math.isfinite(self.energy_mwh) and self.energy_mwh >= 0):
            raise InputError(SOURCE, "battery_mwh", f"must be >= 0, got {self.energy_mwh}")
        eff = self.round_trip_efficiency
        if not (math.isfinite(eff) and 0 < eff <= 1):
            raise InputError(SOURCE, "battery_efficiency", f"must be in (0, 1], got {eff}")
        if not 0 <= self.initial_soc_frac <= 1:
            raise InputError(
                SOURCE, "initial_soc_frac", f"must be in [0, 1], got {self.initial_soc_frac}"
            )
        for name, v in (("window_s", self.window_s), ("restore_s", self.restore_s)):
            if v is not None and not (math.isfinite(v) and v > 0):
                raise InputError(SOURCE, name, f"must be > 0, got {v}")


@dataclass(frozen=True)
class BatteryRun:
    """The dispatch: grid and battery power per sample, state of charge at each sample's end."""

    grid_mw: np.ndarray
    discharge_mw: np.ndarray  # > 0 delivering to the load, < 0 charging from the grid
    soc_mwh: np.ndarray
    soc_start_mwh: float
    losses_mwh: float


def _trailing_mean(load_mw: np.ndarray, window: int) -> np.ndarray:
    """Mean over the last `window` samples, the current one included. Before t = 0 the job is
    assumed to have run as in its first window (it is in steady state when the tool starts)."""
    window = max(1, min(window, load_mw.size))
    padded = np.concatenate([load_mw[:window], load_mw])
    c = np.concatenate([[0.0], np.cumsum(padded)])
    idx = np.arange(window, padded.size) + 1
    return np.asarray((c[idx] - c[idx - window]) / window, dtype=float)


def dispatch(load_mw: np.ndarray, sample_hz: int, bat: Battery, window_s: float) -> BatteryRun:
    """Simulate the battery sample by sample. State carries from one sample to the next (SoC
    limits, losses), so this is a plain loop; no library dispatches a battery to a target."""
    bat.validate()
    dt_h = 1.0 / sample_hz / _S_PER_H
    eta_1way = math.sqrt(bat.round_trip_efficiency)  # each direction's share
    target = _trailing_mean(load_mw, round((bat.window_s or window_s) * sample_hz))
    restore_h = (bat.restore_s or 10.0 * (bat.window_s or window_s)) / _S_PER_H
    cap = bat.energy_mwh
    ref = bat.initial_soc_frac * cap
    soc = ref
    n = load_mw.size
    grid = np.empty(n)
    dis = np.empty(n)
    socs = np.empty(n)
    losses = 0.0
    # The pull-back uses the state of charge averaged over the last window, so that a periodic
    # load's own in-window SoC ripple does not leak back into the grid draw; the losses of the
    # last window are fed forward so the pull-back only corrects what is left.
    win = max(1, round((bat.window_s or window_s) * sample_hz))
    soc_ring = np.full(win, ref)
    soc_sum = ref * win
    # Seed the loss estimate from the first window: about half its deviation from the aim is
    # charged and half discharged, each side losing its share of the round trip.
    dev = float(np.abs(load_mw[:win] - target[:win]).mean())
    loss_ring = np.full(win, 0.5 * dev * ((1.0 - eta_1way) + (1.0 / eta_1way - 1.0)))
    loss_sum = float(loss_ring.sum())
    for i in range(n):
        goal = target[i] + loss_sum / win + (ref - soc_sum / win) / restore_h
        want = load_mw[i] - goal
        if want > 0:  # discharge: the store gives want / eta_1way to deliver want
            p = min(want, bat.power_mw, soc * eta_1way / dt_h)
            soc -= p / eta_1way * dt_h
            loss_mw = p * (1.0 / eta_1way - 1.0)
        else:  # charge: the grid gives -want, the store keeps -want x eta_1way
            p = -min(-want, bat.power_mw, (cap - soc) / eta_1way / dt_h)
            soc -= p * eta_1way * dt_h
            loss_mw = -p * (1.0 - eta_1way)
        losses += loss_mw * dt_h
        soc = min(max(soc, 0.0), cap)  # clears float dust at the limits
        j = i % win
        soc_sum += soc - soc_ring[j]
        soc_ring[j] = soc
        loss_sum += loss_mw - loss_ring[j]
        loss_ring[j] = loss_mw
        dis[i] = p
        grid[i] = load_mw[i] - p
        socs[i] = soc
    return BatteryRun(grid, dis, socs, ref, losses)


def period_s(job: SwingJob) -> float:
    """The load's repeat period: one iteration, or one checkpoint cycle (training plus stall)."""
    if job.checkpoint_every_s is not None and job.checkpoint_stall_s > 0:
        return job.checkpoint_every_s + job.checkpoint_stall_s
    return job.iteration_s


def with_battery(p: Profile, bat: Battery, load: RemedyResult | None = None) -> RemedyResult:
    """The grid behind a battery that serves `load` (the baseline when None)."""
    base = load if load is not None else baseline(p)
    run = dispatch(base.grid_mw, p.sample_hz, bat, period_s(p.job))
    unit = megapack()
    return RemedyResult(
        "battery",
        run.grid_mw,
        p.sample_hz,
        base.main_throughput_rel,
        {
            "battery_mw": bat.power_mw,
            "battery_mwh": bat.energy_mwh,
            "battery_efficiency": bat.round_trip_efficiency,
            "soc_min_mwh": float(run.soc_mwh.min()),
            "soc_max_mwh": float(run.soc_mwh.max()),
            "soc_end_mwh": float(run.soc_mwh[-1]),
            "losses_mwh": float(run.losses_mwh),
            "units": units_needed(bat.power_mw, bat.energy_mwh, unit),
            "unit": unit.name,
        },
    )


def units_needed(power_mw: float, energy_mwh: float, unit: BatteryUnit) -> int:
    """Whole units that cover both the power and the energy."""
    by_power = math.ceil(power_mw / unit.power_mw - 1e-9)
    by_energy = math.ceil(energy_mwh / unit.energy_mwh - 1e-9)
    return max(by_power, by_energy, 0)


def smallest_battery(
    p: Profile,
    target_amplitude_mw: float,
    round_trip_efficiency: float,
    rel_tol: float = 1e-3,
) -> Battery:
    """The smallest battery that brings the grid-side amplitude to `target_amplitude_mw` or below.

    Power first: bisect the MW with ample energy (one hour at that power). Then energy: bisect
    the MWh at that power. The grid amplitude falls as either grows, which bisection relies on.
    The result is the least-power point, with the least energy at that power. The battery must
    also end the horizon with at least half its starting charge, so that the size holds for a
    longer run than the one simulated.
    """
    if not (math.isfinite(target_amplitude_mw) and target_amplitude_mw >= 0):
        raise InputError(SOURCE, "target_amplitude_mw", f"must be >= 0, got {target_amplitude_mw}")
    base = baseline(p)

    def ok(power_mw: float, energy_mwh: float) -> bool:
        """Meets the target, and ends with at least half its starting charge: a battery that
        only meets it by draining over the horizon would not over a longer one."""
        bat = Battery(power_mw, energy_mwh, round_trip_efficiency)
        r = with_battery(p, bat, base)
        end_ok = r.details["soc_end_mwh"] >= 0.5 * bat.initial_soc_frac * energy_mwh
        return r.amplitude_mw <= target_amplitude_mw and end_ok

    zero = Battery(0.0, 0.0, round_trip_efficiency)
    zero.validate()
    if base.amplitude_mw <= target_amplitude_mw:
        return zero
    hi_p = base.amplitude_mw
    while not ok(hi_p, hi_p):
        hi_p *= 2.0
        if hi_p > 64 * base.amplitude_mw:
            raise InputError(
                SOURCE,
                "target_amplitude_mw",
                f"{target_amplitude_mw} MW is below what this battery controller reaches",
            )
    lo_p = 0.0
    while hi_p - lo_p > rel_tol * base.amplitude_mw:
        mid = 0.5 * (lo_p + hi_p)
        if ok(mid, mid):
            hi_p = mid
        else:
            lo_p = mid
    lo_e, hi_e = 0.0, hi_p
    while hi_e - lo_e > rel_tol * hi_e and hi_e - lo_e > 1e-9:
        mid = 0.5 * (lo_e + hi_e)
        if ok(hi_p, mid):
            hi_e = mid
        else:
            lo_e = mid
    return Battery(hi_p, hi_e, round_trip_efficiency)
