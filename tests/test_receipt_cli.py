"""`mailport receipt`: one JSON object per message, with what a report says of each recipient."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.corpus import ROOT, corpus_files

CLI = [sys.executable, "-m", "mailport.cluster.cli", "receipt"]


def test_receipt_prints_kind_recipients_and_the_original() -> None:
    corpus_files()
    paths = [
        ROOT / "bounces/sisimai/lhost-postfix-02.eml",
        ROOT / "receipts/mdn/mimekit/disposition-notification.txt",
        ROOT / "autoreplies/sisimai/rfc3834-01.eml",
        ROOT / "receipts/dsn-delivered/sisimai/rfc3464-28.eml",  # an mbox of two reports
    ]
    result = subprocess.run(
        [*CLI, "--json", *map(str, paths)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    bounce, mdn, away, *delivered = map(json.loads, result.stdout.splitlines())
    assert bounce["path"] == str(paths[0])
    assert bounce["kind"] == "dsn"
    assert [
        (r["recipient"], r["action"], r["status"], r["reply_code"], r["reason"], r["hard_bounce"])
        for r in bounce["recipients"]
    ] == [
        ("filtered@example.co.jp", "failed", "5.2.1", 550, "userunknown", True),
        ("userunknown@example.co.jp", "failed", "5.1.1", 550, "userunknown", True),
    ]
    assert (mdn["kind"], mdn["disposition"]) == ("mdn", "displayed")
    assert mdn["original_message_id"] == "<199509192301.23456@example.org>"
    assert away["kind"] == "autoreply"
    assert [r["action"] for d in delivered for r in d["recipients"]] == ["delivered"] * 2


def test_the_table_names_the_recipients() -> None:
    corpus_files()
    path = ROOT / "bounces/sisimai/lhost-qmail-01.eml"
    result = subprocess.run(
        [*CLI, str(path)], capture_output=True, text=True, check=False, env={"COLUMNS": "200"}
    )
    assert result.returncode == 0, result.stderr
    assert "kijitora@example.ne.jp" in result.stdout
    assert "userunknown" in result.stdout
