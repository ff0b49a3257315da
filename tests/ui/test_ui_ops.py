"""The operator's views through the server (no browser): power (site and halls against their
caps, what power holds back), goodput (the books by team, the jobs that lost the most), the
jobs blocking a waiting job and a node's blast radius. Each test builds the cluster state it
reads, on a fake clock where time matters, and derives what the page must show by hand."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from fakeclock import FakeClock
from uikit import ADMIN, UiEnv, fleet

POWER = {"power_policy": "cap", "site_cap_kw": 1000.0, "power_actuator": "none"}


def _hall(text: str, hall: str, cls: str) -> float:
    row = re.search(rf'<tr data-hall="{hall}">(.*?)</tr>', text, re.S)
    assert row is not None, hall
    got = re.search(rf'class="{cls}" data-w="([^"]+)"', row.group(1))
    assert got is not None, (hall, cls)
    return float(got.group(1))


def _by_id(text: str, el: str) -> str:
    got = re.search(rf'id="{el}"[^>]*>(.*?)</', text, re.S)
    assert got is not None, el
    return got.group(1).strip()


def _power_env(tmp_path: Path) -> UiEnv:
    # Two halls of 8 nodes x 8 GPUs; the second capped at 0.05 MW of IT power, no cooling limit.
    spec = fleet(halls=2, power_cap_mw=0.05)
    return UiEnv(f"sqlite:///{tmp_path / 'c.db'}", tmp_path, spec, FakeClock(), **POWER)


def test_power_page_shows_each_hall_against_its_cap_and_the_jobs_power_holds_back(
    tmp_path: Path,
) -> None:
    env = _power_env(tmp_path)
    try:
        admin = env.login(ADMIN)
        idle = admin.get("/ui/power").text
        # Same shape, nothing running: the halls book the same idle base.
        base = _hall(idle, "h1", "booked")
        assert base > 0 and _hall(idle, "h2", "booked") == pytest.approx(base)
        assert 'data-hall="h1"><td>h1</td><td>8</td><td>64</td>' in idle
        # h1 has no limit; h2's is its IT cap, 0.05 MW = 50,000 W, and its headroom the rest.
        assert _hall(idle, "h1", "limit") == float("inf")
        assert _hall(idle, "h2", "limit") == pytest.approx(50_000.0)
        assert "(IT cap)" in idle
        assert _hall(idle, "h2", "headroom") == pytest.approx(50_000.0 - base)

        a = env.submit(env.fsd, gpus=8, name="fsd-runs")
        env.svc.loop.tick()
        loop = env.svc.loop
        (node, _), *_ = loop.mirror.placement[a]
        hall = f"h{loop.topo.node_hall[node] + 1}"
        other = "h2" if hall == "h1" else "h1"
        site = env.client.get("/v1/power", headers=env.api(ADMIN)).json()
        job_w = site["it_booked_over_idle_w"]  # the one job's increment over idle
        assert job_w > 0
        text = admin.get("/ui/power").text
        # The job's hall books its increment over the idle base; the other hall does not.
        assert _hall(text, hall, "booked") == pytest.approx(base + job_w)
        assert _hall(text, other, "booked") == pytest.approx(base)
        facility_w = site["facility_kw"] * 1e3
        assert float(re.search(r'id="site-facility" data-w="([^"]+)"', text).group(1)) == (  # type: ignore[union-attr]
            pytest.approx(facility_w)
        )
        assert 'data-level="0"><td>0</td><td>100%</td><td>1</td><td>8</td>' in text
        assert _by_id(text, "held-jobs") == "0 jobs"
        # The job's page: its cap level and modelled draw (GET /v1/power's figure, in kW).
        job = env.login(env.fsd).get(f"/ui/jobs/{a}").text
        assert _by_id(job, "job-cap-level") == "0 (100% of TDP: uncapped)"
        watts = site["jobs"][0]["modelled_w"]
        assert _by_id(job, "job-watts") == f"{watts / 1e3:,.1f} kW over 8 GPUs"

        # The cap cut to 0.5 kW above today's draw: no other 8-GPU job fits (its increment
        # is the job's above, job_w, times the cooling model's slope, well over 500 W).
        cap_kw = site["facility_kw"] + 0.5
        r = env.client.put("/v1/power", json={"site_cap_kw": cap_kw}, headers=env.api(ADMIN))
        assert r.status_code == 200, r.text
        b = env.submit(env.red, gpus=8, name="red-waits-for-watts")
        loop.tick()
        loop.tick()
        text = admin.get("/ui/power").text
        assert _by_id(text, "held-jobs") == "1 jobs"
        assert "8 GPUs, " in _by_id(text, "held-gpus")
        held = re.search(r'id="held">(.*?)</table>', text, re.S).group(1)  # type: ignore[union-attr]
        assert f'href="/ui/jobs/{b}"' in held and "red-waits-for-watts" in held
        assert "<code>PowerCap</code>" in held
        changes = re.search(r'id="power-changes">(.*?)</table>', text, re.S).group(1)  # type: ignore[union-attr]
        assert f"site cap set to {cap_kw:g} kW" in changes
        # fsd sees the waiting job counted, never named.
        mine = env.login(env.fsd).get("/ui/fragments/power").text
        assert _by_id(mine, "held-jobs") == "1 jobs"
        assert "another team's job" in mine
        assert "red-waits-for-watts" not in mine and f"/ui/jobs/{b}" not in mine
    finally:
        env.svc.close()


def test_power_page_without_a_policy_says_how_to_start_one(ui_env: UiEnv) -> None:
    c = ui_env.login(ui_env.fsd)
    text = c.get("/ui/power").text
    assert "--power-policy" in _by_id(text, "no-power")
    r = c.get("/ui/fragments/power?cap=1")
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["query", "cap"]
    assert c.get("/ui/power?x=1").status_code == 422
    r = c.get("/ui/heatmap.bin?color=power")  # no power policy: nothing to color by
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["query", "color"]
    assert 'value="power"' not in c.get("/ui/").text  # nor is it offered


def test_goodput_page_books_by_team_and_lists_the_jobs_that_lost_the_most(
    tmp_path: Path,
) -> None:
    """On a fake clock from t0: fsd's 8-GPU job runs from t0, reports its first step and a
    checkpoint at t0 + 200, fails at t0 + 600 (no retries): 200 s of startup and 400 s of
    rework, x 8 GPUs = 1,600 + 3,200 GPU-s, nothing productive. red's 16-GPU job runs from
    t0 + 600 and completes at t0 + 1,200 with no report: 600 s x 16 = 9,600 GPU-s productive.
    Asked at t0 + 1,200 for the last hour: held 14,400 GPU-s = 4.00 GPU-h, goodput
    9,600 / 14,400 = 66.7%, lost 4,800 GPU-s = 1.33 GPU-h; the bar is 600 px wide, so
    productive 400 px, startup 66.67, rework 133.33."""
    clock = FakeClock()
    env = UiEnv(f"sqlite:///{tmp_path / 'c.db'}", tmp_path, clock=clock)
    try:
        t0 = clock.time()
        a = env.submit(env.fsd, gpus=8, name="fsd-fails")
        env.svc.loop.tick()
        clock.advance(200)
        body = {"attempt": 1, "step": 10, "checkpoint_at": t0 + 200}
        r = env.client.post(f"/v1/jobs/{a}/progress", json=body, headers=env.api(env.fsd))
        assert r.status_code == 202, r.text
        clock.advance(400)
        env.ex.finish(a, outcome="failed", code=1)
        b = env.submit(env.red, gpus=16, name="red-completes")
        env.svc.loop.tick()
        clock.advance(600)
        env.ex.finish(b)
        env.svc.loop.tick()
        admin = env.login(ADMIN)
        # Not booked yet: the page paints without the books and its fragment books them
        # after the first paint; booked, the page has them at once.
        cold = admin.get("/ui/goodput?hours=1").text
        assert 'id="goodput-pending"' in cold and 'hx-trigger="load, every 15s"' in cold
        assert 'id="goodput-total"' not in cold
        text = admin.get("/ui/fragments/goodput?hours=1").text
        warm = admin.get("/ui/goodput?hours=1").text
        assert _by_id(warm, "goodput-total") == "66.7%" and 'id="goodput-pending"' not in warm
        assert _by_id(text, "goodput-total") == "66.7%"
        assert _by_id(text, "goodput-held") == "4.0 GPU-h"
        assert _by_id(text, "goodput-lost") == "1.3 GPU-h"
        fleet_bar = text[text.index("Where the GPU-time went") : text.index("By team")]
        rect = r'<rect data-k="(\w+)" x="[^"]+" y="0" width="([^"]+)"'
        bar = {k: float(w) for k, w in re.findall(rect, fleet_bar)}
        assert bar["productive"] == pytest.approx(400.0)
        assert bar["startup"] == pytest.approx(66.67)
        assert bar["rework_after_failures"] == pytest.approx(133.33)
        teams = dict(
            re.findall(r'<tr data-team="(\w+)"><td>\w+</td><td class="gp">([^<]+)</td>', text)
        )
        assert teams == {"fsd": "0.0%", "red": "100.0%"}
        worst = re.search(r'id="goodput-worst">(.*?)</table>', text, re.S).group(1)  # type: ignore[union-attr]
        assert f'data-job="{a}"' in worst and f'data-job="{b}"' not in worst
        assert '<td class="lost">1.33 GPU-h</td>' in worst and "rework after failures" in worst

        # The overview's card: the same books over the last day (66.7% for the admin).
        card = env.login(ADMIN).get("/ui/fragments/goodput-card").text
        assert _by_id(card, "overview-goodput") == "66.7%"
        assert 'hx-get="/ui/fragments/goodput-card"' in env.login(ADMIN).get("/ui/").text
        # Each job's page: its own books, attempt by attempt.
        page = env.login(ADMIN).get(f"/ui/jobs/{a}").text
        assert _by_id(page, "job-goodput-total") == "0.0%"
        row = re.search(r'<tr data-attempt="1">(.*?)</tr>', page, re.S).group(1)  # type: ignore[union-attr]
        assert "<td>failed</td>" in row and "<td>1.33 GPU-h</td>" in row
        assert _by_id(env.login(ADMIN).get(f"/ui/jobs/{b}").text, "job-goodput-total") == "100.0%"

        fsd = env.login(env.fsd)
        mine = fsd.get("/ui/fragments/goodput?hours=1").text
        assert _by_id(mine, "goodput-held") == "1.3 GPU-h"  # its own 4,800 GPU-s
        assert _by_id(mine, "goodput-total") == "0.0%"
        assert "red-completes" not in mine
        other = fsd.get("/ui/fragments/goodput?team=red").text
        assert "only your own team" in _by_id(other, "goodput-note")
        r = fsd.get("/ui/fragments/goodput?hours=0")
        assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["query", "hours"]
        page = fsd.get("/ui/goodput?hours=nan")
        assert page.status_code == 422 and "hours:" in _by_id(page.text, "filter-errors")
    finally:
        env.svc.close()


def test_the_why_panel_lists_the_jobs_blocking_a_waiting_job(ui_env: UiEnv) -> None:
    """64 GPUs: fsd's 40-GPU job (3,600 s) and 8-GPU job (7,200 s) and red's 16-GPU job
    (600 s) fill the fleet. fsd's 16-GPU job then waits for capacity: the soonest-ending
    running job frees the 16 GPUs it needs, so red's job alone blocks it; fsd's next 8-GPU
    job also has that 16-GPU job ahead of it in its queue."""
    env = ui_env
    big = env.submit(env.fsd, gpus=40, duration_s=3600, name="fsd-big")
    long = env.submit(env.fsd, gpus=8, duration_s=7200, name="fsd-long")
    red = env.submit(env.red, gpus=16, duration_s=600, name="red-short")
    env.svc.loop.tick()
    assert set(env.svc.loop.mirror.placement) == {big, long, red}
    wait = env.submit(env.fsd, gpus=16, duration_s=600, name="fsd-waits")
    env.svc.loop.tick()
    admin = env.login(ADMIN).get(f"/ui/fragments/why/{wait}").text
    table = re.search(rf'id="blocking-{wait}">(.*?)</table>', admin, re.S).group(1)  # type: ignore[union-attr]
    assert re.findall(r'data-job="(\d+)"', table) == [str(red)]
    assert "red-short" in table
    mine = env.login(env.fsd).get(f"/ui/fragments/why/{wait}").text
    table = re.search(rf'id="blocking-{wait}">(.*?)</table>', mine, re.S).group(1)  # type: ignore[union-attr]
    assert "another team's job" in table and "<td>16</td>" in table
    assert "red-short" not in table and f"/ui/jobs/{red}" not in table
    nxt = env.submit(env.fsd, gpus=8, duration_s=600, name="fsd-next")
    env.svc.loop.tick()
    text = env.login(env.fsd).get(f"/ui/fragments/why/{nxt}").text
    table = re.search(rf'id="blocking-{nxt}">(.*?)</table>', text, re.S).group(1)  # type: ignore[union-attr]
    assert f'data-job="{wait}"' in table and "ahead of it in its queue" in table


def test_a_nodes_blast_radius_is_every_gang_on_it_and_the_work_it_would_lose(
    tmp_path: Path,
) -> None:
    """On a fake clock from t0: fsd's 16-GPU job spans two 8-GPU nodes and reports a
    checkpoint at t0 + 400; asked at t0 + 1,000, either of its nodes failing loses the gang's
    600 s since then: 16 x 600 / 3,600 = 2.67 GPU-h; a drain nothing (it checkpoints on
    SIGTERM, the default, and declared no write time). red's 8-GPU job, with no checkpoint and
    checkpoint_on_signal false, loses its whole 1,000 s either way: 8 x 1,000 / 3,600 =
    2.22 GPU-h."""
    clock = FakeClock()
    env = UiEnv(f"sqlite:///{tmp_path / 'c.db'}", tmp_path, clock=clock)
    try:
        t0 = clock.time()
        a = env.submit(env.fsd, gpus=16, name="fsd-gang")
        b = env.submit(env.red, gpus=8, name="red-single", checkpoint_on_signal=False)
        env.svc.loop.tick()
        placed = env.svc.loop.mirror.placement
        assert sorted(k for _, k in placed[a]) == [8, 8]
        clock.advance(400)
        body = {"attempt": 1, "step": 5, "checkpoint_at": t0 + 400}
        r = env.client.post(f"/v1/jobs/{a}/progress", json=body, headers=env.api(env.fsd))
        assert r.status_code == 202, r.text
        clock.advance(600)
        node = placed[a][0][0]
        text = env.login(env.fsd).get(f"/ui/fragments/node?index={node}").text
        row = re.search(rf'<tr data-job="{a}">(.*?)</tr>', text, re.S).group(1)  # type: ignore[union-attr]
        assert "<td>16</td><td>2</td>" in row  # the whole gang, on 2 nodes
        assert '<td class="fail">2.67 GPU-h</td><td class="drain">0.00 GPU-h</td>' in row
        assert _by_id(text, "blast-total").startswith("1 jobs, 16 GPUs")
        red_node = placed[b][0][0]
        theirs = env.login(env.fsd).get(f"/ui/fragments/node?index={red_node}").text
        assert "another team's job" in theirs and "red-single" not in theirs
        assert '<td class="fail">2.22 GPU-h</td><td class="drain">2.22 GPU-h</td>' in theirs
        empty = next(n for n in range(8) if n not in {x for x, _ in placed[a]} | {red_node})
        assert "blast" not in env.login(env.fsd).get(f"/ui/fragments/node?index={empty}").text
    finally:
        env.svc.close()


def test_the_admins_empty_team_box_means_every_team(ui_env: UiEnv) -> None:
    """The jobs and goodput forms send the admin's team box even when empty (`team=`): that
    filters nothing. It was a 422, so the admin's Filter button did nothing at all."""
    a = ui_env.submit(ui_env.fsd, gpus=1, name="fsd-job")
    b = ui_env.submit(ui_env.red, gpus=1, name="red-job")
    admin = ui_env.login(ADMIN)
    r = admin.get("/ui/fragments/jobs?state=all&team=&per_page=50")
    assert r.status_code == 200 and f'id="job-{a}"' in r.text and f'id="job-{b}"' in r.text
    r = admin.get("/ui/fragments/goodput?hours=6&team=")
    assert r.status_code == 200 and "all teams" in r.text
    assert admin.get("/ui/fragments/jobs?team=Bad!").status_code == 422


def test_the_goodput_page_books_what_the_goodput_api_books(ui_env_any: UiEnv) -> None:
    """The page reads the jobs as plain rows (goodput_ledger.jobs_to_book), the API as ORM objects
    (store_health.jobs_for): on either backend, the same jobs give the same figures. Finished
    jobs and one that waits (its wait is the only figure `now` moves between the two calls)."""
    env = ui_env_any
    a = env.submit(env.fsd, gpus=8, name="fails", checkpoint_write_s=30)
    b = env.submit(env.red, gpus=16, name="completes")
    env.svc.loop.tick()
    env.ex.finish(a, outcome="failed", code=1)
    env.ex.finish(b)
    env.svc.loop.tick()
    env.submit(env.fsd, gpus=4, name="waits")  # queued, no tick: only its wait is booked
    api = env.client.get("/v1/goodput?since=0", headers=env.api(ADMIN)).json()
    assert api["attempts"] == 2
    text = env.login(ADMIN).get("/ui/fragments/goodput?hours=744").text

    def v(el: str) -> float:
        got = re.search(rf'id="{el}" data-v="([^"]+)"', text)
        assert got is not None, el
        return float(got.group(1))

    assert v("goodput-total") == pytest.approx(api["goodput"], rel=1e-5)
    assert v("goodput-held") * 3600 == pytest.approx(api["allocated_gpu_s"], rel=1e-5)
    assert v("goodput-lost") * 3600 == pytest.approx(api["badput_gpu_s"], rel=1e-5, abs=1e-6)
    # The wait grows with the clock: the two answers were a moment apart.
    assert v("goodput-queueing") * 3600 == pytest.approx(api["queueing_s"], abs=5.0)


def test_the_job_pages_progress_chart_reads_its_attempts_lines_of_the_metrics_file(
    tmp_path: Path,
) -> None:
    """On a fake clock from t0, fsd's job runs attempt 1 from t0. Its metrics file holds, in
    order: a line of attempt 0 (left out), an unnamed line stamped before t0 (an earlier run:
    left out), three lines of attempt 1 at t0 + 10, + 20 (no loss) and + 30, a line that is not
    JSON and one over the line limit (both dropped), and an unnamed line at t0 + 40 (counted).
    Thinned to 2 points: the first and the newest."""
    import json

    clock = FakeClock()
    env = UiEnv(f"sqlite:///{tmp_path / 'c.db'}", tmp_path, clock=clock)
    try:
        t0 = clock.time()
        a = env.submit(env.fsd, gpus=1, name="learns")
        env.svc.loop.tick()
        clock.advance(60)
        lines = [
            {"ts": t0 + 5, "attempt": 0, "step": 99, "loss": 9.0},
            {"ts": t0 - 50, "step": 98, "loss": 9.5},
            {"ts": t0 + 10, "attempt": 1, "step": 1, "loss": 4.0},
            {"ts": t0 + 20, "attempt": 1, "step": 2},
            {"ts": t0 + 30, "attempt": 1, "step": 3, "loss": 3.0},
        ]
        text = "\n".join(json.dumps(x) for x in lines)
        text += "\nnot json\n" + json.dumps({"ts": t0 + 35, "step": 4, "pad": "x" * 5000})
        text += "\n" + json.dumps({"ts": t0 + 40, "step": 5, "loss": 2.5}) + "\n"
        env.ex.metrics_file(a).parent.mkdir(parents=True, exist_ok=True)
        env.ex.metrics_file(a).write_text(text)
        c = env.login(env.fsd)
        got = c.get(f"/ui/jobs/{a}/progress.json").json()
        assert got["attempt"] == 1
        assert got["t"] == [t0 + 10, t0 + 20, t0 + 30, t0 + 40]
        assert got["step"] == [1, 2, 3, 5] and got["loss"] == [4.0, None, 3.0, 2.5]
        thin = c.get(f"/ui/jobs/{a}/progress.json?points=2").json()
        assert thin["step"] == [1, 5]
        assert f'data-src="/ui/jobs/{a}/progress.json"' in c.get(f"/ui/jobs/{a}").text
        red = env.login(env.red).get(f"/ui/jobs/{a}/progress.json")
        assert red.status_code == 404 and "learns" not in red.text
        r = c.get(f"/ui/jobs/{a}/progress.json?points=1")
        assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["query", "points"]
        # A link where the file should be is not followed (the job could point it anywhere):
        # its target holds valid lines of attempt 1, which a followed link would chart.
        target = tmp_path / "elsewhere.jsonl"
        target.write_text(text)
        path = env.ex.metrics_file(a)
        path.unlink()
        path.symlink_to(target)
        assert c.get(f"/ui/jobs/{a}/progress.json").json()["t"] == []
    finally:
        env.svc.close()


def test_goodput_books_are_reused_for_five_seconds_then_recomputed(tmp_path: Path) -> None:
    """The page's books are cached per team and window for CACHE_S = 5 s of the service's
    monotonic clock: a job that ends in between shows after that, not before. The page
    itself renders cached books only; once they are 5 s old it paints without them (and
    books them once sent, for its fragment)."""
    clock = FakeClock()
    env = UiEnv(f"sqlite:///{tmp_path / 'c.db'}", tmp_path, clock=clock)
    frag, page = "/ui/fragments/goodput?hours=1", "/ui/goodput?hours=1"
    try:
        c = env.login(env.fsd)
        assert _by_id(c.get(frag).text, "goodput-held") == "0.0 GPU-h"
        a = env.submit(env.fsd, gpus=8)
        env.svc.loop.tick()
        clock.advance(4.5)  # 8 GPUs x 4.5 s: not shown yet, the books are 4.5 s old
        env.ex.finish(a)
        env.svc.loop.tick()
        assert _by_id(c.get(frag).text, "goodput-held") == "0.0 GPU-h"
        assert _by_id(c.get(page).text, "goodput-held") == "0.0 GPU-h"
        clock.advance(0.5)  # 5 s old: booked again, 8 x 4.5 / 3,600 = 0.01 GPU-h
        assert 'id="goodput-pending"' in c.get(page).text  # the page does not wait
        got = re.search(r'id="goodput-held" data-v="([^"]+)"', c.get(frag).text)
        assert got is not None and float(got.group(1)) == pytest.approx(8 * 4.5 / 3600)
        got = re.search(r'id="goodput-held" data-v="([^"]+)"', c.get(page).text)
        assert got is not None and float(got.group(1)) == pytest.approx(8 * 4.5 / 3600)
    finally:
        env.svc.close()


def test_incidents_show_their_blast_radius(tmp_path: Path) -> None:
    """On a fake clock from t0: fsd's 8-GPU job reports a checkpoint at t0 + 200 and fails at
    t0 + 600: it lost its 400 s since then, 8 x 400 / 3,600 = 0.89 GPU-h. Its node is lost at
    t0 + 590 and the failure is attributed to it at t0 + 600: the node's row counts one job, 8
    GPUs, 0.89 GPU-h. Another node lost with no failure after it says so."""
    from cortex.control import models as m
    from cortex.control import store
    from cortex.control import store_health as sh
    from cortex.control.ui import stream

    clock = FakeClock()
    env = UiEnv(f"sqlite:///{tmp_path / 'c.db'}", tmp_path, clock=clock)
    try:
        t0 = clock.time()
        a = env.submit(env.fsd, gpus=8, name="dies")
        env.svc.loop.tick()
        clock.advance(200)
        body = {"attempt": 1, "step": 10, "checkpoint_at": t0 + 200}
        r = env.client.post(f"/v1/jobs/{a}/progress", json=body, headers=env.api(env.fsd))
        assert r.status_code == 202, r.text
        clock.advance(400)
        env.ex.finish(a, outcome="failed", code=1)
        env.svc.loop.tick()
        with env.svc.sessions.begin() as s:
            store.event(s, "node", "node gpu-00003 lost: out of service", at=t0 + 590)
            store.event(s, "node", "node gpu-00005 lost: out of service", at=t0 + 595)
            rec = m.NodeFailure(node="gpu-00003", at=t0 + 600, job_id=a, attempt=1, strike=True)
            sh.add_node_failure(s, rec)
        text = env.login(env.fsd).get("/ui/incidents").text
        exit_row = re.search(
            rf'<li class="inc kind-exit"[^>]*>[^<]*<time>.*? job {a} .*?</li>', text
        )
        assert exit_row is not None and "lost 0.89 GPU-h of its 8 GPUs" in exit_row.group(0)
        lost = 'node gpu-00003 lost: out of service <span class="blast">· 1 job failed on it'
        assert f"{lost} (8 GPUs), 0.89 GPU-h lost" in text
        assert 'node gpu-00005 lost: out of service <span class="blast">· no job failure' in text
        # The live feed's rows carry the same line.
        sent = " ".join(html for _, html in stream._fetch(env.svc, _who(env, env.fsd), 0))  # type: ignore[arg-type]
        assert "lost 0.89 GPU-h" in sent and "1 job failed on it" in sent
    finally:
        env.svc.close()


def _who(env: UiEnv, token: str) -> object:
    from cortex.control.api.deps import resolve

    return resolve(env.svc, f"Bearer {token}")


def test_the_timeline_lanes_by_pod(ui_env: UiEnv) -> None:
    """2 pods of 4 nodes x 8 GPUs: two 32-GPU jobs each fill one pod, so by pod they sit in
    two lanes, each job in the pod of its nodes, the lanes in pod order."""
    env = ui_env
    a = env.submit(env.fsd, gpus=32, name="pod-a")
    b = env.submit(env.red, gpus=32, name="pod-b")
    env.svc.loop.tick()
    loop = env.svc.loop
    pod = {j: {loop.topo.node_pod[n] for n, _ in loop.mirror.placement[j]} for j in (a, b)}
    assert len(pod[a]) == 1 and len(pod[b]) == 1 and pod[a] != pod[b]
    got = env.login(ADMIN).get("/ui/timeline.json?hours=1&by=pod").json()
    assert got["by"] == "pod"
    assert [(j["id"], j["pod"]) for j in got["jobs"]] == sorted(
        [(a, *pod[a]), (b, *pod[b])], key=lambda x: x[1]
    )
    by_team = env.login(ADMIN).get("/ui/timeline.json?hours=1").json()
    assert [j["team"] for j in by_team["jobs"]] == ["fsd", "red"] and "pod" not in by_team["jobs"][
        0
    ]
    r = env.login(env.fsd).get("/ui/timeline.json?by=rack")
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["query", "by"]


def test_windows_that_differ_by_a_fraction_of_an_hour_share_one_booking(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Review finding: the cache was keyed by the window as given, so hours=1.0001, 1.0002,
    ... each forced a booking of every job (hundreds of ms of the scheduler's GIL at 100k
    GPUs). Windows are rounded up to whole hours: those are one booking, of 2 hours."""
    from cortex.control.ui import goodput_view

    env = UiEnv(f"sqlite:///{tmp_path / 'c.db'}", tmp_path, clock=FakeClock())
    booked: list[float] = []
    page = goodput_view.goodput_page

    def counting(svc: object, s: object, team: str | None, hours: float) -> object:
        booked.append(hours)
        return page(svc, s, team, hours)

    monkeypatch.setattr(goodput_view, "goodput_page", counting)
    try:
        c = env.login(env.fsd)
        for h in ("1.0001", "1.0002", "1.5", "2"):
            assert c.get(f"/ui/fragments/goodput?hours={h}").status_code == 200
            assert c.get(f"/ui/goodput?hours={h}").status_code == 200  # never books itself
        assert booked == [2.0], booked
    finally:
        env.svc.close()


def test_a_cold_goodput_page_books_after_it_is_sent_and_its_fragment_reuses_that(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The page paints without books it has not cached, then books them once sent (a
    background task: the test client runs it before returning), so the fragment the page
    loads next finds them cached: one booking for the two requests."""
    from cortex.control.ui import goodput_view

    env = UiEnv(f"sqlite:///{tmp_path / 'c.db'}", tmp_path, clock=FakeClock())
    booked: list[tuple[str | None, float]] = []
    page = goodput_view.goodput_page

    def counting(svc: object, s: object, team: str | None, hours: float) -> object:
        booked.append((team, hours))
        return page(svc, s, team, hours)

    monkeypatch.setattr(goodput_view, "goodput_page", counting)
    try:
        c = env.login(env.fsd)
        assert 'id="goodput-pending"' in c.get("/ui/goodput?hours=3").text
        assert booked == [("fsd", 3.0)]
        assert 'id="goodput-total"' in c.get("/ui/fragments/goodput?hours=3").text
        assert booked == [("fsd", 3.0)]
        assert c.get("/ui/goodput?hours=nan").status_code == 422  # a bad window books nothing
        assert booked == [("fsd", 3.0)]
    finally:
        env.svc.close()
