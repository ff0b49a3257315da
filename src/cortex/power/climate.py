"""Outdoor temperature at the site: a seasonal and diurnal profile from monthly normals.

The monthly normal highs and lows (data/austin_climate_normals.csv, Austin Camp Mabry, NOAA
1991-2020, approximate) are placed at mid-month and joined by trigonometric interpolation over the
year, which is smooth and periodic (December runs into January). Each day runs from its low at
`min_hour` to its high at `max_hour` and back along half cosines. Heat waves add on top.

Times are seconds from local midnight (standard time, no daylight saving) of
`start_day_of_year` (0 = 1 January). The year has 365 days and wraps.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import overload

import numpy as np

from cortex.errors import InputError
from cortex.power.datafile import number, read_rows

DEFAULT_FILE = "austin_climate_normals.csv"
SOURCE = "climate"
DAYS_PER_YEAR = 365.0
_S_PER_DAY = 86400.0
_S_PER_H = 3600.0


@dataclass(frozen=True, slots=True)
class HeatWave:
    """`delta_c` added from `start_s` for `duration_s`, eased in and out over `ramp_s`."""

    start_s: float
    duration_s: float
    delta_c: float
    ramp_s: float

    def delta(self, t: np.ndarray) -> np.ndarray:
        u = t - self.start_s
        inside = (u >= 0) & (u <= self.duration_s)
        ramp = min(self.ramp_s, self.duration_s / 2)
        if ramp <= 0:
            return np.where(inside, self.delta_c, 0.0)
        edge = np.minimum(u, self.duration_s - u) / ramp
        w = np.where(edge >= 1, 1.0, 0.5 - 0.5 * np.cos(np.pi * np.clip(edge, 0, 1)))
        return np.where(inside, self.delta_c * w, 0.0)


def _f_to_c(f: np.ndarray) -> np.ndarray:
    return (f - 32.0) * 5.0 / 9.0


def _trig_coeffs(values: np.ndarray) -> np.ndarray:
    return np.fft.rfft(values) / values.size


def _trig_eval(coeffs: np.ndarray, n: int, x: np.ndarray) -> np.ndarray:
    """Evaluate the trigonometric interpolant of `n` equally spaced values at positions `x`
    (in units of the spacing; x = k gives value k). The Nyquist term is taken as a cosine so the
    interpolant is real and passes through every value."""
    out = np.full(x.shape, coeffs[0].real)
    for k in range(1, coeffs.size):
        phase = 2.0 * np.pi * k * x / n
        term = coeffs[k].real * np.cos(phase) - coeffs[k].imag * np.sin(phase)
        out += term if (n % 2 == 0 and k == n // 2) else 2.0 * term
    return out


@dataclass(frozen=True)
class Climate:
    """Monthly normal highs and lows (deg C, January first) and the heat waves laid on them."""

    high_c: np.ndarray
    low_c: np.ndarray
    source: str = ""
    min_hour: float = 6.0  # typical clear-sky timing of the daily low and high [R]
    max_hour: float = 16.0
    heat_waves: tuple[HeatWave, ...] = ()

    def __post_init__(self) -> None:
        hi = np.asarray(self.high_c, dtype=float)
        lo = np.asarray(self.low_c, dtype=float)
        src = self.source or SOURCE
        if hi.shape != (12,) or lo.shape != (12,):
            raise InputError(src, "month", "needs exactly 12 months")
        if not (np.all(np.isfinite(hi)) and np.all(np.isfinite(lo))):
            raise InputError(src, "normal_high_f", "not finite")
        if np.any(hi < lo):
            m = int(np.argmax(hi < lo)) + 1
            raise InputError(src, f"month {m}.normal_high_f", "below the normal low")
        if not 0 <= self.min_hour < self.max_hour < 24:
            raise InputError(src, "min_hour", "needs 0 <= min_hour < max_hour < 24")
        object.__setattr__(self, "high_c", hi)
        object.__setattr__(self, "low_c", lo)

    @classmethod
    def load(cls, path: Path | None = None) -> Climate:
        """The shipped Austin normals, or a CSV with `month,normal_high_f,normal_low_f`."""
        src = str(path) if path is not None else f"cortex/power/data/{DEFAULT_FILE}"
        rows = read_rows(DEFAULT_FILE, path)
        if [r.get("month", "").strip() for r in rows] != [str(m) for m in range(1, 13)]:
            raise InputError(src, "month", "needs one row per month, 1 to 12 in order")
        hi = np.array([number(r, "normal_high_f", src, f"month {r['month']}") for r in rows])
        lo = np.array([number(r, "normal_low_f", src, f"month {r['month']}") for r in rows])
        return cls(_f_to_c(hi), _f_to_c(lo), src)

    def normals_c(self, day_of_year: np.ndarray | float) -> tuple[np.ndarray, np.ndarray]:
        """Smoothly interpolated normal high and low (deg C) at a fractional day of the year;
        each month's value sits at its middle (month m at day (m + 0.5) x 365 / 12)."""
        x = np.asarray(day_of_year, dtype=float) / DAYS_PER_YEAR * 12.0 - 0.5
        hi = _trig_eval(_trig_coeffs(self.high_c), 12, x)
        lo = _trig_eval(_trig_coeffs(self.low_c), 12, x)
        return hi, lo

    def _diurnal(self, hour: np.ndarray) -> np.ndarray:
        """0 at the daily low, 1 at the daily high; half cosines between, flat at both ends."""
        rise = self.max_hour - self.min_hour
        fall = 24.0 - rise
        since_min = np.mod(hour - self.min_hour, 24.0)
        up = 0.5 - 0.5 * np.cos(np.pi * since_min / rise)
        down = 0.5 + 0.5 * np.cos(np.pi * (since_min - rise) / fall)
        return np.asarray(np.where(since_min <= rise, up, down))

    @overload
    def temperature_c(self, t_s: float, start_day_of_year: int = 0) -> float: ...
    @overload
    def temperature_c(self, t_s: np.ndarray, start_day_of_year: int = 0) -> np.ndarray: ...
    def temperature_c(
        self, t_s: np.ndarray | float, start_day_of_year: int = 0
    ) -> np.ndarray | float:
        """Outdoor temperature (deg C) at each time."""
        t = np.asarray(t_s, dtype=float)
        if not np.all(np.isfinite(t)):
            raise InputError(SOURCE, "t_s", "not finite")
        day = np.mod(start_day_of_year + t / _S_PER_DAY, DAYS_PER_YEAR)
        hi, lo = self.normals_c(day)
        out = lo + (hi - lo) * self._diurnal(np.mod(t / _S_PER_H, 24.0))
        for hw in self.heat_waves:
            out = out + hw.delta(t)
        return float(out) if out.ndim == 0 else np.asarray(out)

    def heat_wave(
        self, start_s: float, duration_s: float, delta_c: float, ramp_s: float = 6 * _S_PER_H
    ) -> Climate:
        """A copy with `delta_c` added from `start_s` (same time axis as `temperature_c`) for
        `duration_s`, eased in and out with half cosines over `ramp_s` (at most half the
        duration) so the temperature stays continuous."""
        for name, v in (("start_s", start_s), ("delta_c", delta_c)):
            if not np.isfinite(v):
                raise InputError(SOURCE, name, "not finite")
        if not (np.isfinite(duration_s) and duration_s > 0):
            raise InputError(SOURCE, "duration_s", f"must be > 0, got {duration_s}")
        if not (np.isfinite(ramp_s) and ramp_s >= 0):
            raise InputError(SOURCE, "ramp_s", f"must be >= 0, got {ramp_s}")
        hw = HeatWave(float(start_s), float(duration_s), float(delta_c), float(ramp_s))
        return Climate(
            self.high_c,
            self.low_c,
            self.source,
            self.min_hour,
            self.max_hour,
            (*self.heat_waves, hw),
        )
