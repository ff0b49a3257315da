"""Fleet files: a site, its halls, and groups of identical nodes, validated with pydantic.

A fleet of 100,000 GPUs is a few lines of YAML: each group says how many nodes of one flavor a
hall holds and how they are cut into pods (network blocks) and racks. `topology.build` expands it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from importlib import resources
from pathlib import Path
from typing import Annotated, Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from cortex import yamlfiles
from cortex.errors import InputError, from_validation_error, read_text
from cortex.fleet.catalog import load_catalog

# YAML `true` is not 1. At most a million: 10**12 nodes hung `cortex sim` building them.
PositiveInt = Annotated[int, Field(gt=0, le=1_000_000, strict=True)]
# A finite positive number (`.inf` for a site cap was taken, and modelled no cap at all).
PositiveFloat = Annotated[float, Field(gt=0, allow_inf_nan=False)]
Label = Annotated[str, Field(min_length=1, max_length=253)]  # a pod or rack name
MAX_LABELLED_NODES = 1_000_000
NonNegFloat = Annotated[float, Field(ge=0)]


class _Strict(BaseModel):
    # Every number finite, as the control plane's models have it (a site cap or a borrowing
    # limit of .inf was taken).
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class NodeGroup(_Strict):
    """`nodes` identical nodes of one flavor, cut into pods of `nodes_per_pod` (the last pod may
    be partial) and racks of `nodes_per_rack`."""

    flavor: str
    nodes: PositiveInt
    # At most 1,024 (a node here is an HGX board, an NVL72 tray of 4, a Dojo tile of 25): 8
    # nodes of 1,000,000 GPUs ran for minutes on a 30-minute horizon (the twin's cost grows
    # with the jobs one node holds) and a million was accepted.
    gpus_per_node: Annotated[int, Field(gt=0, le=1024, strict=True)] = 8
    nodes_per_pod: PositiveInt = 32
    nodes_per_rack: PositiveInt = 4
    node_overhead_w: NonNegFloat | None = Field(
        default=None, description="override the catalog's per-node overhead (CPUs, NICs, fans)"
    )
    # An executor's fleet (node labels): each node's pod and rack, in order. Nodes of one
    # flavor in a hall with the same pod name share a pod, whichever group lists them (a node
    # that joined later comes in a later group), and a rack is named within its pod; the
    # nodes_per_* cuts are then not used. None: cut into nodes_per_pod and nodes_per_rack.
    pods: Annotated[list[Label], Field(max_length=MAX_LABELLED_NODES)] | None = None
    racks: Annotated[list[Label], Field(max_length=MAX_LABELLED_NODES)] | None = None

    @model_validator(mode="after")
    def _one_label_per_node(self) -> NodeGroup:
        if (self.pods is None) != (self.racks is None):
            raise ValueError("give pods and racks together")
        pods, racks = self.pods or [], self.racks or []
        if self.pods is not None and {len(pods), len(racks)} != {self.nodes}:
            raise ValueError(
                f"pods and racks need one name per node ({self.nodes}), "
                f"got {len(pods)} and {len(racks)}"
            )
        return self


class HallSpec(_Strict):
    """A hall: one power and cooling domain."""

    name: Annotated[str, Field(min_length=1)]
    cooling_mw: PositiveFloat | None = None
    power_cap_mw: PositiveFloat | None = None
    groups: Annotated[list[NodeGroup], Field(min_length=1)]


class SiteSpec(_Strict):
    """The site: its name, power budget (enforced by power policies, later) and PUE."""

    name: str = "site"
    power_cap_mw: PositiveFloat | None = None
    # At most 3, as a plan's halls take (planner/spec.py): a PUE of 1e9 drew 62 million MW.
    pue: Annotated[float, Field(ge=1.0, le=3.0, allow_inf_nan=False)] = 1.2
    pue_source: str = ""


class FlavorQuotaSpec(_Strict):
    """One flavor's quota in a queue (a flavor of a Kueue resource group): a share of the
    flavor's GPUs or a GPU count, for the nominal quota and the borrowing limit each."""

    nominal_share: Annotated[float, Field(ge=0, le=1)] | None = None
    nominal_gpus: Annotated[int, Field(ge=0, strict=True)] | None = None
    borrowing_limit_share: Annotated[float, Field(ge=0)] | None = None
    borrowing_limit_gpus: Annotated[int, Field(ge=0, strict=True)] | None = None

    @model_validator(mode="after")
    def _one_of_each(self) -> FlavorQuotaSpec:
        if self.nominal_share is not None and self.nominal_gpus is not None:
            raise ValueError("give nominal_share or nominal_gpus, not both")
        if self.borrowing_limit_share is not None and self.borrowing_limit_gpus is not None:
            raise ValueError("give borrowing_limit_share or borrowing_limit_gpus, not both")
        return self


class ClusterQueueSpec(_Strict):
    """A team's queue (Kueue ClusterQueue): nominal quota and borrowing limit per flavor.

    Shares are fractions of each flavor's GPUs; `nominal_gpus` and `flavor_quotas` override
    them per flavor (`flavor_quotas` wins). A borrowing limit of None lets the queue borrow
    all the cohort's unused quota.
    """

    name: Annotated[str, Field(min_length=1, pattern=r"^[a-z0-9][a-z0-9_-]*$")]
    nominal_share: Annotated[float, Field(ge=0, le=1)] = 0.0
    nominal_gpus: dict[str, Annotated[int, Field(ge=0, strict=True)]] = Field(default_factory=dict)
    borrowing_limit_share: Annotated[float, Field(ge=0)] | None = None
    weight: PositiveFloat = 1.0
    flavor_quotas: dict[str, FlavorQuotaSpec] = Field(
        default_factory=dict, description="per-flavor nominal quota and borrowing limit"
    )
    min_runtime_s: NonNegFloat | None = Field(
        default=None,
        description="a job of this queue runs at least this long before it may be preempted "
        "(None: the queues' min_runtime_s)",
    )
    preemption_budget: Annotated[int, Field(ge=0, le=1_000_000, strict=True)] | None = Field(
        default=None,
        description="the most times one job of this queue may be preempted (None: no limit); "
        "past it the job is no longer a victim",
    )


class QueuesSpec(_Strict):
    """Cluster queues in one cohort, the priority classes, and the preemption floor."""

    cohort: str = "default"
    priority_classes: dict[str, int] = Field(
        default_factory=lambda: {"production": 1000, "normal": 100, "preemptible": 10}
    )
    # The twin's floor: ten minutes, the scale of a large gang's restart (sim/data/defaults.csv
    # restart_overhead_s, 600 s), so a fleet of big jobs does not preempt one before its start
    # has paid off. The control plane's default is 60 s (drive/data/run_rules.csv,
    # control.min_runtime_s: small jobs that start in seconds, a user waiting on the preemptor);
    # the fleet layer reads no driver's data, so the two are kept apart on purpose.
    min_runtime_s: NonNegFloat = 600.0
    cluster_queues: Annotated[list[ClusterQueueSpec], Field(min_length=1)]

    @model_validator(mode="after")
    def _shares_fit(self) -> QueuesSpec:
        total = sum(q.nominal_share for q in self.cluster_queues)
        if total > 1.0 + 1e-9:
            raise ValueError(f"nominal_share sums to {total:.3f}, more than 1")
        names = [q.name for q in self.cluster_queues]
        if len(set(names)) != len(names):
            raise ValueError("cluster queue names must be unique")
        return self


class FleetSpec(_Strict):
    """A whole fleet file."""

    name: Annotated[str, Field(min_length=1)]
    description: str = ""
    site: SiteSpec = SiteSpec()
    storage_write_gbps: PositiveFloat = Field(
        default=2000.0, description="checkpoint write bandwidth (Llama 3: 2 TB/s sustained)"
    )
    halls: Annotated[list[HallSpec], Field(min_length=1)]
    queues: QueuesSpec | None = None


PRESETS = (
    "cortex-2024",
    "colossus-memphis",
    "dojo-buffalo",
    "cortex-2026",
    "llama3-16k",
    "philly-48x4",
    "tiny",
)


def _check_flavors(spec: FleetSpec, source: str) -> None:
    catalog = load_catalog()
    per_flavor_gpn: dict[str, int] = {}
    for h, hall in enumerate(spec.halls):
        for g, grp in enumerate(hall.groups):
            where = f"halls[{h}].groups[{g}]"
            if grp.flavor not in catalog:
                known = ", ".join(sorted(catalog))
                raise InputError(
                    source, f"{where}.flavor", f"unknown flavor {grp.flavor!r} (known: {known})"
                )
            seen = per_flavor_gpn.setdefault(grp.flavor, grp.gpus_per_node)
            if seen != grp.gpus_per_node:
                raise InputError(
                    source,
                    f"{where}.gpus_per_node",
                    f"{grp.flavor} nodes must all have the same size ({seen} elsewhere)",
                )
    names = [h.name for h in spec.halls]
    if len(set(names)) != len(names):
        raise InputError(source, "halls", "hall names must be unique")
    if spec.queues:
        for i, q in enumerate(spec.queues.cluster_queues):
            for fl in q.nominal_gpus:
                if fl not in per_flavor_gpn:
                    raise InputError(
                        source,
                        f"queues.cluster_queues[{i}].nominal_gpus",
                        f"flavor {fl!r} is not in this fleet",
                    )
            for fl in q.flavor_quotas:
                if fl not in per_flavor_gpn:
                    raise InputError(
                        source,
                        f"queues.cluster_queues[{i}].flavor_quotas.{fl}",
                        f"flavor {fl!r} is not in this fleet ({', '.join(per_flavor_gpn)})",
                    )
        _check_flavor_shares(spec, source)


def _flavor_gpus(spec: FleetSpec) -> dict[str, int]:
    out: dict[str, int] = {}
    for hall in spec.halls:
        for g in hall.groups:
            out[g.flavor] = out.get(g.flavor, 0) + g.nodes * g.gpus_per_node
    return out


def _check_flavor_shares(spec: FleetSpec, source: str) -> None:
    assert spec.queues is not None
    check_flavor_shares(spec.queues.cluster_queues, _flavor_gpus(spec), source)


def check_flavor_shares(
    queues: Sequence[ClusterQueueSpec], flavor_gpus: Mapping[str, int], source: str
) -> None:
    """Per flavor that some queue gives a flavor quota, the queues' nominal quotas may not add
    up to more than the flavor holds. A queue's quota there is its flavor_quotas entry, else its
    nominal_gpus entry, else its nominal_share. The fleet files and the control plane's quota
    edits both check through here."""
    for fl, total in flavor_gpus.items():
        if total <= 0 or not any(fl in q.flavor_quotas for q in queues):
            continue
        acc = 0.0
        for i, q in enumerate(queues):
            fq = q.flavor_quotas.get(fl)
            if fq is not None and fq.nominal_share is not None:
                acc += fq.nominal_share
                field = f"flavor_quotas.{fl}.nominal_share"
            elif fq is not None and fq.nominal_gpus is not None:
                acc += fq.nominal_gpus / total
                field = f"flavor_quotas.{fl}.nominal_gpus"
            elif fl in q.nominal_gpus:
                acc += q.nominal_gpus[fl] / total
                field = "nominal_gpus"
            else:
                acc += q.nominal_share
                field = "nominal_share"
            if acc > 1.0 + 1e-9:
                raise InputError(
                    source,
                    f"queues.cluster_queues[{i}].{field}",
                    f"nominal quotas of {fl} add up to {acc * total:g} of its {total} GPUs "
                    f"(a share of {acc:.3f}), more than it holds",
                )


def parse_fleet(data: Any, source: str) -> FleetSpec:
    """Validate parsed YAML into a FleetSpec, or raise InputError naming the field."""
    if not isinstance(data, dict):
        raise InputError(source, "<root>", "a fleet file must be a mapping")
    try:
        spec = FleetSpec.model_validate(data)
    except ValidationError as err:
        raise from_validation_error(source, err) from None
    _check_flavors(spec, source)
    return spec


def load_fleet_spec(preset_or_path: str | Path) -> FleetSpec:
    """Load a preset by name (e.g. `cortex-2024`) or a fleet YAML file by path."""
    name = str(preset_or_path)
    if name in PRESETS:
        text = resources.files("cortex.fleet").joinpath(f"presets/{name}.yaml").read_text()
        source = f"preset {name}"
    else:
        path = Path(name)
        if not path.exists():
            raise InputError(
                name, "<file>", f"no such file, and not a preset ({', '.join(PRESETS)})"
            )
        text = read_text(path, name)
        source = name
    try:
        data = yamlfiles.load(text)  # YAML 1.2's booleans: `on` is not True
    except yaml.YAMLError as err:
        raise InputError(source, "<yaml>", str(err).splitlines()[0]) from None
    return parse_fleet(data, source)
