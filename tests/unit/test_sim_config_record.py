"""The JSON report's `config` names every `cortex sim` option that shapes the run, under the
option's own name, with the value given (or the default it resolved to). It named ten of them:
a run with --checkpoint-write-s, --failure-data, --hot-spares or any power option wrote a
report that could not say so, and looked like one without them."""

from __future__ import annotations

import inspect
import json
import shutil
from importlib import resources

import pytest

from clikit import cortex_batch
from cortex.cli.sim import sim

# Options the config does not hold, and why. Every other parameter of `sim` is a config key.
NOT_RECORDED = {
    "trace": "the workload's label says it: `trace:NAME`",
    "json_path": "an output, not an input",
    "html_path": "an output, not an input",
    "static_path": "an output, not an input",
    "debug": "invariant checks only: the same report with or without",
    "quiet": "the progress bar only",
}
SIM = ["sim", "--fleet", "tiny", "--days", "0.2", "--quiet"]
CURVE = "flavor,cap_over_draw,throughput_kept\n*,0.5,0.6\n*,1.0,1.0\n"
GIVEN = {
    "--seed": "3", "--no-backfill": None, "--failure-scale": "2.5", "--quarantine": None,
    "--hot-spares": "1", "--checkpoint-interval-s": "1800", "--checkpoint-write-s": "45",
    "--backfill-interval-s": "120", "--power-policy": "full", "--site-cap-mw": "0.2",
    "--rack-cap-kw": "80", "--ramp-limit": "0.5", "--battery-mwh": "1", "--battery-mw": "0.5",
    "--battery-efficiency": "0.8", "--cap-event": "1:2:0.15", "--heat-wave": "2:1:5",
    "--start-day": "200",
}  # fmt: skip


@pytest.fixture(scope="module")
def configs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict]:
    d = tmp_path_factory.mktemp("config")
    (d / "curve.csv").write_text(CURVE)
    shipped = resources.files("cortex.sim").joinpath("data/job_failures.csv")
    with resources.as_file(shipped) as src:
        shutil.copy(src, d / "causes.csv")
    flags = [x for k, v in GIVEN.items() for x in ((k,) if v is None else (k, v))]
    cases = {
        "given": [*SIM, *flags, "--failure-data", str(d / "causes.csv"),
                  "--cap-curve", str(d / "curve.csv")],
        "static": [*SIM, "--power-policy", "static", "--static-cap", "0.8",
                   "--temperature-c", "20"],
        "defaults": SIM,
        "off": [*SIM, "--power-policy", "off"],
    }  # fmt: skip
    calls = [([*args, "--json", str(d / f"{name}.json")], d) for name, args in cases.items()]
    for name, proc in zip(cases, cortex_batch(calls), strict=True):
        assert proc.returncode == 0, (name, proc.stderr[-2000:])
    return {name: json.loads((d / f"{name}.json").read_text())["config"] for name in cases}


def test_every_option_that_shapes_a_run_is_a_key_of_the_config(configs: dict) -> None:
    options = set(inspect.signature(sim).parameters) - set(NOT_RECORDED)
    for name, cfg in configs.items():
        missing = options - set(cfg)
        assert not missing, (name, sorted(missing))


def test_the_config_holds_the_values_given(configs: dict) -> None:
    cfg = configs["given"]
    assert (cfg["seed"], cfg["backfill"], cfg["failure_scale"]) == (3, False, 2.5)
    assert (cfg["quarantine"], cfg["hot_spares"]) == (True, 1)
    assert (cfg["checkpoint_interval_s"], cfg["checkpoint_write_s"]) == (1800.0, 45.0)
    assert cfg["backfill_interval_s"] == 120.0
    assert cfg["failure_data"].endswith("causes.csv")
    assert cfg["cap_curve"].endswith("curve.csv")
    assert (cfg["power_policy"], cfg["site_cap_mw"], cfg["rack_cap_kw"]) == ("full", 0.2, 80.0)
    assert (cfg["ramp_limit"], cfg["battery_mwh"], cfg["battery_mw"]) == (0.5, 1.0, 0.5)
    assert cfg["battery_efficiency"] == 0.8
    assert cfg["cap_event"] == [[1.0, 2.0, 0.15]] and cfg["heat_wave"] == [[2.0, 1.0, 5.0]]
    assert cfg["start_day"] == 200 and cfg["temperature_c"] is None
    static = configs["static"]
    assert (static["power_policy"], static["static_cap"]) == ("static", 0.8)
    assert static["temperature_c"] == 20.0


def test_defaults_are_named_as_resolved_or_as_none_where_a_rule_decides(configs: dict) -> None:
    cfg = configs["defaults"]
    assert cfg["backfill_interval_s"] == 60.0  # sim/data/defaults.csv
    assert cfg["checkpoint_write_s"] is None and cfg["failure_data"] is None
    assert (cfg["quarantine"], cfg["hot_spares"], cfg["power_policy"]) == (False, 0, "none")
    assert cfg["start_day"] == 182 and cfg["cap_event"] == []
    off = configs["off"]
    assert off["power_policy"] == "off" and off["start_day"] is None
