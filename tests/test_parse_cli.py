"""`mailport parse`: one JSON object per message; malformed mail is data, a missing file is not."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.corpus import ROOT, corpus_files

CLI = [sys.executable, "-m", "mailport.cluster.cli", "parse", "--json"]


def test_parse_prints_the_fields_a_user_checks() -> None:
    corpus_files()
    paths = [
        ROOT / "charsets/flanker/charset-gb2312.eml",
        ROOT / "autoreplies/sisimai/rfc3834-02.eml",
        ROOT / "mime/enmime/mail/erroneous.raw",
    ]
    result = subprocess.run([*CLI, *map(str, paths)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    gb, auto, junk = map(json.loads, result.stdout.splitlines())
    assert gb["subject"] == "提示：您的企业成员暂时无法登录邮件客户端"
    assert gb["from"] == [{"name": "腾讯企业邮箱", "address": "10000@qq.com"}]
    assert gb["language"] == "zh"
    assert gb["html_present"] is True
    assert (auto["kind"], auto["subject"]) == ("autoreply", "Automatic reply: Nyaan")
    assert auto["from"] == [{"name": "Neko, Nyaan", "address": "nekonyaan@example.org"}]
    assert junk["defects"] == ["no header fields: not an RFC 5322 message"]


def test_an_unreadable_path_fails() -> None:
    result = subprocess.run(
        [*CLI, "/no/such/message.eml"], capture_output=True, text=True, check=False
    )
    assert result.returncode == 1
    assert "/no/such/message.eml: No such file or directory" in result.stderr
