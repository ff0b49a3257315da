"""The allocation LP (scheduler/hetero_lp.py) against instances small enough to solve by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from cortex.scheduler.hetero_lp import LpInput, solve

INF = math.inf


def _lp(**kw: object) -> LpInput:
    base: dict[str, object] = {
        "class_queue": np.array([0, 1]),
        "demand_gpus": np.array([20.0, 20.0]),
        "speed": np.array([[2.0, 1.0], [1.0, 0.25]]),
        "capacity_gpus": np.array([10.0, 10.0]),
        "nominal_gpus": np.array([[5.0, 5.0], [5.0, 5.0]]),
        "max_gpus": np.full((2, 2), INF),
        "watts": np.zeros((2, 2)),
        "fairness": 0.9,
    }
    base.update(kw)
    return LpInput(**base)  # type: ignore[arg-type]


def test_comparative_advantage_with_a_fairness_floor() -> None:
    # Two queues, one class each, flavors fast (10 GPUs) and slow (10 GPUs), both over-demanded.
    # Class 0 runs at 2 / 1, class 1 at 1 / 0.25. Entitlements (alone on 5 + 5):
    #   q0 = 5*2 + 5*1 = 15, q1 = 5*1 + 5*0.25 = 6.25.
    # With a = q0's fast GPUs and b = q0's slow GPUs (the rest go to q1):
    #   total = 2a + b + (10 - a) + 0.25 (10 - b) = 12.5 + a + 0.75 b.
    # q1's floor is 0.9 * 6.25 = 5.625. A unit of q1 throughput costs the total 1 on fast
    # (1 - 0) per unit and 3 on slow (0.75 / 0.25), so q1 gets it all on fast:
    #   b = 10, 10 - a = 5.625 -> a = 4.375; total = 12.5 + 4.375 + 7.5 = 24.375;
    #   q0 = 2 * 4.375 + 10 = 18.75 (>= 0.9 * 15).
    r = solve(_lp())
    np.testing.assert_allclose(r.gpus, [[4.375, 10.0], [5.625, 0.0]], atol=1e-6)
    np.testing.assert_allclose(r.entitlement_eq, [15.0, 6.25])
    np.testing.assert_allclose(r.throughput_eq, [18.75, 5.625], atol=1e-6)
    assert r.total_eq == pytest.approx(24.375)
    np.testing.assert_allclose(r.normalized(), [1.25, 0.9], atol=1e-6)


def test_without_a_floor_all_goes_where_it_earns_most() -> None:
    # fairness 0: total = 12.5 + a + 0.75 b is largest at a = b = 10 (q1 gets nothing).
    r = solve(_lp(fairness=0.0))
    np.testing.assert_allclose(r.gpus, [[10.0, 10.0], [0.0, 0.0]], atol=1e-6)
    assert r.total_eq == pytest.approx(30.0)


def test_power_row_prefers_throughput_per_watt() -> None:
    # One class: fast runs at 1 for 100 W over idle, slow at 0.5 for 20 W; 600 W to spend.
    # Per watt slow earns 0.025 and fast 0.01, so slow fills first: 10 GPUs, 200 W; the other
    # 400 W buy 4 fast GPUs. Total 4 * 1 + 10 * 0.5 = 9 (all fast would give only 6).
    r = solve(
        LpInput(
            class_queue=np.array([0]),
            demand_gpus=np.array([20.0]),
            speed=np.array([[1.0, 0.5]]),
            capacity_gpus=np.array([10.0, 10.0]),
            nominal_gpus=np.array([[10.0, 10.0]]),
            max_gpus=np.full((1, 2), INF),
            watts=np.array([[100.0, 20.0]]),
            power_budget_w=600.0,
        )
    )
    np.testing.assert_allclose(r.gpus, [[4.0, 10.0]], atol=1e-6)
    assert r.total_eq == pytest.approx(9.0)


def test_queue_ceiling_and_disallowed_flavor() -> None:
    # Class 1 may not use the slow flavor (speed 0) and q0 may hold at most 3 fast GPUs.
    # q0: 3 fast + 10 slow = 6 + 10 = 16; q1 takes the other 7 fast: 7. Total 23.
    speed = np.array([[2.0, 1.0], [1.0, 0.0]])
    r = solve(_lp(speed=speed, max_gpus=np.array([[3.0, INF], [INF, INF]]), fairness=0.0))
    np.testing.assert_allclose(r.gpus, [[3.0, 10.0], [7.0, 0.0]], atol=1e-6)
    assert r.total_eq == pytest.approx(23.0)


def test_demand_caps_the_entitlement_and_the_allocation() -> None:
    # q1 wants only 2 GPUs: its entitlement is 2 fast GPUs = 2, not 6.25; it gets its floor
    # 0.9 * 2 = 1.8 on fast (cheapest for the total, as above), q0 takes the rest:
    # q0 fast = 10 - 1.8 = 8.2, slow 10. Total = 16.4 + 10 + 1.8 = 28.2.
    r = solve(_lp(demand_gpus=np.array([20.0, 2.0])))
    np.testing.assert_allclose(r.entitlement_eq, [15.0, 2.0])
    np.testing.assert_allclose(r.gpus, [[8.2, 10.0], [1.8, 0.0]], atol=1e-6)


def test_floors_that_power_cannot_meet_degrade_evenly() -> None:
    # Budget for only 5 busy GPUs (1 W each): floors 0.9 * 15 and 0.9 * 6.25 cannot hold. The
    # common shortfall is minimized, so both keep the same fraction of their entitlement. On
    # fast (better for both), q0 earns 2 per GPU and q1 1: 2 a0 / 15 = a1 / 6.25 and
    # a0 + a1 = 5 -> a0 = 1.2 a1, a1 = 5 / 2.2 = 2.2727, a0 = 2.7273; both at 4/11 = 0.3636.
    r = solve(_lp(watts=np.ones((2, 2)), power_budget_w=5.0))
    np.testing.assert_allclose(r.gpus, [[30 / 11, 0.0], [25 / 11, 0.0]], atol=1e-5)
    np.testing.assert_allclose(r.normalized(), [4 / 11, 4 / 11], atol=1e-6)


def test_no_classes() -> None:
    r = solve(_lp(class_queue=np.zeros(0, dtype=np.int64), demand_gpus=np.zeros(0),
                  speed=np.zeros((0, 2)), watts=np.zeros((0, 2))))  # fmt: skip
    assert r.total_eq == 0.0 and r.gpus.shape == (0, 2)


def test_demand_as_work_fills_the_slow_flavor_with_what_loses_least_there() -> None:
    # Class 0 runs at 2 / 1 (fast / slow), class 1 at 1 / 0.25. Class 0's jobs hold 5 GPUs of
    # gang at speed 2: 10 H100-eq of work; class 1 has 20 of work (20 GPUs at speed 1).
    # In GPUs (demand 5 and 20) class 0 may hold at most 5 GPUs: best on fast (10), class 1
    # takes the other 5 fast and all 10 slow: 10 + 5 + 2.5 = 17.5.
    gpus = solve(_lp(demand_gpus=np.array([5.0, 20.0])))
    np.testing.assert_allclose(gpus.gpus, [[5.0, 0.0], [5.0, 10.0]], atol=1e-6)
    assert gpus.total_eq == pytest.approx(17.5)
    # In work, class 0's 10 H100-eq may run on 10 slow GPUs (it loses half there, class 1 three
    # quarters), and class 1 gets all of fast: 10 + 10 = 20. Entitlements (alone on 5 + 5,
    # capped by the work): class 0 = 5 fast * 2 = 10, class 1 = 5 + 1.25 = 6.25; both floors
    # (0.9 x) hold.
    work = solve(_lp(demand_gpus=np.full(2, INF), demand_eq=np.array([10.0, 20.0])))
    np.testing.assert_allclose(work.gpus, [[0.0, 10.0], [10.0, 0.0]], atol=1e-6)
    assert work.total_eq == pytest.approx(20.0)
    np.testing.assert_allclose(work.entitlement_eq, [10.0, 6.25])


def test_guarded_flavors_keep_the_entitlement_plan_there() -> None:
    # The first test's instance, where q1 ends with 5.625 fast GPUs and none of the slow ones.
    # Its entitlement plan (alone on 5 + 5) holds 5 fast (5 H100-eq) and 5 slow (1.25). With
    # the slow flavor guarded for q1, q1 keeps 5 slow GPUs (1.25): b = 10 - 5 = 5, and q1's
    # fairness floor 5.625 takes 5.625 - 1.25 = 4.375 fast GPUs: a = 5.625;
    #   total = 12.5 + 5.625 + 0.75 * 5 = 21.875; q0 = 2 * 5.625 + 5 = 16.25.
    guarded = np.array([[False, False], [False, True]])
    r = solve(_lp(guarded=guarded))
    np.testing.assert_allclose(r.gpus, [[5.625, 5.0], [4.375, 5.0]], atol=1e-6)
    assert r.total_eq == pytest.approx(21.875)
    # The fast flavor guarded for q1 binds nothing: 5.625 >= 5 there already.
    r2 = solve(_lp(guarded=np.array([[False, False], [True, False]])))
    np.testing.assert_allclose(r2.gpus, [[4.375, 10.0], [5.625, 0.0]], atol=1e-6)
    # Everything guarded: each queue holds its entitlement plan, 5 + 5 each (no trade):
    #   total = 5 * 2 + 5 * 1 + 5 * 1 + 5 * 0.25 = 21.25.
    r3 = solve(_lp(guarded=np.ones((2, 2), dtype=bool)))
    np.testing.assert_allclose(r3.gpus, [[5.0, 5.0], [5.0, 5.0]], atol=1e-6)
    assert r3.total_eq == pytest.approx(21.25)


def test_guarded_floors_give_way_evenly_when_capacity_is_short() -> None:
    # Everything guarded, but only 5 slow GPUs in service: the floors on slow (5 GPUs for
    # each queue in both entitlement plans, each queue alone on min(5, 5)) cannot both hold.
    # One shortfall v, as a fraction of every floor: 10 (1 - v) <= 5, v = 0.5, and the slow
    # GPUs split evenly, 2.5 each (a hand-made variant with one shortfall per floor may give
    # all 5 to q0, whose floor is worth more there).
    r = solve(_lp(capacity_gpus=np.array([10.0, 5.0]), guarded=np.ones((2, 2), dtype=bool)))
    np.testing.assert_allclose(r.gpus[:, 1], [2.5, 2.5], atol=1e-6)
