"""A local SMTP server (aiosmtpd in its own thread) that records what it receives.

Usable from sync and async code alike::

    with LocalSMTPServer() as smtp:                  # or: async with LocalSMTPServer() ...
        notifier = EmailNotifier(host=smtp.host, port=smtp.port, sender=..., tls="none")
        ...
        assert smtp.messages[0].message["Subject"].startswith("[mastwatch]")

``fail_next(n, code=451)`` answers the next ``n`` DATA commands (or RCPT, with
``stage="rcpt"``) with that code; ``username``/``password`` make AUTH mandatory.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import ssl
import threading
import time
from collections import deque
from dataclasses import dataclass
from email.message import EmailMessage
from types import TracebackType
from typing import Any, Literal

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

Stage = Literal["rcpt", "data"]

_REPLY_TEXT = {
    4: "Temporary failure (injected by LocalSMTPServer)",
    5: "Permanent failure (injected by LocalSMTPServer)",
}


@dataclass(frozen=True, slots=True)
class ReceivedMail:
    """One message the server accepted."""

    mail_from: str
    rcpt_tos: tuple[str, ...]
    message: EmailMessage
    authenticated_as: str | None
    received_at: float  # time.monotonic()


class _Handler:
    """aiosmtpd handler hooks; they run in the controller's thread."""

    def __init__(self, server: LocalSMTPServer) -> None:
        self._server = server

    async def handle_MAIL(  # name fixed by aiosmtpd
        self, server: Any, session: Any, envelope: Any, address: str, mail_options: list[str]
    ) -> str:
        if self._server.username is not None and not session.authenticated:
            return "530 5.7.0 Authentication required"
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_RCPT(  # name fixed by aiosmtpd
        self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: list[str]
    ) -> str:
        code = self._server.take_fault("rcpt")
        if code is not None:
            return _reply(code)
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(  # name fixed by aiosmtpd
        self, server: Any, session: Any, envelope: Any
    ) -> str:
        code = self._server.take_fault("data")
        if code is not None:
            return _reply(code)
        login = session.auth_data.login.decode() if session.authenticated else None
        self._server.record(envelope, login)
        return "250 Message accepted for delivery"


def _reply(code: int) -> str:
    return f"{code} {_REPLY_TEXT.get(code // 100, 'Failure (injected by LocalSMTPServer)')}"


class _EphemeralPortController(Controller):
    """Controller bound to port 0: the real port is read back once the server listens,
    before the controller opens its start-up probe connection to it."""

    def _trigger_server(self) -> None:
        server = self.server
        assert isinstance(server, asyncio.Server)
        self.port = server.sockets[0].getsockname()[1]
        super()._trigger_server()  # type: ignore[no-untyped-call]  # untyped in aiosmtpd


class LocalSMTPServer:
    """An SMTP server on 127.0.0.1 (a free port) for tests; see the module docstring."""

    def __init__(
        self,
        *,
        username: str | None = None,
        password: str | None = None,
        tls_context: ssl.SSLContext | None = None,
        echo_failed_auth: bool = False,
    ) -> None:
        self.username = username
        self.password = password
        # a careless server: its 535 reply quotes the credentials it refused (secrets tests)
        self.echo_failed_auth = echo_failed_auth
        self.host = "127.0.0.1"
        self.messages: list[ReceivedMail] = []
        self._faults: deque[tuple[Stage, int]] = deque()
        self._lock = threading.Condition()
        self._tls_context = tls_context
        self._controller: _EphemeralPortController | None = None

    @property
    def port(self) -> int:
        """The port the server listens on (valid once started)."""
        assert self._controller is not None, "LocalSMTPServer is not running"
        return int(self._controller.port)

    def start(self) -> None:
        """Start the server thread and wait until it answers."""
        self._controller = _EphemeralPortController(
            _Handler(self),
            hostname=self.host,
            port=0,
            server_hostname="localhost",  # skips socket.getfqdn(), slow without DNS
            authenticator=self._authenticate,
            # AUTH over plain text is fine on loopback. auth_required stays False (it
            # would make aiosmtpd warn); handle_MAIL enforces AUTH instead.
            auth_require_tls=False,
            tls_context=self._tls_context,
            require_starttls=False,
        )
        self._controller.start()

    def stop(self) -> None:
        """Stop the server thread and close its event loop."""
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def __enter__(self) -> LocalSMTPServer:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    async def __aenter__(self) -> LocalSMTPServer:
        await asyncio.to_thread(self.start)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await asyncio.to_thread(self.stop)

    def fail_next(self, n: int = 1, *, code: int = 451, stage: Stage = "data") -> None:
        """Answer the next ``n`` DATA (or RCPT) commands with ``code``."""
        with self._lock:
            self._faults.extend([(stage, code)] * n)

    def take_fault(self, stage: Stage) -> int | None:
        """The code to answer ``stage`` with, if a fault for it is queued first."""
        with self._lock:
            if self._faults and self._faults[0][0] == stage:
                return self._faults.popleft()[1]
        return None

    def record(self, envelope: Any, login: str | None) -> None:
        """Store an accepted message and wake up ``wait_for``."""
        content = envelope.content
        parsed = email.message_from_bytes(content, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        mail = ReceivedMail(
            mail_from=envelope.mail_from,
            rcpt_tos=tuple(envelope.rcpt_tos),
            message=parsed,
            authenticated_as=login,
            received_at=time.monotonic(),
        )
        with self._lock:
            self.messages.append(mail)
            self._lock.notify_all()

    def wait_for(self, count: int, timeout: float = 5.0) -> list[ReceivedMail]:
        """Block until ``count`` messages arrived (``TimeoutError`` otherwise). From async
        code call it through ``asyncio.to_thread`` or use ``wait_for_async``."""
        with self._lock:
            if not self._lock.wait_for(lambda: len(self.messages) >= count, timeout):
                raise TimeoutError(f"{len(self.messages)} of {count} messages arrived")
            return list(self.messages)

    async def wait_for_async(
        self,
        count: int,
        timeout: float = 5.0,  # noqa: ASYNC109 - the same built-in deadline as wait_for
    ) -> list[ReceivedMail]:
        """``wait_for`` for async callers, without blocking the event loop."""
        return await asyncio.to_thread(self.wait_for, count, timeout)

    def _authenticate(
        self, server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any
    ) -> AuthResult:
        ok = (
            self.username is not None
            and isinstance(auth_data, LoginPassword)
            and auth_data.login.decode() == self.username
            and auth_data.password.decode() == self.password
        )
        if not ok and self.echo_failed_auth and isinstance(auth_data, LoginPassword):
            quoted = f"{auth_data.login.decode()}:{auth_data.password.decode()}"
            return AuthResult(success=False, handled=False, message=f"535 5.7.8 refused {quoted}")
        if not ok:
            return AuthResult(success=False, handled=False)  # aiosmtpd answers 535
        return AuthResult(success=True, auth_data=auth_data)
