"""Parsing untrusted request bodies and job files: JSON and YAML with a nesting cap, YAML with
no aliases (an alias bomb expands tenfold per level from a few hundred bytes) and no implicit
dates (a `2024-01-01` stays a string instead of a date no JSON encoder takes).

Shared by the API and the CLI, so that a file the CLI accepts is a body the API accepts."""

from __future__ import annotations

import json
import re
from typing import Any

import yaml

from cortex.yamlfiles import Yaml12Loader

DEFAULT_MAX_DEPTH = 32


class BodyError(ValueError):
    """A body that cannot be parsed; `kind` is the error type reported to the client."""

    def __init__(self, msg: str, kind: str = "parse_error") -> None:
        super().__init__(msg)
        self.kind = kind


class _SafeLoader(Yaml12Loader):
    """The files' loader (yamlfiles.py: YAML 1.2's booleans) without aliases, with a depth
    cap, and timestamps kept as strings. The depth is checked while composing, so a
    5,000-deep document fails at the cap instead of recursing through PyYAML's Python-level
    composer."""

    max_depth = DEFAULT_MAX_DEPTH

    def __init__(self, stream: Any) -> None:
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise BodyError(f"YAML aliases are not accepted (line {event.start_mark.line + 1})")
        self._depth += 1
        try:
            if self._depth > self.max_depth:
                raise BodyError(f"nested deeper than {self.max_depth} levels", "too_deep")
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


def _timestamp_as_str(loader: yaml.SafeLoader, node: yaml.Node) -> Any:
    return loader.construct_scalar(node)  # type: ignore[arg-type]


_SafeLoader.add_constructor("tag:yaml.org,2002:timestamp", _timestamp_as_str)


def load_yaml(text: str | bytes, max_depth: int = DEFAULT_MAX_DEPTH) -> Any:
    """Parse one YAML document safely; BodyError on anything malformed, aliased or too deep."""
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as err:
            raise BodyError(f"not UTF-8 (byte {err.start})", "encoding_error") from None
    loader = _SafeLoader(text)
    loader.max_depth = max_depth
    try:
        return loader.get_single_data()
    except yaml.YAMLError as err:
        first = str(err).splitlines()[0] if str(err) else "YAML"
        raise BodyError(f"malformed YAML: {first}") from None
    except RecursionError:
        raise BodyError(f"nested deeper than {max_depth} levels", "too_deep") from None
    finally:
        loader.dispose()


_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)
_NOT_BRACKET = bytes(b for b in range(256) if b not in b"[]{}")


def json_depth_ok(raw: bytes, max_depth: int) -> bool:
    """Whether a JSON text nests at most `max_depth` deep, judged before parsing (the C parser
    raises RecursionError, a 500 in FastAPI, near depth 1,000). Strings are cut out first, so
    brackets inside them do not count."""
    brackets = _STRING.sub(b"", raw).translate(None, _NOT_BRACKET)
    if len(brackets) <= 2 * max_depth:
        return True
    depth = 0
    for b in brackets:
        if b in b"[{":
            depth += 1
            if depth > max_depth:
                return False
        else:
            depth -= 1
    return True


def load_json(raw: bytes, max_depth: int = DEFAULT_MAX_DEPTH) -> Any:
    """Parse JSON; BodyError on malformed text and on nesting past the cap. NaN, Infinity and
    numbers too large for a float (1e400) parse, and the models' finite-number check refuses
    them naming the field."""
    if not json_depth_ok(raw, max_depth):
        raise BodyError(f"nested deeper than {max_depth} levels", "too_deep")
    try:
        return json.loads(raw)
    except UnicodeDecodeError as err:
        raise BodyError(f"not UTF-8 (byte {err.start})", "encoding_error") from None
    except json.JSONDecodeError as err:
        raise BodyError(f"malformed JSON: {err.msg} (char {err.pos})") from None
    except RecursionError:
        raise BodyError(f"nested deeper than {max_depth} levels", "too_deep") from None


def nul_path(value: Any, at: tuple[str | int, ...] = ()) -> list[str | int] | None:
    """Where the first string (value or key) holding a NUL character is, if any. PostgreSQL
    text cannot hold NUL, and exec() cannot pass it."""
    if isinstance(value, str):
        return list(at) if "\x00" in value else None
    if isinstance(value, dict):
        for k, v in value.items():
            if isinstance(k, str) and "\x00" in k:
                return [*at, k]
            found = nul_path(v, (*at, k))
            if found is not None:
                return found
    elif isinstance(value, list):
        for i, v in enumerate(value):
            found = nul_path(v, (*at, i))
            if found is not None:
                return found
    return None
