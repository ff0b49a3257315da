"""A real multi-node Ray cluster on loopback for tests and benchmarks (shared/STACK.md): a
head without GPUs or Cortex labels (so the fleet must leave it out), and worker nodes with
fake GPUs, each on its own 127.0.0.x address and labelled `cortex.node`."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from typing import Any

# Fast node-failure detection (about 2 s instead of about 14 s), and no usage reporting. Set
# before the cluster starts: the GCS and raylets read them at start.
RAY_ENV = {
    "RAY_USAGE_STATS_ENABLED": "0",
    "RAY_health_check_period_ms": "500",
    "RAY_health_check_failure_threshold": "4",
    "RAY_health_check_timeout_ms": "500",
    "RAY_health_check_initial_delay_ms": "0",
}
GPUS_PER_NODE = 8


class LoopbackCluster:
    def __init__(self, gcs_port: int | None = None) -> None:
        # Restored at shutdown: later tests of the session must not inherit them.
        self._saved = {k: os.environ.get(k) for k in (*RAY_ENV, "RAY_TMPDIR")}
        os.environ.update(RAY_ENV)
        # Short: Ray puts Unix sockets under it (108-byte limit); private: several engineers
        # run clusters on this machine, and Ray's default /tmp/ray would be shared.
        self.tmp = tempfile.mkdtemp(prefix="cxray", dir="/tmp")
        os.makedirs(os.path.join(self.tmp, "ray"), exist_ok=True)
        os.environ["RAY_TMPDIR"] = self.tmp
        from ray.cluster_utils import Cluster

        self._next_ip = 3
        self.nodes: dict[str, Any] = {}
        head: dict[str, Any] = {
            "num_cpus": 1,
            "num_gpus": 0,
            "node_ip_address": "127.0.0.2",
            "include_dashboard": False,
        }
        if gcs_port is not None:  # a head that comes back where the service looks for it
            head["gcs_server_port"] = gcs_port
        self.cluster = Cluster(initialize_head=True, head_node_args=head)

    @property
    def address(self) -> str:
        return str(self.cluster.address)

    def add(self, name: str, gpus: int = GPUS_PER_NODE, **labels: str) -> Any:
        ip = f"127.0.0.{self._next_ip}"
        self._next_ip += 1
        node = self.cluster.add_node(
            num_cpus=2,
            num_gpus=gpus,
            node_ip_address=ip,
            labels={"cortex.node": name, **labels},
        )
        self.nodes[name] = node
        return node

    def add_unlabelled(self) -> Any:
        ip = f"127.0.0.{self._next_ip}"
        self._next_ip += 1
        return self.cluster.add_node(num_cpus=1, num_gpus=2, node_ip_address=ip)

    def kill(self, name: str) -> None:
        """Lose a node at once (no graceful drain), as a machine that dies."""
        self.cluster.remove_node(self.nodes.pop(name), allow_graceful=False)

    def kill_all(self) -> None:
        """Lose the whole cluster at once, head included (no graceful drain)."""
        for node in list(self.cluster.worker_nodes):
            self.cluster.remove_node(node, allow_graceful=False)
        self.nodes.clear()
        if self.cluster.head_node is not None:
            self.cluster.remove_node(self.cluster.head_node, allow_graceful=False)

    def shutdown(self) -> None:
        import ray

        with contextlib.suppress(Exception):
            ray.shutdown()
        with contextlib.suppress(Exception):
            self.cluster.shutdown()
        shutil.rmtree(self.tmp, ignore_errors=True)
        for k, v in self._saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def wait_for(pred: Callable[[], Any], timeout_s: float = 60.0, every_s: float = 0.05) -> Any:
    """pred()'s first truthy value; AssertionError after timeout_s."""
    end = time.monotonic() + timeout_s
    while True:
        got = pred()
        if got:
            return got
        if time.monotonic() > end:
            raise AssertionError(f"timed out after {timeout_s} s")
        time.sleep(every_s)
