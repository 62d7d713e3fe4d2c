"""Settings: YAML errors reported at their place, secrets kept out of sight."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from mailport.cluster.node import anchored
from mailport.config import InvalidConfig, Settings, loads
from mailport.config.models import ImapInbound, MaildirOutbound, SmtpListenerInbound, SmtpOutbound
from mailport.config.secrets import SecretSource

BAD = """\
inbound:
  - kind: imap
    name: support
    host: imap.example.com
    port: 99999
    username: support
    password: {env: X, file: /tmp/y}
    after: archive
  - kind: pop4
    name: x
outbound:
  - kind: smtp
    name: relay
    host: smtp.example.com
    pool_size: 0
"""


def test_every_error_has_its_line_and_column() -> None:
    with pytest.raises(InvalidConfig) as caught:
        loads(BAD, source="bad.yaml")
    found = {(e.line, e.column, e.path) for e in caught.value.errors}
    assert found == {
        (5, 5, "inbound[0].port"),
        (7, 5, "inbound[0].password"),
        (8, 5, "inbound[0].after"),
        (9, 5, "inbound[1]"),
        (15, 5, "outbound[0].pool_size"),
    }


def test_routing_to_an_unknown_application_is_refused() -> None:
    with pytest.raises(InvalidConfig) as caught:
        loads("routing:\n  default: helpdesk\n")
    assert "application 'helpdesk', which is not configured" in caught.value.errors[0].message


def test_yaml_syntax_error_points_at_the_line() -> None:
    with pytest.raises(InvalidConfig) as caught:
        loads("inbound:\n  - kind: imap\n   name: x\n")
    assert caught.value.errors[0].line == 3


def test_embedded_defaults() -> None:
    settings = Settings()
    assert settings.inbound == (SmtpListenerInbound(kind="smtp-listener", name="mx"),)
    listener = settings.inbound[0]
    assert (listener.host, listener.port) == ("127.0.0.1", 2525)
    assert settings.outbound == (MaildirOutbound(kind="maildir", name="outbox"),)
    assert settings.store.url == "sqlite+aiosqlite:///var/mailport.db"
    assert settings.routing.default == "acknowledge"


def test_pop3_refuses_imap_only_actions() -> None:
    with pytest.raises(InvalidConfig) as caught:
        loads(
            "inbound:\n  - {kind: pop3, name: p, host: h, port: 995, username: u,\n"
            "     password: {env: P}, after: flag}\n"
        )
    assert caught.value.errors[0].path == "inbound[0].after"


def test_secrets_resolve_from_env_and_file_and_never_print(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MAILPORT_TEST_SECRET", "hunter2")
    (tmp_path / "secret").write_text("s3cret\n")
    assert SecretSource(env="MAILPORT_TEST_SECRET").resolve().get_secret_value() == "hunter2"
    assert SecretSource(file=tmp_path / "secret").resolve().get_secret_value() == "s3cret"
    config = ImapInbound(
        kind="imap",
        name="i",
        host="h",
        port=993,
        username="u",
        password=SecretSource(env="MAILPORT_TEST_SECRET"),
    )
    assert "hunter2" not in repr(config) + str(config.model_dump())
    with pytest.raises(LookupError, match="MAILPORT_NOT_SET is not set"):
        SecretSource(env="MAILPORT_NOT_SET").resolve()


def test_cli_validate(tmp_path: Path) -> None:
    bad, good = tmp_path / "bad.yaml", tmp_path / "good.yaml"
    bad.write_text(BAD)
    good.write_text("node: {shards: 3}\n")
    cli = [sys.executable, "-m", "mailport.cluster.cli", "config", "validate"]
    failed = subprocess.run([*cli, str(bad)], capture_output=True, text=True, check=False)
    assert failed.returncode == 1
    assert f"{bad}:5:5: inbound[0].port: Input should be less than or equal to 65535" in (
        failed.stderr
    )
    assert "5 error(s)" in failed.stderr
    passed = subprocess.run([*cli, str(good)], capture_output=True, text=True, check=False)
    assert passed.returncode == 0, passed.stderr
    assert "valid" in passed.stdout


def test_field_and_reference_errors_come_together_in_line_order() -> None:
    text = (
        "inbound:\n"
        "  - {kind: smtp-listener, name: mx, port: 0}\n"
        "  - {kind: smtp-listener, name: mx}\n"
        "routing:\n"
        "  default: helpdesk\n"
        "  rules:\n"
        "    - {recipient: a@example.com, application: sales}\n"
    )
    with pytest.raises(InvalidConfig) as caught:
        loads(text)
    assert [(e.line, e.path) for e in caught.value.errors] == [
        (2, "inbound[0].port"),
        (3, "inbound[1].name"),
        (5, "routing.default"),
        (7, "routing.rules[0].application"),
    ]


def test_duplicate_keys_and_inline_passwords_are_refused() -> None:
    text = (
        "inbound:\n"
        "  - kind: imap\n    name: a\n    host: h\n    port: 993\n    username: u\n"
        "    password: hunter2\n"
        "    host: other\n"
    )
    with pytest.raises(InvalidConfig) as caught:
        loads(text)
    messages = {e.path: e.message for e in caught.value.errors}
    assert messages["inbound[0].host"] == "duplicate key"
    assert "write {env: NAME} or {file: PATH}" in messages["inbound[0].password"]
    assert "hunter2" not in str(caught.value.errors)


def test_cli_validate_imports_the_handlers(tmp_path: Path) -> None:
    config = tmp_path / "apps.yaml"
    config.write_text('applications:\n  - {name: acknowledge, handler: "nosuchmodule:handle"}\n')
    result = subprocess.run(
        [sys.executable, "-m", "mailport.cluster.cli", "config", "validate", str(config)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 1
    assert (
        f"{config}:2:25: applications[0].handler: cannot load nosuchmodule:handle: "
        "ModuleNotFoundError: No module named 'nosuchmodule'" in result.stderr
    )


MAILPORT = [sys.executable, "-m", "mailport.cluster.cli"]
_EXAMPLE = re.compile(r"^(\s*)# (\s*(?:- )?[\w-]+:.*|\s*- \{.*)$")


def _with_examples(text: str) -> str:
    """The starter file with its commented-out examples (settings lines) switched on."""
    return "\n".join(_EXAMPLE.sub(r"\1\2", line) for line in text.splitlines())


@pytest.mark.parametrize("cluster", [False, True])
def test_mailport_init_writes_settings_that_load_as_written_and_with_every_example(
    tmp_path: Path, cluster: bool
) -> None:
    path = tmp_path / "mailport.yaml"
    command = [*MAILPORT, "init", str(path)]
    done = subprocess.run(command + ["--cluster"] * cluster, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    text = path.read_text()
    settings = loads(text, check_handlers=True)
    assert settings.cluster.coordinator == ("etcd" if cluster else "local")
    assert settings.store.url.startswith("postgresql+asyncpg://" if cluster else "sqlite")
    assert [i.name for i in settings.inbound] == ["mx"]
    full = loads(_with_examples(text))
    assert [i.name for i in full.inbound] == ["mx", "support-box", "sales-box"]
    assert [o.name for o in full.outbound] == ["outbox", "relay"]
    relay = full.outbound[1]
    assert relay.kind == "smtp" and relay.pool_size == 4 and relay.dsn is not None
    assert full.routing.rules[0].recipient == "sales@example.com"
    if cluster:
        assert full.cluster.node_name == "mp1" and full.cluster.capacity == 8


def test_mailport_init_keeps_an_existing_file(tmp_path: Path) -> None:
    path = tmp_path / "mailport.yaml"
    path.write_text("mine\n")
    done = subprocess.run([*MAILPORT, "init", str(path)], capture_output=True, text=True)
    assert done.returncode == 1
    assert "--force" in done.stderr
    assert path.read_text() == "mine\n"


def test_relative_paths_mean_where_the_settings_were_given(tmp_path: Path) -> None:
    """Actors run in Ray's working directory, not the admin's: every path a connection
    names (a Maildir, a CA file, a password file) is made absolute first."""
    settings = Settings.model_validate(
        {
            "inbound": [
                {"kind": "imap", "name": "box", "host": "imap.example", "port": 993,
                 "username": "u", "password": {"file": "secrets/imap"}, "ca_file": "ca.pem"},
            ],
            "outbound": [
                {"kind": "maildir", "name": "outbox", "path": "var/outbox"},
                {"kind": "smtp", "name": "relay", "host": "smtp.example", "username": "u",
                 "password": {"file": "/etc/mailport/relay"}},
            ],
        }
    )  # fmt: skip
    made = anchored(settings, tmp_path)
    [box] = made.inbound
    outbox, relay = made.outbound
    assert isinstance(box, ImapInbound) and isinstance(outbox, MaildirOutbound)
    assert isinstance(relay, SmtpOutbound) and box.password is not None
    assert (box.password.file, box.ca_file) == (tmp_path / "secrets/imap", tmp_path / "ca.pem")
    assert outbox.path == tmp_path / "var/outbox"
    assert relay.password is not None and relay.password.file == Path("/etc/mailport/relay")
