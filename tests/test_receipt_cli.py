"""`mailport receipt`: one JSON object per message, with what a report says of each recipient."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

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
    assert [d["index"] for d in delivered] == [1, 2]


def test_a_file_that_is_no_message_is_an_error_and_the_rest_go_on(tmp_path: Path) -> None:
    corpus_files()
    empty, binary = tmp_path / "empty.eml", tmp_path / "binary.bin"
    empty.write_bytes(b"")
    binary.write_bytes(bytes(range(256)) * 64)
    bounce = ROOT / "bounces/sisimai/lhost-qmail-01.eml"
    result = subprocess.run(
        [*CLI, "--json", str(empty), str(tmp_path), str(binary), str(bounce)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        f"mailport: {empty}: no header fields: not an RFC 5322 message",
        f"mailport: {tmp_path}: Is a directory",
        f"mailport: {binary}: no header fields: not an RFC 5322 message",
    ]
    [only] = map(json.loads, result.stdout.splitlines())
    assert (only["path"], only["kind"]) == (str(bounce), "dsn")


def test_the_table_names_the_recipients() -> None:
    corpus_files()
    path = ROOT / "bounces/sisimai/lhost-qmail-01.eml"
    result = subprocess.run(
        [*CLI, str(path)], capture_output=True, text=True, check=False, env={"COLUMNS": "200"}
    )
    assert result.returncode == 0, result.stderr
    assert "kijitora@example.ne.jp" in result.stdout
    assert "userunknown" in result.stdout
