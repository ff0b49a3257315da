"""Build the synthetic hourly ERCOT price year from its shape (data/ercot_price_shape.csv).

No hourly public ERCOT series is on disk (and there is no network), so the shipped year is
derived: price(h) = base(month, hour) x day noise x hour noise, plus a few scarcity hours, then the
non-spike hours are scaled so the year's mean is the reference annual mean. Fixed seed.

Run `python -m cortex.power.price_synth [OUT.csv]` to regenerate the shipped file.
"""

from __future__ import annotations

import sys
from collections import defaultdict
from pathlib import Path

import numpy as np

from cortex.power.datafile import read_rows

HOURS_PER_YEAR = 8760  # a non-leap year; the loader wraps times past its end
OUT_NAME = "ercot_prices_2024_synthetic.csv"
_MONTH_DAYS = (31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)

HEADER = """\
# Hourly electricity price for one year, USD/MWh, ERCOT, for the Cortex site at Giga Texas (Austin).
# DERIVED, NOT MEASURED: no hourly public ERCOT series is on disk here. Built by
# cortex/power/price_synth.py from data/ercot_price_shape.csv (seed in that file):
#   price(h) = month_factor(month) x hour_factor(season, hour) x day noise x hour noise,
#   plus scarcity hours drawn in summer evenings and winter mornings/evenings, then the
#   non-scarcity hours scaled so the annual mean equals USD 27.33/MWh, the ERCOT North hub
#   day-ahead average for 2024 (shared/reference/cortex-facts.md) [S].
# Austin sits in the Austin Energy / South load zones, not North; their annual means differ from
# North by a few USD/MWh [R]. The shape (months, hours, spikes) is recalled, approximate [R].
# hour_of_year 0 = 1 January 00:00 local standard time; 8,760 hours (a non-leap year).
"""


def _shape(path: Path | None = None) -> dict[str, dict[int, float]]:
    out: dict[str, dict[int, float]] = defaultdict(dict)
    for row in read_rows("ercot_price_shape.csv", path):
        out[row["param"]][int(row["index"])] = float(row["value"])
    return out


def month_and_hour(hours: int = HOURS_PER_YEAR) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Month (1-12), hour of day (0-23) and day of year (0-based) of each hour of the year."""
    h = np.arange(hours)
    day = h // 24
    month_of_day = np.repeat(np.arange(1, 13), _MONTH_DAYS)
    return month_of_day[day % 365], h % 24, day


def synthesize(shape_path: Path | None = None) -> np.ndarray:
    """The hourly price year in USD/MWh, deterministic for the shape file's seed."""
    s = _shape(shape_path)
    rng = np.random.default_rng(int(s["seed"][0]))
    month, hour, day = month_and_hour()
    summer = np.isin(month, list(s["summer_month"]))
    hf_summer = np.array([s["hour_factor_summer"][k] for k in range(24)])
    hf_other = np.array([s["hour_factor_other"][k] for k in range(24)])
    mf = np.array([s["month_factor"][m] for m in range(1, 13)])
    base = mf[month - 1] * np.where(summer, hf_summer[hour], hf_other[hour])
    day_noise = rng.lognormal(0.0, s["day_sigma"][0], size=365)[day]
    hour_noise = rng.lognormal(0.0, s["hour_sigma"][0], size=HOURS_PER_YEAR)
    price = base * day_noise * hour_noise
    spike = np.zeros(HOURS_PER_YEAR, dtype=bool)
    lo, hi = np.log(s["spike_min"][0]), np.log(s["spike_max"][0])
    for season in ("summer", "winter"):
        ok = np.isin(month, list(s[f"spike_months_{season}"])) & np.isin(
            hour, list(s[f"spike_hours_{season}"])
        )
        candidates = np.flatnonzero(ok & ~spike)
        n = int(s[f"spike_count_{season}"][0])
        picks = rng.choice(candidates, size=n, replace=False)
        spike[picks] = True
        price[picks] = np.exp(rng.uniform(lo, hi, size=n))
    target_total = s["annual_mean"][0] * HOURS_PER_YEAR
    scale = (target_total - price[spike].sum()) / price[~spike].sum()
    price[~spike] *= scale
    return np.round(price, 2)


def write(path: Path, prices: np.ndarray) -> None:
    lines = [HEADER.rstrip("\n"), "hour_of_year,price_usd_per_mwh"]
    lines += [f"{h},{p:.2f}" for h, p in enumerate(prices)]
    path.write_text("\n".join(lines) + "\n")


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    out = Path(args[0]) if args else Path(__file__).parent / "data" / OUT_NAME
    write(out, synthesize())
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
