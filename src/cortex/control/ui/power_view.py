"""The power page's figures: the site's facility draw against its cap, each hall's IT draw
against its limit (its IT cap or what its cooling rejects at the outdoor temperature, the
lower), the grid ramp, the caps in force and the waiting work that power holds back.

The books belong to the scheduler thread (drive/power_books.py): this reads them from a request
thread without a lock, so every list or dict is copied whole first (one C call under the GIL)
and only the books' pure functions are called (never `hall_budget_w`, whose cache the scheduler
writes, nor anything that solves). The loop publishes `report()` for exactly this."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from cortex.control import store_ui
from cortex.control.auth import Principal
from cortex.drive.power_books import window_clear_at, window_headroom_w
from cortex.scheduler.reasons import Code

POWER_CODES = (Code.POWER_CAP.value, Code.POWER_RAMP.value, Code.NEVER_FITS_POWER.value)
HELD_SHOWN = 50  # waiting jobs listed by name on the page; the rest are counted


@dataclass
class HallRow:
    name: str
    nodes: int
    gpus: int
    drawing_w: float  # modelled IT draw: the hall's idle base plus the running jobs' increments
    booked_w: float  # idle base plus what running and admitted jobs are booked at
    draining_w: float  # jobs paused or preempted, still exiting
    limit_w: float  # inf: no limit
    limit_by: str  # "IT cap", "cooling" or "none"
    headroom_w: float  # limit less booked and draining (inf without a limit)

    @property
    def share(self) -> float:
        return (self.booked_w + self.draining_w) / self.limit_w if self.limit_w < math.inf else 0.0


@dataclass
class HeldJob:
    id: int | None  # None: another team's (counted, never named)
    name: str
    team: str
    gpus: int
    code: str
    message: str


@dataclass
class PowerPage:
    policy: str
    facility_w: float
    cap_w: float
    headroom_w: float  # facility: cap less draw
    it_budget_w: float  # IT watts over idle the site may add (after the cooling model)
    it_booked_w: float
    it_draining_w: float
    it_overdraw_w: float
    it_headroom_w: float  # budget less booked, draining and measured excess
    outdoor_temp_c: float
    halls: list[HallRow]
    ramp_limit_mw_per_min: float | None
    ramp_headroom_w: float | None  # IT watts the site may still step up this minute
    ramp_clear_s: float | None  # seconds until the window is clear (drive/power_books.py)
    levels: list[tuple[int, float, int, int]]  # (level, share of TDP, jobs, GPUs)
    paused: int
    solves: int
    cap_failures: int
    held: list[HeldJob] = field(default_factory=list)
    held_jobs: int = 0
    held_gpus: int = 0
    held_gpu_h: float = 0.0
    held_by_code: dict[str, int] = field(default_factory=dict)
    rest_code: str | None = None  # the pass stopped walking the queue at a power blocker
    as_of: float = 0.0
    changes: list[tuple[float, str]] = field(default_factory=list)  # (at, what), newest first
    battery: Any = None  # control/live_battery.py's BatteryState; None: the site declares none


CHANGES_SHOWN = 20


def power_page(svc: Any, who: Principal) -> PowerPage | None:
    """None without a power policy (the page says how to start one)."""
    power = svc.loop.power
    if power is None:
        return None
    snap = power.report()
    b = power.books
    now = svc.clock.time()
    temp = snap.outdoor_temp_c
    draining = dict(power.draining)
    it_head = snap.site_budget_it_w - snap.booked_it_w - snap.draining_it_w - snap.overdraw_it_w
    page = PowerPage(
        policy=snap.policy,
        facility_w=snap.facility_w,
        cap_w=snap.site_cap_w,
        headroom_w=snap.site_cap_w - snap.facility_w,
        it_budget_w=snap.site_budget_it_w,
        it_booked_w=snap.booked_it_w,
        it_draining_w=snap.draining_it_w,
        it_overdraw_w=snap.overdraw_it_w,
        it_headroom_w=it_head,
        outdoor_temp_c=temp,
        halls=hall_rows(svc.loop.topo, b, temp, draining),
        ramp_limit_mw_per_min=b.ramp_mw_per_min,
        ramp_headroom_w=None,
        ramp_clear_s=None,
        levels=_levels(b, snap),
        paused=snap.paused,
        solves=snap.solves,
        cap_failures=snap.cap_failures,
        as_of=now,
        battery=power.battery.state if power.battery is not None else None,
    )
    if b.ramp_mw_per_min is not None:
        _ramp(page, b, now)
    _held(page, svc, who)
    with svc.sessions() as s:
        page.changes = [(e.at, e.message) for e in store_ui.power_events(s, CHANGES_SHOWN)]
    return page


def hall_rows(topo: Any, b: Any, temp: float, draining: dict[int, Any]) -> list[HallRow]:
    base = list(b.hall_base_w)
    inc = list(b.hall_inc_w)
    actual = list(b.hall_actual_w)
    drain = [0.0] * len(base)
    for _, halls in draining.values():
        for h, w in dict(halls).items():
            if 0 <= h < len(drain):
                drain[h] += w
    hall = np.asarray(topo.node_hall, dtype=np.int64)
    per_node = np.asarray(topo.flavor_gpus_per_node, dtype=np.int64)[
        np.asarray(topo.node_flavor, dtype=np.int64)
    ]
    nodes = np.bincount(hall, minlength=len(base))
    gpus = np.bincount(hall, weights=per_node, minlength=len(base))
    out = []
    for h, name in enumerate(topo.hall_names):
        cap = b.hall_limit_w[h]
        cool = b.cooling.cooling_capacity_w(b.hall_cooling_w[h], temp)
        limit = min(cap, cool)
        by = "none" if limit == math.inf else ("IT cap" if cap <= cool else "cooling")
        booked = base[h] + inc[h]
        out.append(
            HallRow(
                name=name,
                nodes=int(nodes[h]),
                gpus=int(gpus[h]),
                drawing_w=base[h] + actual[h],
                booked_w=booked,
                draining_w=drain[h],
                limit_w=limit,
                limit_by=by,
                headroom_w=limit - booked - drain[h],
            )
        )
    return out


def _ramp(page: PowerPage, b: Any, now: float) -> None:
    steps = list(b.window)  # the scheduler appends and pops: copied whole first
    page.ramp_headroom_w = window_headroom_w(steps, now, b.ramp_limit_it_w(now))
    # The books' rule (when the window is clear), not a copy: the scheduler wakes by it.
    page.ramp_clear_s = max(0.0, window_clear_at(steps, now, b.ramp_limit_it_w) - now)


def _levels(b: Any, snap: Any) -> list[tuple[int, float, int, int]]:
    """Running jobs per cap level (0: uncapped), with the level's share of TDP."""
    count: dict[int, list[int]] = {}
    for _, (lv, _, devs) in snap.jobs.items():
        c = count.setdefault(lv, [0, 0])
        c[0] += 1
        c[1] += len(devs)
    levels = tuple(b.levels)
    return [
        (lv, levels[lv] if 0 <= lv < len(levels) else math.nan, c[0], c[1])
        for lv, c in sorted(count.items())
    ]


def _held(page: PowerPage, svc: Any, who: Principal) -> None:
    """Waiting jobs whose blockers in the last pass include power (the site or a hall cap,
    the ramp, or a budget that can never hold them). Another team's are counted, not named."""
    rec = svc.loop.why.current
    jobs = svc.loop.mirror.jobs
    rest = rec.rest
    if rest is not None and rest.code.value in POWER_CODES:
        page.rest_code = rest.code.value
    for jid, reasons in list(rec.blockers.items()):
        hit = next((r for r in reasons if r.code.value in POWER_CODES), None)
        job = jobs.get(jid)
        if hit is None or job is None or jid in rec.started:
            continue
        code = hit.code.value
        page.held_jobs += 1
        page.held_gpus += job.gpus
        page.held_gpu_h += job.gpus * job.remaining_s / 3600.0
        page.held_by_code[code] = page.held_by_code.get(code, 0) + 1
        if len(page.held) < HELD_SHOWN:
            mine = who.admin or job.team == who.team
            page.held.append(
                HeldJob(
                    id=jid if mine else None,
                    name=job.name if mine else "",
                    team=job.team if mine else "(another team)",
                    gpus=job.gpus,
                    code=code,
                    message=hit.message,
                )
            )


def node_gpu_w(loop: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per node: its modelled GPU draw (the running jobs' booked per-GPU watts, idle watts on
    its free GPUs), its GPUs and their TDP. The books' per-job watts come from the loop's
    published report."""
    topo = loop.topo
    books = loop.power.report().books
    free = np.array(list(loop.mirror.state.node_free), dtype=np.float64)
    # A join sets the topology before the tick rebuilds the states, and a request can straddle
    # either swap: only the nodes both cover (the fleet only grows, so they keep their indices).
    size = min(topo.n_nodes, len(free))
    flavor = np.asarray(topo.node_flavor, dtype=np.int64)[:size]
    gpn = np.asarray(topo.flavor_gpus_per_node, dtype=np.float64)[flavor]
    idle = np.array([a.idle_w for a in topo.accelerators])[flavor]
    tdp = np.array([a.tdp_w for a in topo.accelerators])[flavor]
    watts = idle * np.clip(free[:size], 0, None)
    for jid, placed in list(loop.mirror.placement.items()):
        got = books.get(jid)
        if got is None:  # admitted, not booked yet
            continue
        for n, k in placed:
            if n < size:
                watts[n] += got[1] * k
    return watts, gpn, tdp


def node_power(loop: Any, down: np.ndarray) -> np.ndarray:
    """The heatmap's power snapshot: per node, its modelled GPU draw (`node_gpu_w`) as a share
    of its GPUs' TDP, 0..USED_MAX; USED_DOWN where `down`."""
    from cortex.control.ui.views import USED_DOWN, USED_MAX

    watts, gpn, tdp = node_gpu_w(loop)
    size = min(len(watts), len(down))  # a join between the reads: the nodes both cover
    out = np.rint(np.clip(watts / (gpn * tdp), 0.0, 1.0) * USED_MAX).astype(np.uint8)[:size]
    out[down[:size]] = USED_DOWN
    return out
