"""`cortex sim`: run the digital twin with a progress bar, print a summary, write reports."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from cortex.drive.runs import MAX_RETRIES_LIMIT, rules
from cortex.errors import InputError, check_outputs
from cortex.fleet.spec import load_fleet_spec
from cortex.fleet.topology import Topology, build
from cortex.gcscope import collector_scope, leave_heap_to_os
from cortex.power.battery import BatterySpec
from cortex.power.curve import CapCurve
from cortex.scheduler.registry import PROFILES, power_profile
from cortex.sim.failures import load_job_causes
from cortex.sim.power import POWER_POLICIES, CapEvent, PowerConfig
from cortex.sim.report import build_report, write_json
from cortex.sim.twin import SimConfig, Twin
from cortex.workload.job import Job
from cortex.workload.sources import load_trace, load_workload, resolve_load_basis
from cortex.workload.synthetic import TEAMS, fleet_capacity

# Options whose help runs over a line, named here so that the command reads as a list.
_WORKLOAD = typer.Option(
    "synthetic", help="synthetic | single:GPUS | a YAML job file | a CSV trace"
)
_WARM_START = typer.Option(
    None,
    "--warm-start/--cold-start",
    help="start the fleet in steady state (default for the synthetic workload) or empty "
    "(the default, and the only choice, for traces and job files)",
)
# None, not 0.85, so that --load given with a trace or a job file is seen (and refused).
DEFAULT_LOAD = 0.85
_LOAD = typer.Option(
    None, min=0.01, max=2.0, help=f"synthetic offered load (default {DEFAULT_LOAD})"
)
_LOAD_BASIS = typer.Option(
    None,
    help="what --load is a share of: auto (the default: gpus, unless the fleet is slower than "
    "H100, then capacity) | gpus (the fleet's GPUs in H100 work, as calibrated) | capacity (its "
    "H100-equivalent capacity, an estimate: on a mixed fleet about the busy share --load gives "
    "a fleet of H100)",
)
_FAILURES = typer.Option(
    True, help="model failures (Llama 3 census, lemon nodes, research jobs' own failures)"
)
# At 1,000x a node fails every few hours; far beyond, the failure draw itself breaks (numpy's
# Poisson refuses its mean) and inf gave a traceback.
_FAILURE_SCALE = typer.Option(1.0, min=0.0, max=1000.0, help="multiply all failure rates")
_FAILURE_DATA = typer.Option(
    None, help="job-failure causes CSV (default: sim/data/job_failures.csv)"
)
_QUARANTINE = typer.Option(
    False,
    help="lemon quarantine: a node that fails repeatedly leaves for repair and burn-in "
    "(drive/data/quarantine.csv)",
)
_HOT_SPARES = typer.Option(
    0,
    min=0,
    max=64,
    help="hot spare nodes held per pod: a gang that loses a node swaps one in "
    "instead of requeueing (sim/spares.py)",
)
_MAX_RETRIES = typer.Option(
    rules("twin").max_retries,
    min=0,
    max=MAX_RETRIES_LIMIT,
    help="failed runs of a job's own (user code, system software) requeued at most, after "
    "the retry backoff; then it fails for good. A node's failure spends none "
    "(drive/runs.py judge_exit; the default is drive/data/run_rules.csv's, the control "
    "plane's too)",
)
_CHECKPOINT_INTERVAL_S = typer.Option(
    None, min=1.0, help="fixed checkpoint interval (default: Young/Daly per job)"
)
_CHECKPOINT_WRITE_S = typer.Option(
    None, min=0.0, help="checkpoint write time for jobs that give none (e.g. traces)"
)
_BACKFILL_INTERVAL_S = typer.Option(
    None, min=1.0, help="deep (backfill) pass interval; default from sim/data/defaults.csv"
)
_POWER_POLICY = typer.Option(
    "none",
    help="power management: off (no power model) | none (model and report only) | static "
    "(every GPU capped) | admit (power-aware admission) | cap (admission + per-job caps) | "
    "full (cap + ramp limit with staggered starts + battery)",
)
_STATIC_CAP = typer.Option(
    None, help="static policy: per-GPU cap as a fraction of TDP (default: what fits)"
)
_RAMP_LIMIT = typer.Option(
    None, help="grid ramp limit in MW per minute (full: data/grid.csv's 10 by default)"
)
_CAP_EVENT = typer.Option(
    [], help="site cap drop START_H:DURATION_H:CAP_MW (repeatable), e.g. 100:4:100"
)
_HEAT_WAVE = typer.Option(
    [], help="outdoor temperature + DELTA_C from START_H for DURATION_H (repeatable)"
)
# None, not 182, so that --start-day given with --power-policy off is seen (and refused).
_START_DAY = typer.Option(
    None, min=0, max=365, help="day of year the run starts (default 182, July 1; power model)"
)
_TEMPERATURE_C = typer.Option(None, help="constant outdoor temperature instead of Austin's climate")


def sim(
    fleet: str = typer.Option("cortex-2024", help="preset name or fleet YAML file"),
    days: float = typer.Option(30.0, min=0.001, max=3650.0, help="simulated horizon in days"),
    workload: str = _WORKLOAD,
    trace: Path | None = typer.Option(None, help="replay a CSV trace (overrides --workload)"),
    policy: str = typer.Option("priority", help=f"scheduling profile: {' | '.join(PROFILES)}"),
    seed: int = typer.Option(0, min=0, help="seed for the workload and the failures"),
    load: float | None = _LOAD,
    load_basis: str | None = _LOAD_BASIS,
    warm_start: bool | None = _WARM_START,
    backfill: bool = typer.Option(True, help="EASY backfill"),
    failures: bool = _FAILURES,
    failure_scale: float = _FAILURE_SCALE,
    failure_data: Path | None = _FAILURE_DATA,
    quarantine: bool = _QUARANTINE,
    hot_spares: int = _HOT_SPARES,
    max_retries: int = _MAX_RETRIES,
    checkpoint_interval_s: float | None = _CHECKPOINT_INTERVAL_S,
    checkpoint_write_s: float | None = _CHECKPOINT_WRITE_S,
    backfill_interval_s: float | None = _BACKFILL_INTERVAL_S,
    power_policy: str = _POWER_POLICY,
    site_cap_mw: float | None = typer.Option(None, help="site cap in MW (default: the fleet's)"),
    static_cap: float | None = _STATIC_CAP,
    rack_cap_kw: float | None = typer.Option(None, help="IT power cap per rack, kW"),
    ramp_limit: float | None = _RAMP_LIMIT,
    battery_mwh: float | None = typer.Option(None, help="battery energy, MWh"),
    battery_mw: float | None = typer.Option(None, help="battery power, MW"),
    battery_efficiency: float | None = typer.Option(
        None, help="battery round-trip efficiency (default 0.9; with --battery-mwh/--battery-mw)"
    ),
    cap_event: list[str] = _CAP_EVENT,
    heat_wave: list[str] = _HEAT_WAVE,
    start_day: int | None = _START_DAY,
    temperature_c: float | None = _TEMPERATURE_C,
    cap_curve: Path | None = typer.Option(None, help="throughput-vs-cap curve CSV"),
    json_path: Path | None = typer.Option(None, "--json", help="write the JSON report here"),
    html_path: Path | None = typer.Option(
        None, "--html", help="write the report here, on the dashboard's templates and charts"
    ),
    static_path: Path | None = typer.Option(
        None, "--html-static", help="write a report with no scripts at all here (PNG plots)"
    ),
    debug: bool = typer.Option(False, help="check invariants after every event (slow)"),
    quiet: bool = typer.Option(False, help="no progress bar"),
) -> None:
    """Simulate a fleet running a workload under a scheduling policy."""
    if policy not in PROFILES:
        raise InputError(
            "--policy", "policy", f"unknown policy {policy!r}; known: {', '.join(PROFILES)}"
        )
    check_outputs(
        {"--json": json_path, "--html": html_path, "--html-static": static_path},
        [fleet, workload, trace, failure_data, cap_curve],
    )
    if not failures:
        _needs_failures(quarantine, failure_data, failure_scale)
    for option, value in (
        ("--checkpoint-interval-s", checkpoint_interval_s),
        ("--checkpoint-write-s", checkpoint_write_s),
        ("--backfill-interval-s", backfill_interval_s),
    ):  # Typer's range takes inf: NaN reached the GPU-hour books, Infinity the JSON config
        if value is not None and not math.isfinite(value):
            raise InputError(option, option[2:].replace("-", "_"), f"must be finite, got {value}")
    if failure_data is not None:
        load_job_causes(failure_data)  # a bad file fails here, before any workload is built
    # The fleet, the jobs and the twin's indices are hundreds of thousands of long-lived
    # objects: built with young collections rare (cortex/gcscope.py), in one scope that lasts
    # through the run (which freezes them) and the report: a scope's exit in between would put
    # back CPython's threshold with all of it in the young generations.
    with collector_scope(freeze=False):
        topo, jobs, label = _workload(
            fleet, trace, workload, days, seed, (load, load_basis), warm_start
        )
        _check_hot_spares(hot_spares, topo)
        cfg = SimConfig(
            days=days,
            seed=seed,
            policy=policy,
            backfill=backfill,
            failures=failures,
            failure_scale=failure_scale,
            failure_data=str(failure_data) if failure_data is not None else None,
            quarantine=quarantine,
            hot_spares_per_pod=hot_spares,
            max_retries=max_retries,
            checkpoint_interval_s=checkpoint_interval_s,
            default_checkpoint_write_s=checkpoint_write_s,
            backfill_interval_s=backfill_interval_s,
            debug=debug,
            power=_power_config(
                power_policy,
                site_cap_mw,
                static_cap,
                rack_cap_kw,
                ramp_limit,
                battery_mwh,
                battery_mw,
                battery_efficiency,
                cap_event,
                heat_wave,
                start_day,
                temperature_c,
                cap_curve,
                days * 86400.0,
            ),
        )
        twin = Twin(topo, jobs, cfg)
        twin = _run(twin, days, quiet)
        report = build_report(twin, workload=label)
        if label == "synthetic":  # the twin sees jobs, not the load they were drawn at
            # the basis `auto` resolved to, so that the config re-runs the same jobs
            report["config"].update(
                load=DEFAULT_LOAD if load is None else load,
                load_basis=resolve_load_basis(load_basis or "auto", topo),
            )
    print_summary(report)
    if json_path is not None:
        _write(json_path, "--json", lambda p: write_json(report, p))
    if html_path is not None:
        from cortex.control.ui.report import write_report

        _write(html_path, "--html", lambda p: write_report(report, p))
    if static_path is not None:
        from cortex.sim.html import write_html

        _write(static_path, "--html-static", lambda p: write_html(report, p))
    leave_heap_to_os()  # the reports are written: nothing of the run is needed any more


def _check_hot_spares(per_pod: int, topo: Topology) -> None:
    """The pool keeps one node of every pod in service (drive/spares.py), so a count no pod can
    hold was cut there in silence (64 on `tiny` held 6 of its 8 nodes): exit 2 instead."""
    largest = max(len(nodes) for nodes in topo.pod_nodes)
    if per_pod >= largest:
        raise InputError(
            "--hot-spares",
            "hot_spares",
            f"the largest pod here has {largest} nodes and keeps one in service: "
            f"at most {largest - 1}, got {per_pod}",
        )


def _needs_failures(quarantine: bool, failure_data: Path | None, failure_scale: float) -> None:
    """Options that mean nothing with --no-failures exit 2 rather than be silently ignored."""
    if quarantine:
        raise InputError("--quarantine", "quarantine", "needs failures (drop --no-failures)")
    if failure_data is not None:
        raise InputError("--failure-data", "failure_data", "needs failures (drop --no-failures)")
    if failure_scale != 1.0:
        raise InputError("--failure-scale", "failure_scale", "needs failures (drop --no-failures)")


def _workload(
    fleet: str,
    trace: Path | None,
    workload: str,
    days: float,
    seed: int,
    load: tuple[float | None, str | None],
    warm_start: bool | None,
) -> tuple[Topology, list[Job], str]:
    """The fleet, its jobs and the workload's label; warm by default for `synthetic` only.
    `load`: the synthetic load and what it is a share of (--load, --load-basis)."""
    synthetic = trace is None and workload == "synthetic"
    if warm_start and not synthetic:
        given = f"--trace {trace}" if trace is not None else f"--workload {workload}"
        raise InputError(
            "--warm-start", "warm_start", f"needs the synthetic workload; {given} starts cold"
        )
    given_share, basis = load
    # A trace never reaches load_workload, which checks the basis for the other workloads.
    for option, value in (("--load", given_share), ("--load-basis", basis)):
        if value is not None and not synthetic:
            given = f"--trace {trace}" if trace is not None else f"--workload {workload}"
            raise InputError(
                option, option[2:].replace("-", "_"),
                f"needs the synthetic workload; {given} has no load",
            )  # fmt: skip
    share = DEFAULT_LOAD if given_share is None else given_share
    warm = synthetic if warm_start is None else warm_start
    topo = build(load_fleet_spec(fleet))
    if trace is not None:
        jobs = load_trace(trace, topo)
        label = f"trace:{trace.name}"
    else:
        basis = basis or ("auto" if synthetic else "gpus")  # no load to take a basis of
        jobs = load_workload(
            workload, topo, days=days, seed=seed, load=share, warm=warm, load_basis=basis
        )
        if synthetic:
            _check_teams_have_queues(topo, fleet)
        if synthetic and resolve_load_basis(basis, topo) == "gpus":
            _warn_overload(topo, share)
        # a job file by its name, unless that names the synthetic workload (`./synthetic`)
        name = Path(workload).name
        label = (
            workload if synthetic or workload.startswith("single:") or name == "synthetic" else name
        )
    return topo, jobs, label


def _check_teams_have_queues(topo: Topology, fleet: str) -> None:
    """A fleet whose queues name none of the synthetic workload's teams would reject every job
    (UnknownQueue) and report an idle fleet: exit 2 instead. (A job file's teams are the
    user's own, and its rejections are reported as usual.)"""
    queues = topo.spec.queues
    if queues is None:
        return
    teams = sorted(TEAMS)
    names = [q.name for q in queues.cluster_queues]
    if not set(names) & set(teams):
        raise InputError(
            fleet,
            "queues.cluster_queues",
            f"no queue for the synthetic workload's teams ({', '.join(teams)}; it has "
            f"{', '.join(names)}): every job would be rejected as UnknownQueue",
        )


def _warn_overload(topo: Topology, load: float) -> None:
    """One line on stderr when the load offers the fleet more than it asked for: on a fleet of
    slow chips a share of its GPUs in H100 work can exceed its capacity (`--load 0.85` on
    cortex-2026 offers 1.39x), and the queue is likely to grow all run. A load above 1 asks for
    an overload: the warning then comes only when the basis makes it larger than asked."""
    capacity = fleet_capacity(topo.flavors, topo.flavor_gpus())
    ratio = load * topo.total_gpus / capacity
    if ratio > max(1.0, load):
        typer.echo(
            f"cortex sim: warning: --load {load:g} offers {ratio:.2f}x the fleet's capacity "
            f"({capacity:,.0f} H100-eq for {topo.total_gpus:,} GPUs); its queue is likely to "
            f"grow all run. --load-basis capacity (or auto, the default) reads --load as a "
            "share of that capacity here.",
            err=True,
        )


def _run(twin: Twin, days: float, quiet: bool) -> Twin:
    if quiet:
        return twin.run()
    # Imported here: ~15 ms of start-up that a --quiet run does not use.
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(
        TextColumn("[bold]simulating"),
        BarColumn(),
        TextColumn("day {task.completed:.1f}/{task.total:.0f}"),
        TimeElapsedColumn(),
        console=Console(stderr=True),
        transient=True,
    ) as bar:
        task = bar.add_task("sim", total=days)
        return twin.run(on_progress=lambda t: bar.update(task, completed=t / 86400.0))


def _before_horizon(option: str, start_h: float, horizon_s: float) -> None:
    """An event that starts at or after the horizon can never take place: it was accepted and
    the run reported as if it had been lived through (its mark listed, nothing changed). In
    seconds, as the twin compares (0.05 days is 1.2000000000000002 h but 4320.0 s)."""
    if start_h * 3600.0 >= horizon_s:
        raise InputError(
            option,
            "start_h",
            f"{start_h:g} h is at or after the horizon ({horizon_s / 3600:g} h, --days): "
            "it never starts",
        )


def _cap_event(raw: str, horizon_s: float) -> CapEvent:
    parts = raw.split(":")
    if len(parts) != 3:
        raise InputError("--cap-event", "cap_event", f"{raw!r} is not START_H:DURATION_H:CAP_MW")
    try:
        start_h, dur_h, cap_mw = (float(x) for x in parts)
    except ValueError:
        raise InputError("--cap-event", "cap_event", f"{raw!r} has a non-number") from None
    _finite("--cap-event", start_h=start_h, duration_h=dur_h, cap_mw=cap_mw)
    event = CapEvent(start_h * 3600.0, dur_h * 3600.0, cap_mw)  # its own checks first
    _before_horizon("--cap-event", start_h, horizon_s)
    return event


def _finite(option: str, **values: float | None) -> None:
    """Refuse inf and nan by the option's name: a --ramp-limit or a --cap-event duration of inf
    ran and wrote `Infinity` into the JSON report (not JSON), a --battery-mwh of inf failed as
    "prices: power_mw", a --heat-wave's nan as "climate: delta_c"."""
    for name, v in values.items():
        if v is not None and not math.isfinite(v):
            raise InputError(option, name, f"must be finite, got {v:g}")


def _heat_wave(raw: str, horizon_s: float) -> tuple[float, float, float]:
    parts = raw.split(":")
    try:
        start_h, dur_h, delta_c = (float(x) for x in parts)
    except ValueError:
        raise InputError(
            "--heat-wave", "heat_wave", f"{raw!r} is not START_H:DURATION_H:DELTA_C"
        ) from None
    _finite("--heat-wave", start_h=start_h, duration_h=dur_h, delta_c=delta_c)
    if not dur_h > 0:
        raise InputError("--heat-wave", "duration_h", f"must be positive, got {dur_h:g}")
    _before_horizon("--heat-wave", start_h, horizon_s)
    return start_h * 3600.0, dur_h * 3600.0, delta_c


def _power_config(
    policy: str,
    site_cap_mw: float | None,
    static_cap: float | None,
    rack_cap_kw: float | None,
    ramp_limit: float | None,
    battery_mwh: float | None,
    battery_mw: float | None,
    battery_efficiency: float | None,
    cap_events: list[str],
    heat_waves: list[str],
    start_day: int | None,
    temperature_c: float | None,
    cap_curve: Path | None,
    horizon_s: float,
) -> PowerConfig | None:
    """Validate the power options into a PowerConfig (None for `off`); events start before
    `horizon_s`."""
    if policy not in ("off", *POWER_POLICIES):
        known = ", ".join(("off", *POWER_POLICIES))
        raise InputError("--power-policy", "power_policy", f"unknown {policy!r}; known: {known}")
    if policy == "off":
        given = {
            "--site-cap-mw": site_cap_mw, "--static-cap": static_cap,
            "--rack-cap-kw": rack_cap_kw, "--ramp-limit": ramp_limit,
            "--battery-mwh": battery_mwh, "--battery-mw": battery_mw,
            "--battery-efficiency": battery_efficiency,
            "--cap-event": cap_events or None, "--heat-wave": heat_waves or None,
            "--start-day": start_day, "--temperature-c": temperature_c,
            "--cap-curve": cap_curve,
        }  # fmt: skip
        for option, value in given.items():
            if value is not None:
                raise InputError(
                    option, option[2:].replace("-", "_"), "has no effect with --power-policy off"
                )
        return None
    if temperature_c is not None and heat_waves:
        raise InputError(
            "--heat-wave", "heat_wave", "has no effect with a constant --temperature-c"
        )
    # Options one policy or one other option reads, refused where nothing reads them: a
    # --static-cap under `cap` or a --battery-efficiency with no battery (the smallest battery
    # `full` sizes is Megapacks at their own efficiency) ran and reported as if never given.
    if static_cap is not None and not power_profile(policy).static:
        raise InputError(
            "--static-cap", "static_cap", "has no effect without --power-policy static"
        )
    _finite("--ramp-limit", ramp_limit_mw_per_min=ramp_limit)
    _finite("--battery-mwh", battery_mwh=battery_mwh)
    _finite("--battery-mw", battery_mw=battery_mw)
    if battery_efficiency is not None and not 0 < battery_efficiency <= 1:
        raise InputError(
            "--battery-efficiency",
            "battery_efficiency",
            f"must be within (0, 1], got {battery_efficiency:g}",
        )
    battery = None
    if battery_mwh is not None or battery_mw is not None:
        if battery_mwh is None or battery_mw is None:
            raise InputError("--battery-mwh", "battery", "give both --battery-mwh and --battery-mw")
        eff = 0.9 if battery_efficiency is None else battery_efficiency
        battery = BatterySpec(battery_mwh, battery_mw, eff)
    elif battery_efficiency is not None:
        raise InputError(
            "--battery-efficiency",
            "battery_efficiency",
            "has no effect without a battery (--battery-mwh and --battery-mw)",
        )
    cfg = PowerConfig(
        policy=policy,
        site_cap_mw=site_cap_mw,
        static_cap_frac=static_cap,
        rack_cap_kw=rack_cap_kw,
        ramp_limit_mw_per_min=ramp_limit,
        battery=battery,
        cap_events=tuple(_cap_event(e, horizon_s) for e in cap_events),
        heat_waves=tuple(_heat_wave(h, horizon_s) for h in heat_waves),
        start_day_of_year=PowerConfig.start_day_of_year if start_day is None else start_day,
        temperature_c=temperature_c,
        curve_path=str(cap_curve) if cap_curve is not None else None,
    )
    CapCurve.load(cfg.curve_path)  # a bad curve file fails here, before any simulation
    return cfg


def _write(path: Path, option: str, writer: Callable[[Path], None]) -> None:
    """Write a report, creating its folder; an unwritable path is an input error."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        writer(path)
    except OSError as err:
        raise InputError(str(path), option, err.strerror or str(err)) from None


def print_summary(r: dict) -> None:
    """A table of the headline figures."""
    t = Table(
        title=f"{r['fleet']['name']} · {r['config']['days']:g} days · "
        f"policy {r['config']['policy']} · seed {r['config']['seed']}"
    )
    t.add_column("metric")
    t.add_column("value", justify="right")
    j = r["jobs"]
    rows = [
        ("GPUs / nodes", f"{r['fleet']['gpus']:,} / {r['fleet']['nodes']:,}"),
        (
            "jobs submitted / completed / failed / rejected",
            f"{j['submitted']:,} / {j['completed']:,} / {j['failed']:,} / {j['rejected']:,}",
        ),
        ("jobs running / pending at end", f"{j['running_at_end']:,} / {j['pending_at_end']:,}"),
        (
            "JCT mean / p50 / p99 (h)",
            " / ".join(f"{j['jct_s'][k] / 3600:.2f}" for k in ("mean", "p50", "p99")),
        ),
        (
            "queue delay mean / p99 (h)",
            f"{j['queue_delay_s']['mean'] / 3600:.2f} / {j['queue_delay_s']['p99'] / 3600:.2f}",
        ),
        (
            "utilization allocated / productive",
            f"{r['utilization']['allocated']:.1%} / {r['utilization']['productive']:.1%}",
        ),
        ("goodput", f"{r['goodput']:.1%}"),
        ("unexpected interruptions", f"{r['interruptions']['unexpected']:,}"),
        ("preemptions", f"{r['preemptions']:,}"),
        (
            "energy (MWh) / peak facility (MW)",
            f"{r['energy_mwh']:,.0f} / {r['peak_facility_mw']:,.1f}",
        ),
        ("events / wall (s)", f"{r['events']:,} / {r['wall_s']:.2f}"),
    ]
    for k, v in rows:
        t.add_row(k, v)
    Console().print(t)
