"""Load YAML settings and report every error at its line and column."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from mailport.config.models import Settings

Location = tuple[str | int, ...]


@dataclass(frozen=True)
class ConfigError:
    line: int | None
    column: int | None
    path: str
    message: str

    def __str__(self) -> str:
        where = f"{self.line}:{self.column}" if self.line is not None else "-"
        return f"{where}: {self.path or '(top)'}: {self.message}"


class InvalidConfig(Exception):
    def __init__(self, source: str, errors: list[ConfigError]) -> None:
        super().__init__(f"{source}: {len(errors)} error(s)")
        self.source = source
        self.errors = errors


def load(path: Path) -> Settings:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidConfig(str(path), [ConfigError(None, None, "", str(exc))]) from exc
    return loads(text, source=str(path))


def loads(text: str, source: str = "<config>") -> Settings:
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line, col = (mark.line + 1, mark.column + 1) if mark else (None, None)
        raise InvalidConfig(source, [ConfigError(line, col, "", str(exc))]) from exc
    marks: dict[Location, tuple[int, int]] = {}
    data = _to_python(node, (), marks) if node is not None else {}
    try:
        return Settings.model_validate(data)
    except ValidationError as exc:
        raise InvalidConfig(source, [_locate(e, marks) for e in exc.errors()]) from exc


def _to_python(node: yaml.Node, loc: Location, marks: dict[Location, tuple[int, int]]) -> Any:
    marks[loc] = (node.start_mark.line + 1, node.start_mark.column + 1)
    if isinstance(node, yaml.MappingNode):
        result = {}
        for key_node, value_node in node.value:
            key = str(key_node.value)
            result[key] = _to_python(value_node, (*loc, key), marks)
            # Point errors about a key at the key, not at its value.
            marks[(*loc, key)] = (key_node.start_mark.line + 1, key_node.start_mark.column + 1)
        return result
    if isinstance(node, yaml.SequenceNode):
        return [_to_python(item, (*loc, i), marks) for i, item in enumerate(node.value)]
    return yaml.SafeLoader("").construct_object(node)


def _locate(error: Any, marks: dict[Location, tuple[int, int]]) -> ConfigError:
    # Pydantic adds union tags ("imap", "function-after[...]") to the location; keep only the
    # parts that exist in the document, and point at the nearest one that does.
    loc: list[str | int] = []
    for part in error["loc"]:
        if (*loc, part) in marks:
            loc.append(part)
    line, col = marks.get(tuple(loc), (None, None))
    path = ".".join(f"[{p}]" if isinstance(p, int) else p for p in loc).replace(".[", "[")
    return ConfigError(line, col, path, error["msg"])
