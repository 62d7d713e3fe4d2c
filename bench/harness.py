"""The benchmark harness: named scenarios, each measured beside an anchor in the same run.

A scenario is a function that takes the run's options and a progress callback and returns a
Result; the harness prints it as a table, or as one JSON object on the last line."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from rich.console import Console
from rich.progress import Progress
from rich.table import Table


@dataclass(frozen=True)
class Options:
    quick: bool = False
    corpus: str | None = None


@dataclass(frozen=True)
class Result:
    scenario: str
    unit: str
    mailport: float
    anchor: float
    anchor_name: str
    details: dict[str, Any] = field(default_factory=dict)
    summary: dict[str, Any] = field(default_factory=dict)
    """Figures a scenario's --json line carries at its top level, beside the common ones."""

    @property
    def ratio(self) -> float:
        return self.mailport / self.anchor if self.anchor else float("nan")

    def as_json(self) -> dict[str, Any]:
        common = {k: v for k, v in asdict(self).items() if k != "summary"}
        return {**common, "ratio": round(self.ratio, 3), **self.summary}


Advance = Callable[[float], None]
Scenario = Callable[[Options, Callable[[str, float], Advance]], Result]
SCENARIOS: dict[str, tuple[str, Scenario]] = {}


def scenario(name: str, description: str) -> Callable[[Scenario], Scenario]:
    def register(function: Scenario) -> Scenario:
        SCENARIOS[name] = (description, function)
        return function

    return register


def run(name: str, options: Options, as_json: bool, console: Console) -> Result:
    _description, function = SCENARIOS[name]
    with Progress(console=console, transient=True, disable=as_json) as progress:

        def task(label: str, total: float) -> Advance:
            task_id = progress.add_task(label, total=total)
            return lambda amount: progress.advance(task_id, amount)

        result = function(options, task)
    if as_json:
        print(json.dumps(result.as_json()))
    else:
        table = Table(title=f"mailport bench {name}")
        for column in ("measure", "mailport", result.anchor_name, "ratio"):
            table.add_column(column)
        table.add_row(
            result.unit, f"{result.mailport:,.1f}", f"{result.anchor:,.1f}", f"{result.ratio:.2f}"
        )
        console.print(table)
        details = Table(title="measured in the same run", show_header=False)
        for key, value in result.details.items():
            shown = f"{value:,.1f}" if isinstance(value, float) else str(value)
            details.add_row(key, shown)
        console.print(details)
    return result
