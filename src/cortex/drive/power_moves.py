"""A kept solve's level moves (PowerBooks.cap_moves for a plan of the books' kept classes),
apart from the books so that they stay within a module's size."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from cortex.drive.power_jobs import _Class, _JobPower
    from cortex.scheduler.cap_solver import CapPlan, ClassKey
    from cortex.workload.job import Job


def kept_moves(
    jobs: dict[int, _JobPower],
    classes: dict[ClassKey, _Class],
    plan: CapPlan,
    running: Mapping[int, Job],
) -> list[tuple[int, int]]:
    """cap_moves(plan.levels) for a plan whose `levels` lists each class's members at the
    class's `target` level but the split class's `moved` ones (JobPowerBooks.solve_kept): a
    class whose members all sit at its level (its `lv`) has no move, and is not read (~75% of
    the entries a month; RESULTS 151). The rest are read as cap_moves reads them, the split
    class's members through `levels`, the others at the class's level.

    Each class read here but the split one is marked at the level its moves take it to, before
    they are made: a driver that leaves one of them unmade marks that job's class -1 (relevel
    keeps a mark only for a move to it; a start at another level clears it)."""
    levels, target, moved = plan.levels, plan.target, plan.moved
    assert moved is not None
    # The split class: the class of a moved member the books hold (a shortage plan's head,
    # also in `moved` when it shares the split class, is not booked).
    split = next((jp.cls for j in moved if (jp := jobs.get(j)) is not None), None)
    # Each move decorated with its order as cap_moves does: lowers first, then higher
    # priorities, then start order (start numbers are unique: the job and level never decide).
    moves = []
    for key, cls in classes.items():
        ms = cls.members
        if cls is split:
            moves += [
                (lv < jp.level, -running[j].priority, jp.seq, j, lv)
                for j in ms
                if (jp := jobs[j]).level != (lv := levels[j])
            ]
            continue
        c_lv = target[key]
        if cls.lv != c_lv:
            cls.lv = c_lv
            moves += [
                (c_lv < jp.level, -running[j].priority, jp.seq, j, c_lv)
                for j in ms
                if (jp := jobs[j]).level != c_lv
            ]
    moves.sort()
    return [(j, lv) for _, _, _, j, lv in moves]
