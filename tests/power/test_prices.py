"""Hourly prices: lookups and costs checked by hand, the shipped synthetic year, bad input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from cortex.errors import InputError
from cortex.power import price_synth
from cortex.power.prices import PriceSeries

H = 3600.0


def _toy() -> PriceSeries:
    # Hour h costs 10 x (h + 1) USD/MWh: 10, 20, 30, 40.
    return PriceSeries(np.array([10.0, 20.0, 30.0, 40.0]), "toy")


def test_price_lookup_takes_the_hour_the_time_falls_in() -> None:
    s = _toy()
    assert s.price_usd_per_mwh(0.0) == 10.0
    assert s.price_usd_per_mwh(H - 1) == 10.0
    assert s.price_usd_per_mwh(H) == 20.0
    np.testing.assert_array_equal(
        s.price_usd_per_mwh(np.array([0.0, 1.5 * H, 3.99 * H, 4 * H, 5 * H])),
        [10.0, 20.0, 40.0, 10.0, 20.0],  # wraps past the last hour
    )
    assert s.price_usd_per_mwh(0.0, start_hour_of_year=2) == 30.0
    assert s.price_usd_per_mwh(H, start_hour_of_year=3) == 10.0


def test_cost_by_hand() -> None:
    s = _toy()
    # 2 MW for one whole hour 0: 2 x 10 = 20 USD.
    assert s.cost_usd(np.array([2.0]), np.array([0.0, H])) == pytest.approx(20.0)
    # 2 MW from 00:30 to 01:30 straddles two hours: 2 x (0.5 x 10 + 0.5 x 20) = 30 USD.
    assert s.cost_usd(np.array([2.0]), np.array([0.5 * H, 1.5 * H])) == pytest.approx(30.0)
    # Steps: 1 MW over [0, 1.5 h), 3 MW over [1.5 h, 3 h):
    # 1 x (10 + 0.5 x 20) + 3 x (0.5 x 20 + 30) = 20 + 120 = 140 USD.
    cost = s.cost_usd(np.array([1.0, 3.0]), np.array([0.0, 1.5 * H, 3 * H]))
    assert cost == pytest.approx(140.0)
    # Sample times instead of edges: the last sample closes the series and is not counted.
    same = s.cost_usd(np.array([1.0, 3.0, 99.0]), np.array([0.0, 1.5 * H, 3 * H]))
    assert same == pytest.approx(140.0)
    # Starting at the last hour wraps the year: 1 MW x (40 + 10) = 50 USD.
    wrapped = s.cost_usd(np.array([1.0]), np.array([0.0, 2 * H]), start_hour_of_year=3)
    assert wrapped == pytest.approx(50.0)
    # Two whole laps of the 4-hour year at 1 MW: 2 x 100 = 200 USD.
    assert s.cost_usd(np.array([1.0]), np.array([0.0, 8 * H])) == pytest.approx(200.0)
    # Zero-length intervals cost nothing.
    assert s.cost_usd(np.array([5.0]), np.array([H, H])) == 0.0


def test_cost_matches_fine_sampling_on_the_shipped_year() -> None:
    s = PriceSeries.load()
    rng = np.random.default_rng(1)
    edges = np.sort(rng.uniform(0, 30 * 86400.0, size=200))
    power = rng.uniform(50, 130, size=199)
    # A minute-by-minute sum, independent of the integral the implementation uses.
    minutes = np.arange(edges[0], edges[-1], 60.0)
    mid = minutes + 30.0
    idx = np.searchsorted(edges, mid, side="right") - 1
    ok = mid < edges[-1]
    brute = float((power[idx[ok]] * s.price_usd_per_mwh(mid[ok]) / 60.0).sum())
    assert s.cost_usd(power, edges) == pytest.approx(brute, rel=2e-3)
    # The start hour moves the window: mid-June prices differ from January's.
    assert s.cost_usd(power, edges, start_hour_of_year=4000) != pytest.approx(brute, rel=1e-2)


def test_shipped_year_matches_its_documented_rule() -> None:
    s = PriceSeries.load()
    assert s.hours == 8760
    # The reference ERCOT North 2024 day-ahead mean, USD 27.33/MWh (to the cent rounding).
    assert s.mean_usd_per_mwh == pytest.approx(27.33, abs=0.01)
    assert np.all(s.usd_per_mwh > 0)
    # Regenerating from the shape file gives the shipped numbers: the file is what its header says.
    np.testing.assert_allclose(price_synth.synthesize(), s.usd_per_mwh, atol=0.005)
    month, hour, _ = price_synth.month_and_hour()
    p = s.usd_per_mwh
    # Its shape: August evenings dear, April middays cheap; a few scarcity hours.
    assert p[(month == 8) & (hour == 19)].mean() > 3 * p[(month == 4) & (hour == 12)].mean()
    assert p.max() >= 200.0
    assert 10 <= int((p >= 200).sum()) <= 40


def test_event_overlay_uri() -> None:
    s = PriceSeries.load()
    uri = s.with_event(start_hour_of_year=24 * 45, hours=77, price_usd_per_mwh=9000.0)
    assert uri.price_usd_per_mwh(24 * 45 * H + 10) == 9000.0
    assert uri.price_usd_per_mwh((24 * 45 + 77) * H) == s.price_usd_per_mwh((24 * 45 + 77) * H)
    window = slice(24 * 45, 24 * 45 + 77)
    added = 77 * 9000.0 - s.usd_per_mwh[window].sum()
    assert uri.mean_usd_per_mwh == pytest.approx(s.mean_usd_per_mwh + added / 8760)
    assert s.mean_usd_per_mwh == pytest.approx(27.33, abs=0.01)  # the original is untouched


def test_load_a_custom_file_and_bad_files(tmp_path: Path) -> None:
    good = tmp_path / "p.csv"
    good.write_text("# mine\nhour_of_year,price_usd_per_mwh\n0,5\n1,15\n")
    s = PriceSeries.load(good)
    assert s.cost_usd(np.array([1.0]), np.array([0.0, 2 * H])) == pytest.approx(20.0)
    bad = tmp_path / "bad.csv"
    bad.write_text("hour_of_year,price_usd_per_mwh\n0,5\n1,abc\n")
    with pytest.raises(InputError, match=r"row 2\.price_usd_per_mwh"):
        PriceSeries.load(bad)
    gap = tmp_path / "gap.csv"
    gap.write_text("hour_of_year,price_usd_per_mwh\n0,5\n2,7\n")
    with pytest.raises(InputError, match="hour_of_year"):
        PriceSeries.load(gap)
    with pytest.raises(InputError, match="<file>"):
        PriceSeries.load(tmp_path / "missing.csv")


def test_bad_cost_input_names_the_field() -> None:
    s = _toy()
    with pytest.raises(InputError, match="t_s"):
        s.cost_usd(np.array([1.0, 2.0]), np.array([0.0, 2 * H, H]))  # decreasing
    with pytest.raises(InputError, match="t_s"):
        s.cost_usd(np.array([1.0, 2.0]), np.array([0.0]))
    with pytest.raises(InputError, match="power_mw"):
        s.cost_usd(np.array([np.nan]), np.array([0.0, H]))
    with pytest.raises(InputError, match="t_s"):
        s.price_usd_per_mwh(np.array([np.inf]))
