"""Receipts read from real mail: DSNs, MDNs, auto-replies and feedback reports, compared with
the values their sources assert (../shared/corpus/expected.jsonl)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from mailport.mail.mbox import messages
from mailport.mail.receipts import Receipt, classify
from mailport.mail.receipts.fields import typed_value
from tests.corpus import ROOT, corpus_files, expectations, relative
from tests.receipt_agreement import is_bounce, measure, table

# The bars (issue 5): agreement with sisimai on status and reason.
BARS = {"status": 0.98, "reason": 0.95}
KNOWN = Path(__file__).with_name("receipt_known_differences.yaml")


def _read(path: str) -> Receipt:
    return classify((ROOT / path).read_bytes())


def test_agreement_with_sisimai_on_the_bounce_corpus() -> None:
    agreement = measure()
    print("\n" + table(agreement))
    known = {miss for group in yaml.safe_load(KNOWN.read_text()) for miss in group["misses"]}
    unexplained = []
    for miss in agreement.misses:
        listed = miss.key() in known
        print(
            f"  {'known' if listed else 'MISS '} {miss.key()}: sisimai {miss.expected!r},"
            f" mailport {miss.got!r}"
        )
        if not listed:
            unexplained.append(miss.key())
    assert unexplained == [], "misses not in receipt_known_differences.yaml"
    stale = known - {miss.key() for miss in agreement.misses}
    assert not stale, f"known differences that agree now: {sorted(stale)}"
    below = {m: f"{agreement.share(m):.1%}" for m, bar in BARS.items() if agreement.share(m) < bar}
    assert not below, f"agreement under the issue's bar: {below}"


@pytest.mark.parametrize(
    "path",
    [
        "bounces/mimekit/delivery-status.txt",
        "bounces/mimekit/delivery-status-no-blank-line.txt",
        "bounces/mimekit/delivery-status2.txt",
        "bounces/mimekit/bounce.txt",
        "bounces/mimekit/delivery-status-multiple-blank-lines.txt",
    ],
)
def test_report_fields_however_the_groups_are_written(path: str) -> None:
    want = expectations()[path]
    receipt = _read(path)
    assert receipt.kind == "dsn"
    fields = want["recipients"]
    assert isinstance(fields, list)
    assert len(receipt.recipients) == len(fields)
    for ours, theirs in zip(receipt.recipients, fields, strict=True):
        named = theirs.get("Final-Recipient") or theirs["Original-Recipient"]
        assert ours.recipient == typed_value(named)
        if "Action" in theirs:
            assert ours.action == theirs["Action"]
        if "Status" in theirs:
            assert ours.status == theirs["Status"]
        if "Diagnostic-Code" in theirs:
            assert ours.diagnostic == typed_value(theirs["Diagnostic-Code"])


@pytest.mark.parametrize(
    "path", ["bounces/mail-gem/report_422.eml", "bounces/mail-gem/report_530.eml"]
)
def test_a_delay_is_reported_apart_from_a_failure(path: str) -> None:
    want = expectations()[path]
    [ours] = _read(path).recipients
    assert ours.recipient == typed_value(str(want["final_recipient"]))
    assert (ours.action, ours.status) == (want["action"], want["status"])
    assert ours.diagnostic == typed_value(str(want["diagnostic_code"]))
    assert ours.remote_mta == typed_value(str(want["remote_mta"]))
    assert is_bounce(Receipt("dsn", recipients=(ours,))) is True  # sisimai's notion
    assert (ours.action == "failed") is want["is_bounce"]


@pytest.mark.parametrize("path", ["bounces/flanker/zed.eml", "bounces/flanker/office365.eml"])
def test_provider_dsns_give_their_status(path: str) -> None:
    want = expectations()[path]
    [ours] = _read(path).recipients
    assert ours.status == want["status"]
    if "diagnostic_code" in want:
        assert ours.diagnostic == typed_value(str(want["diagnostic_code"]))
    else:
        assert ours.diagnostic.startswith(typed_value(str(want["diagnostic_code_startswith"])))


def test_a_broken_dsn_is_read_without_raising() -> None:
    receipt = _read("bounces/flanker/delayed-broken.eml")
    assert receipt.kind in ("dsn", "normal")


def test_nothing_outside_the_bounces_is_a_bounce() -> None:
    dsn_kind = {}
    for path in corpus_files("negatives", "feedback", "autoreplies", "mime"):
        receipt = classify(path.read_bytes())
        assert not any(r.action == "failed" for r in receipt.recipients), relative(path)
        if receipt.kind == "dsn":
            dsn_kind[relative(path)] = [r.action for r in receipt.recipients]
    # The one RFC 3464 report among them is a delay notice ("Warning: could not send message
    # for past 1 day"), which the mail gem keeps with its MIME fixtures: a DSN, not a bounce.
    assert dsn_kind == {
        "mime/mail-gem/mime_emails/raw_email_with_mimepart_without_content_type.eml": ["delayed"]
    }


def test_auto_replies_are_auto_replies() -> None:
    kinds = {relative(p): classify(p.read_bytes()).kind for p in corpus_files("autoreplies")}
    assert set(kinds.values()) == {"autoreply"}, kinds
    assert _read("negatives/sisimai/rb-issue-368-bug.eml").kind == "autoreply"


def test_feedback_reports_give_their_type() -> None:
    for path, want in expectations().items():
        if not path.startswith("feedback/"):
            continue
        receipt = _read(path)
        results = want.get("results")
        if isinstance(results, list) and results and results[0].get("feedback_type"):
            assert (receipt.kind, receipt.feedback_type) == (
                "feedback",
                results[0]["feedback_type"],
            ), path
        fields = want.get("fields")
        if isinstance(fields, dict) and "Feedback-Type" in fields:
            assert (receipt.kind, receipt.feedback_type) == ("feedback", fields["Feedback-Type"])


def test_read_receipts_give_the_disposition_and_the_original() -> None:
    for path in (
        "receipts/mdn/mimekit/disposition-notification.txt",
        "receipts/mdn/flanker/disposition-notification.eml",
    ):
        receipt = _read(path)
        assert receipt.kind == "mdn"
        assert receipt.disposition == "displayed"
        assert receipt.original_message_id == "<199509192301.23456@example.org>"


def test_delivered_reports_say_delivered() -> None:
    for path in corpus_files("receipts/dsn-delivered"):
        want = expectations()[relative(path)]
        receipts = [classify(m) for m in messages(path.read_bytes())]  # one file is an mbox
        results = want["results"]
        assert isinstance(results, list)
        assert {r.kind for r in receipts} == {"dsn"}
        assert [(r.action, r.status, r.reason) for x in receipts for r in x.recipients] == [
            ("delivered", w["status"], "delivered") for w in results
        ]


def test_a_diagnostic_is_the_servers_reply_not_the_returned_message() -> None:
    # "Included is a copy of the message header" (MXLogic), "Below is a copy of the
    # original message" (OpenSMTPD): what follows is the returned message, not the reply.
    [mxlogic] = _read("bounces/sisimai/lhost-mxlogic-03.eml").recipients
    assert (mxlogic.diagnostic, mxlogic.status) == (
        "550 unknown user <kijitora@example.co.jp>",
        "5.0.0",
    )
    assert [r.diagnostic for r in _read("bounces/sisimai/lhost-opensmtpd-02.eml").recipients] == [
        "550 5.2.2 <mailboxfull@example.jp>... Mailbox Full",
        "550 5.1.1 <userunknown@example.jp>... User Unknown",
    ]
