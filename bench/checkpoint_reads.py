"""What `SchedulerLoop._refresh_checkpoints` costs inside a tick: `ProgressBook.refresh` of
CHECKPOINT_READS (64) running jobs' metrics files, each read from where the last read stopped
(control/progress.py). Three cases, CPU (process time) and wall, median of --runs:

- cold: the first read of each file after a start: 1 MiB tail (READ_MAX_BYTES), ~3,300 lines;
- warm: 30 new lines per file since the last read (a job logging once a second, read every
  CHECKPOINT_READ_S = 30 s);
- idle: nothing new (open, fstat, close).

    python bench/checkpoint_reads.py [--runs 5]

Lines look like cortex.training's (about 300 bytes: ts, attempt, step, loss, samples/s, ...)."""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

from cortex.control.loop import CHECKPOINT_READS
from cortex.control.progress import READ_MAX_BYTES, ProgressBook

PAD = "x" * 150  # the training workloads' other fields (lr, grad norm, tokens ...): ~300 bytes


def _line(step: int, attempt: int = 1) -> str:
    rec = {"ts": 1.7e9 + step, "attempt": attempt, "step": step, "loss": 2.5 - step * 1e-6,
           "samples_per_s": 1234.5, "event": "checkpoint" if step % 100 == 0 else "step",
           "pad": PAD}  # fmt: skip
    return json.dumps(rec) + "\n"


class _Files:
    def __init__(self, root: Path) -> None:
        self.root = root

    def metrics_file(self, job_id: int) -> Path:
        return self.root / f"{job_id}.jsonl"


def _append(path: Path, start: int, n: int) -> int:
    with path.open("a") as f:
        f.write("".join(_line(s) for s in range(start, start + n)))
    return start + n


def _timed(book: ProgressBook, runs: list[tuple[int, int, float]]) -> tuple[float, float]:
    c0, w0 = time.process_time(), time.perf_counter()
    book.refresh(runs, 1.8e9)
    return time.process_time() - c0, time.perf_counter() - w0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=5)
    a = ap.parse_args()
    jobs = list(range(1, CHECKPOINT_READS + 1))
    runs = [(j, 1, 0.0) for j in jobs]
    got: dict[str, list[tuple[float, float]]] = {"cold": [], "warm": [], "idle": []}
    lines_1mib = READ_MAX_BYTES // len(_line(10**6))
    for _ in range(a.runs):
        with tempfile.TemporaryDirectory() as tmp:
            files = _Files(Path(tmp))
            step = {j: _append(files.metrics_file(j), 0, lines_1mib + 10) for j in jobs}
            book = ProgressBook(files)
            got["cold"].append(_timed(book, runs))
            for j in jobs:
                step[j] = _append(files.metrics_file(j), step[j], 30)
            got["warm"].append(_timed(book, runs))
            got["idle"].append(_timed(book, runs))
    print(f"{CHECKPOINT_READS} files per refresh, median of {a.runs}")
    for case, xs in got.items():
        cpu = statistics.median(x[0] for x in xs) * 1000
        wall = statistics.median(x[1] for x in xs) * 1000
        print(f"{case:5s} CPU {cpu:8.2f} ms  wall {wall:8.2f} ms  ({cpu / len(jobs):.3f} ms/file)")


if __name__ == "__main__":
    main()
