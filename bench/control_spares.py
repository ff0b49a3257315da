"""Hot spares in the control plane at scale: time to recover of a 64-GPU gang that loses a
node, on bench/control.py's modelled 1,000-GPU fleet (125 nodes x 8 H100, SQLite) with 1,000
jobs queued and the fleet full, with `--hot-spares 1` (one pod, one spare) and without.

With a spare the gang is relaunched in the tick that sees its failure; the figure is that
tick's CPU time against the same tick without spares (the gang requeued, waiting for capacity).
CPU time, not wall time: the machine is shared.

    python bench/control_spares.py
"""

from __future__ import annotations

import json
import random
import shutil
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from control import TICK_GPUS, TICK_QUEUED, _StandIn, _tick_loop, pct  # bench/control.py

REPEATS = 3
WAIT_TICKS = 20  # ticks watched after the failure without spares


class _FleetStandIn(_StandIn):
    def __init__(self) -> None:
        super().__init__()
        self.changes: list[tuple[str, bool]] = []

    def node_changes(self) -> list[tuple[str, bool]]:
        out, self.changes = self.changes, []
        return out


def _run(url: str, home: Path, spares: int) -> dict[str, Any]:
    import control
    from cortex.control import store
    from cortex.control.schemas import SubmitRequest

    control._StandIn = _FleetStandIn  # type: ignore[misc]  # _tick_loop builds this one
    loop, ex, sessions, engine = _tick_loop(url, home, {"hot_spares": spares})
    rng = random.Random(0)

    def submit(k: int, gpus: int) -> None:
        with sessions.begin() as s:
            for _ in range(k):
                body = {"name": "j", "team": rng.choice(["fsd", "optimus", "research"]),
                        "gpus": gpus or rng.choice([1, 2, 4, 8, 16, 32]),
                        "duration_s": rng.uniform(600, 36000), "command": ["true"]}  # fmt: skip
                store.insert_jobs(s, [SubmitRequest.model_validate(body)], time.time())

    submit(1, 64)  # the gang, first in line
    loop.tick()
    gang = next(iter(loop.mirror.placement))
    submit(TICK_GPUS // 8, 8)  # fill the rest of the fleet
    loop.tick()
    submit(TICK_QUEUED, 0)
    loop.tick()
    node = loop.node_names[loop.mirror.placement[gang][1][0]]
    ex.exits.append(SimpleNamespace(job_id=gang, attempt=loop.mirror.attempt[gang],
                                    outcome="failed", exit_code=None,
                                    detail=f"node {node} lost: ActorDiedError"))  # fmt: skip
    ex.changes = [(node, False)]
    t0 = time.process_time()
    loop.tick()
    tick_s = time.process_time() - t0
    ticks = 1
    while loop.mirror.attempt.get(gang, 1) < 2 and ticks < WAIT_TICKS:
        loop.tick()
        ticks += 1
    back = loop.mirror.attempt.get(gang, 1) >= 2
    engine.dispose()
    return {"spares": spares, "failure_tick_cpu_ms": round(tick_s * 1e3, 2),
            "running_again_after_ticks": ticks if back else None}  # fmt: skip


def main() -> None:
    tmp = Path(tempfile.mkdtemp(prefix="cortex-bench-spares-"))
    runs: dict[int, list[dict[str, Any]]] = {0: [], 1: []}
    try:
        for r in range(REPEATS):
            for spares in (0, 1):
                home = tmp / f"{spares}-{r}"
                home.mkdir()
                runs[spares].append(_run(f"sqlite:///{home / 'c.db'}", home, spares))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    for spares, rs in runs.items():
        ms = [x["failure_tick_cpu_ms"] for x in rs]
        print(json.dumps({"hot_spares": spares, "failure_tick_cpu_ms_p50": round(pct(ms, 50), 2),
                          "runs": rs}))  # fmt: skip


if __name__ == "__main__":
    main()
