"""Synthetic workload: a seeded, vectorized job stream calibrated to published cluster numbers.

Three bands of jobs, each given a share of the offered GPU time:

- small: 1-8 GPUs, minutes to hours, mostly research plus eval (Philly/Helios runtimes);
- mid: 64-2,048 GPUs (whole 8-GPU nodes), a day to weeks, fine-tuning and ablation runs;
- big: 4,096-32,768 GPUs, days to weeks, FSD and Optimus training runs (`production`).

Arrival rates follow from the arithmetic `rate = share * load * capacity / E[gpus * duration]`,
so the offered demand is about `load * capacity` GPUs of H100 work, where `capacity` is the
fleet's capacity in H100-equivalent GPUs (`fleet_capacity`; its GPU count on a fleet of H100
only). Small and mid jobs arrive as a Poisson process thinned by a sinusoidal daily rate peaking
mid-afternoon (t = 0 is midnight); big runs are spread evenly over the horizon. Big-run sizes
and durations are drawn by stratified sampling (one draw per quantile slot), so their few draws
still follow the distribution and the GPU-time mix is stable from seed to seed.

Every number below names its source. Tags as in shared/reference/README.md, plus [A]: an
assumption of this model, chosen to meet the published bands; docs/calibration.md compares
the output with the published numbers.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from statistics import NormalDist

import numpy as np

from cortex.errors import InputError
from cortex.fleet.catalog import load_catalog
from cortex.gcscope import collector_scope
from cortex.workload.job import Job
from cortex.workload.throughput import ThroughputTable

DAY_S = 86_400.0
HOUR_S = 3_600.0
GPUS_PER_NODE = 8  # HGX H100 node (cortex-facts.md)

# --- Published numbers (trace-summary.csv, cortex-facts.md) --------------------------------
PHILLY_MEDIAN_RUNTIME_S = 874.0  # Philly 2017, AcmeTrace cluster_summary [V]
HELIOS_MEDIAN_RUNTIME_S = 206.0  # Helios 2020, AcmeTrace cluster_summary [V]
PHILLY_MEAN_RUNTIME_S = 18_006.0  # [V]
HELIOS_MEAN_RUNTIME_S = 6_652.0  # [V]
META_SHARE_JOBS_1GPU_MIN = 0.40  # Meta research clusters: over 40% of jobs use 1 GPU [S]
META_SHARE_JOBS_LT8_MIN = 0.90  # over 90% of jobs use fewer than 8 GPUs [S]
META_GPU_TIME_LT8_MAX = 0.10  # ... yet under 10% of GPU time [S]
META_GPU_TIME_GE256 = (0.52, 0.66)  # jobs of 256+ GPUs take 52-66% of GPU time [S]

# --- Arrivals ----------------------------------------------------------------------------
DIURNAL_PEAK_S = 15 * HOUR_S  # submissions peak mid-afternoon, dip at night [R: Philly and
# Helios arrival plots (Jeon et al. ATC'19, Hu et al. SC'21)]
DIURNAL_AMPLITUDE = 0.5  # rate = mean * (1 + 0.5 cos): peak 3x the night trough [A]

# --- Small band: 1-8 GPUs ------------------------------------------------------------------
SMALL_GANG_SIZES = (1, 2, 4, 8)
SMALL_GANG_PMF = (0.63, 0.20, 0.14, 0.03)  # [A] meets Meta's >40% 1-GPU and >90% <8-GPU
# job shares; mean 1.8 GPUs, near Philly's 1.9 (trace-summary.csv)
SMALL_MEDIAN_RUNTIME_S = math.sqrt(PHILLY_MEDIAN_RUNTIME_S * HELIOS_MEDIAN_RUNTIME_S)  # [D] 424 s
SMALL_RUNTIME_SIGMA = math.sqrt(  # [D] lognormal sigma from mean/median = exp(sigma^2 / 2),
    2 * math.log(math.sqrt(PHILLY_MEAN_RUNTIME_S * HELIOS_MEAN_RUNTIME_S) / SMALL_MEDIAN_RUNTIME_S)
)  # with geometric means of the two traces' means and medians: 2.55
SMALL_RUNTIME_CLIP_S = (30.0, 7 * DAY_S)  # [A] no job under 30 s; the tail stops at a week
SMALL_GPU_TIME_SHARE = 0.005  # [A] Meta: under 10% of GPU time. A fleet built for 4k-32k-GPU
# runs gives its small jobs much less; 0.5% is ~0.025 small jobs per GPU-day (~74k a month at
# 100k GPUs), against ~0.6 on Philly [R] (docs/calibration.md)
SMALL_TEAM_PMF = {"research": 0.60, "fsd": 0.25, "optimus": 0.15}  # [A]
SMALL_EVAL_SHARE = 0.25  # [A] share of small jobs that evaluate checkpoints
RESEARCH_LLM_SHARE = 0.5  # [A] research jobs: half LLM work, half generic

# --- Mid band: 8-256 nodes = 64-2,048 GPUs -------------------------------------------------
MID_NODES = (8, 256)
MID_SIZE_EXPONENT = 3.0  # [A] P(nodes = n) ~ n^-3: GPU time ~ 1/n^2, so ~21.5% of this band's
# GPU time is in its 256+ GPU jobs; with BIG_GPU_TIME_SHARE below that meets Meta's band
# [A] days-long fine-tuning and ablation runs: shorter ones would need more mid-band jobs to
# carry their GPU time than Meta's "over 90% of jobs under 8 GPUs" leaves room for
MID_MEDIAN_RUNTIME_S = 2 * DAY_S
MID_RUNTIME_SIGMA = 0.8
MID_RUNTIME_CLIP_S = (2 * HOUR_S, 21 * DAY_S)  # [A]
MID_TEAM_PMF = {"fsd": 0.4, "optimus": 0.3, "research": 0.3}  # [A]

# --- Big band: FSD and Optimus training runs ----------------------------------------------
BIG_GANG_SIZES = (4_096, 8_192, 16_384, 32_768)  # 8k-32k GPUs for one run today [S]
BIG_GANG_PMF = (0.30, 0.40, 0.25, 0.05)  # [A] Llama 3 trained on 16,384 [V]
BIG_MEDIAN_RUNTIME_S = 5 * DAY_S  # [A] "days to weeks"; Llama 3 405B took 54 days [V]
BIG_RUNTIME_SIGMA = 0.5  # [A]
BIG_RUNTIME_CLIP_S = (1 * DAY_S, 28 * DAY_S)  # [A]
BIG_TEAM_PMF = {"fsd": 0.6, "optimus": 0.4}  # [A] Cortex's uses: FSD and Optimus [S]
GE256_GPU_TIME_TARGET = sum(META_GPU_TIME_GE256) / 2  # aim at the middle of Meta's band

# --- Priorities ------------------------------------------------------------------------------
PREEMPTIBLE_SHARE = 0.3  # [A] share of research and eval jobs submitted as preemptible

# --- Checkpoints (failure-recovery.md) -----------------------------------------------------
CKPT_MIN_GPUS = 64  # smaller jobs keep no checkpoints: they lose progress when interrupted
PARAMS_PER_GPU = 405e9 / 16_384  # [D] Llama 3 405B on 16,384 H100s: ~25M parameters per GPU
CKPT_BYTES_PER_PARAM = 15.0  # full training state, 14-16 bytes per parameter [D]
CKPT_STORAGE_BPS = 2e12  # Llama 3 checkpoint storage, 2 TB/s sustained [V]
CKPT_FIXED_S = 6.4  # [D] ByteRobust blocking save 6.8 s at 2k GPUs [V], less its 0.4 s of data

# Fixed order of labels, so that a seed always gives the same jobs.
TEAMS = ("research", "fsd", "optimus")
KINDS = ("generic", "llm", "eval", "fsd-video", "optimus-policy")
PRIORITY_CLASSES = ("normal", "preemptible", "production")
_TEAM_KIND = np.array([KINDS.index("llm"), KINDS.index("fsd-video"), KINDS.index("optimus-policy")])
_BIG_BAND = 2


def _clipped_lognormal_mean(median: float, sigma: float, lo: float, hi: float) -> float:
    """E[clip(X, lo, hi)] for X lognormal with the given median and log-sd, in closed form."""
    mu, phi = math.log(median), NormalDist().cdf
    a, b = (math.log(lo) - mu) / sigma, (math.log(hi) - mu) / sigma
    inside = math.exp(mu + sigma**2 / 2) * (phi(b - sigma) - phi(a - sigma))
    return inside + lo * phi(a) + hi * (1 - phi(b))


_MID_N = np.arange(MID_NODES[0], MID_NODES[1] + 1)
_MID_PMF = _MID_N ** (-MID_SIZE_EXPONENT) / np.sum(_MID_N ** (-MID_SIZE_EXPONENT))
_MID_GPUS = _MID_N * GPUS_PER_NODE
_MID_GE256 = float(
    np.sum((_MID_PMF * _MID_GPUS)[_MID_GPUS >= 256]) / np.sum(_MID_PMF * _MID_GPUS)
)  # share of the mid band's GPU time in 256+ GPU jobs
# [D] big runs get the share that puts 256+ GPU jobs at the target: big + f * mid = target
BIG_GPU_TIME_SHARE = (GE256_GPU_TIME_TARGET - _MID_GE256 * (1 - SMALL_GPU_TIME_SHARE)) / (
    1 - _MID_GE256
)
MID_GPU_TIME_SHARE = 1 - SMALL_GPU_TIME_SHARE - BIG_GPU_TIME_SHARE


def generate(
    *,
    days: float,
    seed: int,
    fleet_gpus: int,
    load: float = 0.85,
    flavors: tuple[str, ...] = (),
    warm: bool = False,
    capacity_h100e: float | None = None,
) -> list[Job]:
    """Generate jobs submitted over `days`, sorted by submit time, ids 0..n-1.

    The offered demand is about `load * capacity_h100e` GPUs of H100 work, where
    `capacity_h100e` is the fleet's capacity in H100-equivalent GPUs (`fleet_capacity`; default
    `fleet_gpus`, as on a fleet of H100 only); no gang exceeds `fleet_gpus // 2`
    (rounded down to whole nodes when that is 8 or more). `flavors` names the fleet's flavors:
    big runs then accept those at least as fast as H100 for their kind, fastest first; other
    jobs accept any. `warm`: the fleet starts in steady state: jobs submitted at time 0 that
    were already under way (see warm_start; they come first, the stream after them is the same
    as without `warm`). Same arguments, same jobs. Raises InputError for bad arguments.
    """
    src = "synthetic workload"
    if not (math.isfinite(days) and days > 0):
        raise InputError(src, "days", f"must be a positive number, got {days}")
    if fleet_gpus < 1:
        raise InputError(src, "fleet_gpus", f"must be at least 1, got {fleet_gpus}")
    if not (math.isfinite(load) and load > 0):
        raise InputError(src, "load", f"must be a positive number, got {load}")
    if capacity_h100e is None:
        capacity_h100e = float(fleet_gpus)
    if not (math.isfinite(capacity_h100e) and capacity_h100e > 0):
        raise InputError(src, "capacity_h100e", f"must be a positive number, got {capacity_h100e}")
    catalog = load_catalog()
    for f in flavors:
        if f not in catalog:
            raise InputError(src, "flavors", f"unknown flavor {f!r} (known: {', '.join(catalog)})")
    rng = np.random.default_rng(seed)
    horizon_s = days * DAY_S
    cap = fleet_gpus // 2 if fleet_gpus >= 2 else 1
    cap = cap - cap % GPUS_PER_NODE if cap >= GPUS_PER_NODE else cap
    demand_gpus = load * capacity_h100e
    parts = [
        _small(rng, horizon_s, demand_gpus * SMALL_GPU_TIME_SHARE, cap),
        _mid(rng, horizon_s, demand_gpus * MID_GPU_TIME_SHARE, cap),
        _big(rng, horizon_s, demand_gpus * BIG_GPU_TIME_SHARE, cap),
    ]
    submit, gpus, work, team, kind, prio, band = (
        np.concatenate(c) for c in zip(*parts, strict=True)
    )
    order = np.argsort(submit, kind="stable")
    submit, gpus, work = submit[order], gpus[order], work[order]
    team, kind, prio, band = team[order], kind[order], prio[order], band[order]
    done = np.zeros(submit.size)
    if warm:
        # Filled in H100 work, as if every job ran on H100. On a mixed fleet the steady state
        # depends on where the policy places each band (big runs only on flavors at least as
        # fast as H100, the rest spilling onto slow chips that hold them longer), which no
        # closed form gives: a fill of `load` of the GPUs put more big runs than NVIDIA holds
        # on cortex-2026 and kept a queue all month (RESULTS 76); this one starts low instead.
        w = warm_start(np.random.default_rng((seed, 1)), demand_gpus, cap)
        submit, gpus, work, team, kind, prio, band, done = (
            np.concatenate((a, b))
            for a, b in zip(w, (submit, gpus, work, team, kind, prio, band, done), strict=True)
        )
    ckpt = np.where(gpus >= CKPT_MIN_GPUS, _ckpt_write_s(gpus), np.nan)
    prefs = _big_run_flavors(flavors)
    # Python objects per job, built vectorized; then one loop that only constructs Jobs.
    team_names = np.array(TEAMS, dtype=object)[team].tolist()
    kind_names = np.array(KINDS, dtype=object)[kind].tolist()
    prio_names = np.array(PRIORITY_CLASSES, dtype=object)[prio].tolist()
    job_flavors = [
        prefs[k] if b == _BIG_BAND else () for k, b in zip(kind_names, band.tolist(), strict=True)
    ]
    ckpts = [None if math.isnan(c) else c for c in ckpt.tolist()]  # NaN: no checkpoint
    jobs: list[Job] = []
    append = jobs.append
    with collector_scope(freeze=False):  # tens of thousands of Jobs, all kept
        for i, (t, g, w, tm, k, p, fl, c) in enumerate(
            zip(submit.tolist(), gpus.tolist(), work.tolist(), team_names, kind_names,
                prio_names, job_flavors, ckpts, strict=True)
        ):  # fmt: skip
            append(
                Job(i, f"{tm}-{i:06d}", tm, g, w, priority_class=p, flavors=fl, kind=k,
                    submit_s=t, ckpt_write_s=c)
            )  # fmt: skip
    for job, d in zip(jobs, done.tolist(), strict=False):
        if d <= 0:
            break  # warm jobs come first
        job.done_s = d
        job.warm = True
    return jobs


def warm_start(rng: np.random.Generator, demand_gpus: float, cap: int) -> tuple[np.ndarray, ...]:
    """The jobs under way at time 0 in steady state, as arrays like a band's plus `done`.

    By Little's law each band holds its share of `demand_gpus` in work at any instant. Jobs are
    drawn until a band's GPUs reach that share (the last one kept if it lands nearer): sizes
    from the band's own distribution (the number of jobs of a size in the system is
    proportional to its arrival share, all sizes having one duration law), durations
    length-biased (a job twice as long is twice as likely to be under way: sampled from a pool
    of the band's durations with weights proportional to length), and the elapsed part of each
    uniform over its duration, as a renewal process leaves it. All are submitted at 0 and
    counted as checkpointed up to their elapsed part; what the fleet cannot hold queues.
    """
    bands = (
        (np.minimum(np.array(SMALL_GANG_SIZES), cap), np.array(SMALL_GANG_PMF),
         SMALL_MEDIAN_RUNTIME_S, SMALL_RUNTIME_SIGMA, SMALL_RUNTIME_CLIP_S, SMALL_GPU_TIME_SHARE),
        (np.minimum(_MID_GPUS, cap), _MID_PMF, MID_MEDIAN_RUNTIME_S, MID_RUNTIME_SIGMA,
         MID_RUNTIME_CLIP_S, MID_GPU_TIME_SHARE),
        (np.minimum(np.array(BIG_GANG_SIZES), cap), np.array(BIG_GANG_PMF), BIG_MEDIAN_RUNTIME_S,
         BIG_RUNTIME_SIGMA, BIG_RUNTIME_CLIP_S, BIG_GPU_TIME_SHARE),
    )  # fmt: skip
    parts = []
    for b, (sizes, pmf, median, sigma, clip, share) in enumerate(bands):
        target = share * demand_gpus
        drawn: list[int] = []
        total = 0
        while True:
            g = int(sizes[rng.choice(sizes.size, p=pmf)])
            if total + g / 2 > target:
                break
            drawn.append(g)
            total += g
        n = len(drawn)
        pool = _lognormal(rng, 8 * n + 8, median, sigma, clip)
        work = rng.choice(pool, size=n, p=pool / pool.sum())
        done = np.rint(work * rng.random(n))  # at least 1 s done and 1 s left: see generate
        team = _choose(rng, (SMALL_TEAM_PMF, MID_TEAM_PMF, BIG_TEAM_PMF)[b], n)
        kind = _team_kinds(rng, team)
        if b == 0:
            kind = np.where(rng.random(n) < SMALL_EVAL_SHARE, KINDS.index("eval"), kind)
        prio = (
            _priorities(rng, team, kind)
            if b < _BIG_BAND
            else np.full(n, PRIORITY_CLASSES.index("production"), np.int8)
        )
        band = np.full(n, b, np.int8)
        gpus = np.array(drawn, dtype=sizes.dtype)
        parts.append((np.zeros(n), gpus, work, team, kind, prio, band, np.clip(done, 1, work - 1)))
    return tuple(np.concatenate(c) for c in zip(*parts, strict=True))


_Band = tuple[np.ndarray, ...]


def _small(rng: np.random.Generator, horizon_s: float, gpus_share: float, cap: int) -> _Band:
    sizes = np.minimum(np.array(SMALL_GANG_SIZES), cap)
    mean_gpu_s = float(np.dot(SMALL_GANG_PMF, sizes)) * _clipped_lognormal_mean(
        SMALL_MEDIAN_RUNTIME_S, SMALL_RUNTIME_SIGMA, *SMALL_RUNTIME_CLIP_S
    )
    submit = _diurnal_arrivals(rng, gpus_share / mean_gpu_s, horizon_s)
    n = submit.size
    gpus = rng.choice(sizes, size=n, p=SMALL_GANG_PMF)
    work = _lognormal(rng, n, SMALL_MEDIAN_RUNTIME_S, SMALL_RUNTIME_SIGMA, SMALL_RUNTIME_CLIP_S)
    team = _choose(rng, SMALL_TEAM_PMF, n)
    kind = _team_kinds(rng, team)
    kind = np.where(rng.random(n) < SMALL_EVAL_SHARE, KINDS.index("eval"), kind)
    return submit, gpus, work, team, kind, _priorities(rng, team, kind), np.zeros(n, np.int8)


def _mid(rng: np.random.Generator, horizon_s: float, gpus_share: float, cap: int) -> _Band:
    sizes = np.minimum(_MID_GPUS, cap)
    mean_gpu_s = float(np.dot(_MID_PMF, sizes)) * _clipped_lognormal_mean(
        MID_MEDIAN_RUNTIME_S, MID_RUNTIME_SIGMA, *MID_RUNTIME_CLIP_S
    )
    submit = _diurnal_arrivals(rng, gpus_share / mean_gpu_s, horizon_s)
    n = submit.size
    gpus = rng.choice(sizes, size=n, p=_MID_PMF)
    work = _lognormal(rng, n, MID_MEDIAN_RUNTIME_S, MID_RUNTIME_SIGMA, MID_RUNTIME_CLIP_S)
    team = _choose(rng, MID_TEAM_PMF, n)
    kind = _team_kinds(rng, team)
    return submit, gpus, work, team, kind, _priorities(rng, team, kind), np.ones(n, np.int8)


def _big(rng: np.random.Generator, horizon_s: float, gpus_share: float, cap: int) -> _Band:
    sizes = np.minimum(np.array(BIG_GANG_SIZES), cap)
    lo, hi = BIG_RUNTIME_CLIP_S
    mean_gpu_s = float(np.dot(BIG_GANG_PMF, sizes)) * _clipped_lognormal_mean(
        BIG_MEDIAN_RUNTIME_S, BIG_RUNTIME_SIGMA, lo, hi
    )
    expected = gpus_share / mean_gpu_s * horizon_s
    n = int(expected) + int(rng.random() < expected - int(expected))
    submit = (np.arange(n) + rng.random(n)) * (horizon_s / n) if n else np.zeros(0)
    u_size = (rng.permutation(n) + rng.random(n)) / max(n, 1)  # stratified quantiles
    gpus = sizes[
        np.searchsorted(np.cumsum(BIG_GANG_PMF), u_size, side="right").clip(max=len(sizes) - 1)
    ]
    u_dur = (rng.permutation(n) + rng.random(n)) / max(n, 1)
    z = np.array([NormalDist().inv_cdf(min(max(u, 1e-12), 1 - 1e-12)) for u in u_dur.tolist()])
    work = np.rint(np.clip(BIG_MEDIAN_RUNTIME_S * np.exp(BIG_RUNTIME_SIGMA * z), lo, hi))
    team = _choose(rng, BIG_TEAM_PMF, n)
    kind = _team_kinds(rng, team)
    prio = np.full(n, PRIORITY_CLASSES.index("production"), np.int8)
    return submit, gpus, work, team, kind, prio, np.full(n, _BIG_BAND, np.int8)


def _diurnal_arrivals(rng: np.random.Generator, rate_per_s: float, horizon_s: float) -> np.ndarray:
    """Poisson arrivals with rate `rate_per_s * (1 + A cos(2 pi (t - peak) / day))`, by thinning."""
    peak_rate = rate_per_s * (1 + DIURNAL_AMPLITUDE)
    t = rng.uniform(0.0, horizon_s, rng.poisson(peak_rate * horizon_s))
    keep = (1 + DIURNAL_AMPLITUDE * np.cos(2 * np.pi * (t - DIURNAL_PEAK_S) / DAY_S)) / (
        1 + DIURNAL_AMPLITUDE
    )
    return np.sort(t[rng.random(t.size) < keep])


def _lognormal(
    rng: np.random.Generator, n: int, median: float, sigma: float, clip: tuple[float, float]
) -> np.ndarray:
    return np.rint(np.clip(rng.lognormal(math.log(median), sigma, n), *clip))


def _choose(rng: np.random.Generator, pmf: dict[str, float], n: int) -> np.ndarray:
    """Team indices (into TEAMS) drawn from a {team: probability} mapping."""
    idx = np.array([TEAMS.index(t) for t in pmf], np.int8)
    return idx[rng.choice(len(idx), size=n, p=list(pmf.values()))]


def _team_kinds(rng: np.random.Generator, team: np.ndarray) -> np.ndarray:
    """Each team's own kind; research splits between llm and generic."""
    kind = _TEAM_KIND[team]
    generic = (team == TEAMS.index("research")) & (rng.random(team.size) >= RESEARCH_LLM_SHARE)
    return np.where(generic, KINDS.index("generic"), kind)


def _priorities(rng: np.random.Generator, team: np.ndarray, kind: np.ndarray) -> np.ndarray:
    eligible = (team == TEAMS.index("research")) | (kind == KINDS.index("eval"))
    pre = eligible & (rng.random(team.size) < PREEMPTIBLE_SHARE)
    return np.where(pre, PRIORITY_CLASSES.index("preemptible"), PRIORITY_CLASSES.index("normal"))


def _ckpt_write_s(gpus: np.ndarray) -> np.ndarray:
    """Blocking checkpoint time: a model of PARAMS_PER_GPU per GPU written at 2 TB/s."""
    return CKPT_FIXED_S + gpus * PARAMS_PER_GPU * CKPT_BYTES_PER_PARAM / CKPT_STORAGE_BPS


def kind_work_shares() -> dict[str, float]:
    """Each kind's expected share of the offered H100 work, from the band, team, eval and
    research shares above. A team's share of a band's jobs is its share of the band's work
    (sizes and durations are drawn independently of the team)."""
    shares = dict.fromkeys(KINDS, 0.0)
    for band_share, pmf, eval_share in (
        (SMALL_GPU_TIME_SHARE, SMALL_TEAM_PMF, SMALL_EVAL_SHARE),
        (MID_GPU_TIME_SHARE, MID_TEAM_PMF, 0.0),
        (BIG_GPU_TIME_SHARE, BIG_TEAM_PMF, 0.0),
    ):
        shares["eval"] += band_share * eval_share
        for team, p in pmf.items():
            own = band_share * p * (1 - eval_share)
            if team == "research":
                shares["llm"] += own * RESEARCH_LLM_SHARE
                shares["generic"] += own * (1 - RESEARCH_LLM_SHARE)
            else:
                shares[KINDS[_TEAM_KIND[TEAMS.index(team)]]] += own
    return shares


def fleet_capacity(flavors: Sequence[str], gpus: Sequence[int]) -> float:
    """The fleet's capacity in H100-equivalent GPUs for the synthetic mix: each flavor's GPUs
    times its speed on the mix, the work-weighted harmonic mean of its kinds' speeds (a flavor
    given the mix spends sum(w_k / speed_k) GPU-seconds per second of H100 work). On a fleet of
    H100 only this is exactly its GPU count; a flavor outside the throughput table counts at
    1.0. An estimate, not the best placement's bound: it ignores that big
    runs may not use flavors slower than H100 (docs/hetero.md, "The ceiling at steady state")."""
    table = ThroughputTable.load()
    shares = kind_work_shares()
    weight = sum(shares.values())
    capacity = 0.0
    for flavor, n in zip(flavors, gpus, strict=True):
        if flavor not in table.flavors():
            capacity += n
            continue
        capacity += n * (weight / sum(w / table.speed(k, flavor) for k, w in shares.items()))
    return capacity


def _big_run_flavors(flavors: tuple[str, ...]) -> dict[str, tuple[str, ...]]:
    """Per kind: the fleet's flavors at least as fast as H100, fastest first (empty = any)."""
    table = ThroughputTable.load()
    out: dict[str, tuple[str, ...]] = {}
    for kind in KINDS:
        fast = [f for f in flavors if f in table.flavors() and table.speed(kind, f) >= 1.0]
        out[kind] = tuple(sorted(fast, key=lambda f: -table.speed(kind, f)))
    return out


def describe(
    jobs: list[Job], *, fleet_gpus: int | None = None, horizon_s: float | None = None
) -> dict[str, float]:
    """Calibration statistics of a job list (see docs/calibration.md).

    Small jobs are those of 8 GPUs or fewer. `horizon_s` defaults to the last submit time
    rounded up to whole days; `offered_load` is reported only when `fleet_gpus` is given.
    """
    if not jobs:
        return {"jobs": 0.0}
    gpus = np.array([j.gpus for j in jobs], np.float64)
    work = np.array([j.work_s for j in jobs])
    submit = np.array([j.submit_s for j in jobs])
    gpu_s = gpus * work
    if horizon_s is None:
        horizon_s = max(1.0, math.ceil(float(submit.max()) / DAY_S)) * DAY_S
    small = gpus <= SMALL_GANG_SIZES[-1]
    hour = (submit % DAY_S) // HOUR_S
    big = np.sort(submit[gpus >= BIG_GANG_SIZES[0]])
    afternoon = int(np.count_nonzero((hour >= 12) & (hour < 18)))  # 12:00-18:00
    night = int(np.count_nonzero(hour < 6))  # 00:00-06:00
    out = {
        "jobs": float(len(jobs)),
        "share_jobs_1gpu": float(np.mean(gpus == 1)),
        "share_jobs_lt8": float(np.mean(gpus < 8)),
        "gpu_time_share_lt8": float(gpu_s[gpus < 8].sum() / gpu_s.sum()),
        "gpu_time_share_ge256": float(gpu_s[gpus >= 256].sum() / gpu_s.sum()),
        "small_median_runtime_s": float(np.median(work[small])) if small.any() else math.nan,
        "small_mean_runtime_s": float(np.mean(work[small])) if small.any() else math.nan,
        "big_runs": float(big.size),
        "big_run_interarrival_days": (
            float(np.mean(np.diff(big)) / DAY_S) if big.size > 1 else math.nan
        ),
        "afternoon_to_night_arrivals": afternoon / night if night else math.inf,
        "offered_gpus": float(gpu_s.sum() / horizon_s),
    }
    if fleet_gpus:
        out["offered_load"] = out["offered_gpus"] / fleet_gpus
    return out
