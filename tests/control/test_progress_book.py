"""The progress book (control/progress.py): the metrics file read as hostile input (bounded
lines, range-checked fields, no links, no FIFOs, incremental and tail-bounded reads), attempts
kept apart, API reports rate-limited; and the work-at-stake arithmetic of preemption records."""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from typing import Any

import pytest

from cortex.control import progress as pg
from cortex.control.preemptions import since_checkpoint_s
from cortex.control.progress import Progress, ProgressBook, fold, merge, parse_line

NOW = 1_000_000.0


class Exec:
    def __init__(self, root: Path) -> None:
        self.root = root

    def metrics_file(self, job_id: int) -> Path:
        return self.root / f"{job_id}.jsonl"


def line(**kw: Any) -> str:
    return json.dumps({"ts": NOW - 10, **kw}) + "\n"


@pytest.mark.parametrize(
    ("raw", "field", "want"),
    [
        (b'{"step": 5}', "step", 5),
        (b'{"step": 5.0}', "step", 5),
        (b'{"step": 5.5}', "step", None),
        (b'{"step": -1}', "step", None),
        (b'{"step": true}', "step", None),
        (b'{"step": 9007199254740993}', "step", None),  # past 2**53
        (b'{"loss": NaN}', "loss", None),
        (b'{"loss": Infinity}', "loss", None),
        (b'{"loss": 1e400}', "loss", None),
        (b'{"loss": 2.5}', "loss", 2.5),
        (b'{"samples_per_s": -3}', "samples_per_s", None),
        (b'{"ts": 1000299.5}', "ts", 1000299.5),  # NOW + 299.5: within 300 s of skew
        (b'{"ts": 1000300.5}', "ts", None),  # NOW + 300.5
        (b'{"attempt": "1"}', "attempt", None),
        (b'{"event": 7}', "event", None),
    ],
)
def test_fields_are_range_checked_one_by_one(raw: bytes, field: str, want: object) -> None:
    got = parse_line(raw, NOW)
    assert got is not None and got[field] == want


@pytest.mark.parametrize(
    "raw",
    [b"[1, 2]", b"not json", b'"x"', b"[" * 3000 + b"]" * 3000, b'{"a": "' + b"x" * 5000 + b'"}'],
)
def test_lines_that_are_not_small_objects_are_skipped(raw: bytes) -> None:
    assert parse_line(raw, NOW) is None


def _fold(*lines: bytes, attempt: int = 2, start: float = NOW - 100) -> Progress:
    p = Progress()
    for raw in lines:
        got = parse_line(raw, NOW)
        assert got is not None
        p = fold(p, got, attempt, start)
    return p


def test_an_earlier_attempts_lines_are_ignored_but_its_checkpoint_kept() -> None:
    p = _fold(
        line(attempt=1, step=40, loss=1.0).encode(),
        line(attempt=1, event="checkpoint", step=40).encode(),
        json.dumps({"ts": NOW - 200, "step": 41, "loss": 0.9}).encode(),  # unnamed, before start
    )
    assert (p.step, p.checkpoint_step, p.checkpoint_at) == (None, 40, NOW - 10)
    p = _fold(line(attempt=2, step=45, loss=0.5, samples_per_s=12.0).encode())
    assert (p.attempt, p.step, p.loss, p.samples_per_s) == (2, 45, 0.5, 12.0)


def test_the_file_is_read_incrementally_and_a_cut_line_waits(tmp_path: Path) -> None:
    book = ProgressBook(Exec(tmp_path))
    f = tmp_path / "7.jsonl"
    f.write_text(line(attempt=1, step=10, loss=2.0))
    assert book.current(7, 1, 0.0, NOW).step == 10  # type: ignore[union-attr]
    whole = line(attempt=1, step=20, loss=1.5)
    with f.open("a") as out:
        out.write(whole[:15])
    assert book.current(7, 1, 0.0, NOW).step == 10  # type: ignore[union-attr]
    with f.open("a") as out:
        out.write(whole[15:] + line(attempt=1, event="checkpoint", step=20))
    got = book.current(7, 1, 0.0, NOW)
    assert got is not None and (got.step, got.loss, got.checkpoint_step) == (20, 1.5, 20)
    # The next attempt: its steps start over, the job's checkpoint stays.
    got = book.current(7, 2, 0.0, NOW)
    assert got is not None and (got.step, got.checkpoint_step) == (None, 20)


def test_truncated_or_replaced_files_are_read_again(tmp_path: Path) -> None:
    book = ProgressBook(Exec(tmp_path))
    f = tmp_path / "7.jsonl"
    f.write_text(line(attempt=1, step=10, loss=2.0) * 3)
    assert book.current(7, 1, 0.0, NOW).step == 10  # type: ignore[union-attr]
    f.write_text(line(attempt=1, step=3, loss=2.0))  # shorter than the offset read
    assert book.current(7, 1, 0.0, NOW).step == 3  # type: ignore[union-attr]
    new = tmp_path / "new"
    new.write_text(line(attempt=1, step=4, loss=2.0) * 5)
    os.replace(new, f)  # another inode
    assert book.current(7, 1, 0.0, NOW).step == 4  # type: ignore[union-attr]


def test_a_large_file_is_read_from_its_tail_and_its_last_checkpoint_found(
    tmp_path: Path, monkeypatch: Any
) -> None:
    """Progress comes from the tail; the newest checkpoint is searched for in the bytes skipped,
    from their end, READ_MAX_BYTES at a time. Before, a checkpoint older than the tail was out
    of reach, as for the first read after a restart of any file over 1 MiB."""
    monkeypatch.setattr(pg, "READ_MAX_BYTES", 200)
    one = line(attempt=1, step=1, loss=2.0)
    f = tmp_path / "7.jsonl"
    # 40 lines of about 60 bytes: checkpoints first, step 9 last. 200 bytes hold about 3
    # lines, the first of them cut (and dropped from the tail's read).
    first = line(attempt=1, event="checkpoint", step=1) + line(
        attempt=1, event="checkpoint", step=2
    )
    f.write_text(first + one * 37 + line(attempt=1, step=9, loss=1.0))
    reads: list[int] = []
    real = os.pread
    monkeypatch.setattr(pg.os, "pread", lambda fd, n, at: reads.append(n) or real(fd, n, at))
    got = ProgressBook(Exec(tmp_path)).current(7, 1, 0.0, NOW)
    assert got is not None and (got.step, got.checkpoint_step) == (9, 2)
    assert max(reads) <= 200  # memory stays bounded: no read past READ_MAX_BYTES


@pytest.mark.parametrize("where", ["cut", "grown", "overlong"])
def test_a_checkpoint_in_the_bytes_a_read_skips_is_found(
    tmp_path: Path, monkeypatch: Any, where: str
) -> None:
    """cut: the checkpoint is the tail's first, cut line (dropped from the tail's read).
    grown: the file grew past READ_MAX_BYTES between two reads, the checkpoint in the middle.
    overlong: an overlong line (never parsed) spans chunks before the checkpoint is reached."""
    monkeypatch.setattr(pg, "READ_MAX_BYTES", 200)
    one = line(attempt=1, step=1, loss=2.0)
    ck = line(attempt=1, event="checkpoint", step=5)
    f = tmp_path / "7.jsonl"
    book = ProgressBook(Exec(tmp_path))
    if where == "cut":
        # The last 200 bytes begin in the middle of the checkpoint line.
        f.write_text(one * 20 + ck + "x" * (200 - len(ck) // 2 - 1) + "\n")
    elif where == "grown":
        f.write_text(one * 2)
        assert book.current(7, 1, 0.0, NOW).checkpoint_step is None  # type: ignore[union-attr]
        with f.open("a") as out:
            out.write(one * 5 + ck + one * 10)
    else:
        f.write_text(ck + "y" * 5000 + "\n" + one * 10)
    got = book.current(7, 1, 0.0, NOW)
    assert got is not None and got.checkpoint_step == 5


def test_links_and_fifos_are_not_read(tmp_path: Path) -> None:
    secret = tmp_path / "other-team.jsonl"
    secret.write_text(line(attempt=1, step=99, loss=0.1))
    (tmp_path / "7.jsonl").symlink_to(secret)
    os.mkfifo(tmp_path / "8.jsonl")
    book = ProgressBook(Exec(tmp_path))
    done = threading.Event()

    def read() -> None:
        assert book.current(7, 1, 0.0, NOW) is None
        assert book.current(8, 1, 0.0, NOW) is None  # a FIFO must not block the reader
        done.set()

    t = threading.Thread(target=read, daemon=True)
    t.start()
    t.join(60)  # generous: a blocked reader never returns
    assert done.is_set()


def test_api_reports_are_rate_limited_and_bounded(monkeypatch: Any) -> None:
    book = ProgressBook(None)
    p = Progress(attempt=1, step=1, reported_at=NOW, source="api")
    assert book.post(1, p, 10.0) == 0.0
    assert book.post(1, p, 10.25) == pytest.approx(0.75)  # 1 s - 0.25 s
    assert book.post(1, p, 11.0) == 0.0
    monkeypatch.setattr(pg, "MAX_JOBS", 2)
    book.post(2, p, 20.0)
    book.post(3, p, 20.0)  # three jobs for two places: the oldest report goes
    assert book.current(1, 1, 0.0, NOW) is None
    assert book.current(3, 1, 0.0, NOW) == p
    assert book.current(3, 2, 0.0, NOW) is None  # another attempt's report is not its


def test_merge_takes_the_newer_report_and_the_newest_checkpoint() -> None:
    a = Progress(attempt=1, step=10, reported_at=5.0, checkpoint_step=8, checkpoint_at=4.0)
    b = Progress(attempt=1, step=9, reported_at=3.0, checkpoint_step=9, checkpoint_at=4.5)
    got = merge(a, b)
    assert got is not None and (got.step, got.checkpoint_step) == (10, 9)
    assert merge(None, b) == b


@pytest.mark.parametrize(
    ("start", "ckpt", "want"),
    [
        (400.0, 700.0, 300.0),  # 1000 - 700: since this run's checkpoint
        (400.0, 300.0, 600.0),  # an earlier attempt's checkpoint: since the run began
        (400.0, None, 600.0),
        (None, None, None),
    ],
)
def test_work_at_stake(start: float | None, ckpt: float | None, want: float | None) -> None:
    p = None if ckpt is None else Progress(checkpoint_at=ckpt, checkpoint_step=1)
    assert since_checkpoint_s(1000.0, start, p) == want


def test_api_reports_keep_the_attempts_first_report_and_count_its_checkpoints() -> None:
    """dash2's finding: a report replaced the job's last one whole, so the end of startup (the
    attempt's first report) moved to the newest report: posts at 1,060 and 1,120 gave 1,120,
    and goodput booked the run up to its last report as startup."""
    book = ProgressBook(None)
    reports = [  # (time, checkpoint_at): the second names a checkpoint, the third the same one
        (1060.0, None),
        (1120.0, 1100.0),
        (1180.0, 1100.0),
        (1240.0, 1230.0),
    ]
    for i, (t, ck) in enumerate(reports):
        p = Progress(attempt=1, step=i, reported_at=t, source="api", first_at=t, checkpoint_at=ck)
        assert book.post(7, p, float(i)) == 0.0
    got = book.current(7, 1, 1000.0, 1300.0)
    assert got is not None and (got.step, got.first_at) == (3, 1060.0)
    assert (got.checkpoint_at, got.checkpoints) == (1230.0, 2)  # 1,100 counted once
    # A new attempt starts its own books.
    book.post(7, Progress(attempt=2, step=0, reported_at=1400.0, first_at=1400.0), 9.0)
    got = book.current(7, 2, 1390.0, 1410.0)
    assert got is not None and (got.first_at, got.checkpoints) == (1400.0, 0)


def test_a_restored_checkpoint_is_known_with_the_newest_of_the_others_and_bounded(
    monkeypatch: Any,
) -> None:
    """Recovery hands back the checkpoint times API reports named before a restart (the job
    rows'): known_checkpoint_at is the newest of those and of what is reported since."""
    monkeypatch.setattr(pg, "MAX_JOBS", 2)
    book = ProgressBook()
    assert book.known_checkpoint_at(1) is None
    book.restore(1, 100.0)
    book.restore(1, 50.0)  # an older one (a second recovery after a failed tick) keeps 100
    assert book.known_checkpoint_at(1) == 100.0
    book.post(1, Progress(attempt=2, step=3, checkpoint_at=90.0), 0.0)
    assert book.known_checkpoint_at(1) == 100.0
    book.post(1, Progress(attempt=2, step=4, checkpoint_at=120.0), 5.0)
    assert book.known_checkpoint_at(1) == 120.0
    book.restore(2, 1.0)
    book.restore(3, 1.0)  # past MAX_JOBS the oldest goes
    assert book.known_checkpoint_at(2) == book.known_checkpoint_at(3) == 1.0
    assert 1 not in book._restored


def test_the_search_for_a_skipped_checkpoint_is_bounded(tmp_path: Path, monkeypatch: Any) -> None:
    """A hostile file: one `truncate` makes it a sparse terabyte of zeros. The bytes a tail read
    skips are searched back for a checkpoint at most SEARCH_MAX_BYTES (a line cut there is
    dropped); before, the whole file was read, under the book's lock (and recovery's)."""
    monkeypatch.setattr(pg, "READ_MAX_BYTES", 200)
    monkeypatch.setattr(pg, "SEARCH_MAX_BYTES", 1000)
    one = line(attempt=1, step=1, loss=2.0)
    ck = line(attempt=1, event="checkpoint", step=5)
    f = tmp_path / "7.jsonl"
    f.write_text(ck)
    with f.open("r+b") as out:
        out.truncate(len(ck) + 50_000)  # a hole of zeros, no line end in it
        out.seek(0, os.SEEK_END)
        out.write(("\n" + one * 10).encode())
    reads: list[int] = []
    real = os.pread
    monkeypatch.setattr(pg.os, "pread", lambda fd, n, at: reads.append(n) or real(fd, n, at))
    got = ProgressBook(Exec(tmp_path)).current(7, 1, 0.0, NOW)
    assert got is not None and got.step == 1
    assert got.checkpoint_step is None  # 50 kB back: past the search, so not found
    assert sum(reads) <= 200 + 1000
    # One within the bound is still found, the line cut at the bound's edge dropped.
    f.write_text(one * 30 + ck + one * 10)
    got = ProgressBook(Exec(tmp_path)).current(7, 1, 0.0, NOW)
    assert got is not None and got.checkpoint_step == 5


@pytest.mark.parametrize(
    ("junk", "found"),
    [
        (b'{"x":"checkpoint"}\n', True),  # names a checkpoint, not of its shape: never parsed
        (b'{"event":"checkpoint"}\n', False),  # of its shape, no step: SEARCH_MAX_PARSES
    ],
)
def test_the_search_for_a_skipped_checkpoint_parses_few_lines_of_a_hostile_file(
    tmp_path: Path, monkeypatch: Any, junk: bytes, found: bool
) -> None:
    """Thousands of tiny lines that name a checkpoint between the tail and a real checkpoint:
    before, each was parsed (16 MiB of them, ~800,000 JSON parses under the book's lock). Now
    a line is parsed only if it has a checkpoint's `"event": "checkpoint"`, and at most
    SEARCH_MAX_PARSES of those that are not one; a real line past the first kind is found,
    whatever spaces its writer puts around the colon."""
    monkeypatch.setattr(pg, "READ_MAX_BYTES", 200)
    monkeypatch.setattr(pg, "SEARCH_MAX_PARSES", 10)
    one = line(attempt=1, step=1, loss=2.0)
    parsed: list[bytes] = []
    real = pg.parse_line
    monkeypatch.setattr(pg, "parse_line", lambda raw, now: parsed.append(raw) or real(raw, now))
    for sep in (": ", ":", " : "):
        ck = json.dumps({"ts": NOW - 10, "attempt": 1, "event": "checkpoint", "step": 5})
        f = tmp_path / "7.jsonl"
        f.write_bytes(
            ck.replace('": ', '"' + sep).encode() + b"\n" + junk * 5000 + one.encode() * 5
        )
        parsed.clear()
        got = ProgressBook(Exec(tmp_path)).current(7, 1, 0.0, NOW)
        assert got is not None and got.step == 1
        assert got.checkpoint_step == (5 if found else None), sep
        assert len(parsed) <= 5 + 10 + 1, len(parsed)  # the tail's lines, the cap, the real one


def test_an_attempt_whose_first_lines_a_tail_read_skipped_has_no_first_step_known(
    tmp_path: Path, monkeypatch: Any
) -> None:
    """The attempt's first step (its startup's end, for goodput and the restart overhead the
    loop books as owed) is unknown when its first lines lie in bytes a tail read skipped; it
    was the first line of the tail, read as a startup of most of the run. When the tail begins
    with an earlier attempt's line, all of this attempt's lines are in it: its first is known."""
    monkeypatch.setattr(pg, "READ_MAX_BYTES", 400)
    f = tmp_path / "7.jsonl"
    early = [
        json.dumps({"ts": NOW - 900 + i, "attempt": 1, "step": i, "loss": 1.0}) + "\n"
        for i in range(40)
    ]
    f.write_text("".join(early))
    book = ProgressBook(Exec(tmp_path))
    got = book.current(7, 1, NOW - 1000, NOW)
    assert got is not None and got.step == 39 and got.first_at is None
    with f.open("a") as out:  # later reads, none skipping: still unknown, never a later line
        out.write(json.dumps({"ts": NOW - 5, "attempt": 1, "step": 40, "loss": 1.0}) + "\n")
    got = book.current(7, 1, NOW - 1000, NOW)
    assert got is not None and got.step == 40 and got.first_at is None
    # A small file read whole knows it.
    small = ProgressBook(Exec(tmp_path))
    f.write_text("".join(early[:3]))
    assert small.current(7, 1, NOW - 1000, NOW).first_at == NOW - 900  # type: ignore[union-attr]
    # Attempt 2's lines all in the tail, after attempt 1's: its first step is its own.
    later = [
        json.dumps({"ts": NOW - 50 + i, "attempt": 2, "step": i, "loss": 1.0}) + "\n"
        for i in range(3)
    ]
    f.write_text("".join(early) + "".join(later))
    got = ProgressBook(Exec(tmp_path)).current(7, 2, NOW - 60, NOW)
    assert got is not None and got.step == 2 and got.first_at == NOW - 50


def test_a_new_attempt_starts_over_after_one_of_step_only_lines(tmp_path: Path) -> None:
    """Attempt 1 wrote step-only lines (no loss, rate or event: its progress never named its
    attempt), so attempt 2 was not seen as a new one: it kept attempt 1's first step (its own
    startup read as none, for goodput and the restart overhead owed)."""
    f = tmp_path / "7.jsonl"
    f.write_text(json.dumps({"ts": NOW - 900, "attempt": 1, "step": 1}) + "\n")
    book = ProgressBook(Exec(tmp_path))
    assert book.current(7, 1, NOW - 1000, NOW) is None  # no step shown without a loss
    with f.open("a") as out:
        out.write(line(ts=NOW - 100, attempt=2, step=3, loss=1.0))
    got = book.current(7, 2, NOW - 200, NOW)
    assert got is not None and (got.step, got.first_at) == (3, NOW - 100)
