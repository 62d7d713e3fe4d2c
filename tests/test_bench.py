"""The benchmark harness runs and reports; its figures are read by people, not asserted."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.corpus import ROOT, corpus_files

CLI = [sys.executable, "-m", "mailport.cluster.cli", "bench"]


def test_list_names_the_scenarios() -> None:
    result = subprocess.run([*CLI, "--list"], capture_output=True, text=True, check=True)
    assert [line.split("\t")[0] for line in result.stdout.splitlines()] == [
        "failover",
        "outbound",
        "parse",
        "receipts",
    ]


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


def test_receipts_scenario_classifies_every_bounce() -> None:
    corpus_files()
    result = subprocess.run(
        [*CLI, "receipts", "--quick", "--json", "--corpus", str(ROOT)],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    assert (figures["scenario"], figures["unit"]) == ("receipts", "messages/s")
    assert figures["details"]["messages"] == len(corpus_files("bounces"))
    assert sum(figures["details"]["kinds"].values()) == len(corpus_files("bounces"))


def test_outbound_scenario_sends_through_the_queue_and_ends_with_json() -> None:
    result = subprocess.run(
        [*CLI, "outbound", "--quick", "--json"],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    assert (figures["scenario"], figures["anchor_name"]) == ("outbound", "smtp-source -d")
    assert figures["details"]["messages per run"] == 1000
    assert figures["details"]["message size"] == 10240
    assert figures["mailport"] == figures["details"]["mailport x8"] > 0
    assert figures["anchor"] == figures["details"]["smtp-source x8"] > 0


def test_failover_scenario_loses_nothing_and_processes_nothing_twice() -> None:
    result = subprocess.run(
        [*CLI, "failover", "--quick", "--json"],
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    assert (figures["scenario"], figures["lease_ttl_s"]) == ("failover", 2)
    assert figures["details"]["lost node's mailboxes"] == len(figures["failover_s"]) >= 1
    assert figures["failover_s_max"] == max(figures["failover_s"].values()) > 0
    assert (figures["lost"], figures["duplicated"]) == (0, 0)
