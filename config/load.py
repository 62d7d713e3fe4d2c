"""Load YAML settings and report every error at its line and column."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from mailport.config.handlers import unresolvable
from mailport.config.models import Location, Settings, reference_errors


@dataclass(frozen=True)
class ConfigError:
    line: int | None
    column: int | None
    path: str
    message: str

    def __str__(self) -> str:
        where = f"{self.line}:{self.column}: " if self.line is not None else " "
        return f"{where}{self.path + ': ' if self.path else ''}{self.message}"


class InvalidConfig(Exception):
    def __init__(self, source: str, errors: list[ConfigError]) -> None:
        super().__init__(f"{source}: {len(errors)} error(s)")
        self.source = source
        self.errors = errors


def load(path: Path, *, check_handlers: bool = False) -> Settings:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidConfig(str(path), [ConfigError(None, None, "", str(exc))]) from exc
    return loads(text, source=str(path), check_handlers=check_handlers)


def loads(text: str, source: str = "<config>", *, check_handlers: bool = False) -> Settings:
    """Settings from YAML text. With check_handlers, also import every application handler
    (which runs the user's module code) and report those that cannot be loaded."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line, col = (mark.line + 1, mark.column + 1) if mark else (None, None)
        problem = getattr(exc, "problem", None) or str(exc)
        raise InvalidConfig(source, [ConfigError(line, col, "", f"YAML: {problem}")]) from exc
    marks: dict[Location, tuple[int, int]] = {}
    problems: list[ConfigError] = []
    data = _to_python(node, (), marks, problems) if node is not None else {}
    references = [_at(loc, message, marks) for loc, message in reference_errors(data)]
    if check_handlers:
        problems += [_at(loc, message, marks) for loc, message in _handler_errors(data)]
    try:
        settings = Settings.model_validate(data)
    except ValidationError as exc:
        # The model reports a reference error without a place; the loader has it with one.
        located = [_locate(e, marks) for e in exc.errors() if e["loc"] or not references]
        problems += located + [r for r in references if r not in located]
    if problems:
        problems.sort(key=lambda e: (e.line or 0, e.column or 0))
        raise InvalidConfig(source, problems)
    return settings


def _handler_errors(data: Any) -> list[tuple[Location, str]]:
    apps = data.get("applications") if isinstance(data, dict) else None
    problems: list[tuple[Location, str]] = []
    for i, app in enumerate(apps if isinstance(apps, list) else []):
        spec = app.get("handler") if isinstance(app, dict) else None
        if isinstance(spec, str) and (problem := unresolvable(spec)) is not None:
            problems.append((("applications", i, "handler"), problem))
    return problems


def _to_python(
    node: yaml.Node,
    loc: Location,
    marks: dict[Location, tuple[int, int]],
    problems: list[ConfigError],
) -> Any:
    marks[loc] = (node.start_mark.line + 1, node.start_mark.column + 1)
    if isinstance(node, yaml.MappingNode):
        result = {}
        for key_node, value_node in node.value:
            key = str(key_node.value)
            where = (key_node.start_mark.line + 1, key_node.start_mark.column + 1)
            if key in result:
                problems.append(ConfigError(*where, _path((*loc, key)), "duplicate key"))
            result[key] = _to_python(value_node, (*loc, key), marks, problems)
            marks[(*loc, key)] = where  # errors about a key point at the key, not its value
        return result
    if isinstance(node, yaml.SequenceNode):
        return [_to_python(item, (*loc, i), marks, problems) for i, item in enumerate(node.value)]
    return yaml.SafeLoader("").construct_object(node)


def _locate(error: Any, marks: dict[Location, tuple[int, int]]) -> ConfigError:
    # Pydantic adds union tags ("imap", "function-after[...]") to the location; keep only the
    # parts that exist in the document, and point at the nearest one that does.
    loc: list[str | int] = []
    for part in error["loc"]:
        if (*loc, part) in marks:
            loc.append(part)
    return _at(tuple(loc), error["msg"], marks)


def _at(loc: Location, message: str, marks: dict[Location, tuple[int, int]]) -> ConfigError:
    known = loc
    while known and known not in marks:  # a default the document left out: its parent
        known = known[:-1]
    line, col = marks.get(known, (None, None))
    return ConfigError(line, col, _path(loc), message)


def _path(loc: Location) -> str:
    return ".".join(f"[{p}]" if isinstance(p, int) else str(p) for p in loc).replace(".[", "[")
