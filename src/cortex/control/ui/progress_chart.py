"""The job page's progress chart: step and loss over time in the job's current attempt, from
the tail of its metrics file (the job protocol's JSON lines; control/progress.py keeps only the
latest report, so the history is read here).

The file is hostile input, read as control/progress.py reads it: opened without following a
link or blocking on a FIFO, a regular file only, at most TAIL_BYTES from its end, each line
bounded and range-checked by `parse_line`. Lines of another attempt are left out (a line
without one counts when stamped after the attempt began, as in `fold`)."""

from __future__ import annotations

import os
from typing import Any

from cortex.control.progress import _open_regular, parse_line

TAIL_BYTES = 1 << 20  # about 3,000 lines of the training workloads' 300 bytes


def series(book: Any, job_id: int, attempt: int, start_s: float, now: float, points: int) -> dict:
    """{"t": [...], "step": [...], "loss": [...], "samples_per_s": [...]} (None where a line
    has none), at most `points` of them, evenly thinned, the newest always kept."""
    out: dict[str, list[Any]] = {"t": [], "step": [], "loss": [], "samples_per_s": []}
    path = book.metrics_path(job_id)
    fd = _open_regular(path) if path is not None else None
    if fd is None:
        return out
    try:
        size = os.fstat(fd).st_size
        offset = max(0, size - TAIL_BYTES)
        data = os.pread(fd, size - offset, offset)
    except OSError:
        return out
    finally:
        os.close(fd)
    lines = data.split(b"\n")
    if offset > 0:
        lines = lines[1:]  # the first line of a tail read is cut
    rows = []
    for raw in lines:
        line = parse_line(raw, now)
        if line is None or line["ts"] is None or line["step"] is None:
            continue
        if line["attempt"] is not None and line["attempt"] != attempt:
            continue
        if line["attempt"] is None and line["ts"] < start_s:
            continue
        rows.append((line["ts"], line["step"], line["loss"], line["samples_per_s"]))
    rows.sort(key=lambda r: r[0])  # uPlot wants time ascending; a clock step may not be
    if len(rows) > points:
        stride = len(rows) / (points - 1)
        rows = [rows[int(i * stride)] for i in range(points - 1)] + [rows[-1]]
    for t, step, loss, rate in rows:
        out["t"].append(t)
        out["step"].append(step)
        out["loss"].append(loss)
        out["samples_per_s"].append(rate)
    return out
