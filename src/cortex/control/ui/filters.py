"""The dashboard's query parameters, bounded like the API's: a fragment endpoint answers 422
naming the field, a page shows the same message in the page."""

from __future__ import annotations

from typing import Annotated, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from cortex.control.api.deps import MAX_ID
from cortex.workload.states import JobState

WAITING = (JobState.QUEUED.value, JobState.REQUEUED.value)
FINISHED = (
    JobState.COMPLETED.value,
    JobState.FAILED.value,
    JobState.CANCELLED.value,
    JobState.REJECTED.value,
)
StateFilter = Literal[
    "all",
    "waiting",
    "active",
    "finished",
    "queued",
    "requeued",
    "admitted",
    "running",
    "completed",
    "failed",
    "cancelled",
    "rejected",
]
STATE_CHOICES: tuple[str, ...] = get_args(StateFilter)
GROUPS: dict[str, tuple[str, ...]] = {
    "waiting": WAITING,
    "active": (*WAITING, JobState.ADMITTED.value, JobState.RUNNING.value),
    "finished": FINISHED,
}
Team = Annotated[str, Field(max_length=64, pattern=r"^[a-z0-9][a-z0-9_-]*$")]


class JobFilter(BaseModel):
    """GET /ui/jobs and /ui/fragments/jobs. Unknown parameters are refused by name."""

    model_config = ConfigDict(extra="forbid")
    state: StateFilter = "active"
    team: Team | None = None
    page: Annotated[int, Field(ge=1, le=100_000)] = 1
    per_page: Annotated[int, Field(ge=1, le=200)] = 50

    @field_validator("team", mode="before")
    @classmethod
    def _blank_is_none(cls, v: object) -> object:
        return None if v == "" else v  # the admin's empty team box: every team

    def states(self) -> tuple[str, ...] | None:
        if self.state == "all":
            return None
        return GROUPS.get(self.state, (self.state,))

    def query(self, **change: object) -> str:
        """This filter as a query string, with `change` applied (pager links)."""
        d = {**self.model_dump(exclude_none=True), **change}
        return "&".join(f"{k}={v}" for k, v in d.items())


class NodeQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")
    index: Annotated[int, Field(ge=0, le=10_000_000)]


class StreamQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")
    after: Annotated[int, Field(ge=0, le=MAX_ID)] = 0


class EmptyQuery(BaseModel):
    """Endpoints that take no parameter still refuse unknown ones by name."""

    model_config = ConfigDict(extra="forbid")


class WhyQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")
    start: bool = False


def messages(err: ValidationError) -> list[str]:
    """One line per bad field: `state: Input should be 'all', 'waiting', ...`."""
    out = []
    for e in err.errors():
        field = ".".join(str(x) for x in e.get("loc", ())) or "query"
        out.append(f"{field}: {e.get('msg', 'invalid')}")
    return out


class HistoryQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")
    hours: Annotated[float, Field(gt=0, le=24 * 31, allow_inf_nan=False)] = 24.0
    points: Annotated[int, Field(ge=2, le=2000)] = 145  # every 10 minutes over a day


class HeatmapQuery(BaseModel):
    """`state`: one byte per node, its state (views.STATE_NAMES); `used`: the share of its
    GPUs in use, 0-200, 255 when down; `power` (with a power policy): its modelled GPU draw
    as a share of their TDP, likewise; `cooling` (likewise): its hall's modelled heat as a
    share of what its cooling rejects at the outdoor temperature (ui/heat_view.py: no node
    temperature is measured), 254 for a hall without rated cooling; `temp` (likewise): its
    GPUs' temperature in whole degrees C, measured where NVML reads it, else modelled from its
    draw (control/node_temps.py)."""

    model_config = ConfigDict(extra="forbid")
    color: Literal["state", "used", "power", "cooling", "temp"] = "state"


class TimelineQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")
    hours: Annotated[float, Field(gt=0, le=24 * 31, allow_inf_nan=False)] = 6.0
    limit: Annotated[int, Field(ge=1, le=2000)] = 500
    by: Literal["team", "pod"] = "team"  # the lanes


class GoodputQuery(BaseModel):
    """GET /ui/goodput and its fragment: the window (hours back from now) and, for the
    admin, one team."""

    model_config = ConfigDict(extra="forbid")
    hours: Annotated[float, Field(gt=0, le=24 * 31, allow_inf_nan=False)] = 24.0
    team: Team | None = None

    @field_validator("team", mode="before")
    @classmethod
    def _blank_is_none(cls, v: object) -> object:
        return None if v == "" else v  # the form's empty team box: every team


class ChartQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")
    points: Annotated[int, Field(ge=2, le=2000)] = 500


class ForecastQuery(BaseModel):
    """The power page's forecast: hours ahead of now, and samples over them."""

    model_config = ConfigDict(extra="forbid")
    hours: Annotated[float, Field(gt=0, le=24 * 7, allow_inf_nan=False)] = 24.0
    points: Annotated[int, Field(ge=2, le=1000)] = 289  # every 5 minutes over a day
