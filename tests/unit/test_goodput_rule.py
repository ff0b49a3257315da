"""The goodput rule for one attempt (drive/goodput.py), with hand-derived splits, and hostile
facts (a first report before the start or after the end, absurd checkpoint counts)."""

from __future__ import annotations

import pytest

from cortex.drive.goodput import (
    ATTEMPT_CATEGORIES,
    CATEGORIES,
    Attempt,
    Books,
    effective_training_time,
    queueing_s,
    split_attempt,
)


def att(**kw: object) -> Attempt:
    base: dict[str, object] = {
        "number": 2, "gpus": 8, "started_at": 100.0, "ended_at": 500.0, "outcome": "failed",
    }  # fmt: skip
    base.update(kw)
    return Attempt(**base)  # type: ignore[arg-type]


def nonzero(split: dict[str, float]) -> dict[str, float]:
    return {k: v for k, v in split.items() if v}


def test_a_failed_restart_splits_into_overhead_writes_lost_and_productive() -> None:
    a = att(first_step_at=160.0, checkpoint_at=400.0, checkpoints=2, checkpoint_write_s=10.0)
    # held 500-100 = 400; restart overhead 160-100 = 60 (attempt 2); writes 2 x 10 = 20;
    # lost since the checkpoint 500-400 = 100; productive 400-60-20-100 = 220.
    assert nonzero(split_attempt(a, now=9e9)) == {
        "restart_overhead": 60.0,
        "checkpoint_writes": 20.0,
        "rework_after_failures": 100.0,
        "productive": 220.0,
    }


def test_the_first_attempts_overhead_is_startup_and_a_preemption_loses_since_checkpoint() -> None:
    a = att(number=1, outcome="preempted", first_step_at=130.0, checkpoint_at=480.0)
    # startup 30; lost 500-480 = 20; productive 400-30-20 = 350
    assert nonzero(split_attempt(a, 0.0)) == {
        "startup": 30.0, "rework_after_preemptions": 20.0, "productive": 350.0,
    }  # fmt: skip


def test_a_checkpoint_of_an_earlier_attempt_counts_from_where_work_began() -> None:
    # The resume point (checkpoint at 50, before this attempt began): work since its first
    # report at 160 is lost: 500-160 = 340; overhead 60; productive 0.
    a = att(first_step_at=160.0, checkpoint_at=50.0)
    assert nonzero(split_attempt(a, 0.0)) == {
        "restart_overhead": 60.0, "rework_after_failures": 340.0,
    }  # fmt: skip


def test_without_progress_a_failed_attempt_loses_all_of_it() -> None:
    assert nonzero(split_attempt(att(), 0.0)) == {"rework_after_failures": 400.0}


@pytest.mark.parametrize("outcome", ["completed", "cancelled"])
def test_a_run_that_ended_on_purpose_keeps_its_work(outcome: str) -> None:
    a = att(outcome=outcome, first_step_at=110.0, checkpoints=3, checkpoint_write_s=5.0)
    # overhead 10, writes 15, productive 400-10-15 = 375
    assert nonzero(split_attempt(a, 0.0)) == {
        "restart_overhead": 10.0, "checkpoint_writes": 15.0, "productive": 375.0,
    }  # fmt: skip


def test_a_running_attempt_has_its_unsaved_work_in_progress_up_to_now() -> None:
    a = att(ended_at=None, outcome="running", first_step_at=120.0, checkpoint_at=300.0)
    # held to now 700: 600; overhead 20; in progress 700-300 = 400; productive 600-20-400 = 180
    assert nonzero(split_attempt(a, now=700.0)) == {
        "restart_overhead": 20.0, "in_progress": 400.0, "productive": 180.0,
    }  # fmt: skip


@pytest.mark.parametrize(
    ("facts", "want"),
    [
        # A first report stamped before the start: no overhead.
        ({"first_step_at": 10.0, "outcome": "completed"}, {"productive": 400.0}),
        # After the end: the whole attempt was overhead.
        ({"first_step_at": 9e9, "outcome": "completed"}, {"restart_overhead": 400.0}),
        # More checkpoint writes than time held: capped at the time held.
        ({"checkpoints": 10**9, "checkpoint_write_s": 60.0}, {"checkpoint_writes": 400.0}),
        # Negative counts and write times count as none.
        ({"checkpoints": -5, "checkpoint_write_s": -1.0}, {"rework_after_failures": 400.0}),
        # Ended before it started (a clock step back): nothing held.
        ({"ended_at": 50.0}, {}),
        # A checkpoint stamped after the end: nothing lost.
        ({"checkpoint_at": 9e9}, {"productive": 400.0}),
    ],
)
def test_hostile_facts_stay_within_the_time_held(facts: dict, want: dict) -> None:
    split = split_attempt(att(**facts), 0.0)
    assert nonzero(split) == want
    assert all(v >= 0 for v in split.values())


def test_books_sum_gpu_seconds_and_goodput_is_productive_over_allocated() -> None:
    b = Books()
    b.add(att(gpus=8, outcome="completed"), 0.0)  # 8 x 400 = 3,200 productive
    b.add(att(gpus=2), 0.0)  # 2 x 400 = 800 lost to a failure
    assert b.gpu_s["productive"] == 3200.0 and b.gpu_s["rework_after_failures"] == 800.0
    assert b.allocated_gpu_s == 4000.0
    assert b.goodput() == pytest.approx(0.8)  # 3,200 / 4,000
    assert Books().goodput() == 0.0
    assert set(b.gpu_s) == set(ATTEMPT_CATEGORIES)


def test_queueing_counts_every_wait_and_the_current_one() -> None:
    a1 = Attempt(1, 1, started_at=10.0, ended_at=100.0, outcome="failed")
    a2 = Attempt(2, 1, started_at=130.0, ended_at=200.0, outcome="preempted")
    # waits: 10-0 = 10, 130-100 = 30, and waiting again since 200 at now 250: 50 -> 90
    assert queueing_s(0.0, [a2, a1], now=250.0, waiting=True) == 90.0
    assert queueing_s(0.0, [a1, a2], now=250.0, waiting=False) == 40.0
    assert queueing_s(0.0, [], now=250.0, waiting=True) == 250.0


def test_effective_training_time_is_productive_over_the_span() -> None:
    assert effective_training_time(240.0, 1000.0, 1400.0) == 0.6  # 240 / 400
    assert effective_training_time(5.0, 10.0, 10.0) == 0.0


def test_the_vocabulary_is_the_twins() -> None:
    from cortex.sim.books import CATEGORIES as TWIN

    assert TWIN == CATEGORIES
    # Every twin allocated-time category the live side measures keeps the twin's name.
    shared = set(ATTEMPT_CATEGORIES) & set(CATEGORIES)
    assert shared == {"productive", "rework_after_failures", "rework_after_preemptions",
                      "restart_overhead", "checkpoint_writes"}  # fmt: skip
