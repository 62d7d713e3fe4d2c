"""The newcomer's path: `mailport run` in a fresh directory answers SMTP mail into ./var/outbox."""

from __future__ import annotations

import json
import os
import signal
import smtplib
import subprocess
import sys
import time
from collections.abc import Iterator
from email import message_from_bytes
from email.message import EmailMessage
from email.policy import compat32
from pathlib import Path

import pytest

from tests.servers.sockets import free_port, listeners_off_loopback

BIN = Path(sys.executable).parent


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, int, Path]]:
    home = tmp_path_factory.mktemp("newcomer")
    port = free_port()
    # The embedded defaults, with the listener moved off 2525 so a developer's node is safe,
    # and an SMTP relay that carries none of this mail (its sender domain never matches).
    (home / "mailport.yaml").write_text(
        f"inbound:\n  - {{kind: smtp-listener, name: mx, port: {port}}}\n"
        "outbound:\n  - {kind: maildir, name: outbox}\n"
        f"  - {{kind: smtp, name: relay, host: 127.0.0.1, port: {free_port()},"
        " security: none, sender_domains: [nowhere.invalid]}\n"
    )
    log = home / "run.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [BIN / "mailport", "run", "--config", "mailport.yaml"],
            cwd=home,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 60
        while b"ready" not in log.read_bytes():
            assert process.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.2)
        yield home, port, log
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)


def test_a_message_is_answered_into_the_outbox(running: tuple[Path, int, Path]) -> None:
    home, port, log = running
    text = log.read_text()
    assert f"listening for SMTP on 127.0.0.1:{port} (mx)" in text
    assert f"delivering outbound mail into the Maildir {home / 'var/outbox'}" in text

    message = EmailMessage()
    message["From"] = "Eve Newcomer <eve@example.org>"
    message["To"] = "support@example.com"
    message["Subject"] = "First try"
    message["Message-ID"] = "<first-try@example.org>"
    message.set_content("Does it work?")
    sent = time.monotonic()
    with smtplib.SMTP("127.0.0.1", port) as client:
        client.send_message(message)
    outbox = home / "var/outbox/new"
    while not (outbox.is_dir() and any(outbox.iterdir())):
        assert time.monotonic() - sent < 10, log.read_text()
        time.sleep(0.02)
    latency = time.monotonic() - sent
    [reply_file] = list(outbox.iterdir())
    reply = message_from_bytes(reply_file.read_bytes(), policy=compat32)
    print(f"\nreply in ./var/outbox {latency * 1000:.0f} ms after the SMTP transaction")
    assert reply["In-Reply-To"] == "<first-try@example.org>"
    assert reply["To"] == "Eve Newcomer <eve@example.org>"
    assert reply["Subject"] == "Re: First try"
    assert "ticket MP-" in reply.get_payload(decode=True).decode()

    # The node prints one line per message handled, in and out; the two come from different
    # actors, so either may be printed first.
    lines = {
        "in mx acknowledge <first-try@example.org> handled",
        f"out outbox acknowledge {reply['Message-ID']} sent",
    }
    deadline = time.monotonic() + 10
    while not lines <= set(log.read_text().splitlines()):
        assert time.monotonic() < deadline, log.read_text()
        time.sleep(0.1)


def test_status_reports_the_counts(running: tuple[Path, int, Path]) -> None:
    home, _port, _log = running
    # The node publishes its figures every second: ask until they include the message.
    deadline = time.monotonic() + 15
    while True:
        result = subprocess.run(
            [BIN / "mailport", "status", "--config", "mailport.yaml", "--json"],
            cwd=home,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert result.returncode == 0, result.stderr
        counts = json.loads(result.stdout)["counts"]
        if counts.get("outbox", {}).get("out") or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert counts["mx"]["in"] == 1
    assert counts["outbox"]["out"] == 1
    assert counts["mx"]["failed"] == counts["outbox"]["failed"] == 0


def test_everything_listens_on_loopback_only(running: tuple[Path, int, Path]) -> None:
    assert listeners_off_loopback(("ray", "mailport", "gcs_server", "raylet")) == []


def test_pool_resize_acts_on_the_running_node(running: tuple[Path, int, Path]) -> None:
    home, _port, _log = running
    deadline = time.monotonic() + 15  # the node publishes what it runs with every second
    while True:
        result = subprocess.run(
            [BIN / "mailport", "pool", "resize", "relay", "3"],  # no --config: the node's
            cwd=home,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        if result.returncode == 0 or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert (result.returncode, result.stdout.strip()) == (0, "relay: pool size 2 -> 3")


def test_status_says_when_the_node_stopped_publishing(running: tuple[Path, int, Path]) -> None:
    home, _port, _log = running
    command = [BIN / "mailport", "status", "--config", "mailport.yaml"]
    pid = json.loads(
        subprocess.run([*command, "--json"], cwd=home, capture_output=True, check=True).stdout
    )["pid"]
    os.kill(pid, signal.SIGSTOP)  # a node stuck (on etcd, say): alive, publishing nothing
    try:
        time.sleep(6.5)
        stuck = subprocess.run(command, cwd=home, capture_output=True, text=True, check=False)
    finally:
        os.kill(pid, signal.SIGCONT)
    assert stuck.returncode == 2
    assert "the node last published" in stuck.stderr
    assert "s ago: these figures are that old" in stuck.stderr
