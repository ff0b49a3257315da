"""The dashboard's pages and fragments without a browser: bounded parameters (422 naming the
field), team isolation on every page, fragment and the event feed, the heatmap snapshot's
bytes, the overview's figures and the quota arithmetic, each derived by hand."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from uikit import ADMIN, UiEnv

from cortex.control.ui import stream
from cortex.control.ui.views import CORDONED, DOWN, FULL, IDLE, PARTIAL

BAD = [
    ("/ui/fragments/overview?x=1", "x"),
    ("/ui/fragments/jobs?state=bogus", "state"),
    ("/ui/fragments/jobs?page=0", "page"),
    ("/ui/fragments/jobs?per_page=201", "per_page"),
    ("/ui/fragments/jobs?team=Not%20A%20Team", "team"),
    ("/ui/fragments/jobs?colour=red", "colour"),
    ("/ui/fragments/why/0", "job_id"),
    ("/ui/fragments/why/1?start=maybe", "start"),
    ("/ui/fragments/quotas?page=2", "page"),
    ("/ui/fragments/node", "index"),
    ("/ui/fragments/node?index=-1", "index"),
    ("/ui/fragments/node?index=8", "index"),  # the fleet has nodes 0..7
    ("/ui/fragments/node?index=abc", "index"),
    ("/ui/heatmap.bin?full=1", "full"),
    ("/ui/quotas/history?hours=0", "hours"),
    ("/ui/quotas/history?hours=nan", "hours"),
    ("/ui/quotas/history?points=1", "points"),
    ("/ui/quotas/history?points=100000", "points"),
    ("/ui/heatmap/meta?x=1", "x"),
    ("/ui/incidents/stream?after=-5", "after"),
    ("/ui/incidents/stream?after=99999999999", "after"),
]


@pytest.mark.parametrize(("path", "field"), BAD)
def test_a_bad_parameter_is_a_422_naming_the_field(ui_env: UiEnv, path: str, field: str) -> None:
    c = ui_env.login(ui_env.fsd)
    r = c.get(path)
    assert r.status_code == 422, (path, r.status_code, r.text[:200])
    locs = [d["loc"][-1] for d in r.json()["detail"]]
    assert field in locs, (path, r.json())


def test_a_bad_filter_on_a_page_is_a_message_in_the_page(ui_env: UiEnv) -> None:
    c = ui_env.login(ui_env.fsd)
    r = c.get("/ui/jobs?state=bogus&per_page=0")
    assert r.status_code == 422
    assert 'id="filter-errors"' in r.text
    assert "state: Input should be" in r.text and "per_page: Input should be" in r.text


def _run_everything(env: UiEnv) -> dict[str, int]:
    """fsd: one 8-GPU job running (node full); red: one 4-GPU job running under a secret name
    (a node partly used) and one that fails (an incident); one waiting 64-GPU job of red."""
    ids = {
        "fsd_run": env.submit(env.fsd, gpus=8, name="fsd-visible-job"),
        "red_run": env.submit(env.red, gpus=4, name="red-secret-job"),
        "red_fail": env.submit(env.red, gpus=1, name="red-secret-failing"),
    }
    env.svc.loop.tick()
    env.ex.finish(ids["red_fail"], outcome="failed", code=3)
    env.svc.loop.tick()
    ids["red_wait"] = env.submit(env.red, gpus=64, name="red-secret-waiting")
    env.svc.loop.tick()
    return ids


def test_a_team_sees_none_of_another_teams_jobs_anywhere(ui_env_any: UiEnv) -> None:
    ui_env = ui_env_any
    ids = _run_everything(ui_env)
    st = ui_env.svc.loop.mirror.state
    red_nodes = [n for n in range(st.topo.n_nodes) if ids["red_run"] in st.node_jobs[n]]
    assert len(red_nodes) == 1
    paths = [
        "/ui/",
        "/ui/jobs?state=all",
        "/ui/jobs?state=all&team=red",
        "/ui/fragments/jobs?state=all",
        "/ui/fragments/jobs?state=all&team=red",
        "/ui/fragments/overview",
        "/ui/quotas",
        "/ui/fragments/quotas",
        "/ui/incidents",
        f"/ui/fragments/node?index={red_nodes[0]}",
        f"/ui/jobs/{ids['red_run']}",
        f"/ui/jobs/{ids['red_wait']}",
        "/ui/timeline",
        "/ui/timeline.json?hours=1",
        "/ui/quotas/history?hours=1",
        "/ui/power",
        "/ui/goodput?hours=1",
        "/ui/goodput?hours=1&team=red",
        "/ui/fragments/goodput?hours=1",
        "/ui/goodput?hours=1",  # booked now: the page renders the books itself
        f"/ui/jobs/{ids['red_run']}/progress.json",
    ]
    fsd, admin = ui_env.login(ui_env.fsd), ui_env.login(ADMIN)
    for path in paths:
        text = fsd.get(path).text
        assert "red-secret" not in text, path
        assert f"job {ids['red_fail']}" not in text, path
    history = "/ui/quotas/history?hours=1"
    assert '"red"' not in fsd.get(history).text and '"red"' in admin.get(history).text
    # The same pages show them to the admin, so the check above can fail.
    assert "red-secret-job" in admin.get("/ui/jobs?state=all").text
    assert "red-secret-job" in admin.get(f"/ui/fragments/node?index={red_nodes[0]}").text
    assert "red-secret-job" in admin.get(f"/ui/jobs/{ids['red_run']}").text
    assert "red-secret-job" in admin.get("/ui/timeline.json?hours=1").text
    assert "red-secret-failing" in admin.get("/ui/fragments/goodput?hours=1").text  # it lost
    assert "red-secret-failing" in admin.get("/ui/goodput?hours=1").text  # GPU-time
    missing = fsd.get(f"/ui/jobs/{ids['red_run']}")
    assert missing.status_code == 404 and f"job {ids['red_run']} not found" in missing.text
    assert f"job {ids['red_fail']}" in admin.get("/ui/incidents").text
    # Another team's job through the job routes: 404, worded as a missing one; not cancelled.
    assert fsd.get(f"/ui/fragments/why/{ids['red_wait']}").status_code == 404
    assert fsd.post(f"/ui/jobs/{ids['red_wait']}/cancel").status_code == 404
    job = ui_env.client.get(f"/v1/jobs/{ids['red_wait']}", headers=ui_env.api(ADMIN)).json()
    assert job["cancel_requested"] is False
    # The event stream's rows: the same rule (the stream sends what _fetch returns).
    who_fsd = ui_env.svc.app.state.service and _principal(ui_env, ui_env.fsd)
    sent = " ".join(html for _, html in stream._fetch(ui_env.svc, who_fsd, 0))
    assert f"job {ids['red_fail']}" not in sent
    who_red = _principal(ui_env, ui_env.red)
    sent_red = " ".join(html for _, html in stream._fetch(ui_env.svc, who_red, 0))
    assert f"job {ids['red_fail']}" in sent_red


def _principal(env: UiEnv, token: str) -> object:
    from cortex.control.api.deps import resolve

    return resolve(env.svc, f"Bearer {token}")


def test_the_heatmap_snapshot_is_one_byte_per_node_state(ui_env: UiEnv) -> None:
    ids = _run_everything(ui_env)
    st = ui_env.svc.loop.mirror.state
    full = next(n for n in range(8) if ids["fsd_run"] in st.node_jobs[n])
    part = next(n for n in range(8) if ids["red_run"] in st.node_jobs[n])
    ui_env.ex.changes.append(("gpu-00007", False))  # the executor loses node 7
    ui_env.svc.loop.tick()
    c = ui_env.login(ui_env.fsd)
    r = c.get("/ui/heatmap.bin")
    assert r.headers["content-type"] == "application/octet-stream"
    got = list(r.content)
    want = [IDLE] * 8
    want[full], want[part], want[7] = FULL, PARTIAL, DOWN
    assert got == want
    # Colored by GPUs in use: 8 of 8 -> 200, 4 of 8 (red's 4-GPU job; its 1-GPU job failed)
    # -> 100, down -> 255, the rest 0.
    used = [0] * 8
    used[full], used[part], used[7] = 200, 100, 255
    assert list(c.get("/ui/heatmap.bin?color=used").content) == used
    assert c.get("/ui/heatmap.bin?color=power").status_code == 422
    # A cordon (PATCH /v1/nodes/ui?schedulable=false) greys every node not full.
    p = ui_env.client.patch("/v1/nodes/ui?schedulable=false", headers=ui_env.api(ADMIN))
    assert p.status_code == 200, p.text
    got = list(c.get("/ui/heatmap.bin").content)
    want2 = [CORDONED] * 8
    want2[full], want2[7] = FULL, DOWN
    assert got == want2


def test_the_overview_counts(ui_env_any: UiEnv) -> None:
    ui_env = ui_env_any
    _run_everything(ui_env)
    ui_env.ex.changes.append(("gpu-00007", False))
    ui_env.svc.loop.tick()
    from cortex.control.ui import views

    with ui_env.svc.sessions() as s:
        admin = views.overview(ui_env.svc, _principal(ui_env, ADMIN), s)  # type: ignore[arg-type]
        fsd = views.overview(ui_env.svc, _principal(ui_env, ui_env.fsd), s)  # type: ignore[arg-type]
    # 8 nodes x 8 GPUs = 64; busy 8 (fsd) + 4 (red) = 12; node 7 down: 8; idle 64 - 12 - 8.
    assert admin.gpus_total == 64
    assert admin.gpus_by_state == {"busy": 12, "idle": 44, "down": 8, "cordoned": 0}
    assert admin.nodes_by_state == {
        "idle": 5,
        "partly used": 1,
        "full": 1,
        "down": 1,
        "cordoned": 0,
    }
    # red's 64-GPU job waits: 64 GPUs x 3,600 s = 64 GPU-h; fsd has none of its own.
    assert admin.pending_gpu_h == pytest.approx(64.0)
    assert fsd.pending_gpu_h == 0.0 and fsd.fleet_pending_gpu_h == pytest.approx(64.0)
    assert admin.jobs == {"running": 2, "failed": 1, "queued": 1}
    assert fsd.jobs == {"running": 1}
    # Incidents: red's failed run and the lost node; fsd sees only the node.
    assert admin.incidents_open == 2 and fsd.incidents_open == 1


def test_quotas_in_a_stable_order_with_borrowed_and_lent(ui_env_any: UiEnv) -> None:
    ui_env = ui_env_any
    # 64 GPUs: fsd guaranteed 32 (0.5), red 16 (0.25), 16 guaranteed to no one. fsd runs 8,
    # red 5 x 8 = 40 (preemptible): red borrows 40 - 16 = 24, of which 16 come from the
    # unguaranteed GPUs and 8 from idle guarantees; fsd's idle guarantee is 32 - 8 = 24,
    # the only one, so fsd lends 8.
    ui_env.submit(ui_env.fsd, gpus=8, name="f")
    for _ in range(5):
        ui_env.submit(ui_env.red, gpus=8, name="r", priority_class="preemptible")
    ui_env.svc.loop.tick()
    admin = ui_env.login(ADMIN).get("/ui/fragments/quotas").text
    rows = list(admin.split("<tr data-queue=")[1:])
    assert [r.split('"')[1] for r in rows] == ["fsd", "red"]

    def cells(row: str) -> list[str]:
        return [c.split("</td>")[0] for c in row.split("<td>")[1:]]

    fsd, red = cells(rows[0]), cells(rows[1])
    # queue, guaranteed, limit, used, (meter), borrowed, lent, preemptible, waiting
    assert [fsd[i] for i in (1, 3, 5, 6, 7)] == ["32", "8", "0", "8", "0"]
    assert [red[i] for i in (1, 3, 5, 6, 7)] == ["16", "40", "24", "0", "40"]
    team = ui_env.login(ui_env.fsd).get("/ui/fragments/quotas").text
    assert 'data-queue="red"' not in team and 'data-queue="(other teams)"' in team


def test_paging_and_filters_on_the_server(ui_env_any: UiEnv) -> None:
    ui_env = ui_env_any
    for i in range(5):
        ui_env.submit(ui_env.fsd, gpus=64, name=f"wait-{i}")  # none fits while another waits
    c = ui_env.login(ui_env.fsd)
    r = c.get("/ui/fragments/jobs?state=waiting&per_page=2&page=3")
    assert "5 jobs (waiting) · page 3 of 3" in r.text
    assert r.text.count('<tr id="job-') == 1 and "wait-0" in r.text  # newest first: 4,3 | 2,1 | 0
    r = c.get("/ui/fragments/jobs?state=running")
    assert "0 jobs" in r.text


def test_sse_messages_carry_multiline_html_line_by_line() -> None:
    msg = stream.sse_message(7, "incident", "<li>a\nb</li>")
    assert msg == "id: 7\nevent: incident\ndata: <li>a\ndata: b</li>\n\n"


def test_the_overview_shows_facility_power_against_the_cap(tmp_path: Path) -> None:
    """tests/control/test_power_loop.py's machine: 3 CPU slots modelled as H100s. Idle, the
    facility draws 3,688 W x 1.17 + 165 W = 4,479.96 W (4.5 kW); one `generic` job adds
    450 W of IT over idle, x 1.17 = 526.5 W: 5,006.46 W (5.0 kW). Cap 10 kW."""
    from helpers import ADMIN as CONTROL_ADMIN
    from helpers import fake_service, job_body

    from cortex.control.ui.session import COOKIE

    svc = fake_service(
        f"sqlite:///{tmp_path / 'c.db'}",
        tmp_path,
        slots=3,
        power_policy="cap",
        site_cap_kw=10.0,
        power_actuator=f"record:{tmp_path / 'caps.jsonl'}",
        power_model_flavor="H100-SXM5",
    )
    try:
        c = TestClient(svc.app, base_url="https://testserver")
        svc.loop.tick()
        assert c.post("/ui/login", data={"token": CONTROL_ADMIN}).status_code == 200
        assert COOKIE in c.cookies
        page = c.get("/ui/fragments/overview").text
        assert '<p class="big" id="power-mw">4.5 kW</p>' in page
        assert '<p id="power-cap">of a 10.0 kW cap</p>' in page
        h = {"Authorization": f"Bearer {CONTROL_ADMIN}"}
        fsd = c.post("/v1/tokens", json={"team": "fsd"}, headers=h).json()["token"]
        r = c.post("/v1/jobs", json=job_body(), headers={"Authorization": f"Bearer {fsd}"})
        assert r.status_code == 201, r.text
        svc.loop.tick()
        assert '<p class="big" id="power-mw">5.0 kW</p>' in c.get("/ui/fragments/overview").text
    finally:
        svc.close()


def test_a_job_page_shows_its_history_and_its_nodes(ui_env: UiEnv) -> None:
    ids = _run_everything(ui_env)
    st = ui_env.svc.loop.mirror.state
    node = next(n for n in range(8) if ids["fsd_run"] in st.node_jobs[n])
    c = ui_env.login(ui_env.fsd)
    page = c.get(f"/ui/jobs/{ids['fsd_run']}").text
    # Node names are the inventory's, gpu-00000 ... gpu-00007; one 8-GPU node, outlined.
    assert f"<td>gpu-{node:05d}</td><td>{node}</td><td>8</td>" in page
    assert f'data-highlight="{node}"' in page
    # The history: submitted, quota reserved, launched.
    assert "<td>queued</td><td>admitted</td><td>quota reserved</td>" in page
    assert "<td>admitted</td><td>running</td>" in page
    waiting = ui_env.login(ui_env.red).get(f"/ui/jobs/{ids['red_wait']}").text
    assert f'hx-get="/ui/fragments/why/{ids["red_wait"]}"' in waiting
    assert "data-highlight" not in waiting
    assert c.get("/ui/jobs/0").status_code == 422


def test_quota_history_from_the_allocations(tmp_path: Path) -> None:
    """On a fake clock from t0: fsd's 8-GPU job runs from t0 to t0 + 3,600 s, red's 16-GPU
    job from t0 + 1,800 s on; asked at t0 + 5,400 s for 1.5 h in 4 points, the times are t0,
    t0 + 1,800, t0 + 3,600, t0 + 5,400 and an allocation counts from its start to before its
    end: fsd 8, 8, 0, 0; red 0, 16, 16, 16."""
    from fakeclock import FakeClock

    clock = FakeClock()
    env = UiEnv(f"sqlite:///{tmp_path / 'c.db'}", tmp_path, clock=clock)
    try:
        t0 = clock.time()
        a = env.submit(env.fsd, gpus=8)
        env.svc.loop.tick()
        clock.advance(1800)
        env.submit(env.red, gpus=16)
        env.svc.loop.tick()
        clock.advance(1800)
        env.ex.finish(a)
        env.svc.loop.tick()
        clock.advance(1800)
        q = "/ui/quotas/history?hours=1.5&points=4"
        admin = env.login(ADMIN).get(q).json()
        assert admin["t"] == [t0, t0 + 1800, t0 + 3600, t0 + 5400]
        assert admin["series"] == {"fsd": [8, 8, 0, 0], "red": [0, 16, 16, 16]}
        fsd = env.login(env.fsd).get(q).json()
        assert fsd["series"] == {"fsd": [8, 8, 0, 0], "(other teams)": [0, 16, 16, 16]}
        assert list(fsd["series"]) == ["fsd", "(other teams)"]  # the caller's first
    finally:
        env.svc.close()


FRAGMENTS = (
    "/ui/fragments/jobs",
    "/ui/fragments/node",
    "/ui/fragments/overview",
    "/ui/quotas/history",
    "/ui/heatmap.bin",
    "/ui/fragments/power",
    "/ui/fragments/goodput",
    "/ui/fragments/goodput-card",
    "/ui/jobs",
    "/ui/goodput",
)
PARAMS = ("state", "team", "page", "per_page", "index", "hours", "points", "start", "x")


def test_hostile_query_strings_get_a_page_or_a_422_never_a_500(ui_env: UiEnv) -> None:
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    c = ui_env.login(ui_env.fsd)
    value = st.one_of(
        st.text(max_size=40),
        st.integers(min_value=-(2**70), max_value=2**70).map(str),
        st.sampled_from(["nan", "inf", "-inf", "1e400", "", "waiting", "fsd", "3"]),
    )

    @settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
    @given(st.sampled_from(FRAGMENTS), st.dictionaries(st.sampled_from(PARAMS), value, max_size=3))
    def check(path: str, params: dict[str, str]) -> None:
        r = c.get(path, params=params)
        assert r.status_code in (200, 422), (path, params, r.status_code, r.text[:200])
        if r.status_code == 422 and not path.endswith(("/ui/jobs", "/ui/goodput")):
            assert r.json()["detail"][0]["loc"][0] == "query"

    check()


def test_the_timeline_has_runs_and_failure_marks_of_the_callers_jobs_only(
    tmp_path: Path,
) -> None:
    """On a fake clock from t0: fsd's 8-GPU job runs from t0 and fails at t0 + 600 s (no
    retries); red's 16-GPU job runs from t0 + 600 s on. Asked at t0 + 1,200 s for the last
    hour (from t0 - 2,400 s): fsd's one run [t0, t0 + 600] with a failure mark at t0 + 600,
    red's run open-ended; lanes in team order. fsd sees its own job only."""
    from fakeclock import FakeClock

    clock = FakeClock()
    env = UiEnv(f"sqlite:///{tmp_path / 'c.db'}", tmp_path, clock=clock)
    try:
        t0 = clock.time()
        a = env.submit(env.fsd, gpus=8, name="fsd-a")
        env.svc.loop.tick()
        clock.advance(600)
        env.ex.finish(a, outcome="failed", code=1)
        b = env.submit(env.red, gpus=16, name="red-b")
        env.svc.loop.tick()
        clock.advance(600)
        admin = env.login(ADMIN).get("/ui/timeline.json?hours=1").json()
        assert admin["since"] == t0 - 2400 and admin["now"] == t0 + 1200
        assert admin["teams"] == ["fsd", "red"]
        assert admin["jobs"] == [
            {
                "id": a,
                "team": "fsd",
                "name": "fsd-a",
                "gpus": 8,
                "runs": [[t0, t0 + 600]],
                "marks": [[t0 + 600, "failed"]],
            },
            {
                "id": b,
                "team": "red",
                "name": "red-b",
                "gpus": 16,
                "runs": [[t0 + 600, None]],
                "marks": [],
            },
        ]
        fsd = env.login(env.fsd).get("/ui/timeline.json?hours=1").json()
        assert [j["id"] for j in fsd["jobs"]] == [a] and fsd["teams"] == ["fsd"]
        assert env.login(env.fsd).get("/ui/timeline.json?hours=0").status_code == 422
        assert env.login(env.fsd).get("/ui/timeline.json?limit=0").status_code == 422
    finally:
        env.svc.close()


def test_markup_in_a_job_name_is_escaped_everywhere(ui_env: UiEnv) -> None:
    """A team names its job; the admin's pages show it as text, never as markup (stored XSS).
    The CSP would also stop an inline handler, but escaping comes first."""
    from cortex.control.ui import stream

    evil = '<img src=x onerror="alert(1)">'
    jid = ui_env.submit(ui_env.fsd, gpus=1, name=evil)
    ui_env.svc.loop.tick()
    from fakeexec import FakeExit

    with ui_env.ex.lock:  # the run fails with markup in its exit detail (an incident)
        del ui_env.ex.alive[(jid, 1)]
        ui_env.ex.exits.append(FakeExit(jid, 1, "failed", 1, detail=evil))
    ui_env.svc.loop.tick()
    admin = ui_env.login(ADMIN)
    for path in ("/ui/jobs?state=all", f"/ui/jobs/{jid}", "/ui/fragments/jobs?state=all"):
        text = admin.get(path).text
        assert "&lt;img src=x" in text and "<img src=x" not in text, path
    sent = " ".join(html for _, html in stream._fetch(ui_env.svc, _principal(ui_env, ADMIN), 0))
    assert "&lt;img src=x" in sent and "<img" not in sent
    feed = admin.get("/ui/incidents").text
    assert "&lt;img src=x" in feed and "<img src=x" not in feed
