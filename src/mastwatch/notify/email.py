"""Email notifier: one multipart/alternative message (text + HTML) per alert over SMTP.

Each send opens its own connection: alerts are rare enough that a pooled connection
would mostly sit idle and go stale, and a fresh one makes every failure local to one
delivery. SMTP replies are classified by their code: 4xx is temporary (the outbox tries
again later), 5xx is final. The password is never logged nor put in an error message.
"""

from __future__ import annotations

import email.policy
import ssl
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from typing import Literal

import aiosmtplib
import structlog

from mastwatch.errors import PermanentDeliveryError, RetryableDeliveryError
from mastwatch.model import Delivery
from mastwatch.notify.base import NotifierLimits
from mastwatch.notify.render import email_bodies, email_subject

log = structlog.get_logger(__name__)

TlsMode = Literal["starttls", "implicit", "none"]
ALERT_ID_HEADER = "X-Mastwatch-Alert"


def build_message(delivery: Delivery, sender: str) -> EmailMessage:
    """The email for one delivery; raises ``PermanentDeliveryError`` for an address that
    cannot be put in a header (e.g. one with a line break)."""
    alert = delivery.alert
    text, html_body = email_bodies(alert)
    message = EmailMessage(policy=email.policy.SMTP)
    try:
        message["Subject"] = email_subject(alert)
        message["From"] = sender
        message["To"] = delivery.target
        message["Date"] = format_datetime(datetime.now(UTC))  # when sent, as mail expects
        message["Message-ID"] = make_msgid(domain="mastwatch")
        message[ALERT_ID_HEADER] = alert.id
    except ValueError as err:  # the header policy refuses CR/LF and malformed addresses
        raise PermanentDeliveryError(f"email: invalid header: {err}") from err
    message.set_content(text)
    message.add_alternative(html_body, subtype="html")
    return message


def _by_code(code: int, detail: str) -> RetryableDeliveryError | PermanentDeliveryError:
    # 4xx (421 service closing, 45x mailbox busy / local error / storage) is temporary.
    if 400 <= code < 500:
        return RetryableDeliveryError(detail)
    return PermanentDeliveryError(detail)


def classify_smtp_error(
    err: aiosmtplib.SMTPException,
) -> RetryableDeliveryError | PermanentDeliveryError:
    """Map an aiosmtplib failure to the outbox's error type."""
    if isinstance(err, aiosmtplib.SMTPRecipientsRefused):
        codes = [refused.code for refused in err.recipients]
        detail = f"email: recipients refused with {codes}"
        if codes and all(500 <= code < 600 for code in codes):
            return PermanentDeliveryError(detail)
        return RetryableDeliveryError(detail)
    if isinstance(err, aiosmtplib.SMTPResponseException):
        # includes SMTPAuthenticationError: 535 (bad credentials) is final, while 454
        # ("temporary authentication failure") is worth another try
        return _by_code(err.code, f"email: {type(err).__name__} {err.code}: {err.message}")
    if isinstance(err, aiosmtplib.SMTPNotSupported) or type(err) is aiosmtplib.SMTPException:
        # aiosmtplib refusing to go on before anything was sent: STARTTLS or AUTH required
        # by the configuration but not offered by the server. Sending in clear instead
        # would be wrong, and retrying will not change the server's capabilities.
        return PermanentDeliveryError(f"email: {err}")
    # connect errors, timeouts, a dropped connection: the server may be back later
    return RetryableDeliveryError(f"email: {type(err).__name__}: {err}")


class EmailNotifier:
    """Sends each alert as one email to the delivery's target address."""

    channel = "email"

    def __init__(
        self,
        *,
        host: str,
        port: int,
        sender: str,
        tls: TlsMode = "starttls",
        username: str | None = None,
        password: str | None = None,
        timeout: float = 30.0,
        tls_context: ssl.SSLContext | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self.sender = sender
        self.tls = tls
        self._username = username
        self._password = password
        self._timeout = timeout
        self._tls_context = tls_context
        self.limits = NotifierLimits()

    def __repr__(self) -> str:  # never show the password
        return f"EmailNotifier(host={self.host!r}, port={self.port}, tls={self.tls!r})"

    async def send(self, delivery: Delivery) -> str | None:
        """Send one alert email; return its ``Message-ID``."""
        message = build_message(delivery, self.sender)
        await self.send_email(message)
        log.debug("email_sent", delivery_id=delivery.id, message_id=message["Message-ID"])
        return str(message["Message-ID"])

    async def send_email(self, message: EmailMessage) -> None:
        """Send a ready message over this notifier's server (digests and notices use it)."""
        try:
            await aiosmtplib.send(
                message,
                hostname=self.host,
                port=self.port,
                username=self._username,
                password=self._password,
                use_tls=self.tls == "implicit",
                start_tls=self.tls == "starttls",
                tls_context=self._tls_context,
                timeout=self._timeout,
            )
        except aiosmtplib.SMTPException as err:
            raise classify_smtp_error(err) from err
        except OSError as err:  # anything the socket layer raises unwrapped
            raise RetryableDeliveryError(f"email: {type(err).__name__}: {err}") from err

    async def close(self) -> None:
        """Nothing to release: each send uses its own connection."""
