"""The site's power: GET /v1/power (any token), PUT /v1/power (admin: a new facility cap, for a
demand-response call or a lost feeder, and the outdoor temperature, from a weather or
building-management feed; applied by the next tick, and kept across restarts unless the
service's configuration changes)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException
from pydantic import BaseModel, ConfigDict, Field, model_validator

from cortex.control import store
from cortex.control.api.deps import Admin, Svc, Who, err

router = APIRouter(prefix="/v1")


class PowerJobOut(BaseModel):
    job_id: int
    cap_level: int  # 0: uncapped
    modelled_w: float
    devices: list[int]


class PowerOut(BaseModel):
    policy: str
    site_cap_kw: float
    facility_kw: float  # modelled
    it_budget_over_idle_w: float
    it_booked_over_idle_w: float
    it_draining_over_idle_w: float
    it_measured_over_booked_w: float  # NVML: running jobs' draw above their booking
    paused: int
    solves: int
    cap_failures: int
    outdoor_temp_c: float
    jobs: list[PowerJobOut]


class PowerUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)
    site_cap_kw: Annotated[float, Field(gt=0, le=1e9)] | None = None
    outdoor_temp_c: Annotated[float, Field(ge=-60, le=70)] | None = None

    @model_validator(mode="after")
    def _something(self) -> PowerUpdate:
        if self.site_cap_kw is None and self.outdoor_temp_c is None:
            raise ValueError("give site_cap_kw, outdoor_temp_c or both")
        return self


def _power(svc: Svc, team: str | None = None) -> PowerOut:
    """`team`: only that team's jobs are listed (another team's job is not even named, as in
    GET /v1/jobs/{id}); None lists all (the admin)."""
    power = svc.loop.power
    if power is None:
        raise HTTPException(404, "no power policy: start the service with --power-policy")
    snap = power.report()
    return PowerOut(
        policy=snap.policy,
        site_cap_kw=snap.site_cap_w / 1e3,
        facility_kw=snap.facility_w / 1e3,
        it_budget_over_idle_w=snap.site_budget_it_w,
        it_booked_over_idle_w=snap.booked_it_w,
        it_draining_over_idle_w=snap.draining_it_w,
        it_measured_over_booked_w=snap.overdraw_it_w,
        paused=snap.paused,
        solves=snap.solves,
        cap_failures=snap.cap_failures,
        outdoor_temp_c=snap.outdoor_temp_c,
        jobs=[
            PowerJobOut(job_id=j, cap_level=lv, modelled_w=w, devices=list(devs))
            for j, (lv, w, devs) in sorted(snap.jobs.items())
            if team is None or getattr(svc.loop.mirror.jobs.get(j), "team", None) == team
        ],
    )


@router.get("/power", response_model=PowerOut, summary="Site power, budget and per-job caps")
def get_power(who: Who, svc: Svc) -> PowerOut:
    return _power(svc, None if who.admin else who.team)


@router.put(
    "/power", response_model=PowerOut, summary="Set the facility cap or outdoor temperature (admin)"
)
def put_power(body: PowerUpdate, who: Admin, svc: Svc) -> PowerOut:
    out = _power(svc)
    power = svc.loop.power
    assert power is not None
    said = []
    if body.site_cap_kw is not None:
        try:
            power.request_cap_kw(body.site_cap_kw)
        except ValueError as e:
            msg = str(e).removeprefix("site_cap_kw: ")
            raise err(422, ["body", "site_cap_kw"], msg) from None
        out = out.model_copy(update={"site_cap_kw": body.site_cap_kw})
        said.append(f"site cap set to {body.site_cap_kw:g} kW")
    if body.outdoor_temp_c is not None:
        power.request_temp_c(body.outdoor_temp_c)  # bounded by the body's schema
        out = out.model_copy(update={"outdoor_temp_c": body.outdoor_temp_c})
        said.append(f"outdoor temperature {body.outdoor_temp_c:g} C")
    now = svc.clock.time()
    with svc.sessions.begin() as s:  # kept across restarts (LivePower.restore)
        if body.site_cap_kw is not None:
            conf = svc.settings.site_cap_kw
            store.put_site_setting(s, "site_cap_kw", body.site_cap_kw, conf, now)
        if body.outdoor_temp_c is not None:
            conf = svc.settings.outdoor_temp_c
            store.put_site_setting(s, "outdoor_temp_c", body.outdoor_temp_c, conf, now)
        store.event(s, "power", "; ".join(said), at=now)
    return out
