"""What the twin's power policy re-does (bench/RESULTS.md, section 73, branch full8): the cap
level moves that undo a job's previous move, by the source of each (weather tick or shortage
re-solve), the stop reason of passes that start nothing, and how many passes stopped on the
site budget repeat the last such stop (same head, no more headroom).

    python bench/power_census.py [cortex sim options]   # default: --fleet cortex-2024 --days 30

Wraps `Twin._power_event`, `_power_blocked`, `_apply_levels` and `_apply` of one in-process run.
"""

from __future__ import annotations

import contextlib
import sys
from collections import Counter
from typing import Any

import cortex.sim.twin as twin_mod
from cortex.cli.main import main

Twin: Any = twin_mod.Twin
counts: Counter[str] = Counter()
stops: Counter[tuple[str, str]] = Counter()
last: dict[int, tuple[int, int, str, float]] = {}
repeats: Counter[str] = Counter()
cap_stop: dict[str, tuple[int, float, tuple[float, ...]]] = {}
source = ["other"]
_event, _blocked, _levels, _apply = (
    Twin._power_event,
    Twin._power_blocked,
    Twin._apply_levels,
    Twin._apply,
)


def _tagged(fn: Any, tag: str) -> Any:
    """`fn` with cap moves made inside it booked to `tag` (a weather tick, a shortage)."""

    def wrapper(*args: Any) -> None:
        source[0] = tag
        try:
            fn(*args)
        finally:
            source[0] = "other"

    return wrapper


power_event = _tagged(_event, "tick")
power_blocked = _tagged(_blocked, "shortage")


def apply_levels(self: Any, levels: dict[int, int]) -> None:
    pw, src = self.pw, source[0]
    moves = pw.cap_moves(levels, self.state.running)
    before = {j: pw.jobs[j].level for j, _ in moves}
    _levels(self, levels)
    for j, lv in moves:
        if pw.jobs[j].level != lv:
            counts["raise deferred by the ramp"] += 1
            continue
        counts[f"{src} {'raise' if lv < before[j] else 'lower'}"] += 1
        prev = last.get(j)
        if prev is not None and prev[0] == lv and prev[1] == before[j]:
            counts[f"undo {prev[2]} -> {src}"] += 1
            near = self.now - prev[3] <= 600
            counts["undo <= 600 s apart" if near else "undo > 600 s apart"] += 1
        last[j] = (before[j], lv, src, self.now)


def apply(self: Any, plan: Any) -> None:
    rr = plan.rest_reason
    if not plan.starts and not plan.preemptions:
        first = max(plan.first_codes, key=plan.first_codes.get).name if plan.first_codes else "-"
        stops[(rr.code.name if rr else "none", first)] += 1
        if rr is not None and rr.code.name == "POWER_CAP":
            _repeat(self, rr.detail.get("job", -1))
    else:
        cap_stop.clear()
    _apply(self, plan)


def _repeat(self: Any, head: int) -> None:
    """A pass stopped on the site budget: the same head as the last such pass (nothing started
    or evicted between), with no more site or hall headroom than then?"""
    v = self.pw.view(self.now, self.state)
    now = (head, v.site_headroom_w, tuple(v.hall_headroom_w))
    last = cap_stop.get("last")
    if last is None:
        repeats["first since a start or eviction"] += 1
    elif last[0] != head:
        repeats["another head"] += 1
    elif now[1] <= last[1] and all(a <= b for a, b in zip(now[2], last[2], strict=True)):
        repeats["same head, no more site or hall headroom"] += 1
    else:
        repeats["same head, more headroom"] += 1
    cap_stop["last"] = now


Twin._power_event, Twin._power_blocked = power_event, power_blocked
Twin._apply_levels, Twin._apply = apply_levels, apply
args = sys.argv[1:] or ["--fleet", "cortex-2024", "--days", "30"]
sys.argv = ["cortex", "sim", "--quiet", *args]
with contextlib.suppress(SystemExit):
    main(end_process=False)  # the counts below are printed after the run
print("level moves:", dict(sorted(counts.items())))
print("passes that start nothing, by (stop reason, most frequent first code):")
for (stop, first), n in stops.most_common(10):
    print(f"  {n:7d}  {stop:<16} {first}")
print("passes stopped on the site budget (POWER_CAP):", dict(repeats))
