"""The benchmark harness runs and reports; its figures are read by people, not asserted."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.corpus import ROOT, corpus_files

CLI = [sys.executable, "-m", "mailport.cluster.cli", "bench"]


def test_list_names_the_scenarios() -> None:
    result = subprocess.run([*CLI, "--list"], capture_output=True, text=True, check=True)
    assert result.stdout.split("\t")[0] == "parse"


def test_parse_scenario_ends_with_one_json_object() -> None:
    corpus_files()
    result = subprocess.run(
        [*CLI, "parse", "--quick", "--json", "--corpus", str(ROOT)],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    assert figures["scenario"] == "parse"
    assert figures["unit"] == "messages/s"
    assert figures["details"]["messages"] == len(corpus_files(""))
    assert figures["mailport"] > 0 and figures["anchor"] > 0
    assert figures["ratio"] == round(figures["mailport"] / figures["anchor"], 3)
