"""Hourly electricity prices: look up USD/MWh at a simulated time, and cost a power series.

The shipped year (data/ercot_prices_2024_synthetic.csv) is derived, not measured: see its header
and cortex/power/price_synth.py. Any file with the same two columns can replace it.
Times are seconds from `start_hour_of_year` (hour 0 = 1 January 00:00); they wrap past the year.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import overload

import numpy as np

from cortex.errors import InputError
from cortex.power.datafile import number, read_rows

DEFAULT_FILE = "ercot_prices_2024_synthetic.csv"
SOURCE = "prices"
_S_PER_H = 3600.0


@dataclass(frozen=True)
class PriceSeries:
    """One price per hour (USD/MWh), hour 0 first, repeated past its end."""

    usd_per_mwh: np.ndarray
    source: str = ""
    _cum: np.ndarray = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        p = np.asarray(self.usd_per_mwh, dtype=float)
        if p.ndim != 1 or p.size == 0:
            raise InputError(self.source or SOURCE, "price_usd_per_mwh", "needs at least one hour")
        if not np.all(np.isfinite(p)):
            raise InputError(self.source or SOURCE, "price_usd_per_mwh", "not finite")
        object.__setattr__(self, "usd_per_mwh", p)
        # Price-hours accumulated to the start of each hour: integrals become two lookups.
        object.__setattr__(self, "_cum", np.concatenate([[0.0], np.cumsum(p)]))

    @classmethod
    def load(cls, path: Path | None = None) -> PriceSeries:
        """The shipped synthetic ERCOT year, or a CSV with `hour_of_year,price_usd_per_mwh`
        (comment lines starting with `#` allowed) holding hours 0..N-1 in order."""
        src = str(path) if path is not None else f"cortex/power/data/{DEFAULT_FILE}"
        rows = read_rows(DEFAULT_FILE, path)
        prices = np.empty(len(rows))
        for i, row in enumerate(rows):
            where = f"row {i + 1}"
            if int(number(row, "hour_of_year", src, where)) != i:
                raise InputError(src, f"{where}.hour_of_year", f"expected {i}: hours in order")
            prices[i] = number(row, "price_usd_per_mwh", src, where)
        return cls(prices, src)

    @property
    def hours(self) -> int:
        return int(self.usd_per_mwh.size)

    @property
    def mean_usd_per_mwh(self) -> float:
        return float(self.usd_per_mwh.mean())

    @overload
    def price_usd_per_mwh(self, t_s: float, start_hour_of_year: int = 0) -> float: ...
    @overload
    def price_usd_per_mwh(self, t_s: np.ndarray, start_hour_of_year: int = 0) -> np.ndarray: ...
    def price_usd_per_mwh(
        self, t_s: np.ndarray | float, start_hour_of_year: int = 0
    ) -> np.ndarray | float:
        """The price in force at each time (the hour it falls in)."""
        t = np.asarray(t_s, dtype=float)
        if not np.all(np.isfinite(t)):
            raise InputError(SOURCE, "t_s", "not finite")
        h = (np.floor(t / _S_PER_H).astype(np.int64) + int(start_hour_of_year)) % self.hours
        out = self.usd_per_mwh[h]
        return float(out) if out.ndim == 0 else out

    def _integral(self, hour: np.ndarray) -> np.ndarray:
        """Integral of the price from hour 0 to `hour` (fractional, any sign), in USD/MWh x h."""
        n = self.hours
        laps = np.floor(hour / n)
        r = hour - laps * n
        k = np.minimum(np.floor(r).astype(np.int64), n - 1)
        return np.asarray(laps * self._cum[n] + self._cum[k] + self.usd_per_mwh[k] * (r - k))

    def cost_usd(self, power_mw: np.ndarray, t_s: np.ndarray, start_hour_of_year: int = 0) -> float:
        """Cost of a piecewise-constant power series: power_mw[i] holds over [t_s[i], t_s[i+1]).

        `t_s` holds len(power_mw) + 1 edges; with len(power_mw) sample times instead, the last
        sample closes the series and its power is not counted. Times must not decrease.
        """
        p = np.asarray(power_mw, dtype=float)
        t = np.asarray(t_s, dtype=float)
        if p.ndim != 1 or t.ndim != 1:
            raise InputError(SOURCE, "power_mw", "power_mw and t_s must be 1-D arrays")
        if t.size == p.size:
            p = p[:-1]
        elif t.size != p.size + 1:
            raise InputError(
                SOURCE,
                "t_s",
                f"needs len(power_mw) + 1 = {p.size + 1} edges (or {p.size} sample times), "
                f"got {t.size}",
            )
        if not (np.all(np.isfinite(p)) and np.all(np.isfinite(t))):
            raise InputError(SOURCE, "power_mw", "power_mw and t_s must be finite")
        if np.any(np.diff(t) < 0):
            raise InputError(SOURCE, "t_s", "times must not decrease")
        if p.size == 0:
            return 0.0
        integral = self._integral(t / _S_PER_H + int(start_hour_of_year))
        return float(np.dot(p, np.diff(integral)))

    def with_event(
        self, start_hour_of_year: int, hours: int, price_usd_per_mwh: float
    ) -> PriceSeries:
        """A copy with the price held at `price_usd_per_mwh` for `hours` hours (a scarcity
        event such as winter storm Uri's USD 9,000/MWh for about 77 hours), wrapping the year."""
        if hours < 0:
            raise InputError(SOURCE, "hours", f"must be >= 0, got {hours}")
        p = self.usd_per_mwh.copy()
        idx = (int(start_hour_of_year) + np.arange(hours)) % self.hours
        p[idx] = price_usd_per_mwh
        return PriceSeries(p, f"{self.source} + event")
