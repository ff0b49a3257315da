"""Job states: one transition table; illegal moves raise and leave the job as it was."""

from __future__ import annotations

import itertools

import pytest

from cortex.workload.job import Job
from cortex.workload.states import (
    PENDING,
    TERMINAL,
    TRANSITIONS,
    IllegalTransitionError,
    JobState,
    check_transition,
)

S = JobState

# The lifecycle, written out by hand: every legal move, and nothing else.
LEGAL = {
    (S.QUEUED, S.ADMITTED), (S.QUEUED, S.REJECTED), (S.QUEUED, S.CANCELLED),
    (S.ADMITTED, S.RUNNING), (S.ADMITTED, S.REQUEUED), (S.ADMITTED, S.CANCELLED),
    (S.RUNNING, S.PREEMPTED), (S.RUNNING, S.FAILED), (S.RUNNING, S.COMPLETED),
    (S.RUNNING, S.CANCELLED),
    (S.PREEMPTED, S.REQUEUED), (S.PREEMPTED, S.CANCELLED),
    (S.FAILED, S.REQUEUED), (S.FAILED, S.CANCELLED),
    (S.REQUEUED, S.ADMITTED), (S.REQUEUED, S.CANCELLED),
}  # fmt: skip


@pytest.mark.parametrize(("src", "dst"), list(itertools.product(S, S)))
def test_every_pair_is_legal_exactly_when_the_lifecycle_says(src: JobState, dst: JobState) -> None:
    if (src, dst) in LEGAL:
        check_transition(1, src, dst)
    else:
        with pytest.raises(IllegalTransitionError) as err:
            check_transition(1, src, dst, "why")
        assert err.value.src is src and err.value.dst is dst
        assert str(err.value) == f"job 1: {src.value} -> {dst.value} is not allowed (why)"


def test_illegal_move_without_a_reason_names_none() -> None:
    with pytest.raises(IllegalTransitionError) as err:
        check_transition(3, S.QUEUED, S.RUNNING)
    assert str(err.value) == "job 3: queued -> running is not allowed ()"


@pytest.mark.parametrize(
    ("src", "dst"),
    [
        (S.QUEUED, S.RUNNING),  # must be admitted first
        (S.RUNNING, S.QUEUED),  # must go through preempted/failed and requeued
        (S.PREEMPTED, S.ADMITTED),  # must be requeued first
        (S.REQUEUED, S.RUNNING),
        (S.COMPLETED, S.REQUEUED),
        (S.REJECTED, S.QUEUED),
        (S.CANCELLED, S.QUEUED),
        (S.RUNNING, S.RUNNING),
        (S.QUEUED, S.QUEUED),
    ],
)
def test_illegal_moves_raise_and_leave_the_job_unchanged(src: JobState, dst: JobState) -> None:
    job = Job(7, "j", "a", 1, 10.0)
    job.state = src
    job.history = []
    with pytest.raises(IllegalTransitionError, match="job 7") as got:
        job.move(dst, 5.0, "test")
    # Job.move makes the table's test itself (section 126): the error says what check_transition's
    # would, down to the reason
    assert (got.value.src, got.value.dst) == (src, dst)
    assert str(got.value) == f"job 7: {src.value} -> {dst.value} is not allowed (test)"
    assert job.state is src
    assert job.history == []


def test_terminal_states_have_no_exit_and_pending_states_can_be_admitted() -> None:
    assert {S.COMPLETED, S.REJECTED, S.CANCELLED} == TERMINAL
    for s in TERMINAL:
        assert not TRANSITIONS[s]
    assert {S.QUEUED, S.REQUEUED} == PENDING
    for s in PENDING:
        assert S.ADMITTED in TRANSITIONS[s]
    assert set(TRANSITIONS) == set(S)


def test_full_lifecycle_with_a_preemption_and_a_failure_is_recorded() -> None:
    job = Job(1, "j", "a", 8, 100.0)
    job.history = []
    path = [S.ADMITTED, S.RUNNING, S.PREEMPTED, S.REQUEUED, S.ADMITTED, S.RUNNING, S.FAILED,
            S.REQUEUED, S.ADMITTED, S.RUNNING, S.COMPLETED]  # fmt: skip
    for t, dst in enumerate(path):
        job.move(dst, float(t), f"step {t}")
    assert job.state is S.COMPLETED
    assert [h[1] for h in job.history] == path
    assert job.history[3] == (3.0, S.REQUEUED, "step 3")
    with pytest.raises(IllegalTransitionError):
        job.move(S.RUNNING, 99.0)


def test_move_without_history_does_not_record() -> None:
    job = Job(1, "j", "a", 8, 100.0)
    assert job.history is None
    job.move(S.ADMITTED, 0.0)
    assert job.history is None and job.state is S.ADMITTED
