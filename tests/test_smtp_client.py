"""The outbound SMTP pool against real servers: TLS, AUTH, and what each failure reports."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from mailport.actors.transports import Result, SmtpPool
from mailport.config.models import DsnRequest, SmtpOutbound
from mailport.config.secrets import SecretSource
from mailport.store import QueuedMail
from tests.apps import TOKEN
from tests.servers.smtp_sink import SmtpSink
from tests.servers.tls import TlsFiles

PASSWORD = "MAILPORT_TEST_SMTP_PASSWORD"
OAUTH = "tests.apps:oauth_token"
MAIL = QueuedMail(
    1,
    "<t1@mailport.test>",
    "app@mailport.test",
    ("ann@example.org", "bo@example.org"),
    b"From: app@mailport.test\r\nSubject: hi\r\nMessage-ID: <t1@mailport.test>\r\n\r\n"
    b".a line that starts with a dot\r\nbye\r\n",
    False,
    1,
    "app",
)


@pytest.fixture
def secure_sink(tls: TlsFiles) -> Iterator[SmtpSink]:
    os.environ[PASSWORD] = "s3cret"
    os.environ[TOKEN] = "ya29.token"
    with SmtpSink.start(
        tls=tls, auth=("mailer", "s3cret"), xoauth2=("mailer", "ya29.token")
    ) as sink:
        yield sink


def _config(sink: SmtpSink, ca: Path | None, **fields: object) -> SmtpOutbound:
    base: dict[str, object] = dict(
        kind="smtp",
        name="relay",
        host="127.0.0.1",
        port=sink.port,
        security="starttls",
        ca_file=ca,
        username="mailer",
        password=SecretSource(env=PASSWORD),
        pool_size=2,
    )
    return SmtpOutbound(**{**base, **fields})  # type: ignore[arg-type]


async def _deliver(config: SmtpOutbound, mail: QueuedMail = MAIL) -> Result:
    pool = SmtpPool(config)
    try:
        return await pool.deliver(mail)
    finally:
        await pool.close()


@pytest.mark.parametrize("mechanism", [None, "PLAIN", "LOGIN"])
async def test_starttls_and_auth_deliver_every_recipient(
    secure_sink: SmtpSink, tls: TlsFiles, mechanism: str | None
) -> None:
    result = await _deliver(_config(secure_sink, tls.ca_cert, auth_mechanism=mechanism))
    assert [(r.recipient, r.code) for r in result.replies] == [
        ("ann@example.org", 250),
        ("bo@example.org", 250),
    ]
    [received] = secure_sink.received()
    assert (received.auth_login, received.tls) == ("mailer", True)
    assert received.rcpt_tos == ("ann@example.org", "bo@example.org")
    assert received.data.endswith(b"\r\n.a line that starts with a dot\r\nbye\r\n")


async def test_xoauth2_with_a_token_provider(secure_sink: SmtpSink, tls: TlsFiles) -> None:
    config = _config(
        secure_sink, tls.ca_cert, password=None, token_provider="tests.apps:oauth_token"
    )
    result = await _deliver(config)
    assert {r.code for r in result.replies} == {250}
    assert secure_sink.received()[0].auth_login == "mailer"


async def test_a_failing_token_provider_fails_the_connection(
    secure_sink: SmtpSink, tls: TlsFiles
) -> None:
    os.environ[TOKEN] = ""
    config = _config(
        secure_sink, tls.ca_cert, password=None, token_provider="tests.apps:oauth_token"
    )
    result = await _deliver(config)
    assert result.connection_failed
    assert {r.code for r in result.replies} == {None}
    assert "the OAuth2 token provider failed" in result.replies[0].text
    assert "the identity provider refused" in result.replies[0].text
    assert secure_sink.received() == []


async def test_a_wrong_password_fails_the_connection_not_the_mail(
    secure_sink: SmtpSink, tls: TlsFiles
) -> None:
    os.environ[PASSWORD] = "wrong"
    result = await _deliver(_config(secure_sink, tls.ca_cert))
    assert result.connection_failed and {r.code for r in result.replies} == {None}
    assert result.replies[0].text.startswith("535 ")
    assert "wrong" not in result.replies[0].text


async def test_an_untrusted_certificate_is_refused(secure_sink: SmtpSink) -> None:
    result = await _deliver(_config(secure_sink, None))
    assert result.connection_failed
    assert "CERTIFICATE_VERIFY_FAILED" in result.replies[0].text


async def test_a_server_that_is_not_there(tmp_path: Path) -> None:
    from tests.servers.sockets import free_port

    config = SmtpOutbound(
        kind="smtp", name="gone", host="127.0.0.1", port=free_port(), security="none"
    )
    result = await _deliver(config)
    assert result.connection_failed
    assert "ConnectionRefusedError" in result.replies[0].text


@pytest.mark.parametrize("offered", [True, False])
async def test_dsn_parameters_only_where_the_server_offers_dsn(offered: bool) -> None:
    with SmtpSink.start(dsn=offered) as sink:
        config = SmtpOutbound(
            kind="smtp",
            name="relay",
            host="127.0.0.1",
            port=sink.port,
            security="none",
            dsn=DsnRequest(notify=("SUCCESS", "FAILURE"), ret="HDRS"),
        )
        mail = QueuedMail(
            42, "<d@x>", "app@mailport.test", ("ann+1@example.org",), b"x\r\n", False, 1, "a"
        )
        result = await _deliver(config, mail)
        assert {r.code for r in result.replies} == {250}
        [received] = sink.received()
    if offered:
        assert received.mail_options == ("SIZE=3", "RET=HDRS", "ENVID=mailport.42")
        assert received.rcpt_options == (
            ("NOTIFY=SUCCESS,FAILURE", "ORCPT=rfc822;ann+2B1@example.org"),
        )
    else:
        assert received.mail_options == ("SIZE=3",) and received.rcpt_options == ((),)


async def test_a_warm_session_the_server_closed_is_replaced_not_deferred() -> None:
    first = SmtpSink.start()
    port = first.port
    config = SmtpOutbound(
        kind="smtp", name="relay", host="127.0.0.1", port=port, security="none", pool_size=1
    )
    pool = SmtpPool(config)
    try:
        assert {r.code for r in (await pool.deliver(MAIL)).replies} == {250}
        first.stop()  # the pooled session is now closed at the far end
        with SmtpSink.start(port=port) as second:
            result = await pool.deliver(MAIL)
            assert {r.code for r in result.replies} == {250}
            assert not result.connection_failed
            assert len(second.received()) == 1
    finally:
        await pool.close()
