"""YAML as the project's files and bodies read it: PyYAML's SafeLoader (plain data only) with
YAML 1.2's booleans. PyYAML implements YAML 1.1, where `yes`, `no`, `on` and `off` are
booleans: a job's `command: [train.py, --amp, on]`, an env value `DEBUG: yes` or a team
called `no` became True/False, which a string field refused with a puzzling message ("valid
string" for a value the user wrote as one) and a boolean field took silently. Here only
`true` and `false` (in the cases PyYAML resolves) are booleans; the rest stay the text
written. One loader for the fleet, job and plan files and the API's YAML bodies
(control/bodies.py subclasses it), so a file means the same wherever it is read.

Files (`load`) also refuse what PyYAML lets through: a key given twice in one mapping (PyYAML
keeps the last, so a fleet file's second `site:` silently replaced the first), and nesting
past MAX_DEPTH (PyYAML's composer recurses per level: a 5,000-deep list in a plan, fleet or
job file was a RecursionError traceback, not an error line)."""

from __future__ import annotations

from typing import Any

import yaml


class Yaml12Loader(yaml.SafeLoader):
    """SafeLoader whose booleans are YAML 1.2's: true and false only."""


def _bool_or_text(loader: yaml.SafeLoader, node: yaml.Node) -> Any:
    text = loader.construct_scalar(node)  # type: ignore[arg-type]
    return {"true": True, "false": False}.get(str(text).lower(), text)


Yaml12Loader.add_constructor("tag:yaml.org,2002:bool", _bool_or_text)


# Far above any file the project reads (a fleet file nests about 8 deep), far below the
# interpreter's recursion limit (the composer takes about 2 frames a level).
MAX_DEPTH = 100


class _FileLoader(Yaml12Loader):
    """The files' loader: duplicate keys and nesting past MAX_DEPTH are YAML errors."""

    def __init__(self, stream: Any) -> None:
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                mark = self.peek_event().start_mark
                raise yaml.YAMLError(
                    f"nested deeper than {MAX_DEPTH} levels (line {mark.line + 1})"
                )
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def construct_mapping(self, node: Any, deep: bool = False) -> Any:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":  # `<<: *base`: keys it brings may be
                continue  # overridden, as YAML's merge key means
            key = self.construct_object(key_node, deep=True)
            try:
                line = seen.get(key)
            except TypeError:  # an unhashable key: SafeConstructor refuses it below
                continue
            if line is not None:
                again = key_node.start_mark.line + 1
                where = f"line {line}" if again == line else f"lines {line} and {again}"
                raise yaml.YAMLError(f"key {key!r} given twice ({where})")
            seen[key] = key_node.start_mark.line + 1
        return super().construct_mapping(node, deep=deep)


def load(text: str) -> Any:
    """One YAML document as plain data; yaml.YAMLError if it is malformed, holds a key twice
    in one mapping or nests past MAX_DEPTH."""
    return yaml.load(text, Loader=_FileLoader)  # a SafeLoader: plain data only
