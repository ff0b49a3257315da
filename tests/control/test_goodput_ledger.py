"""The one-pass books (control/goodput_ledger.py) give the per-job books' figures to the last
bit: GET /v1/goodput's answer and the goodput page's, on a service with attempts failed,
completed, preempted and running, jobs waiting, two teams, over several windows, equal to
the books as they were computed before (one `book_job` a job, over ORM rows: kept below as
the reference) and, where they can be, to figures derived by hand."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from test_goodput_api import Env, _fail_then_complete

from cortex.control import goodput
from cortex.control import store_health as sh
from cortex.control.ui import goodput_view
from cortex.drive import goodput as gp


@pytest.fixture
def env(db_url: str, tmp_path: Path) -> Iterator[Env]:
    e = Env(db_url, tmp_path)
    yield e
    e.svc.close()


def _reference_books(
    s: Any, team: str | None, since: float, progress: Any, now: float, gbps: float
) -> list:
    """Each job's books the way fleet_goodput booked them before the ledger: ORM rows,
    `book_job` per job, in id order."""
    by_job: dict[int, list[Any]] = {}
    for r in sh.attempts_since(s, team, since):
        by_job.setdefault(r.job_id, []).append(r)
    running = {job.id: at for job, at in sh.running_jobs(s, team)}
    jobs = sorted(sh.jobs_for(s, team, since), key=lambda j: j.id)
    return [
        goodput.book_job(j, by_job.get(j.id, []), running.get(j.id), progress, now, gbps)
        for j in jobs
    ]


def _reference_fleet(jbs: list, team: str | None, since: float, now: float) -> dict[str, Any]:
    total = gp.Books()
    large = []
    for jb in jbs:
        total.merge(jb.books)
        if jb.job.gpus >= 2 and jb.attempts:
            a = goodput.job_answer(jb, 2)
            keys = ("job_id", "name", "team", "gpus", "state", "goodput", "effective_training_time")
            large.append({k: a[k] for k in keys})
    r = goodput._r
    losses = {k: r(total.gpu_s[k]) for k in gp.LOSSES}
    return {
        "team": team, "since": since, "as_of": now, "jobs": len(jbs), "attempts": total.attempts,
        "gpu_s": {k: r(v) for k, v in total.gpu_s.items()},
        "allocated_gpu_s": r(total.allocated_gpu_s), "badput_gpu_s": r(sum(losses.values())),
        "losses_gpu_s": losses, "goodput": r(total.goodput()), "queueing_s": r(total.queueing_s),
        "large_job_gpus": 2, "large_jobs": large,
    }  # fmt: skip


def _reference_page(jbs: list) -> tuple[goodput_view.Split, dict[str, goodput_view.Split]]:
    """The page's sums: each team's jobs merged in id order, then the teams in the order
    they first appear (the page's order, so the floats are the same ones)."""
    teams: dict[str, tuple[gp.Books, int]] = {}
    for jb in jbs:
        tb, n = teams.get(jb.job.team, (gp.Books(), 0))
        tb.merge(jb.books)
        teams[jb.job.team] = (tb, n + 1)
    total = gp.Books()
    for tb, _ in teams.values():
        total.merge(tb)
    split = goodput_view.Split
    return split.of(total, len(jbs)), {t: split.of(b, n) for t, (b, n) in teams.items()}


def _reference_worst(jbs: list) -> list[goodput_view.JobLoss]:
    """The page's list of the jobs that lost the most, as it was built: every job that lost
    any GPU-time, sorted by (-lost GPU-hours, id)."""
    out = []
    for jb in jbs:
        lost = {k: jb.books.gpu_s[k] for k in gp.LOSSES}
        if jb.attempts and sum(lost.values()) > 0:
            out.append(
                goodput_view.JobLoss(
                    id=jb.job.id, name=jb.job.name, team=jb.job.team, state=jb.job.state,
                    gpus=jb.job.gpus, allocated_gpu_h=jb.books.allocated_gpu_s / 3600.0,
                    lost_gpu_h=sum(lost.values()) / 3600.0, goodput=jb.books.goodput(),
                    worst=max(lost, key=lambda k: lost[k]),
                )
            )  # fmt: skip
    out.sort(key=lambda j: (-j.lost_gpu_h, j.id))
    return out[: goodput_view.WORST_SHOWN]


def _busy_cluster(env: Env) -> dict[str, int]:
    """a: failed at +300, completed at +400 (2 GPUs); from +400, b (2 GPUs, 10 s a write)
    runs, reporting its first step at +430 and a checkpoint at +500; e (red's, 1 GPU, no
    reports) runs until it is preempted at +600; c (4 GPUs) waits from +400. Now: +700."""
    a = _fail_then_complete(env)
    b = env.submit(gpus=2, checkpoint_write_s=10.0, name="b")
    c = env.submit(gpus=4, name="c")
    r = env.client.post("/v1/jobs", json={"name": "e", "team": "red", "gpus": 1,
                                          "command": ["true"]}, headers=env.red)  # fmt: skip
    assert r.status_code == 201, r.text
    e = int(r.json()["id"])
    env.svc.loop.tick()  # b and e start at +400; c (4 GPUs) does not fit beside them
    env.lines(
        b,
        {"ts": 430, "attempt": 1, "step": 0, "event": "start"},
        {"ts": 500, "attempt": 1, "step": 50, "event": "checkpoint"},
        {"ts": 550, "attempt": 1, "step": 80, "loss": 1.0},
    )
    env.at(600)
    env.ex.finish(e, "preempted", None)
    env.svc.loop.tick()
    env.at(700)
    return {"a": a, "b": b, "c": c, "e": e}


def test_the_one_pass_books_are_the_per_job_books_exactly(env: Env) -> None:
    jobs = _busy_cluster(env)
    svc, t0 = env.svc, env.t0
    now = svc.clock.time()
    progress = svc.loop.progress
    gbps = svc.loop.topo.spec.storage_write_gbps
    with svc.sessions() as s:
        whole = _reference_books(s, None, t0 - 1, progress, now, gbps)
    total = gp.Books()
    for jb in whole:
        total.merge(jb.books)
    # Every category is held by some attempt here, so a category the new path dropped or
    # moved would show in the comparisons below.
    assert all(total.gpu_s[k] > 0 for k in gp.ATTEMPT_CATEGORIES), total.gpu_s
    # By hand, b (2 GPUs, running +400..+700): startup 30 s, one write 10 s, in progress since
    # its checkpoint at +500: 200 s, productive 300 - 30 - 10 - 200 = 60 s; x 2 GPUs.
    b = next(jb for jb in whole if jb.job.id == jobs["b"])
    assert {k: v for k, v in b.books.gpu_s.items() if v} == {
        "startup": 60.0, "checkpoint_writes": 20.0, "in_progress": 400.0, "productive": 120.0,
    }  # fmt: skip
    # e's first attempt: held +400..+600 without a report or a checkpoint, all of it lost
    # to the preemption: 200 s x 1 GPU.
    e = next(jb for jb in whole if jb.job.id == jobs["e"])
    assert e.splits[0]["rework_after_preemptions"] == 200.0
    # c has waited 300 s (+400..+700) and never ran.
    c = next(jb for jb in whole if jb.job.id == jobs["c"])
    assert (c.books.queueing_s, c.books.attempts) == (300.0, 0)

    # Windows: everything; from +350 (a's failed attempt left out, its wait until its second
    # attempt counted); from +450 (a gone); from +650 (e's preempted attempt gone too).
    for since in (t0 - 1, t0 + 350, t0 + 450, t0 + 650):
        for team in (None, "fsd", "red"):
            with svc.sessions() as s:
                ref = _reference_books(s, team, since, progress, now, gbps)
                got = goodput.fleet_goodput(s, team, since, progress, now, 2, gbps)
            assert got == _reference_fleet(ref, team, since, now), (since, team)
            hours = (now - since) / 3600.0
            with svc.sessions() as s:
                page = goodput_view.goodput_page(svc, s, team, hours)
            want_total, want_teams = _reference_page(ref)
            assert page.total == want_total, (since, team)
            assert dict(page.teams) == want_teams, (since, team)
            assert page.worst == _reference_worst(ref), (since, team)
    # The window from +350 books a's second attempt only, and its 300 s wait before it.
    with svc.sessions() as s:
        late = goodput.fleet_goodput(s, "fsd", t0 + 350, progress, now, 2, gbps)
    a_line = next(j for j in late["large_jobs"] if j["job_id"] == jobs["a"])
    # a's attempt 2: held 100 s, restart overhead 20, productive 80: 80 / 100 on 2 GPUs.
    assert a_line["goodput"] == 0.8


def test_the_page_lists_the_jobs_that_lost_the_most(env: Env) -> None:
    jobs = _busy_cluster(env)
    svc = env.svc
    with svc.sessions() as s:
        page = goodput_view.goodput_page(svc, s, None, 1.0)
    worst = {j.id: j for j in page.worst}
    # a lost 2 x (30 startup + 10 writes + 100 rework + 20 restart) = 320 GPU-s, most of it
    # to its failure; e lost 200 GPU-s to its preemption; b 2 x (30 + 10) = 80 to startup
    # and writes (its startup the larger); c held nothing and is not listed.
    assert [j.id for j in page.worst[:3]] == [jobs["a"], jobs["e"], jobs["b"]]
    assert worst[jobs["a"]].lost_gpu_h == pytest.approx(320 / 3600)
    assert worst[jobs["a"]].worst == "rework_after_failures"
    assert worst[jobs["e"]].worst == "rework_after_preemptions"
    assert worst[jobs["b"]].worst == "startup"
    assert jobs["c"] not in worst
