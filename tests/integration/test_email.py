"""EmailNotifier against a real local SMTP server (aiosmtpd)."""

from __future__ import annotations

import dataclasses
import socket
import ssl
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path

import pytest

from mastwatch.errors import PermanentDeliveryError, RetryableDeliveryError
from mastwatch.model import Alert, Delivery
from mastwatch.notify.email import ALERT_ID_HEADER, EmailNotifier
from mastwatch.testing.smtp import LocalSMTPServer

SENDER = "mastwatch@example.test"
RECIPIENT = "desk@example.test"

ALERT = Alert(
    id="0123456789abcdef0123456789abcdef",
    rule_id="jgb-yields",
    rule_title="JGB and Treasury yields",
    tier="critical",
    source_id="boj",
    source_name="Bank of Japan",
    item_key="guid:7",
    title="Yields jump <script>alert(1)</script>\r\nBcc: victim@example.test",
    link="https://example.test/boj/7",
    summary="The 10-year yield <b>rose</b> sharply.",
    matched=("JGB", "yield"),
    published=datetime(2025, 7, 22, 1, 0, tzinfo=UTC),
    created_at=datetime(2025, 7, 22, 1, 1, tzinfo=UTC),
)


def delivery(target: str = RECIPIENT) -> Delivery:
    return Delivery(id=1, alert=ALERT, channel="email", target=target)


def notifier_for(smtp: LocalSMTPServer, **kwargs: object) -> EmailNotifier:
    options: dict[str, object] = {"tls": "none", "timeout": 5.0, **kwargs}
    return EmailNotifier(host=smtp.host, port=smtp.port, sender=SENDER, **options)  # type: ignore[arg-type]


@pytest.fixture
def smtp() -> Iterator[LocalSMTPServer]:
    with LocalSMTPServer() as server:
        yield server


def parts(message: EmailMessage) -> dict[str, str]:
    return {part.get_content_type(): str(part.get_content()) for part in message.iter_parts()}


async def test_multipart_alert_arrives_escaped_and_sanitised(smtp: LocalSMTPServer) -> None:
    message_id = await notifier_for(smtp).send(delivery())

    (mail,) = await smtp.wait_for_async(1)
    message = mail.message
    assert mail.mail_from == SENDER
    assert mail.rcpt_tos == (RECIPIENT,)
    assert message["To"] == RECIPIENT
    assert message["Message-ID"] == message_id
    assert str(message["Message-ID"]).endswith("@mastwatch>")
    assert message[ALERT_ID_HEADER] == ALERT.id
    assert message["Date"] is not None
    # the CR/LF in the feed title did not become a header of its own
    assert message["Bcc"] is None
    subject = str(message["Subject"])
    assert subject.startswith("[mastwatch][CRITICAL] Yields jump")
    assert "\n" not in subject
    assert "\r" not in subject
    assert message.get_content_type() == "multipart/alternative"
    bodies = parts(message)
    assert set(bodies) == {"text/plain", "text/html"}
    assert "<script>" not in bodies["text/html"]
    assert "&lt;script&gt;" in bodies["text/html"]
    assert "&lt;b&gt;rose&lt;/b&gt;" in bodies["text/html"]
    assert 'href="https://example.test/boj/7"' in bodies["text/html"]
    assert "Matched: JGB, yield" in bodies["text/plain"]


async def test_javascript_link_is_not_an_anchor(smtp: LocalSMTPServer) -> None:
    alert = dataclasses.replace(ALERT, link="javascript:alert(document.cookie)")
    await notifier_for(smtp).send(Delivery(id=2, alert=alert, channel="email", target=RECIPIENT))
    (mail,) = await smtp.wait_for_async(1)
    html_body = parts(mail.message)["text/html"]
    assert "href" not in html_body
    assert "javascript" not in html_body


async def test_auth_success() -> None:
    async with LocalSMTPServer(username="alerts", password="s3cret") as smtp:
        await notifier_for(smtp, username="alerts", password="s3cret").send(delivery())
        (mail,) = await smtp.wait_for_async(1)
    assert mail.authenticated_as == "alerts"


async def test_wrong_password_is_permanent_and_not_revealed() -> None:
    async with LocalSMTPServer(username="alerts", password="s3cret") as smtp:
        notifier = notifier_for(smtp, username="alerts", password="wrong-pw")
        with pytest.raises(PermanentDeliveryError, match="535") as caught:
            await notifier.send(delivery())
        assert "wrong-pw" not in str(caught.value)
        assert "wrong-pw" not in repr(notifier)
        assert smtp.messages == []


async def test_missing_auth_is_permanent() -> None:
    async with LocalSMTPServer(username="alerts", password="s3cret") as smtp:
        with pytest.raises(PermanentDeliveryError, match="530"):
            await notifier_for(smtp).send(delivery())


@pytest.mark.parametrize(
    ("code", "stage", "expected"),
    [
        (451, "data", RetryableDeliveryError),
        (421, "data", RetryableDeliveryError),
        (550, "data", PermanentDeliveryError),
        (452, "rcpt", RetryableDeliveryError),
        (550, "rcpt", PermanentDeliveryError),
    ],
)
async def test_smtp_reply_codes_are_classified(
    smtp: LocalSMTPServer, code: int, stage: str, expected: type[Exception]
) -> None:
    smtp.fail_next(1, code=code, stage=stage)  # type: ignore[arg-type]
    notifier = notifier_for(smtp)
    with pytest.raises(expected, match=str(code)):
        await notifier.send(delivery())
    assert smtp.messages == []
    # the fault was consumed: the outbox's next attempt goes through
    await notifier.send(delivery())
    assert len(smtp.messages) == 1


async def test_server_down_is_retryable() -> None:
    with socket.socket() as sock:  # a port nobody listens on once closed
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    notifier = EmailNotifier(host="127.0.0.1", port=port, sender=SENDER, tls="none", timeout=5.0)
    with pytest.raises(RetryableDeliveryError):
        await notifier.send(delivery())


async def test_starttls_required_but_not_offered_is_permanent(smtp: LocalSMTPServer) -> None:
    with pytest.raises(PermanentDeliveryError, match="STARTTLS"):
        await notifier_for(smtp, tls="starttls").send(delivery())


async def test_address_with_line_break_is_permanent(smtp: LocalSMTPServer) -> None:
    with pytest.raises(PermanentDeliveryError):
        await notifier_for(smtp).send(delivery("desk@example.test\r\nBcc: x@example.test"))
    assert smtp.messages == []


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A throw-away self-signed certificate for 127.0.0.1 (openssl CLI)."""
    directory = tmp_path_factory.mktemp("tls")
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        [
            *("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"),
            *("-keyout", str(key), "-out", str(cert), "-subj", "/CN=127.0.0.1"),
            *("-addext", "subjectAltName=IP:127.0.0.1"),
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


async def test_starttls_delivers_with_a_trusted_certificate(
    certificate: tuple[Path, Path],
) -> None:
    cert, key = certificate
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_context.load_cert_chain(cert, key)
    client_context = ssl.create_default_context(cafile=str(cert))
    async with LocalSMTPServer(
        username="alerts", password="s3cret", tls_context=server_context
    ) as smtp:
        notifier = notifier_for(
            smtp, tls="starttls", tls_context=client_context, username="alerts", password="s3cret"
        )
        await notifier.send(delivery())
        (mail,) = await smtp.wait_for_async(1)
    assert mail.message[ALERT_ID_HEADER] == ALERT.id


def test_wait_for_times_out_when_nothing_arrives(smtp: LocalSMTPServer) -> None:
    with pytest.raises(TimeoutError, match="0 of 1"):
        smtp.wait_for(1, timeout=0.05)
