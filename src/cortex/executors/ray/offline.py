"""The Ray executor while its cluster cannot be reached: the last fleet it read (saved at each
discover(), so a restarted service can serve with it, every node down) and the backoff of its
reconnection attempts (1 s doubling to 30 s, each a quick TCP probe before ray.init)."""

from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict
from pathlib import Path

from cortex.executors.local.rundir import write_json_atomic
from cortex.executors.nodes import NodeInfo

log = logging.getLogger(__name__)

FLEET_FILE = "ray-fleet.json"
FIRST_S = 1.0
MAX_S = 30.0


def save_fleet(root: Path, nodes: list[NodeInfo]) -> None:
    write_json_atomic(root / FLEET_FILE, {"nodes": [asdict(n) for n in nodes]}, durable=False)


def load_fleet(root: Path) -> list[NodeInfo] | None:
    """The last fleet read from the cluster, every node down; None without one (or a file
    that is not ours)."""
    try:
        data = json.loads((root / FLEET_FILE).read_text())
        nodes = [NodeInfo(**{**n, "alive": False}) for n in data["nodes"]]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return nodes or None


class Backoff:
    """When the next reconnection attempt is due (monotonic), doubling after each failure."""

    def __init__(self) -> None:
        self.delay = FIRST_S
        self.next_at = 0.0

    def due(self) -> bool:
        return time.monotonic() >= self.next_at

    def later(self) -> None:
        """The next attempt after the current delay (the caller said why, once)."""
        self.next_at = time.monotonic() + self.delay
        self.delay = min(self.delay * 2, MAX_S)

    def failed(self, address: str | None, err: BaseException) -> None:
        first = (str(err).strip().splitlines() or [type(err).__name__])[0][:300]
        log.error("ray: cluster %s not usable: %s; retrying in %g s", address, first, self.delay)
        self.later()
