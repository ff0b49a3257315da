"""The throughput table: complete, referenced to H100, sourced, and strict about unknowns."""

from __future__ import annotations

from pathlib import Path

import pytest

from cortex.errors import InputError
from cortex.fleet.catalog import load_catalog
from cortex.workload.spec import WorkloadKind
from cortex.workload.throughput import REFERENCE_FLAVOR, ThroughputTable

HEADER = "kind,flavor,speed,confidence,source\n"


def test_shipped_table_covers_every_kind_and_catalog_flavor() -> None:
    table = ThroughputTable.load()
    assert set(table.kinds()) == {k.value for k in WorkloadKind}
    assert set(table.flavors()) == set(load_catalog())
    for kind in table.kinds():
        for flavor in table.flavors():
            assert table.speed(kind, flavor) > 0


def test_reference_flavor_is_one_for_every_kind() -> None:
    table = ThroughputTable.load()
    for kind in table.kinds():
        assert table.speed(kind, REFERENCE_FLAVOR) == 1.0


def test_every_non_reference_row_is_derived_and_states_its_rule() -> None:
    table = ThroughputTable.load()
    for kind in table.kinds():
        for flavor in table.flavors():
            row = table.row(kind, flavor)
            assert row.source
            if flavor != REFERENCE_FLAVOR:
                assert row.confidence == "D"
                assert row.source.startswith("[D]")


def test_speeds_follow_the_hardware() -> None:
    table = ThroughputTable.load()
    for kind in table.kinds():
        h200 = table.speed(kind, "H200-SXM")
        assert 1.0 < h200 < 4.8 / 3.35  # same compute, more bandwidth: gains, bounded
        assert table.speed(kind, "B200-HGX") > h200
        assert table.speed(kind, "Dojo-D1") < 362 / 989  # per chip, penalized
    # H200 helps memory-bound eval most, compute-bound LLM training least
    assert table.speed("eval", "H200-SXM") > table.speed("fsd-video", "H200-SXM")
    assert table.speed("fsd-video", "H200-SXM") > table.speed("llm", "H200-SXM")


def test_load_is_cached() -> None:
    assert ThroughputTable.load() is ThroughputTable.load()


@pytest.mark.parametrize(
    ("kind", "flavor", "needle"),
    [("no-such-kind", "H100-SXM5", "no-such-kind"), ("llm", "TPU-v5", "TPU-v5")],
)
def test_unknown_kind_or_flavor_raises_key_error_naming_it(
    kind: str, flavor: str, needle: str
) -> None:
    table = ThroughputTable.load()
    with pytest.raises(KeyError, match=needle):
        table.speed(kind, flavor)
    with pytest.raises(KeyError, match=needle):
        table.row(kind, flavor)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ("llm,H100-SXM5,abc,ref,x\n", "row 2: speed"),
        ("llm,H100-SXM5,-1,ref,x\n", "row 2: speed"),
        ("llm,H100-SXM5,1.2,ref,x\n", "row 2: speed"),
        ("llm,H100-SXM5,1.0,ref,\n", "row 2: source"),
        ("llm,H100-SXM5,1.0,ref,x\nllm,H100-SXM5,1.0,ref,x\n", "row 3: flavor"),
        ("llm,H100-SXM5,1.0,ref,x\nllm,H200-SXM,1.1,D,x\neval,H100-SXM5,1.0,ref,x\n", "flavor"),
    ],
)
def test_bad_table_raises_input_error(tmp_path: Path, body: str, field: str) -> None:
    path = tmp_path / "t.csv"
    path.write_text(HEADER + body)
    with pytest.raises(InputError) as err:
        ThroughputTable.from_csv(path)
    assert err.value.source == str(path)
    assert err.value.field == field


def test_missing_column_raises_input_error(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_text("kind,flavor,speed,source\nllm,H100-SXM5,1.0,x\n")
    with pytest.raises(InputError, match="confidence"):
        ThroughputTable.from_csv(path)


def test_custom_table_round_trips(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_text(HEADER + "llm,H100-SXM5,1.0,ref,def\nllm,H200-SXM,1.25,S,bench\n")
    table = ThroughputTable.from_csv(path)
    assert table.speed("llm", "H200-SXM") == 1.25
    assert table.kinds() == ("llm",)
    assert table.flavors() == ("H100-SXM5", "H200-SXM")
