"""A test-time guard for the scheduler's read-only views.

`Snapshot`, `Start` (scheduler/snapshot.py), `Allocation` (scheduler/capacity.py), `PowerView`,
`Grant` (scheduler/power.py) and `CapJob` (scheduler/cap_solver.py) are plain
`@dataclass(slots=True)`, not frozen: a frozen __init__ sets every field through
object.__setattr__, 3-4x the cost, and the twin builds one Snapshot per pass and one Start per
start. "Policies only read them" is a rule the code keeps, not one the type enforces; `guard`
enforces it for the length of a test by giving each class a __setattr__ that refuses to re-assign a
field already set (with slots a field is unset, so `hasattr` is False, until __init__ sets it) and
a __delattr__ that refuses to delete one.

`PowerView`'s containers are the driver's own books handed over for reading (the solver's
`target` levels, the per-hall and per-node budgets): under the guard each is wrapped at
construction in a read-only live view (`ReadOnlyDict`, `ReadOnlyList`), so a policy's write
into one (`view.target[k] = ...`) fails too, while the driver's own later writes still show. The
other views' containers (a Start's placement tuple, a Grant's `halls_w` that admission builds for
the driver) are tuples or the policy's own output.

The compiled core (CORTEX_COMPILED=1) makes these native classes whose __setattr__ cannot be
replaced, and whose compiled code would not call it: `guard` then skips the test.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any, overload

import pytest

from cortex.scheduler import cap_solver, capacity, power, snapshot

# Every view class, with the fields a driver may write after construction: the twin sets a
# kept PowerView's three headroom fields again between passes (PowerRuntime.pass_view; a
# policy's write to one is not seen by the guard, and changes nothing its pass reads: the
# Statement copies them when it is built). The runs listed in tests/unit/test_frozen_views.py
# assign nothing else after __init__.
GUARDED: dict[type, frozenset[str]] = {
    snapshot.Snapshot: frozenset(),
    snapshot.Start: frozenset(),
    capacity.Allocation: frozenset(),
    power.PowerView: frozenset({"site_headroom_w", "hall_headroom_w", "ramp_headroom_w"}),
    power.Grant: frozenset(),
    cap_solver.CapJob: frozenset(),
}


# The fields whose dict or list is wrapped read-only at construction (see the module's note).
WRAPPED: dict[type, frozenset[str]] = {
    power.PowerView: frozenset(
        {"target", "hall_headroom_w", "idle_w", "tdp_w", "node_hall", "node_max_cap_w"}
    ),
}


class ViewWriteError(AttributeError):
    """A field of a read-only view was re-assigned or deleted after construction."""


class ReadOnlyDict(Mapping[Any, Any]):
    """A live read-only view of a dict. Not `types.MappingProxyType`: that one cannot be copied or
    pickled, and tests deep-copy views to check that a cycle left them as they were."""

    __slots__ = ("_items",)

    def __init__(self, items: dict[Any, Any]) -> None:
        self._items = items

    def __getitem__(self, key: Any) -> Any:
        return self._items[key]

    def __iter__(self) -> Iterator[Any]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)


class ReadOnlyList(Sequence[Any]):
    """A live read-only view of a list (the standard library has none)."""

    __slots__ = ("_items",)

    def __init__(self, items: list[Any]) -> None:
        self._items = items

    @overload
    def __getitem__(self, i: int) -> Any: ...
    @overload
    def __getitem__(self, i: slice) -> list[Any]: ...
    def __getitem__(self, i: int | slice) -> Any:
        return self._items[i]

    def __len__(self) -> int:
        return len(self._items)

    def __eq__(self, other: object) -> bool:
        return list(self) == (list(other) if isinstance(other, Sequence) else other)

    __hash__ = None  # type: ignore[assignment]


def _read_only(value: object) -> object:
    if isinstance(value, dict):
        return ReadOnlyDict(value)
    if isinstance(value, list):
        return ReadOnlyList(value)
    return value


def _setattr(allowed: frozenset[str], wrapped: frozenset[str]) -> Any:
    def refuse_set(self: object, name: str, value: object) -> None:
        if name not in allowed and hasattr(self, name):
            raise ViewWriteError(
                f"{type(self).__name__}.{name} re-assigned after construction "
                "(views are read-only: build a new one, e.g. dataclasses.replace)"
            )
        object.__setattr__(self, name, _read_only(value) if name in wrapped else value)

    return refuse_set


def _delattr(allowed: frozenset[str]) -> Any:
    def refuse_del(self: object, name: str) -> None:
        if name not in allowed:
            raise ViewWriteError(f"{type(self).__name__}.{name} deleted after construction")
        object.__delattr__(self, name)

    return refuse_del


def compiled() -> bool:
    """Whether the view classes come from the compiled core (native: no guard possible)."""
    return not snapshot.__file__.endswith(".py")


def guard(monkeypatch: pytest.MonkeyPatch) -> None:
    """Guard every view class until `monkeypatch` is undone (the end of the test)."""
    if compiled():
        pytest.skip("the compiled core's classes are native: their writes cannot be guarded")
    for cls, allowed in GUARDED.items():
        wrapped = WRAPPED.get(cls, frozenset())
        monkeypatch.setattr(cls, "__setattr__", _setattr(allowed, wrapped))
        monkeypatch.setattr(cls, "__delattr__", _delattr(allowed))


class WritesSnapshot:
    """A wrong ordering policy for the guard's own tests: `inner`'s order, after a write to the
    snapshot it was given (a no-op write, still a write: only the guard sees it)."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.name = inner.name

    def __getattr__(self, name: str) -> Any:  # level, thresholds_gpu_s, ... of `inner`
        return getattr(self.inner, name)

    def key(self, job: Any) -> tuple[Any, ...]:
        return self.inner.key(job)  # type: ignore[no-any-return]

    def order(self, snap: snapshot.Snapshot) -> Iterator[Any]:
        snap.now_s = snap.now_s
        return self.inner.order(snap)  # type: ignore[no-any-return]
