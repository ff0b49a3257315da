"""The twin's power handlers: a weather tick or cap event re-dividing the budget, the solver's
caps and pauses applied to running work, a staggered gang's next wave, and a pass blocked on
watts. A mixin of Twin (sim/twin.py), split out of it so that the event loop and the power
policy's handling can change apart; it owns no state of its own.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from cortex.compiled import mypyc_attr
from cortex.scheduler.reasons import Code
from cortex.sim.runs import RunBooks
from cortex.workload.states import JobState

if TYPE_CHECKING:
    from cortex.scheduler.cap_solver import CapPlan
    from cortex.scheduler.snapshot import Plan
    from cortex.workload.job import Job


@mypyc_attr(allow_interpreted_subclasses=True)  # the twin's subclasses (sim/twin.py)
class TwinPower(RunBooks):
    """The power handlers of the twin (see Twin for the attributes)."""

    speeds: dict[tuple[str, int], float]
    _by_id: dict[int, Job]
    _power_retry: bool
    _power_next_try_s: float

    def _cycle(self) -> None:
        raise NotImplementedError

    def _wake(self, t: float) -> None:
        raise NotImplementedError

    def _level(self, job: Job) -> int:
        jp = self.pw.jobs.get(job.id) if self.pw is not None else None
        return jp.level if jp is not None else 0

    # ---- power ------------------------------------------------------------------------------
    def _power_event(self, _a: object, _b: int) -> None:
        """A weather tick or a cap-event edge: budgets move; re-divide them if they bind."""
        pw = self.pw
        assert pw is not None
        self._changed()
        if pw.policy is None or not pw.needs_solve(self.now):
            return
        self._apply_cap_plan(pw.solve(self.state.running, self.speeds, self.now))

    def _apply_cap_plan(self, plan: CapPlan) -> None:
        """Pause (checkpoint and requeue) what the solver paused, then move the caps."""
        pw = self.pw
        assert pw is not None
        pw.target = plan.target
        for job_id in plan.paused:
            pw.paused += 1
            self._preempt(self.state.running[job_id], "PowerShortfall")
        self._apply_levels(plan.levels, plan)

    def _apply_levels(self, levels: dict[int, int], plan: CapPlan | None = None) -> None:
        """Lower caps first, then raise them, higher priorities first, as far as the ramp
        window allows (a raise is an upward step like a start). `plan`: as cap_moves'."""
        pw = self.pw
        assert pw is not None
        running = self.state.running
        now = self.now
        room = pw.ramp_headroom_it_w(now)
        clock = self._clock(now)  # every move reads the run clock at this instant
        moved: list[tuple[int, tuple, tuple]] = []
        # Read once for a solve's ~80 moves, not through pw and self at each
        jobs, relevel, set_rate = pw.jobs, pw.relevel, self._set_rate
        for job_id, level in pw.cap_moves(levels, running, plan):
            job = running[job_id]
            jp = jobs[job_id]
            if level < jp.level:
                inc = jp.lad[1]  # its run's ladder (pw.ladder's), kept at its start
                step = inc[level] - jp.inc_w
                if step > room:  # the next tick raises it: its class is not at its plan level
                    cls = jp.cls
                    assert cls is not None  # under a policy
                    cls.lv = -1  # (cap_moves marked it there)
                    continue
                room -= step
                pw.add_step(now, step)
            set_rate(job, relevel(job, level), clock, moved)
        self._move_ends(moved)

    def _stagger(self, job: Job, run: int) -> None:
        if job.state is JobState.RUNNING and job.restarts == run and self.pw is not None:
            self.pw.fill(job.id)
            self._power_dirty = True

    def _resolve_due(self, deep: bool) -> bool:
        """Whether a site stop may re-divide the budget now: a deep pass's, outside the retry
        pass a re-solve makes, once the spacing since the last one has passed (re-solves for a
        short head are spaced out: each one scans every running job). Twin._cycle asks it
        before calling _power_blocked, which asks it again (RESULTS.md section 153)."""
        return deep and not self._power_retry and not self.now < self._power_next_try_s

    def _power_blocked(self, plan: Plan, deep: bool) -> None:
        """A pass stopped on watts. On the ramp: wake when the window has room for it. On the site
        budget, in a deep pass: if the blocked job outranks running work, re-divide the budget
        with it as a member (lower priorities are capped or paused first), then run again."""
        pw = self.pw
        assert pw is not None and plan.rest_reason is not None
        code = plan.rest_reason.code
        if code is Code.POWER_RAMP:
            # Wake when the window has room for the blocked head's step (or is clear).
            need_w = plan.rest_reason.detail.get("need_mw", math.inf) * 1e6
            self._wake(pw.ramp_clear_at(self.now, need_w))
            return
        if code is not Code.POWER_CAP or pw.policy is None or not self._resolve_due(deep):
            return
        head = self._by_id.get(plan.rest_reason.detail.get("job", -1))
        if head is None or not self.state.running:
            return
        self._power_next_try_s = self.now + pw.cfg.shortage_resolve_s
        room = pw.make_room_for(head, self.state.running, self.speeds, self.now)
        if room is None:
            return
        self._apply_cap_plan(room)
        self._power_retry = True
        try:
            self._cycle()
        finally:
            self._power_retry = False
