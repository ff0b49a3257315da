"""A census of the twin's scheduling passes (bench/RESULTS.md, section 63): how many start
nothing, what triggered them, what each kind costs.

    python bench/pass_census.py [cortex sim options]   # default: --fleet cortex-2024 --days 30

Wraps `Twin._cycle`, `schedule` and the event handlers of one in-process run; the seconds are
`time.process_time()` of the wrapped calls (shares, not the run's speed: the wrapping costs).
"""

from __future__ import annotations

import contextlib
import sys
import time
from collections import Counter, defaultdict
from typing import Any

import cortex.sim.twin as twin_mod
from cortex.cli.main import main

HANDLERS = {
    "_arrival": "arrival",
    "_finish": "finish",
    "_failure": "failure",
    "_repair": "repair",
    "_tick": "tick",
    "_power_event": "power",
    "_stagger": "stagger",
    "_job_failure": "job failure",
}


def _kind(r: dict[str, Any]) -> str:
    if r["preempts"] or r["searches_failed"]:
        return "preempt, or search in vain"
    if not r["starts"]:
        return "deep, start nothing" if r["deep"] else "quick, start nothing"
    if r["pending"] == 1:
        return "start, one job pending"
    return "start, < 10 examined" if r["examined"] < 10 else "start, >= 10 examined"


def census(args: list[str]) -> list[dict[str, Any]]:
    twin_cls = twin_mod.Twin
    since: Counter[str] = Counter()
    rows: list[dict[str, Any]] = []
    last: dict[str, Any] = {}

    def wrap(name: str, label: str) -> None:
        orig = getattr(twin_cls, name)

        def handler(self: Any, a: Any, b: int) -> None:
            since[label] += 1
            orig(self, a, b)

        setattr(twin_cls, name, handler)

    for name, label in HANDLERS.items():
        wrap(name, label)
    orig_schedule = twin_mod.schedule

    def schedule(snap: Any, pol: Any, **kw: Any) -> Any:
        t0 = time.process_time()
        plan = orig_schedule(snap, pol, **kw)
        last["row"] = {
            "deep": kw.get("deep", True),
            "pending": len(snap.pending),
            "schedule_s": time.process_time() - t0,
            "starts": len(plan.starts),
            "preempts": len(plan.preemptions),
            "searches_failed": len(plan.preempt_failed),
            "examined": plan.examined,
        }
        return plan

    twin_mod.schedule = schedule  # type: ignore[assignment]
    orig_cycle = twin_cls._cycle

    def cycle(self: Any) -> None:
        t0 = time.process_time()
        last.clear()
        triggers = tuple(sorted(since))
        since.clear()
        orig_cycle(self)
        if "row" in last:
            rows.append({**last["row"], "cycle_s": time.process_time() - t0, "trig": triggers})

    twin_cls._cycle = cycle  # type: ignore[method-assign]
    sys.argv = ["cortex", "sim", *args, "--quiet"]
    with contextlib.suppress(SystemExit):  # the CLI exits when it is done
        main()
    return rows


def report(rows: list[dict[str, Any]]) -> None:
    groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        groups[_kind(r)].append(r)
    print(f"{'passes':32s} {'count':>8s} {'examined':>10s} {'schedule s':>11s} {'cycle s':>8s}")
    for kind, rs in sorted(groups.items()):
        ex = sum(r["examined"] for r in rs)
        sched = sum(r["schedule_s"] for r in rs)
        cyc = sum(r["cycle_s"] for r in rs)
        print(f"{kind:32s} {len(rs):8d} {ex:10d} {sched:11.2f} {cyc:8.2f}")
    for kind in ("quick, start nothing", "deep, start nothing"):
        trig = Counter(" + ".join(r["trig"]) for r in groups.get(kind, []))
        print(f"{kind}, triggered by:", ", ".join(f"{k} {n}" for k, n in trig.most_common(6)))


if __name__ == "__main__":
    report(census(sys.argv[1:] or ["--fleet", "cortex-2024", "--days", "30"]))
