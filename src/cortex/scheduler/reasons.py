"""Why a job is pending: stable codes plus the numbers behind them."""

from __future__ import annotations

from enum import StrEnum
from typing import Any


class Code(StrEnum):
    """Stable blocker codes; the control plane shows them and the twin counts them."""

    QUOTA_EXCEEDED = "QuotaExceeded"
    BORROWING_LIMIT = "BorrowingLimit"
    INSUFFICIENT_CAPACITY = "InsufficientCapacity"
    TOPOLOGY_UNAVAILABLE = "TopologyUnavailable"
    RESERVED_FOR_HEAD = "ReservedForHead"
    POWER_CAP = "PowerCap"
    POWER_RAMP = "PowerRamp"
    NOT_EXAMINED = "NotExamined"
    NO_FLAVOR = "NoEligibleFlavor"
    NEVER_FITS = "NeverFits"
    NEVER_FITS_POWER = "NeverFitsPower"
    UNKNOWN_QUEUE = "UnknownQueue"
    UNKNOWN_PRIORITY_CLASS = "UnknownPriorityClass"
    PREEMPTED = "Preempted"
    OVER_TARGET = "OverTargetShare"
    NODE_DRAINING = "NodeDraining"  # stopped with a checkpoint before its node's drain deadline


_TEMPLATES = {
    Code.QUOTA_EXCEEDED: "needs {need} {flavor}, {free_in_quota} free in the cohort's quota",
    Code.BORROWING_LIMIT: (
        "needs {need} {flavor}; queue {queue} uses {usage} of nominal {nominal} "
        "+ borrowing limit {limit}"
    ),
    Code.INSUFFICIENT_CAPACITY: "needs {need} {flavor}, {free} free",
    Code.TOPOLOGY_UNAVAILABLE: (
        "needs {need} {flavor}, {free} free but fragmented; the largest free {block} has "
        "{largest_block}"
    ),
    Code.RESERVED_FOR_HEAD: (
        "would delay job {head} reserved to start at t={shadow_s:.0f}s on {flavor}"
    ),
    Code.POWER_CAP: "needs {need_mw:.2f} MW, {headroom_mw:.2f} MW left under the {domain} cap",
    Code.POWER_RAMP: (
        "a {need_mw:.2f} MW step; {headroom_mw:.2f} MW of the {limit_mw:.2f} MW/min ramp left"
    ),
    Code.NOT_EXAMINED: "not reached this cycle ({why})",
    Code.NO_FLAVOR: "none of its flavors {flavors} is in the fleet",
    Code.NEVER_FITS: "needs {need} GPUs; the most any acceptable flavor could give is {most}",
    Code.NEVER_FITS_POWER: (
        "needs {need_mw:.3f} MW over idle even at the floor cap; the site budget is at most "
        "{most_mw:.3f} MW"
    ),
    Code.UNKNOWN_QUEUE: "team {team} has no cluster queue",
    Code.UNKNOWN_PRIORITY_CLASS: "priority class {priority_class} is not one of {known}",
    Code.PREEMPTED: "preempted by job {by} ({why})",
    Code.NODE_DRAINING: "its node {node} is being drained (deadline {deadline})",
    Code.OVER_TARGET: (
        "needs {need} {flavor}; queue {queue} holds {usage} of its target {target} and "
        "{spare} are spare"
    ),
}


class Reason:
    """A blocker: a code and the numbers behind it. The message is formatted only when read."""

    __slots__ = ("code", "detail")

    def __init__(self, code: Code, **detail: Any) -> None:
        self.code = code
        self.detail = detail

    @property
    def message(self) -> str:
        try:
            return _TEMPLATES[self.code].format(**self.detail)
        except (KeyError, ValueError):
            return f"{self.code.value} {self.detail}"

    def to_dict(self) -> dict[str, Any]:
        return {"code": self.code.value, "message": self.message, **self.detail}

    def __repr__(self) -> str:
        return f"{self.code.value}: {self.message}"
