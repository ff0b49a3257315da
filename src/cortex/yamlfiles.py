"""YAML as the project's files and bodies read it: PyYAML's SafeLoader (plain data only) with
YAML 1.2's booleans. PyYAML implements YAML 1.1, where `yes`, `no`, `on` and `off` are
booleans: a job's `command: [train.py, --amp, on]`, an env value `DEBUG: yes` or a team
called `no` became True/False, which a string field refused with a puzzling message ("valid
string" for a value the user wrote as one) and a boolean field took silently. Here only
`true` and `false` (in the cases PyYAML resolves) are booleans; the rest stay the text
written. One loader for the fleet, job and plan files and the API's YAML bodies
(control/bodies.py subclasses it), so a file means the same wherever it is read."""

from __future__ import annotations

from typing import Any

import yaml


class Yaml12Loader(yaml.SafeLoader):
    """SafeLoader whose booleans are YAML 1.2's: true and false only."""


def _bool_or_text(loader: yaml.SafeLoader, node: yaml.Node) -> Any:
    text = loader.construct_scalar(node)  # type: ignore[arg-type]
    return {"true": True, "false": False}.get(str(text).lower(), text)


Yaml12Loader.add_constructor("tag:yaml.org,2002:bool", _bool_or_text)


def load(text: str) -> Any:
    """One YAML document as plain data; yaml.YAMLError if it is malformed."""
    return yaml.load(text, Loader=Yaml12Loader)  # a SafeLoader: plain data only
