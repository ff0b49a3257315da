"""The scheduler loop's health side: each ended attempt is recorded for goodput
(control/goodput.py). A mixin of `cortex.control.loop.SchedulerLoop`."""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy.orm import Session

from cortex.control import goodput
from cortex.control import models as m

log = logging.getLogger("cortex.control")


class HealthMixin:
    # Owned by SchedulerLoop (declared here for the type checker).
    progress: Any

    def _attempt_ended(self, s: Session, row: m.Job, e: Any, now: float) -> None:
        """An attempt of `row` ended with exit record `e` (before the job's state moves on)."""
        goodput.record_end(s, row, str(e.outcome), now, self.progress)
