"""A running job's progress: step, loss, samples/s and its last checkpoint.

Two sources, one answer:

- **The metrics file** (`CORTEX_METRICS_FILE`, JSON lines, written by `cortex.training` and by
  any script that follows the job protocol). The executor made it for the job; the service reads
  it. This is how the training workloads report, and the design an operator can trust: the job
  holds no credential at all (no token to leak, nothing to scope), and a job that lies can only
  lie about its own progress. The file is hostile input: it is opened without following links
  and without blocking (a FIFO never stalls a reader), must be a regular file, is read from
  where the last read stopped and at most `READ_MAX_BYTES` at a time (a file that grew more,
  or is over that at the first read after a restart, from its tail, the bytes skipped searched
  from their end for the last checkpoint line, at most `SEARCH_MAX_BYTES` of them and
  `SEARCH_MAX_PARSES` lines parsed: `_last_checkpoint`), and each line is bounded, parsed on
  its own and its fields range-checked (a bad field is dropped, not the line). Lines name
  their `attempt` (the training workloads write it); a line without one counts only when
  stamped after the current attempt began. A line with neither can never be placed: it is
  counted (`Progress.unattributed_lines`), and the first such line of a job is
  handed to the loop once (`take_unattributed`: an event and a metric), never silently.
- **`POST /v1/jobs/{id}/progress`** with the team's own token, for tooling outside the job (a
  wrapper, a notebook): the job's current attempt must be named, and one report per job per
  `MIN_INTERVAL_S` is taken (429 otherwise); a `checkpoint_at` more than `FUTURE_SLACK_S`
  after the service's clock is refused (422: the newest checkpoint known, it would hide every
  real one after it from the retry rule). Kept in memory, bounded to `MAX_JOBS` jobs; the
  newest checkpoint time reported is also kept on the job row, and recovery hands it back
  (`restore`), so a restart does not forget that a running attempt kept work.

The newer report wins; the last checkpoint is the newest either source names (the job's resume
point, whichever attempt wrote it).
"""

from __future__ import annotations

import json
import math
import os
import re
import stat
import threading
import time
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from cortex import jobproto

READ_MAX_BYTES = 1 << 20  # per read; a file that grew more is read from its tail (see above)
# The bytes skipped searched back for the last checkpoint line, at most, per read: a hostile
# file (a sparse one, 1 TB of zeros from one `truncate`) must not hold the book's lock, and
# recovery's, for a read of its whole length. 16 MiB is ~50,000 lines of the training
# workloads' ~300 bytes back from the tail, far more than they write between checkpoints.
SEARCH_MAX_BYTES = 16 << 20
# Lines parsed in that search, at most, that were not a checkpoint it can take: only lines of a
# checkpoint's shape (`_CHECKPOINT_SHAPE`) are parsed, and the first good one ends the search,
# so a real file parses one or a few; a hostile 16 MiB of `{"event":"checkpoint"}` lines (no
# step) was ~700,000 JSON parses, seconds under the book's lock.
SEARCH_MAX_PARSES = 256
# A checkpoint line's `"event": "checkpoint"` as JSON writers spell it (any spaces around the
# colon): a line without it is never parsed by the search (a 16 MiB of `{"x":"checkpoint"}`
# lines was ~850,000 parses); a chunk without it is not split into lines.
_CHECKPOINT_SHAPE = re.compile(rb'"event"\s*:\s*"checkpoint"')
LINE_MAX_BYTES = 4096  # the training workloads write about 300 bytes a line
MAX_JOBS = 10_000  # jobs whose file position or reported progress is kept
MIN_INTERVAL_S = 1.0  # API reports per job
MAX_STEP = 2**53  # exact in a float: JSON numbers past it are not steps anyone counts
MAX_LOSS = 1e30
MAX_RATE = 1e12
FUTURE_SLACK_S = 300.0  # clock skew tolerated on a line's `ts` and an API report's checkpoint_at


@dataclass(frozen=True)
class Progress:
    attempt: int | None = None
    step: int | None = None
    loss: float | None = None
    samples_per_s: float | None = None
    reported_at: float | None = None
    checkpoint_step: int | None = None
    checkpoint_at: float | None = None
    source: str = "file"
    # For goodput (control/goodput.py): the attempt's first report (its startup ends there)
    # and the checkpoints it wrote.
    first_at: float | None = None
    checkpoints: int = 0
    # Lines of the metrics file with neither `ts` nor `attempt`: ignored, as no attempt can
    # be told they are its (the job protocol writes `attempt`).
    unattributed_lines: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _int(v: Any, hi: int = MAX_STEP) -> int | None:
    if isinstance(v, bool) or not isinstance(v, int | float):
        return None
    if isinstance(v, float) and (not math.isfinite(v) or v != int(v)):
        return None
    return int(v) if 0 <= v <= hi else None


def _float(v: Any, lo: float, hi: float) -> float | None:
    if isinstance(v, bool) or not isinstance(v, int | float):
        return None
    f = float(v)
    return f if math.isfinite(f) and lo <= f <= hi else None


@dataclass
class _FileState:
    inode: int = -1
    offset: int = 0
    partial: bytes = b""
    progress: Progress = Progress()
    unattributed: int = 0  # lines with neither ts nor attempt, over the job's life
    told: bool = False  # the loop was handed the job's first such line
    # The current attempt's first lines may lie in bytes a tail read skipped: its first line
    # read is not its first step, so `first_at` is unknown (None), not that later line's time.
    first_cut: bool = False
    attempt: int | None = None  # the attempt of the last read


def parse_line(raw: bytes, now: float) -> dict[str, Any] | None:
    """The protocol's fields of one line, range-checked; None for a line that is not a JSON
    object. Unknown or out-of-range fields are left out."""
    if len(raw) > LINE_MAX_BYTES:
        return None
    try:
        obj = json.loads(raw)
    except (ValueError, RecursionError):
        return None
    if not isinstance(obj, dict):
        return None
    out: dict[str, Any] = {
        "ts": _float(obj.get("ts"), 0.0, now + FUTURE_SLACK_S),
        "attempt": _int(obj.get("attempt"), 2**31 - 1),
        "step": _int(obj.get("step")),
        "event": obj.get("event") if isinstance(obj.get("event"), str) else None,
        "loss": _float(obj.get("loss"), -MAX_LOSS, MAX_LOSS),
        "samples_per_s": _float(obj.get("samples_per_s"), 0.0, MAX_RATE),
    }
    return out


def fold(p: Progress, line: dict[str, Any], attempt: int, attempt_start_s: float) -> Progress:
    """`p` updated by one parsed line of the job whose current attempt is `attempt`."""
    ts = line["ts"]
    is_checkpoint = line["event"] == "checkpoint" and line["step"] is not None
    if is_checkpoint and ts is not None and (p.checkpoint_at is None or ts >= p.checkpoint_at):
        p = replace(p, checkpoint_step=line["step"], checkpoint_at=ts)
    # A line of an earlier attempt (named, or unnamed and stamped before this one began).
    if line["attempt"] is not None and line["attempt"] != attempt:
        return p
    if line["attempt"] is None and (ts is None or ts < attempt_start_s):
        return p
    if line["step"] is None:
        return p
    if is_checkpoint:
        p = replace(p, checkpoints=p.checkpoints + 1)
    if p.first_at is None and ts is not None:
        p = replace(p, first_at=ts)
    if line["event"] is None and line["loss"] is None and line["samples_per_s"] is None:
        return p
    return replace(
        p,
        attempt=attempt,
        step=line["step"],
        loss=line["loss"] if line["loss"] is not None else p.loss,
        samples_per_s=line["samples_per_s"],
        reported_at=ts,
        source="file",
    )


def _open_regular(path: Path) -> int | None:
    """A read-only descriptor of `path` if it is a regular file, never following a link and
    never blocking on a FIFO; None otherwise."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        if stat.S_ISREG(os.fstat(fd).st_mode):
            return fd
    except OSError:
        pass
    os.close(fd)
    return None


class ProgressBook:
    """Progress per job from both sources; safe to call from any thread (one short lock, held
    for at most one bounded read)."""

    def __init__(self, executor: Any = None) -> None:
        # Executors that keep a per-job metrics file on this host expose `metrics_file(job_id)`
        # (the local executor does); for others only the API reports.
        self._metrics_file = getattr(executor, "metrics_file", None)
        self._lock = threading.Lock()
        self._files: OrderedDict[int, _FileState] = OrderedDict()
        self._posted: OrderedDict[int, Progress] = OrderedDict()
        self._last_post: dict[int, float] = {}
        # Checkpoint times reported through the API before a restart, read back from the job
        # rows (`restore`): the reports themselves were memory.
        self._restored: OrderedDict[int, float] = OrderedDict()
        # Jobs whose metrics file holds a line with neither `ts` nor `attempt`, each once:
        # job id -> the lines counted when first seen (taken by the loop for an event).
        self._untold: dict[int, int] = {}

    def take_unattributed(self) -> dict[int, int]:
        """Jobs newly found writing lines that name neither `ts` nor `attempt` (each job
        once), with how many such lines each had then."""
        with self._lock:
            out, self._untold = self._untold, {}
        return out

    def current(
        self, job_id: int, attempt: int, attempt_start_s: float, now: float | None = None
    ) -> Progress | None:
        """The job's progress in its current `attempt` (begun at `attempt_start_s`), or None
        when nothing has been reported."""
        now = time.time() if now is None else now
        with self._lock:
            from_file = self._read_file(job_id, attempt, attempt_start_s, now)
            posted = self._posted.get(job_id)
        if posted is not None and posted.attempt != attempt:
            posted = None
        return merge(from_file, posted)

    def metrics_path(self, job_id: int) -> Path | None:
        """The job's metrics file (None where the executor keeps none on this host): the
        dashboard reads its tail for the job page's chart (control/ui/progress_chart.py)."""
        return None if self._metrics_file is None else Path(self._metrics_file(job_id))

    def known_checkpoint_at(self, job_id: int) -> float | None:
        """The newest checkpoint time already seen for the job (API reports, and its metrics
        file as far as earlier reads went), without reading anything: the scheduler's victim
        cost asks for every candidate inside a cycle, where no I/O belongs. No lock either:
        `current` holds it through a file read, and a cycle must not wait on an API thread's
        I/O; a dict lookup and an attribute read are atomic under the GIL, and a report a
        moment stale only makes the cost a moment stale. The loop keeps the files that matter
        read (`refresh`)."""
        f = self._files.get(job_id)
        posted = self._posted.get(job_id)
        marks = [
            p.checkpoint_at
            for p in (f.progress if f is not None else None, posted)
            if p is not None and p.checkpoint_at is not None
        ]
        restored = self._restored.get(job_id)
        if restored is not None:
            marks.append(restored)
        return max(marks) if marks else None

    def restore(self, job_id: int, checkpoint_at: float) -> None:
        """A checkpoint time the job's tooling reported through the API before a restart (the
        job row's `checkpoint_reported_at`, kept by the API as it took the report): recovery
        hands it back so that `known_checkpoint_at` still knows it."""
        with self._lock:
            old = self._restored.pop(job_id, None)
            self._restored[job_id] = checkpoint_at if old is None else max(old, checkpoint_at)
            while len(self._restored) > MAX_JOBS:
                self._restored.popitem(last=False)

    def refresh(self, runs: list[tuple[int, int, float]], now: float) -> None:
        """Read the metrics files of these runs (job id, attempt, start) so that their newest
        checkpoints are known to `known_checkpoint_at` (the loop calls it outside the cycle,
        for the running jobs whose preemption cost depends on it)."""
        for job_id, attempt, start_s in runs:
            self.current(job_id, attempt, start_s, now)

    def post(self, job_id: int, p: Progress, now_mono: float) -> float:
        """Take an API report; returns 0, or the seconds to wait before the next one."""
        with self._lock:
            last = self._last_post.get(job_id)
            if last is not None and now_mono - last < MIN_INTERVAL_S:
                return MIN_INTERVAL_S - (now_mono - last)
            self._last_post[job_id] = now_mono
            self._posted[job_id] = _after(self._posted.get(job_id), p)
            self._posted.move_to_end(job_id)
            while len(self._posted) > MAX_JOBS:
                old, _ = self._posted.popitem(last=False)
                self._last_post.pop(old, None)
        return 0.0

    def _read_file(
        self, job_id: int, attempt: int, attempt_start_s: float, now: float
    ) -> Progress | None:
        if self._metrics_file is None:
            return None
        path = Path(self._metrics_file(job_id))
        st = self._files.pop(job_id, None) or _FileState()
        self._files[job_id] = st  # most recently used last
        while len(self._files) > MAX_JOBS:
            self._files.popitem(last=False)
        fd = _open_regular(path)
        if fd is None:
            return None
        try:
            info = os.fstat(fd)
            if info.st_ino != st.inode or info.st_size < st.offset:
                # A new or truncated file (or the first read since a restart): from its start.
                st.inode, st.partial, st.progress = info.st_ino, b"", Progress()
                st.offset = 0
            skip_from, skip_head = st.offset, st.partial
            if info.st_size - st.offset > READ_MAX_BYTES:
                # Progress is read from the tail, its first (cut) line dropped.
                st.offset, st.partial = info.st_size - READ_MAX_BYTES, b"\0"
            start = st.offset
            data = os.pread(fd, min(READ_MAX_BYTES, info.st_size - start), start)
            skipped = None
            if start > skip_from:
                # The bytes skipped, through the end of the tail's cut line, may hold the job's
                # newest checkpoint (its resume point, and the retry rule's proof of kept work,
                # after a restart as much as before): searched from their end, 1 MiB at a time.
                cut = data.find(b"\n") + 1
                skipped = _last_checkpoint(fd, skip_from, start + cut, skip_head, now)
        except OSError:
            return None
        finally:
            os.close(fd)
        st.offset = start + len(data)
        # The attempt the state was folded for: its progress names it once a line with a loss,
        # rate or event was read; before that (step-only lines), the last read's.
        was = st.progress.attempt if st.progress.attempt is not None else st.attempt
        st.attempt = attempt
        if was is not None and was != attempt:
            # A new attempt: its step starts over; the checkpoint is the job's, kept. (Keyed on
            # the progress's attempt alone, an attempt of step-only lines kept its first step
            # and checkpoint count for the next attempt: that one's startup read as none.)
            ck = st.progress
            st.progress = Progress(
                checkpoint_step=ck.checkpoint_step, checkpoint_at=ck.checkpoint_at
            )
            st.first_cut = False
        # Bytes skipped before any line of this attempt was read: unless the tail's first line
        # is an earlier attempt's (then all of this one's are in the tail), its start was cut.
        check_first = start > skip_from and st.progress.first_at is None
        if check_first:
            st.first_cut = True
        if skipped is not None and (
            st.progress.checkpoint_at is None or skipped[1] >= st.progress.checkpoint_at
        ):
            st.progress = replace(st.progress, checkpoint_step=skipped[0], checkpoint_at=skipped[1])
        lines = (st.partial + data).split(b"\n")
        st.partial = lines.pop()  # an unfinished last line waits for the next read
        if len(st.partial) > LINE_MAX_BYTES:
            st.partial = b"\0"
        for raw in lines:
            if raw.startswith(b"\0"):
                continue  # the cut first line of a tail read
            line = parse_line(raw, now)
            if line is None:
                continue
            if line["ts"] is None and line["attempt"] is None:
                st.unattributed += 1  # `fold` would drop it: say so, once per job
                continue
            if check_first:
                check_first = False
                st.first_cut = _of_attempt(line, attempt, attempt_start_s)
            st.progress = fold(st.progress, line, attempt, attempt_start_s)
        if st.unattributed and not st.told:
            st.told = True
            self._untold[job_id] = st.unattributed
        p = st.progress
        if st.unattributed:
            p = replace(p, unattributed_lines=st.unattributed)
        if st.first_cut:
            # Its startup would read as most of the run (goodput's startup, and the restart
            # overhead loop_exits.py books as owed): unknown instead, its start as its first step.
            p = replace(p, first_at=None)
        return p if p.step is not None or p.checkpoint_at is not None else None


def _last_checkpoint(
    fd: int, lo: int, hi: int, head: bytes, now: float
) -> tuple[int, float] | None:
    """(step, ts) of the last checkpoint line in bytes [lo, hi) of the file, which end at a line
    end (or at `lo`); `head` is the start of the line cut at `lo` (b"" when `lo` starts a line;
    b"\0..." when that line was dropped). Read backwards READ_MAX_BYTES at a time, so memory is
    bounded whatever the file's size, and stops at the first such line found from the end;
    only lines of a checkpoint's shape (`_CHECKPOINT_SHAPE`) are parsed, SEARCH_MAX_PARSES of
    them at most. At most SEARCH_MAX_BYTES before `hi` are searched (the line cut there is
    dropped, as a tail read drops its first)."""
    if hi - lo > SEARCH_MAX_BYTES:
        lo, head = hi - SEARCH_MAX_BYTES, b"\0"
    pos, carry = hi, b""  # carry: the end of a line the chunk before may begin
    overlong = False  # the line `carry` ends is overlong (never parsed): its bytes are not kept
    parses = 0
    while pos > lo:
        n = min(READ_MAX_BYTES, pos - lo)
        pos -= n
        chunk = os.pread(fd, n, pos) + carry
        if _CHECKPOINT_SHAPE.search(chunk) is None:
            # No checkpoint line ends in it: only its first (cut) line is carried on, as below.
            cut = chunk.find(b"\n")
            if cut < 0:
                carry = b"" if overlong else chunk
            else:
                carry, overlong = chunk[:cut], False
            if len(carry) > LINE_MAX_BYTES:
                carry, overlong = b"", True
            continue
        lines = chunk.split(b"\n")
        if overlong and len(lines) > 1:
            lines[-1], overlong = b"", False  # the overlong line began in this chunk
        carry = lines[0]
        if len(carry) > LINE_MAX_BYTES or (overlong and len(lines) == 1):
            carry, overlong = b"", True
        for raw in reversed(lines[1:]):
            if _CHECKPOINT_SHAPE.search(raw) is None:
                continue  # most lines: not parsed
            got = _checkpoint_of(raw, now)
            if got is not None:
                return got
            parses += 1
            if parses >= SEARCH_MAX_PARSES:
                return None
    if overlong or head.startswith(b"\0"):
        return None
    last = head + carry
    return _checkpoint_of(last, now) if _CHECKPOINT_SHAPE.search(last) else None


def _of_attempt(line: dict[str, Any], attempt: int, attempt_start_s: float) -> bool:
    """Whether a parsed line may be the current attempt's (`fold`'s rule, a line without a
    time or an attempt counted as its)."""
    if line["attempt"] is not None:
        return bool(line["attempt"] == attempt)
    return line["ts"] is None or line["ts"] >= attempt_start_s


def _checkpoint_of(raw: bytes, now: float) -> tuple[int, float] | None:
    line = parse_line(raw, now)
    if line is None or line["event"] != "checkpoint":
        return None
    if line["step"] is None or line["ts"] is None:
        return None
    return line["step"], line["ts"]


def merge(a: Progress | None, b: Progress | None) -> Progress | None:
    """The newer report, with the newest checkpoint either names."""
    if a is None or b is None:
        return a or b
    newer = a if (a.reported_at or 0) >= (b.reported_at or 0) else b
    ck = a if (a.checkpoint_at or 0) >= (b.checkpoint_at or 0) else b
    firsts = [t for t in (a.first_at, b.first_at) if t is not None]
    return replace(
        newer,
        checkpoint_step=ck.checkpoint_step,
        checkpoint_at=ck.checkpoint_at,
        first_at=min(firsts) if firsts else None,
        checkpoints=max(a.checkpoints, b.checkpoints),
        unattributed_lines=max(a.unattributed_lines, b.unattributed_lines),
    )


def _after(prev: Progress | None, p: Progress) -> Progress:
    """A new API report of a job, keeping what the attempt's earlier reports established: its
    first report (where its startup ended, for goodput) and the checkpoints it has named, each
    new `checkpoint_at` counted once. A report replaced whole moved the end of startup to the
    latest report, booking the whole run as startup."""
    if prev is None or prev.attempt != p.attempt:
        return replace(p, checkpoints=1 if p.checkpoint_at is not None else 0)
    newer_ckpt = p.checkpoint_at is not None and p.checkpoint_at > (prev.checkpoint_at or -math.inf)
    firsts = [t for t in (prev.first_at, p.first_at) if t is not None]
    return replace(
        p,
        first_at=min(firsts) if firsts else None,
        checkpoint_step=p.checkpoint_step if newer_ckpt else prev.checkpoint_step,
        checkpoint_at=p.checkpoint_at if newer_ckpt else prev.checkpoint_at,
        checkpoints=prev.checkpoints + (1 if newer_ckpt else 0),
    )


def from_report(body: Mapping[str, Any], now: float) -> Progress:
    """An API report (already validated by its schema) as a Progress."""
    return Progress(
        attempt=body["attempt"],
        step=body["step"],
        loss=body.get("loss"),
        samples_per_s=body.get("samples_per_s"),
        reported_at=now,
        checkpoint_step=body.get("checkpoint_step"),
        checkpoint_at=body.get("checkpoint_at"),
        source="api",
        first_at=now,
    )


def protocol_env(spec: Mapping[str, Any]) -> dict[str, str]:
    """What the job protocol passes from a job's spec to its processes: its
    `checkpoint_interval_s` as CORTEX_CHECKPOINT_INTERVAL_S (over any value of the user's own)."""
    interval = spec.get("checkpoint_interval_s")
    if interval is None:
        return {}
    return {jobproto.ENV_CHECKPOINT_INTERVAL_S: f"{float(interval):g}"}
