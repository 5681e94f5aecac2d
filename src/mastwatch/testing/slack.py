"""A local Slack Web API and incoming-webhook server for tests and benchmarks.

slack-sdk reaches it through ``base_url``; the notifier under test runs unchanged::

    async with LocalSlackServer() as slack:
        notifier = SlackNotifier(token="xoxb-test", base_url=slack.base_url)
        ...
        await slack.wait_for(1)
        assert slack.messages[0].channel == "#alerts"

Faults are queued and consumed one per request, in order (``fail_next``,
``reset_connection_next``); ``fail_channel`` makes every post to one channel fail.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import secrets
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

from aiohttp import web

# The HTTP status a real incoming webhook answers with each plain-text error.
WEBHOOK_ERROR_STATUS: dict[str, int] = {
    "invalid_payload": 400,
    "no_text": 400,
    "invalid_token": 403,
    "action_prohibited": 403,
    "channel_not_found": 404,
    "no_service": 404,
    "channel_is_archived": 410,
    "rollup_error": 500,
}


@dataclass(frozen=True, slots=True)
class PostedMessage:
    """A message the server accepted (``chat.postMessage``, ``chat.update`` or webhook)."""

    endpoint: str
    channel: str
    text: str | None
    blocks: list[dict[str, Any]] | None
    ts: str
    received_at: float  # time.monotonic() when the request arrived
    parse: str | None = None
    unfurl_links: bool | None = None
    unfurl_media: bool | None = None
    headers: dict[str, str] = field(default_factory=dict)
    thread_ts: str | None = None  # a reply in a thread (chat.postMessage)
    reply_broadcast: bool | None = None


@dataclass(frozen=True, slots=True)
class Attempt:
    """Any request the server saw, successful or not, and what it answered."""

    endpoint: str
    channel: str | None
    outcome: str  # "ok", "error:<code>", "http:<status>" or "reset"
    headers: dict[str, str]
    received_at: float


@dataclass(frozen=True, slots=True)
class _Fault:
    status: int = 200
    error: str | None = None
    retry_after: float | None = None
    reset: bool = False


class LocalSlackServer:
    """An aiohttp server on 127.0.0.1 speaking enough of Slack's API for the notifier.

    ``token``, when given, is required as ``Authorization: Bearer <token>``; otherwise any
    bearer token is accepted (a missing one is answered ``not_authed``).
    """

    def __init__(self, *, token: str | None = None) -> None:
        self.token = token
        self.messages: list[PostedMessage] = []
        self.updates: list[PostedMessage] = []
        self.attempts: list[Attempt] = []
        self._faults: deque[_Fault] = deque()
        self._arrived = asyncio.Event()  # set whenever a message is recorded
        self._channel_errors: dict[str, str] = {}
        self._ts = itertools.count(1)
        self._webhook_path = f"/services/T0000000/B0000000/{secrets.token_hex(12)}"
        # seconds every Web API answer waits (a slow Slack, for crash tests); the message
        # is recorded after the wait even if the client has gone, as Slack would post it
        self.response_delay = 0.0
        self._runner: web.AppRunner | None = None
        self._port = 0

    # --- lifecycle ---------------------------------------------------------------

    async def start(self) -> None:
        """Bind to a free loopback port and start answering."""
        app = web.Application()
        app.router.add_post("/api/{method}", self._handle_api)
        app.router.add_post("/services/{rest:.*}", self._handle_webhook)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self._port = int(self._runner.addresses[0][1])

    async def stop(self) -> None:
        """Stop the server and close every connection."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> LocalSlackServer:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    @property
    def base_url(self) -> str:
        """The Web API base URL, ending in ``/api/`` as slack-sdk expects."""
        return f"http://127.0.0.1:{self._port}/api/"

    @property
    def webhook_url(self) -> str:
        """An incoming-webhook URL; like a real one, its path is a secret."""
        return f"http://127.0.0.1:{self._port}{self._webhook_path}"

    # --- programming faults ------------------------------------------------------

    def fail_next(
        self,
        n: int = 1,
        *,
        status: int = 200,
        error: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        """Make the next ``n`` requests fail: with an HTTP ``status`` (429 carries
        ``Retry-After``), or with ``ok: false`` and ``error`` when status is 200."""
        if status == 200 and error is None:
            raise ValueError("fail_next needs an error code or a non-200 status")
        self._faults.extend([_Fault(status=status, error=error, retry_after=retry_after)] * n)

    def reset_connection_next(self, n: int = 1) -> None:
        """Close the connection without answering on the next ``n`` requests."""
        self._faults.extend([_Fault(reset=True)] * n)

    def clear_faults(self) -> None:
        """Forget every queued and per-channel fault: Slack is healthy again."""
        self._faults.clear()
        self._channel_errors.clear()

    def fail_channel(self, channel: str, error: str) -> None:
        """Answer every later post to ``channel`` with ``ok: false`` and ``error``."""
        self._channel_errors[channel] = error

    # A built-in deadline (rather than the caller's asyncio.timeout) keeps a test whose
    # message never comes from hanging until the global per-test timeout.
    async def wait_for(
        self,
        count: int,
        timeout: float = 5.0,  # noqa: ASYNC109
    ) -> list[PostedMessage]:
        """Wait until at least ``count`` messages arrived; raise ``TimeoutError`` if not."""
        async with asyncio.timeout(timeout):
            while len(self.messages) < count:
                self._arrived.clear()
                await self._arrived.wait()
        return list(self.messages)

    async def wait_until(
        self,
        done: Callable[[LocalSlackServer], bool],
        timeout: float = 5.0,  # noqa: ASYNC109
    ) -> None:
        """Wait until ``done(self)`` holds after some post or update; ``TimeoutError`` if not."""
        async with asyncio.timeout(timeout):
            while not done(self):
                self._arrived.clear()
                await self._arrived.wait()

    def replies(self, ts: str) -> list[PostedMessage]:
        """The messages posted in the thread of ``ts``."""
        return [m for m in self.messages if m.thread_ts == ts]

    # --- request handling --------------------------------------------------------

    def _next_ts(self) -> str:
        return f"{int(time.time())}.{next(self._ts):06d}"

    def _record(self, request: web.Request, channel: str | None, outcome: str) -> None:
        self.attempts.append(
            Attempt(request.path, channel, outcome, dict(request.headers), time.monotonic())
        )

    def _fault_response(
        self, request: web.Request, fault: _Fault, channel: str | None, *, webhook: bool
    ) -> web.StreamResponse:
        if fault.reset:
            self._record(request, channel, "reset")
            assert request.transport is not None
            request.transport.abort()  # drop the connection: the client sees a disconnect
            return web.Response()  # never sent; the handler only has to return something
        headers = {}
        if fault.retry_after is not None:
            headers["Retry-After"] = str(int(fault.retry_after))
        status = fault.status
        code = fault.error or ("ratelimited" if status == 429 else "internal_error")
        if webhook and fault.status == 200:
            status = WEBHOOK_ERROR_STATUS.get(code, 400)
        outcome = f"http:{status}" if status != 200 else f"error:{code}"
        self._record(request, channel, outcome)
        if webhook:
            return web.Response(status=status, text=code, headers=headers)
        return web.json_response({"ok": False, "error": code}, status=status, headers=headers)

    async def _read_body(self, request: web.Request) -> dict[str, Any]:
        if request.content_type == "application/json":
            body = await request.json()
            return body if isinstance(body, dict) else {}
        form = await request.post()
        data: dict[str, Any] = {key: str(value) for key, value in form.items()}
        for key in ("blocks", "unfurl_links", "unfurl_media", "reply_broadcast"):
            if key in data:  # form posts carry JSON-encoded structures and booleans
                data[key] = json.loads(data[key])
        return data

    def _auth_error(self, request: web.Request) -> str | None:
        header = request.headers.get("Authorization", "")
        if not header.startswith("Bearer "):
            return "not_authed"
        if self.token is not None and header != f"Bearer {self.token}":
            return "invalid_auth"
        return None

    async def _handle_api(self, request: web.Request) -> web.StreamResponse:
        method = request.match_info["method"]
        body = await self._read_body(request)
        if self.response_delay:
            await asyncio.sleep(self.response_delay)
        channel = body.get("channel")
        if self._faults:
            return self._fault_response(request, self._faults.popleft(), channel, webhook=False)
        error = self._auth_error(request)
        if error is None and method in ("chat.postMessage", "chat.update"):
            error = self._channel_errors.get(str(channel)) or self._message_error(body)
        if error is not None:
            self._record(request, channel, f"error:{error}")
            return web.json_response({"ok": False, "error": error})
        self._record(request, channel, "ok")
        return web.json_response(self._answer(method, request, body))

    @staticmethod
    def _message_error(body: dict[str, Any]) -> str | None:
        if not body.get("channel"):
            return "channel_not_found"
        if not body.get("text") and not body.get("blocks"):
            return "no_text"
        return None

    def _answer(self, method: str, request: web.Request, body: dict[str, Any]) -> dict[str, Any]:
        if method == "auth.test":
            return {"ok": True, "url": "https://local.slack/", "team": "local", "user": "bot"}
        if method == "chat.postMessage":
            message = self._message(request, body, "chat.postMessage", self._next_ts())
            self.messages.append(message)
            self._arrived.set()
        elif method == "chat.update":
            message = self._message(request, body, "chat.update", str(body.get("ts", "")))
            self.updates.append(message)
            self._arrived.set()
        else:
            return {"ok": False, "error": "unknown_method"}
        return {
            "ok": True,
            "channel": message.channel,
            "ts": message.ts,
            "message": {"type": "message", "text": message.text, "blocks": message.blocks},
        }

    @staticmethod
    def _message(
        request: web.Request, body: dict[str, Any], endpoint: str, ts: str
    ) -> PostedMessage:
        return PostedMessage(
            endpoint=endpoint,
            channel=str(body.get("channel", "")),
            text=body.get("text"),
            blocks=body.get("blocks"),
            ts=ts,
            received_at=time.monotonic(),
            parse=body.get("parse"),
            unfurl_links=body.get("unfurl_links"),
            unfurl_media=body.get("unfurl_media"),
            headers=dict(request.headers),
            thread_ts=str(body["thread_ts"]) if body.get("thread_ts") else None,
            reply_broadcast=_flag(body.get("reply_broadcast")),
        )

    async def _handle_webhook(self, request: web.Request) -> web.StreamResponse:
        try:
            body = await request.json()
        except ValueError:
            body = None
        channel = body.get("channel") if isinstance(body, dict) else None
        if request.path != self._webhook_path:
            self._record(request, channel, "http:404")
            return web.Response(status=404, text="no_service")
        if self._faults:
            return self._fault_response(request, self._faults.popleft(), channel, webhook=True)
        if not isinstance(body, dict) or not (body.get("text") or body.get("blocks")):
            self._record(request, channel, "http:400")
            return web.Response(status=400, text="no_text")
        self._record(request, channel, "ok")
        self.messages.append(self._message(request, body, "webhook", self._next_ts()))
        self._arrived.set()
        return web.Response(text="ok")


def _flag(value: object) -> bool | None:
    if value is None:
        return None
    return value is True or str(value).lower() in {"1", "true"}
