"""Austin climate: seasons, the daily cycle near the normals, continuity, heat waves, bad input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from cortex.errors import InputError
from cortex.power.climate import Climate

DAY = 86400.0
MID_MONTH_DAY = np.cumsum([0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30]) + 15


def _f_to_c(f: float) -> float:
    return (f - 32) * 5 / 9


def test_july_afternoon_is_hotter_than_a_january_night() -> None:
    c = Climate.load()
    july_4pm = c.temperature_c(16 * 3600.0, start_day_of_year=195)
    jan_5am = c.temperature_c(5 * 3600.0, start_day_of_year=15)
    assert july_4pm > 33.0
    assert jan_5am < 8.0
    assert july_4pm - jan_5am > 25.0


def test_shipped_normals_are_austin_camp_mabry() -> None:
    c = Climate.load()
    # The CSV is in Fahrenheit as NOAA publishes; August's normal high is about 97.6 F.
    assert c.high_c[7] == pytest.approx(_f_to_c(97.6))
    # LCRA: the 1991-2020 annual mean at Camp Mabry is about 70 F.
    assert (c.high_c.mean() + c.low_c.mean()) / 2 == pytest.approx(_f_to_c(70.0), abs=0.5)


@pytest.mark.parametrize("month", range(12))
def test_mid_month_daily_max_and_min_near_the_normals(month: int) -> None:
    c = Climate.load()
    t = np.arange(0, DAY, 60.0)
    temp = c.temperature_c(t, start_day_of_year=int(MID_MONTH_DAY[month]))
    assert temp.max() == pytest.approx(c.high_c[month], abs=0.4)
    assert temp.min() == pytest.approx(c.low_c[month], abs=0.4)
    # Low near 06:00, high near 16:00.
    assert abs(t[temp.argmin()] / 3600 - 6.0) <= 0.1
    assert abs(t[temp.argmax()] / 3600 - 16.0) <= 0.1


def test_continuous_over_the_year_and_across_new_year() -> None:
    c = Climate.load()
    t = np.arange(0, 2 * 365 * DAY, 300.0)
    temp = c.temperature_c(t)
    # Five-minute steps never jump: the steepest diurnal slope is about 0.3 C per 5 minutes.
    assert np.abs(np.diff(temp)).max() < 0.35
    # The year wraps: 31 December 23:59 runs into 1 January 00:00.
    a = c.temperature_c(365 * DAY - 1.0)
    b = c.temperature_c(365 * DAY)
    assert abs(a - b) < 0.01
    assert c.temperature_c(10.0, start_day_of_year=365) == pytest.approx(c.temperature_c(10.0))


def test_heat_wave_adds_on_top_and_eases_in() -> None:
    c = Climate.load()
    start, dur = 180 * DAY, 5 * DAY
    hot = c.heat_wave(start, dur, delta_c=5.0)
    t = np.arange(170 * DAY, 190 * DAY, 600.0)
    d = hot.temperature_c(t) - c.temperature_c(t)
    inside = (t >= start + 0.25 * DAY) & (t <= start + dur - 0.25 * DAY)
    assert np.allclose(d[inside], 5.0)
    assert np.allclose(d[(t < start) | (t > start + dur)], 0.0)
    assert np.abs(np.diff(hot.temperature_c(t))).max() < 1.0  # eased, no 5 C step
    twice = hot.heat_wave(start, dur, delta_c=2.0, ramp_s=0.0)
    assert twice.temperature_c(start + DAY) - c.temperature_c(start + DAY) == pytest.approx(7.0)
    with pytest.raises(InputError, match="duration_s"):
        c.heat_wave(0.0, 0.0, 3.0)
    with pytest.raises(InputError, match="ramp_s"):
        c.heat_wave(0.0, DAY, 3.0, ramp_s=-1.0)


def test_bad_normals_file(tmp_path: Path) -> None:
    rows = "\n".join(f"{m},{80 + m},{60 + m}" for m in range(1, 13))
    ok = tmp_path / "ok.csv"
    ok.write_text("month,normal_high_f,normal_low_f\n" + rows + "\n")
    assert Climate.load(ok).high_c[0] == pytest.approx(_f_to_c(81))
    short = tmp_path / "short.csv"
    short.write_text("month,normal_high_f,normal_low_f\n1,80,60\n")
    with pytest.raises(InputError, match="month"):
        Climate.load(short)
    swapped = tmp_path / "swapped.csv"
    swapped.write_text("month,normal_high_f,normal_low_f\n" + rows.replace("1,81,61", "1,50,61"))
    with pytest.raises(InputError, match=r"month 1\.normal_high_f"):
        Climate.load(swapped)
