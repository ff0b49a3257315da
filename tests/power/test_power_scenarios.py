"""Power-aware scheduling on the tiny fleet (8 nodes x 8 H100) with a tiny site cap.

Numbers by hand, at a constant 20 C (the design temperature), PUE 1.2, fixed share 0.03:
- facility = IT x 1.17 + 0.03 x 72 kW nameplate = IT x 1.17 + 2,160 W;
- idle fleet: 8 x (8 x 96 W + 3,400 W) = 33,344 W IT -> 41,172 W facility;
- an 8-GPU llm job draws 0.96 x 700 = 672 W per GPU: +4,608 W IT over idle.
"""

from __future__ import annotations

import dataclasses
import itertools

import pytest

from cortex.sim.power import CapEvent, PowerConfig
from cortex.sim.twin import SimConfig, Twin
from cortex.workload.job import Job
from cortex.workload.states import JobState
from testkit import TINY

HOUR = 3600.0
# The transfer curve as power-cap/README.md prints it (cap / uncapped draw -> throughput kept).
CURVE = [
    (0.4, 0.417),
    (0.5, 0.625),
    (0.6, 0.756),
    (0.7, 0.858),
    (0.8, 0.914),
    (0.9, 0.952),
    (1.0, 0.978),
    (1.1, 1.0),
]


def _curve(x: float) -> float:
    for (x0, y0), (x1, y1) in itertools.pairwise(CURVE):
        if x0 <= x <= x1:
            return y0 + (x - x0) * (y1 - y0) / (x1 - x0)
    raise ValueError(x)


def _kept(cap_w: float, draw_w: float = 672.0) -> float:
    """Relative to the uncapped run, which TDP (700 W) already clips."""
    return _curve(cap_w / draw_w) / _curve(700.0 / draw_w)


def _job(i: int, *, prio: str = "normal", work_s: float = 10 * HOUR, kind: str = "llm") -> Job:
    return Job(i, f"j{i}", "a", 8, work_s, priority_class=prio, kind=kind)


def _run(jobs: list[Job], power: PowerConfig, days: float = 1.0) -> Twin:
    cfg = SimConfig(
        days=days, failures=False, policy="priority", debug=True, keep_history=True, power=power
    )
    return Twin(TINY, jobs, cfg).run()


def _facility(idle_jobs_inc_w: float) -> float:
    return (33_344 + idle_jobs_inc_w) * 1.17 + 2_160


def test_hand_numbers_match_the_model() -> None:
    tw = Twin(
        TINY,
        [],
        SimConfig(days=0.01, failures=False, power=PowerConfig("none", temperature_c=20.0)),
    ).run()
    pw = tw.pw
    assert pw is not None
    assert pw.facility_w(pw.it_w(tw.state), 0.0) == pytest.approx(_facility(0))
    assert pw.draw_w("llm", 0) == pytest.approx(672.0)


def test_admit_starts_only_what_fits_uncapped() -> None:
    # 50 kW: one llm job fits (46.6 kW), two do not (52.0 kW); the second waits for the first.
    pc = PowerConfig("admit", site_cap_mw=0.05, temperature_c=20.0)
    a, b = _job(1), _job(2)
    tw = _run([a, b], pc)
    assert a.first_start_s == 0.0
    assert b.first_start_s == pytest.approx(a.end_s)
    assert tw.metrics.blocked.get("PowerCap", 0) > 0
    assert tw.metrics.cap_loss_gpu_s == 0.0


def test_cap_starts_the_second_job_at_the_highest_level_that_fits() -> None:
    # Headroom after job 1: (50,000 - 2,160) / 1.17 - 33,344 - 4,608 = 2,937 W for 8 GPUs, i.e.
    # at most 463 W per GPU: level 0.65 (455 W) fits, 0.7 (490 W) does not. No solver tick
    # within the day (tick_s = 1 day), so both keep their start levels.
    pc = PowerConfig("cap", site_cap_mw=0.05, temperature_c=20.0, tick_s=86400.0)
    a, b = _job(1), _job(2)
    tw = _run([a, b], pc, days=0.45)
    assert a.first_start_s == 0.0 and b.first_start_s == 0.0
    assert b.end_s < 0  # still running at the horizon
    # At the horizon b has given up (1 - kept(455 W)) of its 0.45 days on 8 GPUs.
    horizon = 0.45 * 86400
    assert tw.metrics.cap_loss_gpu_s == pytest.approx(8 * horizon * (1 - _kept(455.0)), rel=1e-6)
    assert a.end_s == pytest.approx(10 * HOUR, rel=1e-6)
    tw2 = _run([_job(1), b2 := _job(2)], pc, days=2.0)
    assert b2.end_s == pytest.approx(10 * HOUR / _kept(455.0), rel=1e-6)
    # Once it ends, the throughput it gave up is booked: 8 GPUs x (real - uncapped).
    assert tw2.metrics.cap_loss_gpu_s == pytest.approx(8 * (b2.end_s - 10 * HOUR), rel=1e-6)


def test_the_solver_evens_out_caps_within_the_hour() -> None:
    # With little spare budget caps are re-divided hourly: at 3,600 s the solver splits 7,545 W
    # of IT headroom between the two jobs: both at 0.8 TDP (560 W, 2 x 3,712 W) fit, 0.85 + 0.8
    # (7,704 W) does not. Equal caps maximize throughput because the curve is concave.
    pc = PowerConfig("cap", site_cap_mw=0.05, temperature_c=20.0)
    a, b = _job(1), _job(2)
    _run([a, b], pc)
    k560, k455 = _kept(560.0), _kept(455.0)
    assert a.end_s == pytest.approx(3600 + (10 * HOUR - 3600) / k560, rel=1e-6)
    assert b.end_s == pytest.approx(3600 + (10 * HOUR - 3600 * k455) / k560, rel=1e-4)


def test_none_crosses_the_cap_and_the_report_says_so() -> None:
    from cortex.sim.report import build_report

    pc = PowerConfig("none", site_cap_mw=0.05, temperature_c=20.0)
    tw = _run([_job(1), _job(2)], pc, days=1.0)
    power = build_report(tw)["power"]
    assert power["peak_facility_mw"] == pytest.approx(_facility(2 * 4_608) / 1e6, abs=1e-3)
    assert power["minutes_over_cap"] == pytest.approx(10 * 60, rel=1e-6)


def test_a_cap_drop_pauses_the_lower_priority_job_and_it_resumes_after() -> None:
    # 60 kW holds both uncapped (52.0 kW). From 1 h to 3 h the cap falls to 45 kW: both at the
    # 0.6 floor need 47.2 kW, so the preemptible job is paused; the other alone fits at 0.7
    # (IT headroom 3,271 W -> 505 W per GPU: 0.7 = 490 W fits, 0.75 = 525 W does not).
    pc = PowerConfig(
        "cap",
        site_cap_mw=0.06,
        temperature_c=20.0,
        cap_events=(CapEvent(1 * HOUR, 2 * HOUR, 0.045),),
    )
    hi, lo = _job(1, prio="production"), _job(2, prio="preemptible")
    tw = _run([hi, lo], pc)
    pw = tw.pw
    assert pw is not None and pw.paused == 1
    paused = [(t, why) for t, s, why in lo.history or [] if s is JobState.PREEMPTED]
    assert paused == [(1 * HOUR, "PowerShortfall")]
    restarts = [t for t, s, _ in lo.history or [] if s is JobState.RUNNING]
    assert restarts[0] == 0.0 and restarts[1] == pytest.approx(3 * HOUR)
    assert hi.preemptions == 0
    # hi ran at 0.7 TDP (490 W) for the 2 h of the drop, then uncapped again.
    kept = _kept(490.0)
    assert hi.end_s == pytest.approx(10 * HOUR + 2 * HOUR * (1 - kept), rel=1e-3)


def test_static_caps_every_job() -> None:
    pc = PowerConfig("static", static_cap_frac=0.8, site_cap_mw=0.05, temperature_c=20.0)
    a = _job(1)
    _run([a], pc)
    kept = _kept(560.0)
    assert a.end_s == pytest.approx(10 * HOUR / kept, rel=1e-3)


def test_ramp_limit_staggers_a_large_start() -> None:
    # 64 GPUs of llm: +36.9 kW IT, 43.1 kW facility at 20 C. A 0.01 MW/min limit (8.5 kW IT per
    # minute) spreads it over 5 waves a minute apart; the job's work starts after the last.
    pc = PowerConfig("full", site_cap_mw=1.0, temperature_c=20.0, ramp_limit_mw_per_min=0.01)
    big = Job(1, "big", "a", 64, 10 * HOUR, kind="llm")
    tw = _run([big], pc)
    pw = tw.pw
    assert pw is not None and pw.staggered == 1
    assert big.end_s == pytest.approx(10 * HOUR + 4 * 60.0, rel=1e-6)
    steps = [b - a for a, b in zip(pw.series_w, pw.series_w[1:], strict=False)]
    assert max(steps) <= 0.01e6 + 1e-6


def test_invariants_catch_a_site_over_its_cap() -> None:
    from cortex.sim.invariants import InvariantError, check_invariants

    pc = PowerConfig("cap", site_cap_mw=0.05, temperature_c=20.0)
    tw = Twin(TINY, [_job(1, work_s=30 * 86400)], SimConfig(days=0.1, failures=False, power=pc))
    tw.run()
    check_invariants(tw)  # the books hold at the end of a clean run
    assert tw.pw is not None
    tw.pw.site_cap_w = 40_000.0  # the site draws 46.6 kW
    with pytest.raises(InvariantError, match="over the"):
        check_invariants(tw)


def test_a_rack_cap_caps_the_job_and_invariants_catch_a_rack_over_it() -> None:
    from cortex.sim.invariants import InvariantError, check_invariants

    # Racks of 2 nodes: 6.8 kW overhead + 16 GPUs. A 14 kW rack cap allows (14,000 - 6,800) / 16
    # = 450 W per GPU, and the job runs capped there.
    pc = PowerConfig("cap", site_cap_mw=1.0, temperature_c=20.0, rack_cap_kw=14.0)
    tw = Twin(TINY, [_job(1, work_s=30 * 86400)], SimConfig(days=0.05, failures=False, power=pc))
    tw.run()
    assert tw.metrics.cap_loss_gpu_s == pytest.approx(8 * 0.05 * 86400 * (1 - _kept(450.0)))
    check_invariants(tw)
    assert tw.pw is not None
    # Its rack draws 8,336 W idle + 2,832 W for the job = 11.2 kW: over an 11 kW rack cap.
    tw.pw.cfg = dataclasses.replace(tw.pw.cfg, rack_cap_kw=11.0)
    with pytest.raises(InvariantError, match="rack"):
        check_invariants(tw)


# ---- dynamics: staggered starts, ramp-limited raises, priority under a watt shortage ----------
def _big(i: int = 1, gpus: int = 64, prio: str = "normal") -> Job:
    return Job(i, f"big{i}", "a", gpus, 10 * HOUR, kind="llm", priority_class=prio)


def _max_rise_per_min(pw: object) -> float:
    """Largest rise of facility power within any 60 s, from the recorded change points."""
    t, w = pw.series_t, pw.series_w  # type: ignore[attr-defined]
    worst = 0.0
    for i in range(len(t)):
        j = i
        while j + 1 < len(t) and t[j + 1] < t[i] + 60.0:
            j += 1
        lo = min(w[: i + 1][-1:] or [w[i]])
        worst = max(worst, max(w[i : j + 1]) - lo)
    return worst


@pytest.mark.parametrize("cap_mw", [0.068, 0.09])
def test_a_cap_change_during_a_staggered_start_keeps_the_books(cap_mw: float) -> None:
    # 64 GPUs of llm staggered in 5 waves (0.01 MW/min); at 200 s the cap moves (down: the job
    # is capped mid-start; up after a drop: it is raised). Debug invariants check after every
    # event that the drawn watts match the books and that all waves end at the full increment.
    ev = CapEvent(200.0, 3 * HOUR, cap_mw)
    pc = PowerConfig(
        "full", site_cap_mw=0.075, temperature_c=20.0, ramp_limit_mw_per_min=0.01, cap_events=(ev,)
    )
    tw = _run([_big()], pc, days=0.3)
    pw = tw.pw
    assert pw is not None and pw.staggered == 1
    assert pw.actual_total_w == pytest.approx(sum(jp.actual_w for jp in pw.jobs.values()))


def test_raises_after_a_cap_event_respect_the_ramp_limit() -> None:
    # Two 32-GPU jobs; a 2 h drop caps both; when it ends the solver raises them, no faster
    # than the 0.01 MW/min limit allows.
    pc = PowerConfig(
        "full",
        site_cap_mw=0.09,
        temperature_c=20.0,
        ramp_limit_mw_per_min=0.01,
        cap_events=(CapEvent(1 * HOUR, 2 * HOUR, 0.062),),
    )
    tw = _run([_big(1, 32), _big(2, 32)], pc, days=0.4)
    pw = tw.pw
    assert pw is not None and pw.solves > 0
    assert _max_rise_per_min(pw) <= 0.01e6 * (1 + 1e-6)


def test_a_job_that_can_never_fit_the_budget_is_rejected_and_does_not_block_others() -> None:
    # 64 GPUs at the 0.6 floor add 64 x 324 = 20.7 kW IT; a 45 kW site holds 4.1 kW over idle.
    pc = PowerConfig("cap", site_cap_mw=0.045, temperature_c=20.0)
    big = _big()
    small = [Job(i, f"s{i}", "a", 1, HOUR, kind="eval") for i in range(2, 6)]
    tw = _run([big, *small], pc, days=0.5)
    assert big.state is JobState.REJECTED
    assert [r.code.value for j, r in tw.rejected] == ["NeverFitsPower"]
    assert all(j.state is JobState.COMPLETED for j in small)


def test_a_production_job_short_of_watts_caps_or_pauses_lower_priority_work() -> None:
    # 47.5 kW: one llm job uncapped (46.6 kW) leaves 0.8 kW facility. The preemptible job runs
    # first; the production job arrives at 1 h. Both fit at the 0.6 floor, so the solver caps the
    # preemptible job and the production job starts at once (no 20 h wait behind it).
    pc = PowerConfig("cap", site_cap_mw=0.0475, temperature_c=20.0)
    lo = _job(1, prio="preemptible", work_s=20 * HOUR)
    hi = _job(2, prio="production")
    hi.submit_s = 1 * HOUR
    _run([lo, hi], pc, days=1.5)
    assert hi.first_start_s == pytest.approx(1 * HOUR, abs=60.0)


def test_starts_blocked_by_the_ramp_wait_a_minute_not_a_tick() -> None:
    # Eight 1-GPU... eight 8-GPU llm jobs (5.4 kW facility each) under a 0.006 MW/min limit:
    # one start per minute, not one per 15-minute tick.
    pc = PowerConfig("full", site_cap_mw=1.0, temperature_c=20.0, ramp_limit_mw_per_min=0.006)
    jobs = [_job(i) for i in range(1, 9)]
    _run(jobs, pc, days=0.2)
    starts = sorted(j.first_start_s for j in jobs)
    assert starts[0] == 0.0
    assert starts[-1] <= 8 * 60.0 + 60.0
