"""Power in the live cluster: the scheduler loop runs the twin's power policies (`none`, `admit`,
`cap`) through the shared books (cortex.drive.power_books) against a facility cap.

- Each cycle gets a PowerView: the site budget (the facility cap through the cooling model) less
  what the running and admitted jobs are booked at, less what paused or preempted jobs still draw
  while they exit (their watts come back when their process is gone, not when the plan says so).
- A start is booked at the level the policy chose; its devices get that cap through the
  actuator just before its processes start (`CappingExecutor`). A cap that cannot be set fails
  the launch, so a job never runs at an uncapped draw it was not admitted for.
- Each tick, when the running set is over budget (an operator lowered the cap) or watts are
  spare while someone is capped, `solve_caps` re-divides the budget: caps go down first (a job
  whose cap cannot be lowered is paused), then up; paused jobs are stopped like preemption
  victims (SIGTERM, checkpoint, requeue). A job short of watts that outranks running work gets
  the twin's shortage re-solve (`make_room`).
- Draw is measured through NVML where the machine has GPUs and modelled from the draw table
  (power/data/draw_by_kind.csv x the catalog's TDP) otherwise; `/metrics` shows both the site's
  and each job's watts.

Only the scheduler thread calls into `LivePower`, except `request_cap_kw` (an attribute store)
and the collector, which reads the immutable `PowerSnapshot` published after each tick.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from cortex.control.fleet import local_fleet
from cortex.control.live_battery import LiveBattery
from cortex.control.power_history import DrawHistory, record_draws
from cortex.control.power_metrics import PowerCollector
from cortex.drive.power_books import PowerBooks
from cortex.errors import InputError
from cortex.executors.local.power_caps import CapActuator, PowerCapError, actuator_from_spec
from cortex.fleet.topology import build
from cortex.scheduler.cap_solver import CapPlan
from cortex.scheduler.power import PowerView
from cortex.scheduler.reasons import Code, Reason
from cortex.scheduler.registry import power_profile
from cortex.scheduler.snapshot import Plan, Preemption
from cortex.workload.job import Job

if TYPE_CHECKING:
    from cortex.control.loop import SchedulerLoop
    from cortex.fleet.topology import Topology

log = logging.getLogger("cortex.control")

# Caps are evened out at most this often when watts are spare (an over-budget running set is
# solved at once): each solve may move every running job's limits.
RAISE_EVERY_S = 5.0
# A job short of watts that outranks running work gets a re-solve with itself as a member at
# most this often (the twin's shortage_resolve_s, on the wall clock): each one may move every
# running job's limits.
SHORTAGE_RESOLVE_S = 30.0
# A temperature an operator's feed sent before a restart is used after it only this fresh (a
# feed that stopped must not hold the site at an old reading; the configuration takes over).
TEMP_READING_MAX_AGE_S = 3600.0
# Measured draw is read at most this often (NVML answers in about a millisecond per device).
MEASURE_EVERY_S = 1.0
# A job drawing less than this over its booking (a fraction of it, or watts) is within the
# model's error: only a larger excess is reserved.
OVERDRAW_TOLERANCE = 0.05
OVERDRAW_MIN_W = 10.0


@dataclass(frozen=True)
class PowerSnapshot:
    """What the loop publishes for /metrics and GET /v1/power (replaced whole, read lock-free)."""

    policy: str
    site_cap_w: float
    site_budget_it_w: float  # IT watts over idle the site may add
    booked_it_w: float  # what running and admitted jobs are booked at, over idle
    draining_it_w: float  # paused or preempted jobs still exiting
    overdraw_it_w: float  # running jobs' measured draw above their booking
    idle_it_w: float
    books: dict[int, tuple[int, float, float]]  # job: (level, per-GPU W, IT W over idle)
    facility_w: float = 0.0  # modelled facility draw now (filled in by `report`)
    # job: (level, modelled W, devices) (filled in by `report`)
    jobs: dict[int, tuple[int, float, tuple[int, ...]]] = field(default_factory=dict)
    paused: int = 0
    solves: int = 0
    cap_failures: int = 0
    outdoor_temp_c: float = 20.0


def _within(x: float, lo: float, hi: float, *, low_open: bool = False) -> bool:
    """A finite number in [lo, hi] (or (lo, hi] with `low_open`)."""
    return math.isfinite(x) and (x > lo if low_open else x >= lo) and x <= hi


class LivePower:
    def __init__(
        self, loop: SchedulerLoop, books: PowerBooks, actuator: CapActuator | None, policy: str
    ) -> None:
        self.loop = loop
        self.books = books
        self.actuator = actuator
        self.policy = policy
        self.draining: dict[int, tuple[float, dict[int, float]]] = {}
        # Running jobs whose GPUs draw more than their booking (measured): the excess, per hall.
        self.overdraw: dict[int, tuple[float, dict[int, float]]] = {}
        self._next_measure_s = -math.inf
        self._measured: frozenset[int] = frozenset()  # the jobs drawing at the last reading
        self.requested_cap_w: float | None = None  # set by the API; applied by the next tick
        self.requested_temp_c: float | None = None  # likewise (a weather feed)
        self._request_lock = threading.Lock()  # an API thread sets it, the loop takes it
        self.cap_failures = 0
        self._last_solve = -math.inf
        self._short_head: int | None = None  # the job the last cycle stopped at for watts
        self._next_shortage_s = -math.inf
        self.snapshot = self._snapshot(0.0)
        self.history = DrawHistory()  # each job's draw over time (control/power_history.py)
        self.battery = LiveBattery.from_settings(loop.settings)  # None: the site declares none

    # ---- wiring ---------------------------------------------------------------------------
    @classmethod
    def attach(cls, loop: SchedulerLoop) -> LivePower | None:
        """Set the loop up for its settings' power policy; None for `none` without a cap."""
        st = loop.settings
        profile = power_profile(st.power_policy, live=True)
        if profile.make is None and st.site_cap_kw is None:
            return None
        topo = loop.topo
        if st.power_model_flavor is not None:
            if len(topo.flavors) != 1:
                raise InputError("serve", "power_model_flavor", "only for the local machine")
            spec = local_fleet(st.power_model_flavor, len(loop.all_devices), loop.node_name)
            try:
                topo = build(spec)
            except (KeyError, ValueError) as err:
                raise InputError("serve", "power_model_flavor", str(err)) from None
        cap_kw = st.site_cap_kw
        args = PowerBooks.fleet_args(  # a rack cap below the floor raises, naming the flag
            topo,
            cap_mw=cap_kw / 1e3 if cap_kw is not None else None,
            profile=profile,
            rack_cap_kw=st.rack_cap_kw,
        )
        books = PowerBooks(**args, temperature_c=st.outdoor_temp_c)
        idle = books.idle_facility_w()
        if cap_kw is not None and cap_kw * 1e3 < idle:
            raise InputError(
                "serve",
                "site_cap_kw",
                f"{cap_kw:g} kW is below the idle fleet's {idle / 1e3:.3f} kW facility draw",
            )
        try:
            actuator = actuator_from_spec(st.power_actuator, loop.uses_gpus)
        except (ValueError, ImportError, PowerCapError) as err:
            raise InputError("serve", "power_actuator", str(err)) from None
        except Exception as err:  # NVMLError: the library is there but the driver is not
            raise InputError("serve", "power_actuator", f"NVML: {err}") from None
        if actuator is None and profile.capped_starts:
            log.warning(
                "power policy %s without an actuator: caps are booked, not set", st.power_policy
            )
        power = cls(loop, books, actuator, st.power_policy)
        if books.policy is not None:
            loop.pol = dataclasses.replace(loop.pol, power=books.policy)
        loop.executor = CappingExecutor(loop.executor, power)
        loop.metrics.registry.register(PowerCollector(power))
        return power

    def regrow(self, topo: Topology, now: float) -> None:
        """Nodes joined the fleet (`topo`, the grown one): the books' fleet-derived parts are
        rebuilt for it; what they hold is kept (InputError, nothing changed, for a rack cap
        the joined nodes cannot meet). The jobs' bookings,
        their cap levels (so the cap ladder too: a level indexes it, and the actuator set the
        caps from it), the ramp window, the site cap an operator set and the temperature are
        the running site's, not the fleet's. Joined nodes only append, so node and hall
        indices already booked keep their meaning."""
        b, st = self.books, self.loop.settings
        args = PowerBooks.fleet_args(
            topo,
            cap_mw=st.site_cap_kw / 1e3 if st.site_cap_kw is not None else None,
            profile=power_profile(st.power_policy, live=True),
            rack_cap_kw=st.rack_cap_kw,
        )
        grown = dataclasses.replace(  # __post_init__ zeroes the halls' sums
            b,
            topo=args["topo"],
            nameplate_it_w=args["nameplate_it_w"],
            base_all_w=args["base_all_w"],
            hall_base_w=args["hall_base_w"],
            hall_limit_w=args["hall_limit_w"],
            hall_cooling_w=args["hall_cooling_w"],
            node_base_w=args["node_base_w"],
            flavor_overhead_w=args["flavor_overhead_w"],
            node_max_cap_w=args["node_max_cap_w"],
            # Computed from the old fleet's budgets and nodes.
            _ladders={},
            _budget_cache={},
            _per_cache={},
            _draw_cache={},
            _never_cache={},
        )
        for jp in grown.jobs.values():
            for h, share in jp.halls.items():
                grown.hall_inc_w[h] += jp.inc_w * share
                grown.hall_actual_w[h] += jp.actual_w * share
        self.books = grown
        if grown.site_cap_w < grown.idle_facility_w():
            log.error(
                "power: the site cap %.1f kW is below the grown fleet's idle %.1f kW: "
                "running work is paused until the cap is raised",
                grown.site_cap_w / 1e3,
                grown.idle_facility_w() / 1e3,
            )
        self.loop.dirty = True
        self.snapshot = self._snapshot(now)

    def check_cap_kw(self, cap_kw: float, temp_c: float | None = None) -> None:
        """ValueError naming site_cap_kw for a cap the idle fleet alone would pass, at `temp_c`
        (else a temperature requested and not yet applied, else the current one)."""
        if not (math.isfinite(cap_kw) and cap_kw > 0):
            raise ValueError("site_cap_kw: must be a positive number")
        b = self.books
        if temp_c is None:
            with self._request_lock:
                temp_c = self.requested_temp_c
        temp = b.hottest_temp_c() if temp_c is None else temp_c
        idle = b.cooling.facility_w(b.base_all_w, b.nameplate_it_w, temp)
        if cap_kw * 1e3 < idle:
            raise ValueError(
                f"site_cap_kw: {cap_kw:g} kW is below the idle fleet's "
                f"{idle / 1e3:.3f} kW facility draw at {temp:g} C"
            )

    def request_cap_kw(self, cap_kw: float, temp_c: float | None = None) -> None:
        """An operator's new facility cap (API thread): checked here, applied by the next tick."""
        self.check_cap_kw(cap_kw, temp_c)
        with self._request_lock:
            self.requested_cap_w = cap_kw * 1e3
        self.loop.dirty = True
        self.loop.wake()

    def restore(self, stored: Mapping[str, Any], now: float) -> list[str]:
        """At start: what an operator set through PUT /v1/power before the restart (rows of
        store.site_settings), unless the service's configuration has changed since (then the
        configuration wins); a temperature only while its reading is fresh. Returns what was
        applied or dropped, for the log."""
        st, b, said = self.loop.settings, self.books, []
        cap = stored.get("site_cap_kw")
        if cap is not None and not _within(cap.value, 0.0, 1e9, low_open=True):
            # Rows the API never writes (a hand edit, another tool): an infinite cap would
            # leave the site uncapped, a NaN would poison every budget.
            said.append(f"stored site cap {cap.value!r} kW dropped: not a usable cap")
        elif cap is not None and cap.configured == st.site_cap_kw:
            if cap.value * 1e3 >= b.idle_facility_w():
                b.site_cap_w = cap.value * 1e3
                said.append(f"site cap {cap.value:g} kW kept from PUT /v1/power")
            else:
                said.append(f"stored site cap {cap.value:g} kW dropped: below the idle fleet")
        elif cap is not None:
            said.append(f"stored site cap {cap.value:g} kW dropped: the configuration changed")
        temp = stored.get("outdoor_temp_c")
        if temp is not None and not _within(temp.value, -60.0, 70.0):
            said.append(f"stored outdoor temperature {temp.value!r} C dropped: out of range")
        elif temp is not None and temp.configured == st.outdoor_temp_c:
            if now - temp.set_at <= TEMP_READING_MAX_AGE_S:
                b.temperature_c = temp.value
                said.append(f"outdoor temperature {temp.value:g} C kept from PUT /v1/power")
            else:
                said.append("stored outdoor temperature dropped: older than an hour")
        self.snapshot = self._snapshot(now)
        return said

    def request_temp_c(self, temp_c: float) -> None:
        """The outdoor temperature now (API thread: a weather or building-management feed):
        the cooling model's slope and the halls' heat rejection follow it from the next tick.
        A temperature at which the idle fleet alone would pass the cap is taken all the same
        (it is a measurement): the solve then pauses what it must."""
        if not (math.isfinite(temp_c) and -60.0 <= temp_c <= 70.0):
            raise ValueError("outdoor_temp_c: must be between -60 and 70")
        with self._request_lock:
            self.requested_temp_c = temp_c
        self.loop.dirty = True  # a dirty flag and a wake: the loop's non-blocking commands
        self.loop.wake()

    # ---- the cycle ------------------------------------------------------------------------
    def view(self, now: float) -> PowerView | None:
        """The cycle's budget (after the books catch up with the loop's mirror)."""
        self._sync(now)
        if self.books.policy is None:
            return None
        view = self.books.view(now)
        held = [*self.draining.values(), *self.overdraw.values()]
        if not held:
            return view
        site_w = view.site_headroom_w
        hall_w = list(view.hall_headroom_w)
        for w, halls in held:
            site_w -= w
            for h, x in halls.items():
                hall_w[h] -= x
        return dataclasses.replace(view, site_headroom_w=site_w, hall_headroom_w=hall_w)

    def booked(self, plan: Plan, now: float) -> None:
        """Book the plan's starts at the levels the policy chose (victims leave at `_sync`)."""
        for st in plan.starts:
            self.books.start(st.job, st.flavor, st.gang_gpus, st.placement, st.cap_level, now)
            self.books.fill(st.job.id)
        r = plan.rest_reason
        self._short_head = (
            r.detail.get("job") if r is not None and r.code is Code.POWER_CAP else None
        )

    def rebalance(self, now: float) -> Plan:
        """Re-divide the budget when it binds; the returned plan holds only the jobs to pause
        (the loop stops them as it stops preemption victims)."""
        self._sync(now)
        b = self.books
        plan = Plan()
        cap: CapPlan | None = None
        # The running jobs' measured excess counts in the trigger; the watts of jobs still
        # exiting do not: a pause already answered those, and counting them would pause more
        # jobs during every grace period.
        with self._draining_reserved(draining=False):
            need = b.policy is not None and bool(b.jobs) and b.needs_solve(now)
            over = b.inc_total_w > b.site_budget_w(now)
        if need and (over or now - self._last_solve >= RAISE_EVERY_S):
            self._last_solve = now
            cap = self._solve(now)
        short = self._short_head
        if cap is None and short is not None and b.jobs and now >= self._next_shortage_s:
            self._next_shortage_s = now + SHORTAGE_RESOLVE_S
            cap = self._make_room(short, now)
        if cap is not None:
            plan.preemptions = self._apply(cap, now)
            self.loop.dirty = True  # watts moved: the next tick's cycle may start work
        self.snapshot = self._snapshot(now)
        record_draws(self, now)
        if self.battery is not None and self.battery.due(now):  # it follows the facility draw
            self.battery.advance(now, self.report().facility_w / 1e6)
        return plan

    # ---- internals ------------------------------------------------------------------------
    def _sync(self, now: float) -> None:
        """Jobs that left the loop's capacity leave the books (into `draining` while their
        process still exits); jobs the books do not know (recovered after a restart) are
        booked uncapped, the most they may draw, until a solve says otherwise."""
        loop, b = self.loop, self.books
        with self._request_lock:
            requested, self.requested_cap_w = self.requested_cap_w, None
            temp, self.requested_temp_c = self.requested_temp_c, None
        if requested is not None:
            b.site_cap_w = requested
        if temp is not None:
            b.temperature_c = temp
        for jid in [j for j in b.jobs if j not in loop.mirror.placement]:
            jp = b.jobs[jid]
            extra_w = self.overdraw.pop(jid, (0.0, {}))[0]  # it draws that until it is gone
            if jid in loop.mirror.stopping:
                w = jp.inc_w + extra_w
                self.draining[jid] = (w, {h: w * s for h, s in jp.halls.items()})
            b.stop(jid)
        for jid in [j for j in self.draining if j not in loop.mirror.stopping]:
            del self.draining[jid]
        for jid, pl in loop.mirror.placement.items():
            if jid not in b.jobs and jid in loop.mirror.jobs:
                job = loop.mirror.jobs[jid]
                if job.run_flavor < 0 or job.run_gpus <= 0:  # recovered: the placement's shape
                    job.run_flavor, job.run_gpus = 0, sum(k for _, k in pl)
                b.start(job, job.run_flavor, job.run_gpus, pl, 0, now)
                b.fill(jid)
        self._measure(now)

    def _measure(self, now: float) -> None:
        """Where the actuator measures (NVML), a running job whose GPUs draw more than the books
        say (a kind the draw table underrates, a cap the device did not take) has the excess
        reserved, so admission and the solve divide only what is really left. A job drawing
        less keeps its booking: the books stay the conservative side. The largest excess seen
        stays reserved for the rest of the run, even once a lower cap brings the draw down: a
        reservation dropped then would let the next solve raise the cap back to the level that
        overdraws (caps flapping every few seconds, the site over budget each time)."""
        act, b = self.actuator, self.books
        if act is None:
            return
        devices = self.loop.mirror.devices_by_job()
        drawing = frozenset(devices)
        if now < self._next_measure_s and drawing == self._measured:
            return  # a job that just started is measured at once, the rest once a second
        self._next_measure_s, self._measured = now + MEASURE_EVERY_S, drawing
        self.overdraw = {j: w for j, w in self.overdraw.items() if j in b.jobs}
        for jid, jp in b.jobs.items():
            job = self.loop.mirror.jobs.get(jid)
            devs = devices.get(jid)
            if job is None or not devs:
                continue  # admitted, not launched: nothing draws yet
            draws = [act.draw_w(d) for d in devs]
            if any(w is None for w in draws):
                continue
            idle = b.topo.accelerators[max(job.run_flavor, 0)].idle_w
            excess = sum(w - idle for w in draws if w is not None) - jp.inc_w
            held = self.overdraw.get(jid, (0.0, {}))[0]
            if excess > max(OVERDRAW_TOLERANCE * jp.inc_w, OVERDRAW_MIN_W, held):
                self.overdraw[jid] = (excess, {h: excess * s for h, s in jp.halls.items()})

    def _speeds(self, jobs: list[Job]) -> dict[tuple[str, int], float]:
        return {(j.kind, f): self.loop.speed(j.kind, f) for j in jobs for f in (j.run_flavor, 0)}

    def _solve(self, now: float) -> CapPlan:
        running = {jid: self.loop.mirror.jobs[jid] for jid in self.books.jobs}
        with self._draining_reserved():
            return self.books.solve(running, self._speeds(list(running.values())), now)

    @contextlib.contextmanager
    def _draining_reserved(self, draining: bool = True) -> Iterator[None]:
        """Paused or preempted jobs still exiting draw their watts, and running jobs measured
        above their booking draw the excess: a solve divides only what is left (the books'
        budgets less theirs), as the cycle's view() does."""
        b = self.books
        held = [*(self.draining.values() if draining else ()), *self.overdraw.values()]
        b.reserved_w = sum(w for w, _ in held)
        halls: dict[int, float] = {}
        for _, by_hall in held:
            for h, x in by_hall.items():
                halls[h] = halls.get(h, 0.0) + x
        b.reserved_hall_w = halls
        try:
            yield
        finally:
            b.reserved_w, b.reserved_hall_w = 0.0, {}

    def _make_room(self, head_id: int, now: float) -> CapPlan | None:
        """The twin's shortage re-solve: a job short of watts that outranks running work gets a
        solve with itself as a member (lower priorities are capped, then paused)."""
        loop = self.loop
        head = loop.mirror.jobs.get(head_id)
        if head is None or head_id in loop.mirror.placement:
            return None
        running = {jid: loop.mirror.jobs[jid] for jid in self.books.jobs}
        speed = self._speeds([*running.values(), head])
        for f in head.flavor_ids:
            speed[(head.kind, f)] = loop.speed(head.kind, f)
        with self._draining_reserved():
            return self.books.make_room_for(head, running, speed, now)

    def _apply(self, cap: CapPlan, now: float) -> list[Preemption]:
        """Lower caps first (a job whose limit cannot be lowered is paused too), then raise them;
        returns the pauses."""
        b = self.books
        b.target = cap.target
        paused = list(cap.paused)
        devices = self.loop.mirror.devices_by_job()
        moves = b.cap_moves(cap.levels, self.loop.mirror.jobs)
        lower_failed = False
        for jid, level in moves:
            job = self.loop.mirror.jobs[jid]
            raise_ = level < b.jobs[jid].level  # a lower level index is a higher cap
            if raise_ and lower_failed:
                # The raises were sized on the watts the lowers free; one lower failed and its
                # job draws its old watts until its pause ends, so raising others now would
                # take the site over its budget. The next tick re-solves, with the pausing
                # job's watts reserved.
                continue
            try:
                self._set_caps(job, devices.get(jid, ()), level)
            except PowerCapError as err:
                self.cap_failures += 1
                log.error("job %d: %s", jid, err)
                if not raise_:
                    lower_failed = True
                    paused.append(jid)  # it would draw above its share: stop it
                continue
            b.relevel(job, level)
        if lower_failed:
            self._last_solve = -math.inf
        b.paused += len(paused)
        out = []
        for jid in paused:
            if jid in self.loop.mirror.placement:
                why = Reason(Code.POWER_CAP, need_mw=0.0, headroom_mw=0.0, domain="site")
                out.append(Preemption(self.loop.mirror.jobs[jid], why))
        return out

    def _set_caps(self, job: Job, devices: tuple[int, ...] | list[int], level: int) -> None:
        if self.actuator is None:
            return
        watts = self.cap_w(job, level)
        for d in devices:
            self.actuator.set_cap_w(d, watts)

    def cap_w(self, job: Job, level: int) -> float | None:
        """The per-GPU limit a device gets at a level (None: its default, i.e. uncapped). A
        level the ladder merged into the one above (it would save no watts: drive/power_jobs.py
        `_concave`) gets that level's limit, so the device runs as the books say it does."""
        b = self.books
        node_cap_w = b.jobs[job.id].node_cap_w
        per = b.ladder(job, job.run_flavor, job.run_gpus, node_cap_w)[0]
        top = level
        while top > 0 and per[top - 1] == per[level]:
            top -= 1
        if top == 0 and node_cap_w == math.inf:
            return None
        tdp = b.topo.accelerators[job.run_flavor].tdp_w
        return min(b.levels[top] * tdp, node_cap_w)

    def cap_devices(self, job_id: int, devices: list[int]) -> None:
        """Called just before a launch: its devices get the cap its job is booked at now."""
        jp = self.books.jobs.get(job_id)
        if jp is None or self.actuator is None or self.books.policy is None:
            return  # `none` reports only: it never touches a device
        try:
            self._set_caps(self.loop.mirror.jobs[job_id], devices, jp.level)
        except PowerCapError:
            self.cap_failures += 1
            raise

    def _snapshot(self, now: float) -> PowerSnapshot:
        b = self.books
        return PowerSnapshot(
            policy=self.policy,
            site_cap_w=b.site_cap_w,
            site_budget_it_w=b.site_budget_w(now),
            booked_it_w=b.inc_total_w,
            draining_it_w=sum(w for w, _ in self.draining.values()),
            overdraw_it_w=sum(w for w, _ in self.overdraw.values()),
            idle_it_w=b.base_all_w,
            books={jid: (jp.level, jp.per_gpu_w, jp.actual_w) for jid, jp in b.jobs.items()},
            paused=b.paused,
            solves=b.solves,
            cap_failures=self.cap_failures,
            outdoor_temp_c=b.temp_c(now),
        )

    def report(self) -> PowerSnapshot:
        """For reader threads (/metrics, GET /v1/power): the books published by the last
        rebalance joined with the devices the loop published after the tick (both replaced
        whole, so no lock), so a job launched in that tick already shows its watts. Admitted
        jobs are booked but draw nothing until their processes start."""
        snap, devices, b = self.snapshot, self.loop.view.devices, self.books
        jobs = {
            jid: (lv, per * len(devices.get(jid, ())), tuple(devices.get(jid, ())))
            for jid, (lv, per, _) in snap.books.items()
        }
        it = snap.idle_it_w + snap.draining_it_w + snap.overdraw_it_w
        it += sum(w for jid, (_, _, w) in snap.books.items() if devices.get(jid))
        facility = b.cooling.facility_w(it, b.nameplate_it_w, b.temp_c(0.0))
        return dataclasses.replace(snap, jobs=jobs, facility_w=facility)


class CappingExecutor:
    """The loop's executor, with each launch's devices capped first: a cap that cannot be set
    raises before any process starts, and the loop records a failed launch (then retries with
    backoff, as for any launch that fails)."""

    def __init__(self, inner: Any, power: LivePower) -> None:
        self._inner = inner
        self._power = power

    def launch(self, spec: Any) -> Any:
        self._power.cap_devices(spec.job_id, list(spec.devices))
        return self._inner.launch(spec)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)
