"""What `--power-policy full`'s cap rules cost, and what candidate rules would save
(bench/RESULTS.md, section 88, branch full14). One in-process run of the twin with the rules
named in RULES swapped in by monkeypatching (none of them is in the product); prints one JSON
line: the CPU seconds of the run, of the weather-tick handler (`ev`), of the shortage re-solves
(`bl`) and of the report's power section (`rep`, nearly all of it the battery search), the counts
that decide them, and the report's headline figures.

    RULES=shed,headtrim python bench/power_rules.py [cortex sim options]
    # default options: --fleet cortex-2024 --days 30 --power-policy full

Rules (comma-separated; none: the product as it is):
- noraise: capped jobs are raised only at the hourly even-out, not as soon as 1% of the site
  budget is spare (section 80's "budget up moves wait for the hour");
- every<H>: the even-out every H hours instead of hourly;
- shed: a weather tick that leaves the site or a hall over budget by less than 1% of the site
  budget steps the newest lowest-priority jobs down one cap level each until it fits (the order
  the solver pauses in), instead of re-dividing the budget; larger overruns re-divide;
- headtrim: a head short of watts that outranks running work first gets its floor watts by
  stepping the newest lower-priority jobs down one level each; a full shortage re-solve only
  when that does not free enough;
- memo: a shortage re-solve that placed nothing is not repeated for the same head until the
  running jobs, their levels, the budgets or the ramp headroom change (counts the repeats);
- bound: no weather-tick solves and no shortage re-solves at all (not a model: caps are then
  broken; it measures what the rules cost in all);
- nobatt: no battery search in the report (the same).
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import cortex.drive.power_books as pb
import cortex.sim.power as sim_power
import cortex.sim.twin as twin_mod
from cortex.cli.main import main
from cortex.scheduler.cap_solver import CapPlan
from cortex.sim import power_report, report

Twin: Any = twin_mod.Twin
Books: Any = pb.PowerBooks
RULES = set(filter(None, os.environ.get("RULES", "").split(",")))
SHED_BAND_FRAC = 0.01
counts: Counter[str] = Counter()
cpu: Counter[str] = Counter()


def _step_down(
    books: Any, running: Any, jobs: list[tuple[int, Any]], fits: Callable[[float, list], bool]
) -> dict[int, int] | None:
    """Step `jobs` (newest lowest priority first) down one level each until `fits(freed, halls)`."""
    floor = len(books.levels) - 1
    halls = [0.0] * len(books.hall_inc_w)
    freed = 0.0
    out: dict[int, int] = {}
    for jid, jp in sorted(
        jobs, key=lambda kv: (running[kv[0]].priority, -running[kv[0]].run_start_s)
    ):
        if fits(freed, halls):
            return out
        if jp.level >= floor:
            continue
        job = running[jid]
        inc = books.ladder(job, job.run_flavor, job.run_gpus, jp.node_cap_w)[1]
        level = jp.level + 1
        while level < floor and inc[level] >= jp.inc_w:
            level += 1
        d = jp.inc_w - inc[level]
        if d > 0:
            out[jid] = level
            freed += d
            for h, share in jp.halls.items():
                halls[h] += d * share
    return out if fits(freed, halls) else None


def shed(books: Any, running: Any, t: float) -> dict[int, int] | None:
    site_b, hall_b = books.site_budget_w(t), books.hall_budget_w(t)
    over = books.inc_total_w - site_b
    if over > SHED_BAND_FRAC * site_b:
        return None
    hall_over = [w - b for w, b in zip(books.hall_inc_w, hall_b, strict=True)]

    def fits(freed: float, halls: list[float]) -> bool:
        return freed >= over and all(o <= x for o, x in zip(hall_over, halls, strict=True))

    return _step_down(books, running, list(books.jobs.items()), fits)


_event, _blocked, _make_room = Twin._power_event, Twin._power_blocked, Books.make_room_for


def power_event(self: Any, a: object, b: int) -> None:
    pw, t = self.pw, self.now
    if "bound" in RULES:
        self._changed()
        return
    if "shed" in RULES and pw.policy is not None:
        over = pw.inc_total_w > pw.site_budget_w(t) or any(
            w > x for w, x in zip(pw.hall_inc_w, pw.hall_budget_w(t), strict=True)
        )
        levels = shed(pw, self.state.running, t) if over else None
        if levels is not None:
            counts["shed"] += 1
            self._changed()
            self._apply_levels(levels)
            return
    if pw.policy is not None and pw.needs_solve(t):
        counts[f"tick solve: {_trigger(pw, t)}"] += 1
    _event(self, a, b)


def _trigger(pw: Any, t: float) -> str:
    """Why a weather tick re-divides: the first of the product's reasons that holds."""
    if pw.inc_total_w > pw.site_budget_w(t):
        return "site over"
    if any(w > x for w, x in zip(pw.hall_inc_w, pw.hall_budget_w(t), strict=True)):
        return "hall over"
    if pw._periodic_solve(t):
        return "even-out"
    return "spare"


def make_room_for(self: Any, head: Any, running: Any, speed: Any, t: float) -> CapPlan | None:
    if "memo" in RULES:
        key = (
            head.id,
            tuple((j, jp.level) for j, jp in self.jobs.items()),
            self.site_budget_w(t),
            tuple(self.hall_budget_w(t)),
            self.ramp_headroom_it_w(t),
        )
        if getattr(self, "_probe_none", None) == key:
            counts["memo repeat"] += 1
    if "headtrim" in RULES:
        f = (head.flavor_ids or (0,))[0]
        need = self.ladder(head, f, head.gpus, self.min_node_cap_w)[1][-1]
        short = need - (self.site_budget_w(t) - self.inc_total_w)
        if need <= self.ramp_headroom_it_w(t):
            below = [(j, jp) for j, jp in self.jobs.items() if running[j].priority < head.priority]
            levels = _step_down(self, running, below, lambda freed, _h: freed >= short)
            if levels:
                counts["headtrim"] += 1
                return CapPlan(levels, [], self.target)
        counts["headtrim fell back"] += 1
    plan = _make_room(self, head, running, speed, t)
    counts["make_room " + ("none" if plan is None else "plan")] += 1
    if "memo" in RULES:
        self._probe_none = key if plan is None else None
    return plan


def power_blocked(self: Any, plan: Any, deep: bool) -> None:
    if "bound" not in RULES:
        _blocked(self, plan, deep)


def _timed(fn: Callable[..., Any], name: str) -> Callable[..., Any]:
    def wrapper(*args: Any) -> Any:
        t0 = time.process_time()
        try:
            return fn(*args)
        finally:
            cpu[name] += time.process_time() - t0

    return wrapper


def _install() -> None:
    if "noraise" in RULES:

        def needs_solve(self: Any, t: float) -> bool:
            if self.inc_total_w > self.site_budget_w(t):
                return True
            if any(w > b for w, b in zip(self.hall_inc_w, self.hall_budget_w(t), strict=True)):
                return True
            return len(self.levels) > 1 and self.n_capped > 0 and self._periodic_solve(t)

        Books.needs_solve = needs_solve
    for rule in RULES:
        if rule.startswith("every"):
            hours = float(rule[5:])

            def periodic(self: Any, t: float, hours: float = hours) -> bool:
                every = max(round(hours * 3600.0 / self.cfg.tick_s), 1)
                return round(t / self.cfg.tick_s) % every == 0

            sim_power.PowerRuntime._periodic_solve = periodic  # type: ignore[method-assign]
    if "nobatt" in RULES:
        power_report.smallest_battery = lambda *_a, **_k: (0, None)
    Books.make_room_for = make_room_for
    Twin._power_event = _timed(power_event, "ev")
    Twin._power_blocked = _timed(power_blocked, "bl")
    report.power_section = _timed(power_report.power_section, "rep")


def run(args: list[str]) -> dict[str, Any]:
    _install()
    out = f"/tmp/power_rules_{os.getpid()}.json"
    sys.argv = ["cortex", "sim", "--quiet", *args, "--json", out]
    t0 = time.process_time()
    with contextlib.suppress(SystemExit), contextlib.redirect_stdout(sys.stderr):
        main()
    total = time.process_time() - t0
    with open(out) as fh:
        r = json.load(fh)
    os.unlink(out)
    p, g, j = r["power"], r["gpu_hours"], r["jobs"]
    return {
        "rules": sorted(RULES),
        "cpu_s": round(total, 2),
        **{k: round(v, 3) for k, v in sorted(cpu.items())},
        "passes": r["scheduler_cycles"],
        "cap_solves": p["cap_solves"],
        **dict(sorted(counts.items())),
        "productive_gpu_h": g["productive"],
        "lost_to_caps_gpu_h": g["lost_to_power_caps"],
        "completed": j["completed"],
        "jct_p50_s": j["jct_s"]["p50"],
        "jct_mean_s": j["jct_s"]["mean"],
        "queue_delay_mean_s": j["queue_delay_s"]["mean"],
        "peak_facility_mw": p["peak_facility_mw"],
        "minutes_over_cap": p["minutes_over_cap"],
        "paused_for_power": p["paused_for_power"],
        "battery_units": (p["battery"] or {}).get("smallest_megapack_units"),
    }


if __name__ == "__main__":
    default = ["--fleet", "cortex-2024", "--days", "30", "--power-policy", "full"]
    print(json.dumps(run(sys.argv[1:] or default)))
