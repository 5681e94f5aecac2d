"""Slack notifier: the Web API (``chat.postMessage`` with a bot token) or an incoming webhook.

slack-sdk does the short retries itself (a connection reset, one 500/503, a 429 or two);
once it gives up, the failure is classified here: temporary ones become
``RetryableDeliveryError`` (with the server's ``Retry-After`` when it sent one) so the
outbox tries again later, and ones that will never succeed as configured become
``PermanentDeliveryError``. Messages to one channel are paced at ``min_interval`` seconds,
Slack's documented rate for posting to a channel, with short bursts of up to ``burst``.

The token and the webhook URL are secrets: neither is logged or put in an error message
(webhook errors carry only the exception type, since aiohttp errors may quote the URL).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Any

import aiohttp
import structlog
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.async_handler import AsyncRetryHandler
from slack_sdk.http_retry.builtin_async_handlers import (
    AsyncConnectionErrorRetryHandler,
    AsyncRateLimitErrorRetryHandler,
    AsyncServerErrorRetryHandler,
)
from slack_sdk.http_retry.request import HttpRequest
from slack_sdk.http_retry.response import HttpResponse
from slack_sdk.http_retry.state import RetryState
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.webhook.async_client import AsyncWebhookClient

from mastwatch.errors import PermanentDeliveryError, RetryableDeliveryError
from mastwatch.model import Delivery
from mastwatch.notify.base import NotifierLimits
from mastwatch.notify.render import (
    SLACK_BLOCK_TEXT_MAX,
    SLACK_HEADER_MAX,
    SLACK_TEXT_MAX,
    SlackMessage,
    slack_escalation,
    slack_message,
    slack_reply,
    slack_summary,
    slack_update,
)

log = structlog.get_logger(__name__)

# Web API error codes that no retry can fix: the configuration or the message is wrong.
PERMANENT_API_ERRORS = frozenset(
    {
        "channel_not_found",
        "not_in_channel",
        "invalid_auth",
        "not_authed",
        "account_inactive",
        "token_revoked",
        "token_expired",
        "no_permission",
        "is_archived",
        "msg_too_long",
        "invalid_blocks",
        "invalid_blocks_format",
        "missing_scope",
        "no_text",
        "too_many_attachments",
        "restricted_action",
        "restricted_action_read_only_channel",
        "team_access_not_granted",
        "not_allowed_token_type",
        "invalid_arguments",
        # chat.update of a story's parent message
        "message_not_found",
        "cant_update_message",
        "edit_window_closed",
    }
)
# Incoming-webhook answers (plain-text bodies) that no retry can fix.
PERMANENT_WEBHOOK_ERRORS = frozenset(
    {
        "invalid_payload",
        "invalid_token",
        "no_service",
        "no_service_id",
        "no_team",
        "team_disabled",
        "channel_not_found",
        "channel_is_archived",
        "action_prohibited",
        "posting_to_general_channel_denied",
        "too_many_attachments",
        "no_text",
        "user_not_found",
    }
)
# Webhook statuses that are final whatever the body says (bad payload, bad URL, gone).
PERMANENT_WEBHOOK_STATUSES = frozenset({400, 403, 404, 410})

RATE_LIMIT_RETRIES = 2  # slack-sdk's own 429 retries before the outbox takes over
# A 429 asking for a longer wait than this is not waited out inside send() (which holds
# the channel's turn); it goes straight back to the outbox with its Retry-After.
MAX_INLINE_RATE_LIMIT_WAIT = 5.0

# slack-sdk writes request URLs to its stdlib logger at DEBUG level, and for a webhook the
# URL is the secret. A dedicated logger pinned at INFO keeps those lines from ever being
# emitted, whatever level the root logger runs at.
_sdk_logger = logging.getLogger("mastwatch.notify.slack_sdk")
_sdk_logger.setLevel(logging.INFO)


class _ShortRateLimitRetryHandler(AsyncRateLimitErrorRetryHandler):
    """slack-sdk's 429 handler, limited to short ``Retry-After`` waits."""

    async def _can_retry_async(
        self,
        *,
        state: RetryState,
        request: HttpRequest,
        response: HttpResponse | None = None,
        error: Exception | None = None,
    ) -> bool:
        if response is None or response.status_code != 429:
            return False
        wait = _retry_after(response.headers)
        return wait is None or wait <= MAX_INLINE_RATE_LIMIT_WAIT


def _retry_handlers() -> list[AsyncRetryHandler]:
    return [
        AsyncConnectionErrorRetryHandler(max_retry_count=1),
        _ShortRateLimitRetryHandler(max_retry_count=RATE_LIMIT_RETRIES),
        AsyncServerErrorRetryHandler(max_retry_count=1),
    ]


def _retry_after(headers: Mapping[str, Any] | None) -> float | None:
    """The ``Retry-After`` header in seconds, or ``None`` if absent or not a number."""
    if not headers:
        return None
    for name, value in headers.items():
        if name.lower() == "retry-after":
            raw = value[0] if isinstance(value, list) and value else value
            try:
                return max(0.0, float(raw))
            except (TypeError, ValueError):
                return None
    return None


def classify_api_error(err: SlackApiError) -> RetryableDeliveryError | PermanentDeliveryError:
    """Turn a Web API failure slack-sdk gave up on into the outbox's error type."""
    response = err.response
    status = response.status_code
    data = response.data
    code = data.get("error") if isinstance(data, dict) else None
    detail = f"slack api: HTTP {status}, error={code or 'unknown'}"
    if status == 429:
        return RetryableDeliveryError(detail, retry_after=_retry_after(response.headers))
    if status >= 500:
        return RetryableDeliveryError(detail)
    if code in PERMANENT_API_ERRORS:
        return PermanentDeliveryError(detail)
    return RetryableDeliveryError(detail)


def classify_webhook_status(
    status: int, body: str, headers: Mapping[str, Any] | None
) -> RetryableDeliveryError | PermanentDeliveryError | None:
    """Map an incoming-webhook answer to an error, or ``None`` when it was delivered."""
    if 200 <= status < 300:
        return None
    code = body.strip()[:100]
    detail = f"slack webhook: HTTP {status}, error={code or 'unknown'}"
    if status == 429:
        return RetryableDeliveryError(detail, retry_after=_retry_after(headers))
    if code in PERMANENT_WEBHOOK_ERRORS or status in PERMANENT_WEBHOOK_STATUSES:
        return PermanentDeliveryError(detail)
    return RetryableDeliveryError(detail)


class _Pacer:
    """Per target: on average one send per ``interval`` seconds, and at most ``burst`` at
    once. Slack documents one message per second per channel with "short bursts >1
    allowed"; a message to an idle channel never waits, a few found together go out at
    once, and a longer run settles at the interval. In any span of T seconds at most
    ``burst + T / interval`` messages go to one target (the generic cell rate algorithm:
    a send is due ``(burst - 1) * interval`` before its theoretical time). Callers wait
    their turn in order."""

    def __init__(self, interval: float, burst: int = 1) -> None:
        self.interval = interval
        self.burst = max(1, burst)
        self._locks: dict[str, asyncio.Lock] = {}
        self._theoretical: dict[str, float] = {}  # when the next send would be, unbursted

    def lock(self, target: str) -> asyncio.Lock:
        return self._locks.setdefault(target, asyncio.Lock())

    async def wait_turn(self, target: str) -> None:
        """Sleep until a send to ``target`` is within its allowance, and count it.
        Call with ``lock(target)`` held."""
        loop = asyncio.get_running_loop()
        theoretical = self._theoretical.get(target, 0.0)
        delay = theoretical - (self.burst - 1) * self.interval - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        self._theoretical[target] = max(theoretical, loop.time()) + self.interval


class SlackNotifier:
    """Posts alerts to Slack through the Web API (``token``) or a webhook (``webhook_url``)."""

    channel = "slack"
    HEADER_MAX = SLACK_HEADER_MAX
    BLOCK_TEXT_MAX = SLACK_BLOCK_TEXT_MAX
    TEXT_MAX = SLACK_TEXT_MAX

    def __init__(
        self,
        *,
        token: str | None = None,
        webhook_url: str | None = None,
        base_url: str | None = None,
        mention_tiers: frozenset[str] = frozenset({"critical"}),
        min_interval: float = 1.0,
        burst: int = 1,
        timeout: float = 30.0,
    ) -> None:
        if (token is None) == (webhook_url is None):
            raise ValueError("SlackNotifier needs exactly one of token or webhook_url")
        self._token = token
        self._webhook_url = webhook_url
        self._base_url = base_url or AsyncWebClient.BASE_URL
        self._timeout = timeout
        self.mention_tiers = mention_tiers
        self.limits = NotifierLimits(min_interval_per_target=min_interval, max_text=SLACK_TEXT_MAX)
        self._pacer = _Pacer(min_interval, burst)
        self._session: aiohttp.ClientSession | None = None

    def __repr__(self) -> str:  # never show the token or the webhook URL
        mode = "token" if self._token else "webhook"
        return f"SlackNotifier(mode={mode}, base_url={self._base_url!r})"

    async def send(self, delivery: Delivery) -> str | None:
        """Post one message; return the message ``ts`` (``None`` for a webhook).

        A story's parent returns ``"<ts> <channel id>"``: replies thread on the ts, and
        ``chat.update`` needs the channel's id, not its name."""
        message = self._render(delivery)
        target = delivery.target
        async with self._pacer.lock(target):
            await self._pacer.wait_turn(target)
            if self._webhook_url is None:
                return await self._send_api(delivery, message)
            if delivery.kind == "update":
                return None  # an incoming webhook cannot edit a message
            await self._post_webhook(self._webhook_url, message)
            return None  # a webhook answers "ok", with no message ts

    async def post(self, target: str, message: SlackMessage) -> None:
        """Post a pre-rendered message (a digest, an operator notice) to ``target``, paced
        with the alerts to that channel, through the bot token or else the webhook."""
        async with self._pacer.lock(target):
            await self._pacer.wait_turn(target)
            if self._webhook_url is None:
                await self._post_api(target, message)
            else:
                await self._post_webhook(self._webhook_url, message)

    def _render(self, delivery: Delivery) -> SlackMessage:
        alert, info = delivery.alert, delivery.info
        mention = alert.tier in self.mention_tiers
        if delivery.kind == "reply":
            return slack_reply(alert, info)
        if delivery.kind == "update":
            return slack_update(alert, info, mention=False)
        if delivery.kind == "escalation":
            return slack_escalation(info, mention=str(info.get("to")) in self.mention_tiers)
        if delivery.kind == "summary":
            return slack_summary(info)
        return slack_message(alert, mention=mention)

    async def _send_api(self, delivery: Delivery, message: SlackMessage) -> str | None:
        thread = delivery.thread_ts
        if delivery.kind == "update":
            if thread is None:
                return None  # no parent to update (its post failed for good): nothing to do
            channel = str(delivery.info.get("parent_channel") or delivery.target)
            return await self._post_api(channel, message, method="update", ts=thread)
        extra: dict[str, Any] = {}
        if thread is not None and delivery.kind in ("reply", "escalation"):
            extra["thread_ts"] = thread
            # an escalation is news for the whole channel, not only for the thread
            extra["reply_broadcast"] = delivery.kind == "escalation"
        posted = await self._post_api(delivery.target, message, **extra)
        if delivery.kind == "parent" and posted is not None:
            return posted  # "<ts> <channel id>"
        return posted.split(" ", 1)[0] if posted else None

    async def close(self) -> None:
        """Close the HTTP session (idempotent)."""
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _http(self) -> aiohttp.ClientSession:
        # Created on first use, inside the running loop, and reused for keep-alive.
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self._timeout)
            )
        return self._session

    async def _post_api(
        self, target: str, message: SlackMessage, *, method: str = "post", **extra: Any
    ) -> str | None:
        """``chat.postMessage`` (or ``chat.update``); returns ``"<ts> <channel id>"``."""
        client = AsyncWebClient(
            token=self._token,
            base_url=self._base_url,
            session=self._http(),
            logger=_sdk_logger,
            retry_handlers=_retry_handlers(),
        )
        try:
            if method == "update":
                response = await client.chat_update(
                    channel=target, text=message.text, blocks=message.blocks, parse="none", **extra
                )
            else:
                response = await client.chat_postMessage(
                    channel=target,
                    text=message.text,
                    blocks=message.blocks,
                    parse="none",
                    unfurl_links=False,
                    unfurl_media=False,
                    **extra,
                )
        except SlackApiError as err:
            raise classify_api_error(err) from err
        except (aiohttp.ClientError, TimeoutError, OSError) as err:
            raise RetryableDeliveryError(f"slack api: {type(err).__name__}: {err}") from err
        ts = response.get("ts")
        log.debug("slack_posted", channel=target, ts=ts, method=method)
        if ts is None:
            return None
        return f"{ts} {response.get('channel') or target}"

    async def _post_webhook(self, url: str, message: SlackMessage) -> None:
        client = AsyncWebhookClient(
            url=url,
            session=self._http(),
            logger=_sdk_logger,
            retry_handlers=_retry_handlers(),
        )
        body = {
            "text": message.text,
            "blocks": message.blocks,
            "parse": "none",
            "unfurl_links": False,
            "unfurl_media": False,
        }
        try:
            response = await client.send_dict(body)
        except (aiohttp.ClientError, TimeoutError, OSError) as err:
            # only the type: aiohttp messages can quote the (secret) URL
            raise RetryableDeliveryError(f"slack webhook: {type(err).__name__}") from None
        error = classify_webhook_status(response.status_code, response.body, response.headers)
        if error is not None:
            raise error
        log.debug("slack_webhook_posted")
