"""No secret in an exception's log line either: exceptions whose messages, causes and
tracebacks carry the Slack token, the webhook URL and the SMTP password are provoked for
real and logged the ways mastwatch logs them (``log.exception`` in the delivery worker and
the poll supervisor, a library's stdlib logger with ``exc_info``, asyncio's handler for a
task that crashed), in both output formats. The lines must show the exceptions (type,
message with the secret replaced, traceback) and never a secret.
"""

from __future__ import annotations

import asyncio
import gc
import io
import logging
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
import structlog

from mastwatch.errors import PermanentDeliveryError
from mastwatch.log import REDACTED, configure_logging, redactor
from mastwatch.model import Alert, Delivery
from mastwatch.notify.email import EmailNotifier
from mastwatch.testing.smtp import LocalSMTPServer

TOKEN = "xoxb-1111-2222-SECRETTOKENVALUE"
# a webhook whose secret path has no recognisable shape: only registration can catch it
WEBHOOK = "https://hooks.example.test/incoming/T000/B000/SECRETWEBHOOKPATH"
PASSWORD = 'smtp-SECRET-"pass"-9f8e7d'  # a quote: JSON escapes it in the rendered line
SECRETS = (TOKEN, WEBHOOK, PASSWORD, "SECRETWEBHOOKPATH")
ALERT = Alert(
    id="0123456789abcdef0123456789abcdef",
    rule_id="tariffs",
    rule_title="Tariffs",
    tier="high",
    source_id="wire",
    source_name="Wire",
    item_key="guid:1",
    title="US raises tariff on autos",
    link="https://example.test/1",
    summary="",
    matched=("tariff",),
    published=None,
    created_at=datetime(2026, 1, 1, tzinfo=UTC),
)
LOGGERS = ("", "asyncio", "slack_sdk")


@pytest.fixture(autouse=True)
def restore_logging(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    saved = {name: (logging.getLogger(name).handlers[:], logging.getLogger(name).level)
             for name in LOGGERS}  # fmt: skip
    saved_structlog = structlog.get_config()
    monkeypatch.setattr(redactor, "_values", ())
    yield
    for name, (handlers, level) in saved.items():
        logging.getLogger(name).handlers[:] = handlers
        logging.getLogger(name).setLevel(level)
    structlog.reset_defaults()
    structlog.configure(**saved_structlog)


class NotifierCrash(RuntimeError):
    """What a notifier bug might raise: the token in the message, the webhook in a note."""


def _call_slack(token: str) -> None:
    try:
        {}["Authorization: Bearer " + token]  # a KeyError quoting the header
    except KeyError as err:
        crash = NotifierCrash(f"chat.postMessage refused token {token}")
        crash.add_note(f"while posting to {WEBHOOK}")
        raise crash from err


async def _smtp_refuses_and_quotes_the_password(log: structlog.stdlib.BoundLogger) -> None:
    async with LocalSMTPServer(username="alerts", password="other", echo_failed_auth=True) as smtp:
        notifier = EmailNotifier(
            host=smtp.host,
            port=smtp.port,
            sender="mastwatch@example.test",
            tls="none",
            timeout=5.0,
            username="alerts",
            password=PASSWORD,
        )
        with pytest.raises(PermanentDeliveryError) as caught:
            await notifier.send(Delivery(id=1, alert=ALERT, channel="email", target="d@x.test"))
        # the server's reply really quotes the password (so the test can fail)
        assert PASSWORD in str(caught.value.__cause__)
        try:
            raise caught.value
        except PermanentDeliveryError:
            log.exception("delivery_error", delivery=1, channel="email")
        log.warning("delivery_failed", delivery=1, error=str(caught.value))


async def _crashing_task() -> None:
    await asyncio.sleep(0)
    raise ValueError(f"smtp login failed with password={PASSWORD}")


async def _task_crash_logged_by_asyncio() -> None:
    task = asyncio.get_running_loop().create_task(_crashing_task())
    await asyncio.sleep(0.01)
    assert task.done()
    del task  # never awaited: asyncio logs "Task exception was never retrieved" with exc_info
    gc.collect()


@pytest.mark.parametrize("fmt", ["json", "console"])
async def test_exceptions_carrying_secrets_are_logged_without_them(fmt: str) -> None:
    stream = io.StringIO()
    configure_logging("debug", fmt, stream)
    logging.getLogger("asyncio").setLevel(logging.DEBUG)
    redactor.register([TOKEN, WEBHOOK, PASSWORD])  # as the daemon does at start-up
    log = structlog.get_logger("mastwatch.delivery")

    await _smtp_refuses_and_quotes_the_password(log)
    try:
        _call_slack(TOKEN)
    except NotifierCrash:
        log.exception("delivery_error", delivery=2, channel="slack")
        logging.getLogger("slack_sdk").error("request failed", exc_info=True)
    await _task_crash_logged_by_asyncio()

    output = stream.getvalue()
    for shown in ("SMTPAuthenticationError", "NotifierCrash", "KeyError", "ValueError",
                  "Task exception was never retrieved", REDACTED):  # fmt: skip
        assert shown in output, f"{shown!r} missing from the log output:\n{output}"
    assert output.count("_call_slack") >= 2  # tracebacks really rendered, frames and all
    leaked = [line for line in output.splitlines() for s in SECRETS if s in line]
    assert leaked == []
