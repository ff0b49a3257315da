"""The optional compiled core: where `python -m cortex.compile` puts it, and whether to use it.

Cortex is pure Python; `python -m cortex.compile` (an opt-in step that needs mypyc and a C
compiler) compiles the typed hot modules (the scheduler core, the twin's loop) into extension
modules in a build directory outside the source tree. They are used only when the environment
asks for them (`CORTEX_COMPILED=1`) AND the build's manifest matches this interpreter and the
exact bytes of every compiled module's source. Anything else (no build, another Python, one
edited `.py` file) runs the pure-Python modules, with one line on stderr saying why.

Why all-or-nothing: mypyc compiles the modules as one group whose calls between modules are
direct C calls, so a single stale module cannot be swapped for its source alone.
Why a meta-path finder and not `.so` files next to the sources: Python's import prefers an
extension module over the `.py` beside it unconditionally, so a user who edited a source after
compiling would silently run the old code; here the check runs on every start.

This module is imported by `cortex/__init__.py` only when `CORTEX_COMPILED` is set; it uses the
standard library only (it runs before anything else of cortex is imported).
"""

from __future__ import annotations

import hashlib
import importlib.machinery
import importlib.util
import json
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from importlib.machinery import ModuleSpec
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mypy_extensions import mypyc_attr
else:
    # mypyc reads `mypyc_attr` at compile time; mypy_extensions ships with mypy, not with
    # Cortex, so at run time (pure or compiled) the decorator is this no-op.
    def mypyc_attr(*_: Any, **__: Any) -> Any:
        return lambda cls: cls


__all__ = ["mypyc_attr"]

ENV = "CORTEX_COMPILED"  # "1": use the compiled core when it is current
DIR_ENV = "CORTEX_COMPILED_DIR"  # where the build lives (default: a per-checkout cache dir)
MANIFEST = "manifest.json"
GROUP = "cortex_native"  # mypyc's shared library of the group: `cortex_native__mypyc`
FORMAT = 1  # manifest layout version

PACKAGE_DIR = Path(__file__).resolve().parent  # .../cortex


def build_dir() -> Path:
    """Where the compiled core of this checkout (or install) lives: `$CORTEX_COMPILED_DIR`, or
    a cache directory keyed by this package's path, so two checkouts never share a build."""
    explicit = os.environ.get(DIR_ENV)
    if explicit:
        return Path(explicit)
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    key = hashlib.sha256(str(PACKAGE_DIR).encode()).hexdigest()[:12]
    return cache / "cortex" / "compiled" / key


def source_hash(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def module_source(name: str, package_dir: Path = PACKAGE_DIR) -> Path:
    """`cortex.scheduler.state` -> <package_dir>/scheduler/state.py."""
    parts = name.split(".")
    if parts[0] != "cortex" or len(parts) < 2 or not all(p.isidentifier() for p in parts):
        raise ValueError(f"not a cortex module: {name}")
    return package_dir.joinpath(*parts[1:]).with_suffix(".py")


def interpreter_tag() -> dict[str, str]:
    """What a build must match besides its sources: the interpreter and its extension ABI."""
    return {
        "cache_tag": str(sys.implementation.cache_tag),
        "ext_suffix": importlib.machinery.EXTENSION_SUFFIXES[0],
    }


@dataclass(frozen=True)
class Build:
    """A manifest read back: the compiled modules and where their extension files are."""

    lib_dir: Path
    modules: dict[str, str]  # module name -> sha256 of the source it was compiled from
    group: str


def read_manifest(directory: Path) -> Build | str:
    """The build in `directory`, or why there is none that can be used."""
    path = directory / MANIFEST
    if not path.is_file():
        return f"no compiled core in {directory}"
    try:
        data = json.loads(path.read_text())
        modules = data["modules"]
        ok = (
            data["format"] == FORMAT
            and isinstance(modules, dict)
            and all(isinstance(k, str) and isinstance(v, str) for k, v in modules.items())
        )
    except (OSError, ValueError, KeyError, TypeError):
        ok = False
    if not ok:
        return f"unreadable manifest {path}"
    if data.get("interpreter") != interpreter_tag():
        return f"built for another Python ({data.get('interpreter')})"
    return Build(lib_dir=directory / "lib", modules=dict(modules), group=str(data["group"]))


def stale_reason(build: Build, package_dir: Path = PACKAGE_DIR) -> str | None:
    """None when every compiled module's source is byte-for-byte what was compiled, and every
    extension file is there; otherwise the first difference found."""
    for name, digest in sorted(build.modules.items()):
        try:
            src = module_source(name, package_dir)
            current = source_hash(src)
        except (OSError, ValueError):
            return f"{name}: source missing"
        if current != digest:
            return f"{src} changed since it was compiled"
        if not extension_path(build, name).is_file():
            return f"{name}: compiled file missing"
    if not extension_path(build, build.group + "__mypyc").is_file():
        return "the group library is missing"
    return None


def extension_path(build: Build, name: str) -> Path:
    return build.lib_dir.joinpath(*name.split(".")).with_name(
        name.rsplit(".", 1)[-1] + importlib.machinery.EXTENSION_SUFFIXES[0]
    )


class CompiledFinder:
    """Serves exactly the modules of a current build (and mypyc's group library) from their
    extension files; every other import falls through to the normal finders."""

    def __init__(self, build: Build) -> None:
        self.build = build
        self.names = set(build.modules) | {build.group + "__mypyc"}

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> ModuleSpec | None:
        if fullname not in self.names:
            return None
        return importlib.util.spec_from_file_location(
            fullname, extension_path(self.build, fullname)
        )


def installed() -> CompiledFinder | None:
    return next((f for f in sys.meta_path if isinstance(f, CompiledFinder)), None)


def install(
    directory: Path | None = None, quiet: bool = False, package_dir: Path = PACKAGE_DIR
) -> str | None:
    """Put the compiled core in front of the pure modules if it is current. Returns None when
    installed, else the reason it was not (also written to stderr unless `quiet`)."""
    if installed() is not None:
        return None
    found = read_manifest(directory or build_dir())
    reason = found if isinstance(found, str) else stale_reason(found, package_dir)
    if reason is None and isinstance(found, Build):
        loaded = sorted(set(found.modules) & set(sys.modules))
        if loaded:
            reason = f"{loaded[0]} was imported before the compiled core"
        else:
            sys.meta_path.insert(0, CompiledFinder(found))
            return None
    if not quiet:
        sys.stderr.write(f"cortex: running pure Python ({reason}); see python -m cortex.compile\n")
    return reason


def active() -> bool:
    """Whether the compiled core is in use in this process."""
    return installed() is not None
