"""The goodput books at 100k GPUs, this tree against another checkout's in ONE process.

The state is bench/dashboard.py's service (`cortex-2024`, about 95% busy, 1,000+ running
jobs, 2,000 queued), plus a history it lacks: half the queued jobs had an attempt that ended
(failed or preempted, with first steps and checkpoints) in the last day, and 1,000 finished
jobs (completed, failed, cancelled) had one to three attempts each. The booking of the
goodput page (`goodput_page`, 24 h, every team) and the API's `fleet_goodput` (24 h) is timed
with this tree's modules and with BENCH_BASE_SRC's (default /tmp/gpbase/src, e.g. made by
`git worktree add --detach /tmp/gpbase main`), loaded under other names and run on the same
database, interleaved; their figures must be equal (asserted), so the ratio compares the
same answer.

    PYTHONPATH=src python bench/goodput_books.py      # bench/out/goodput_books.json
    PYTHONPATH=src python bench/goodput_books.py --profile   # this tree's booking, cProfile
"""

from __future__ import annotations

import dataclasses
import importlib.util
import inspect
import json
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "bench" / "out"
REPEATS = 7
FINISHED = 1000
WINDOW_H = 24.0


def add_history(svc: Any) -> None:
    """Ended attempts for half the queued jobs and 1,000 finished jobs (seeded)."""
    from sqlalchemy import select, update

    from cortex.control import models as m
    from cortex.control import store
    from cortex.control.schemas import SubmitRequest

    rng = random.Random(7)
    now = svc.clock.time()
    with svc.sessions.begin() as s:
        queued = s.scalars(select(m.Job.id).where(m.Job.state == "queued")).all()
        reqs = [
            SubmitRequest.model_validate(
                {
                    "name": f"done-{i}",
                    "team": rng.choice(("fsd", "optimus", "research", "infra")),
                    "gpus": rng.choice((8, 16, 64, 256)),
                    "duration_s": 3600,
                    "command": ["true"],
                    "checkpoint_write_s": rng.choice((5.0, 30.0)),
                }
            )
            for i in range(FINISHED)
        ]
        done = [j.id for j in store.insert_jobs(s, reqs, now - 86400 * rng.random())]
        recs = []

        def attempt(job: int, gpus: int, n: int, t0: float, outcome: str) -> float:
            held = rng.uniform(600, 7200)
            first = t0 + rng.uniform(10, 300) if rng.random() > 0.1 else None
            ckpt = t0 + rng.uniform(0, held) if rng.random() > 0.3 else None
            recs.append(
                m.AttemptRecord(
                    job_id=job, team="fsd", attempt=n, gpus=gpus, started_at=t0,
                    ended_at=t0 + held, outcome=outcome, first_step_at=first,
                    checkpoint_at=ckpt, checkpoints=rng.randint(0, 12),
                    checkpoint_write_s=rng.choice((0.0, 5.0, 30.0)), node=None,
                )
            )  # fmt: skip
            return t0 + held

        for job in queued[: len(queued) // 2]:
            t = now - rng.uniform(3 * 3600, 20 * 3600)
            attempt(job, 8, 1, t, rng.choice(("failed", "preempted")))
            s.execute(update(m.Job).where(m.Job.id == job).values(attempt=1))
        for job in done:
            t = now - rng.uniform(5 * 3600, 22 * 3600)
            n = rng.randint(1, 3)
            for k in range(1, n + 1):
                last = k == n
                out = rng.choice(("completed", "failed", "cancelled")) if last else "preempted"
                t = attempt(job, 16, k, t, out) + rng.uniform(0, 600)
            state = out if out != "cancelled" else "cancelled"
            s.execute(
                update(m.Job).where(m.Job.id == job).values(state=state, ended_at=t, attempt=n)
            )
        # Teams as the jobs' rows say (the records above were written as fsd's).
        s.add_all(recs)
        s.flush()
        s.execute(
            update(m.AttemptRecord).values(
                team=select(m.Job.team).where(m.Job.id == m.AttemptRecord.job_id).scalar_subquery()
            )
        )


def load_base(src: Path) -> tuple[Any, Any]:
    """The base checkout's goodput modules under other names, wired to one another (the
    stores' query modules are shared: they are not what is compared)."""

    def load(name: str, rel: str) -> ModuleType:
        spec = importlib.util.spec_from_file_location(name, src / rel)
        assert spec is not None and spec.loader is not None
        mod = importlib.util.module_from_spec(spec)
        sys.modules[name] = mod
        spec.loader.exec_module(mod)
        return mod

    gp = load("base_drive_goodput", "cortex/drive/goodput.py")
    ctl = load("base_control_goodput", "cortex/control/goodput.py")
    ctl.gp = gp  # type: ignore[attr-defined]
    view = load("base_goodput_view", "cortex/control/ui/goodput_view.py")
    view.gp, view.goodput = gp, ctl  # type: ignore[attr-defined]
    return view, ctl


def _plain(x: Any) -> Any:
    return dataclasses.asdict(x) if dataclasses.is_dataclass(x) and not isinstance(x, type) else x


def main() -> None:
    sys.path.insert(0, str(ROOT / "bench"))
    from cortex.control import goodput
    from cortex.control.ui import goodput_view
    from dashboard import build_service

    home = Path(tempfile.mkdtemp(prefix="gpbench-"))
    svc = build_service(home)
    add_history(svc)
    progress, large = svc.loop.progress, goodput.large_job_gpus()
    gbps = svc.loop.topo.spec.storage_write_gbps

    def page(view: Any) -> Any:
        with svc.sessions() as s:
            return view.goodput_page(svc, s, None, WINDOW_H)

    def fleet(ctl: Any) -> Any:
        now = svc.clock.time()
        with svc.sessions() as s:
            # A base from before the fleet's bandwidth priced a declared checkpoint size
            # takes no storage_write_gbps.
            params = inspect.signature(ctl.fleet_goodput).parameters
            kw = {"storage_write_gbps": gbps} if "storage_write_gbps" in params else {}
            return ctl.fleet_goodput(s, None, now - WINDOW_H * 3600, progress, now, large, **kw)

    if "--profile" in sys.argv:
        import cProfile
        import pstats

        page(goodput_view)
        prof = cProfile.Profile()
        prof.runcall(page, goodput_view)
        pstats.Stats(prof).sort_stats("cumulative").print_stats(30)
        return
    base_src = Path(os.environ.get("BENCH_BASE_SRC", "/tmp/gpbase/src"))
    base_view, base_ctl = load_base(base_src)
    t_now = svc.clock.time()  # one instant for every booking: the figures comparable
    svc.clock = SimpleNamespace(time=lambda: t_now, monotonic=time.monotonic)
    cases = {
        "page": (lambda: page(goodput_view), lambda: page(base_view)),
        "fleet": (lambda: fleet(goodput), lambda: fleet(base_ctl)),
    }
    times: dict[str, list[float]] = {}
    for name, (new, old) in cases.items():
        assert _plain(new()) == _plain(old()), f"{name}: figures differ from the base's"
        for _ in range(REPEATS):
            for tag, fn in (("new", new), ("base", old)):
                t0 = time.process_time()
                fn()
                times.setdefault(f"{name}_{tag}", []).append((time.process_time() - t0) * 1e3)
    # The new page's queries alone: what is left of its time is the booking loop.
    from cortex.control import goodput_ledger

    since = t_now - WINDOW_H * 3600
    queries = {
        "sql_attempts": lambda s: goodput_ledger.attempts_by_job(s, None, since),
        "sql_jobs": lambda s: goodput_ledger.jobs_to_book(s, None, since),
    }
    for _ in range(REPEATS):
        for name, q in queries.items():
            with svc.sessions() as s:
                t0 = time.process_time()
                q(s)
                times.setdefault(name, []).append((time.process_time() - t0) * 1e3)
    med = {k: round(statistics.median(v), 1) for k, v in times.items()}
    out = {
        "base_src": str(base_src),
        "cpu_ms_median": med,
        "new_over_base": {c: round(med[f"{c}_new"] / med[f"{c}_base"], 2) for c in cases},
        "cpu_ms": {k: [round(x, 1) for x in v] for k, v in times.items()},
        "page_jobs": page(goodput_view).total.jobs,
        "page_attempts": page(goodput_view).total.attempts,
    }
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "goodput_books.json").write_text(json.dumps(out, indent=1))
    print(json.dumps({k: out[k] for k in ("cpu_ms_median", "new_over_base", "page_jobs",
                                          "page_attempts")}, indent=1))  # fmt: skip


if __name__ == "__main__":
    main()
