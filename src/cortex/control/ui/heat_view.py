"""The heatmap's temperature colorings. `temp`: each node's GPU temperature (measured through
NVML where the service reads its GPUs, else modelled from its draw: control/node_temps.py).
`cooling`, from the facility model: what the cooling model
(power/cooling.py) does say, per hall, is how much of its plant's heat rejection the hall
uses at the outdoor temperature in force: its modelled IT draw (idle base, the running jobs'
increments and the jobs still exiting, as the power page books them) over
`CoolingModel.cooling_capacity_w(rated, outdoor)`, which derates as it gets hotter. Each node
shows its hall's figure; a hall with no rated cooling has none (NO_LIMIT)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from cortex.control.node_temps import node_temps_c
from cortex.control.ui.power_view import hall_rows, node_gpu_w
from cortex.control.ui.views import USED_DOWN, USED_MAX

NO_LIMIT = 254  # the node's hall has no rated cooling in the fleet spec


def hall_cooling_share(loop: Any, topo: Any = None) -> tuple[list[float], float]:
    """Per hall of `topo` (the loop's by default), its modelled heat over what its plant
    rejects now (nan: no rated cooling), and the outdoor temperature used."""
    power = loop.power
    b = power.books
    temp = power.report().outdoor_temp_c
    rows = hall_rows(loop.topo if topo is None else topo, b, temp, dict(power.draining))
    out = []
    for h, row in enumerate(rows):
        cap = b.cooling.cooling_capacity_w(b.hall_cooling_w[h], temp)
        heat = row.drawing_w + row.draining_w
        out.append(heat / cap if 0 < cap < math.inf else math.nan)
    return out, temp


def node_cooling(loop: Any, down: np.ndarray) -> tuple[np.ndarray, float]:
    """One byte per node: its hall's cooling share, 0..USED_MAX (at or over capacity:
    USED_MAX), NO_LIMIT without rated cooling, USED_DOWN where `down`; and the outdoor
    temperature."""
    topo = loop.topo  # one topology for the halls and the nodes (a join may swap it)
    share, temp = hall_cooling_share(loop, topo)
    per_hall = np.array(
        [NO_LIMIT if math.isnan(s) else round(min(max(s, 0.0), 1.0) * USED_MAX) for s in share],
        dtype=np.uint8,
    )
    # A join sets the topology before the tick rebuilds the states (`down`): the nodes both
    # cover (the fleet only grows, so they keep their indices).
    size = min(topo.n_nodes, len(down))
    out = per_hall[np.asarray(topo.node_hall, dtype=np.int64)[:size]]
    out[down[:size]] = USED_DOWN
    return out, temp


TEMP_MAX_C = 200  # the temperature snapshot's range: whole degrees C, 0..TEMP_MAX_C


def node_temp(loop: Any, down: np.ndarray) -> tuple[np.ndarray, int]:
    """One byte per node: its GPU temperature in whole degrees C (control/node_temps.py:
    measured where NVML reads it, else modelled from its draw), USED_DOWN where `down`; and
    how many nodes are measured."""
    watts, gpn, _ = node_gpu_w(loop)
    size = min(len(watts), len(down))  # a join between the reads: the nodes both cover
    temps, measured = node_temps_c(loop, watts[:size] / gpn[:size])
    out = np.rint(np.clip(temps, 0.0, TEMP_MAX_C)).astype(np.uint8)
    out[down[:size]] = USED_DOWN
    return out, int(np.count_nonzero(measured & ~down[:size]))
