"""SlackNotifier against the local Slack Web API server, reached through slack-sdk's base_url."""

from __future__ import annotations

import asyncio
import itertools
import socket
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime

import pytest
from structlog.testing import capture_logs

from mastwatch.errors import PermanentDeliveryError, RetryableDeliveryError
from mastwatch.messages import slack_blocks
from mastwatch.model import Alert, Delivery, Message
from mastwatch.notify.slack import SlackNotifier
from mastwatch.testing.slack import LocalSlackServer

TOKEN = "xoxb-test-0000-secret"


def delivery(target: str = "#trade-alerts", tier: str = "high", n: int = 1) -> Delivery:
    alert = Alert(
        id=f"alert-{n}",
        rule_id="tariffs",
        rule_title="Tariffs",
        tier=tier,
        source_id="mof",
        source_name="Ministry <!channel>",
        item_key=f"guid:{n}",
        title=f"Tariff news {n} <@U1>",
        link="https://example.test/news",
        summary="A deal on tariffs.",
        matched=("tariff",),
        published=datetime(2025, 7, 22, tzinfo=UTC),
        created_at=datetime(2025, 7, 22, tzinfo=UTC),
    )
    return Delivery(id=n, alert=alert, channel="slack", target=target)


@pytest.fixture
async def slack() -> AsyncIterator[LocalSlackServer]:
    async with LocalSlackServer(token=TOKEN) as server:
        yield server


@pytest.fixture
async def make_notifier() -> AsyncIterator[Callable[..., SlackNotifier]]:
    created: list[SlackNotifier] = []

    def make(**kwargs: object) -> SlackNotifier:
        kwargs.setdefault("min_interval", 0.0)
        notifier = SlackNotifier(**kwargs)  # type: ignore[arg-type]
        created.append(notifier)
        return notifier

    yield make
    for notifier in created:
        await notifier.close()


@pytest.fixture
def notifier(slack: LocalSlackServer, make_notifier: Callable[..., SlackNotifier]) -> SlackNotifier:
    return make_notifier(token=TOKEN, base_url=slack.base_url)


def outcomes(slack: LocalSlackServer) -> list[str]:
    return [attempt.outcome for attempt in slack.attempts]


# --- Web API: success -------------------------------------------------------------------


async def test_post_arrives_with_blocks_text_and_bearer_token(
    slack: LocalSlackServer, notifier: SlackNotifier
) -> None:
    ts = await notifier.send(delivery())

    (message,) = await slack.wait_for(1)
    assert ts == message.ts
    assert message.channel == "#trade-alerts"
    assert message.parse == "none"
    assert message.unfurl_links is False
    assert message.unfurl_media is False
    assert message.headers["Authorization"] == f"Bearer {TOKEN}"
    assert message.text is not None
    assert "Tariff news 1 &lt;@U1&gt;" in message.text
    assert message.blocks is not None
    assert [block["type"] for block in message.blocks] == ["header", "section", "context"]
    assert "&lt;!channel&gt;" in message.blocks[2]["elements"][0]["text"]
    assert "<!here>" not in message.text


async def test_critical_tier_mentions_here(
    slack: LocalSlackServer, notifier: SlackNotifier
) -> None:
    await notifier.send(delivery(tier="critical"))
    (message,) = await slack.wait_for(1)
    assert message.text is not None
    assert message.text.startswith("<!here>")


async def test_token_never_logged_or_shown(
    slack: LocalSlackServer, notifier: SlackNotifier
) -> None:
    slack.fail_next(1, error="channel_not_found")
    with capture_logs() as logs, pytest.raises(PermanentDeliveryError) as caught:
        await notifier.send(delivery())
    await notifier.send(delivery())
    assert TOKEN not in str(caught.value)
    assert TOKEN not in repr(notifier)
    assert all(TOKEN not in repr(entry) for entry in logs)


# --- Web API: rate limits and server errors ------------------------------------------------


async def test_single_429_is_retried_by_slack_sdk(
    slack: LocalSlackServer, notifier: SlackNotifier
) -> None:
    slack.fail_next(1, status=429, retry_after=0)
    ts = await notifier.send(delivery())
    assert ts == slack.messages[0].ts
    assert outcomes(slack) == ["http:429", "ok"]


async def test_429_beyond_sdk_retries_is_retryable_with_retry_after(
    slack: LocalSlackServer, notifier: SlackNotifier
) -> None:
    # slack-sdk retries a 429 twice; the third answer is ours to classify
    slack.fail_next(2, status=429, retry_after=0)
    slack.fail_next(1, status=429, retry_after=1)
    with pytest.raises(RetryableDeliveryError) as caught:
        await notifier.send(delivery())
    assert caught.value.retry_after == 1.0
    assert outcomes(slack) == ["http:429"] * 3
    assert slack.messages == []


async def test_long_retry_after_goes_back_to_the_outbox_at_once(
    slack: LocalSlackServer, notifier: SlackNotifier
) -> None:
    # waiting 30 s inside send() would hold the channel's turn: the outbox waits instead
    slack.fail_next(1, status=429, retry_after=30)
    with pytest.raises(RetryableDeliveryError) as caught:
        await notifier.send(delivery())
    assert caught.value.retry_after == 30.0
    assert outcomes(slack) == ["http:429"]
    assert await notifier.send(delivery()) is not None


async def test_repeated_500_is_retryable(slack: LocalSlackServer, notifier: SlackNotifier) -> None:
    slack.fail_next(2, status=500)
    with pytest.raises(RetryableDeliveryError, match="HTTP 500"):
        await notifier.send(delivery())
    assert outcomes(slack) == ["http:500", "http:500"]


async def test_single_500_is_retried_and_delivered(
    slack: LocalSlackServer, notifier: SlackNotifier
) -> None:
    slack.fail_next(1, status=503)
    assert await notifier.send(delivery()) is not None
    assert outcomes(slack) == ["http:503", "ok"]


async def test_connection_reset_once_is_retried_and_delivered(
    slack: LocalSlackServer, notifier: SlackNotifier
) -> None:
    slack.reset_connection_next(1)
    assert await notifier.send(delivery()) is not None
    assert outcomes(slack) == ["reset", "ok"]


async def test_connection_reset_twice_is_retryable(
    slack: LocalSlackServer, notifier: SlackNotifier
) -> None:
    slack.reset_connection_next(2)
    with pytest.raises(RetryableDeliveryError):
        await notifier.send(delivery())
    assert outcomes(slack) == ["reset", "reset"]
    assert slack.messages == []


async def test_server_down_is_retryable(make_notifier: Callable[..., SlackNotifier]) -> None:
    with socket.socket() as sock:  # a port nobody listens on once closed
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    notifier = make_notifier(token=TOKEN, base_url=f"http://127.0.0.1:{port}/api/")
    with pytest.raises(RetryableDeliveryError):
        await notifier.send(delivery())


# --- Web API: Slack error codes -------------------------------------------------------------


@pytest.mark.parametrize(
    "error",
    ["channel_not_found", "not_in_channel", "msg_too_long", "invalid_blocks", "is_archived"],
)
async def test_permanent_slack_errors(
    slack: LocalSlackServer, notifier: SlackNotifier, error: str
) -> None:
    slack.fail_next(1, error=error)
    with pytest.raises(PermanentDeliveryError, match=error):
        await notifier.send(delivery())
    assert slack.messages == []


async def test_unknown_slack_error_is_retryable(
    slack: LocalSlackServer, notifier: SlackNotifier
) -> None:
    slack.fail_next(1, error="fatal_error")
    with pytest.raises(RetryableDeliveryError, match="fatal_error"):
        await notifier.send(delivery())


async def test_failing_channel_is_permanent_and_others_still_work(
    slack: LocalSlackServer, notifier: SlackNotifier
) -> None:
    slack.fail_channel("#gone", "channel_not_found")
    with pytest.raises(PermanentDeliveryError, match="channel_not_found"):
        await notifier.send(delivery(target="#gone"))
    await notifier.send(delivery(target="#trade-alerts"))
    assert [message.channel for message in slack.messages] == ["#trade-alerts"]


async def test_wrong_token_is_permanent_invalid_auth(
    slack: LocalSlackServer, make_notifier: Callable[..., SlackNotifier]
) -> None:
    notifier = make_notifier(token="xoxb-wrong", base_url=slack.base_url)
    with pytest.raises(PermanentDeliveryError, match="invalid_auth"):
        await notifier.send(delivery())
    assert outcomes(slack) == ["error:invalid_auth"]


# --- pacing ---------------------------------------------------------------------------------


async def test_messages_to_one_channel_are_paced(
    slack: LocalSlackServer, make_notifier: Callable[..., SlackNotifier]
) -> None:
    notifier = make_notifier(token=TOKEN, base_url=slack.base_url, min_interval=0.2)
    assert notifier.limits.min_interval_per_target == 0.2
    await asyncio.gather(*(notifier.send(delivery(n=n)) for n in range(3)))

    messages = await slack.wait_for(3)
    times = [message.received_at for message in messages]
    gaps = [later - earlier for earlier, later in itertools.pairwise(times)]
    assert all(gap >= 0.15 for gap in gaps), gaps


async def test_a_burst_to_one_channel_stays_within_its_allowance(
    slack: LocalSlackServer, make_notifier: Callable[..., SlackNotifier]
) -> None:
    interval, burst = 0.2, 3
    notifier = make_notifier(
        token=TOKEN, base_url=slack.base_url, min_interval=interval, burst=burst
    )
    # when the pacer lets each message go: the server's receipt times add the requests'
    # own latency, which under load bunched a slow first request with the next ones
    released: list[float] = []
    wait_turn = notifier._pacer.wait_turn

    async def recorded_turn(target: str) -> None:
        await wait_turn(target)
        released.append(asyncio.get_running_loop().time())

    notifier._pacer.wait_turn = recorded_turn  # type: ignore[method-assign]
    await asyncio.gather(*(notifier.send(delivery(n=n)) for n in range(8)))

    messages = await slack.wait_for(8)
    assert len(messages) == len(released) == 8
    # in any span of T seconds at most burst + T / interval messages (a little slack for
    # the clock readings themselves)
    for i, first in enumerate(released):
        for j in range(i + 1, len(released)):
            assert j - i + 1 <= burst + (released[j] - first + 0.01) / interval, (i, j, released)
    assert released[-1] - released[0] >= (8 - burst) * interval - 0.01


# --- incoming webhook -----------------------------------------------------------------------


async def test_webhook_delivers(
    slack: LocalSlackServer, make_notifier: Callable[..., SlackNotifier]
) -> None:
    notifier = make_notifier(webhook_url=slack.webhook_url)
    assert await notifier.send(delivery(tier="critical")) is None
    (message,) = await slack.wait_for(1)
    assert message.endpoint == "webhook"
    assert message.text is not None
    assert message.text.startswith("<!here>")
    assert message.blocks is not None
    assert message.unfurl_links is False
    assert "Authorization" not in message.headers


@pytest.mark.parametrize(
    ("fault", "expected"),
    [
        ((1, 200, "channel_not_found"), PermanentDeliveryError),
        ((1, 200, "invalid_token"), PermanentDeliveryError),
        ((1, 200, "no_service"), PermanentDeliveryError),
        ((2, 500, None), RetryableDeliveryError),  # slack-sdk retries one 500 itself
    ],
)
async def test_webhook_errors_are_classified(
    slack: LocalSlackServer,
    make_notifier: Callable[..., SlackNotifier],
    fault: tuple[int, int, str | None],
    expected: type[Exception],
) -> None:
    count, status, error = fault
    notifier = make_notifier(webhook_url=slack.webhook_url)
    slack.fail_next(count, status=status, error=error)
    with pytest.raises(expected) as caught:
        await notifier.send(delivery())
    assert slack.webhook_url not in str(caught.value)
    assert slack.messages == []
    assert len(slack.attempts) == count


async def test_webhook_rate_limit_is_retryable_with_retry_after(
    slack: LocalSlackServer, make_notifier: Callable[..., SlackNotifier]
) -> None:
    notifier = make_notifier(webhook_url=slack.webhook_url)
    slack.fail_next(2, status=429, retry_after=0)
    slack.fail_next(1, status=429, retry_after=1)
    with pytest.raises(RetryableDeliveryError) as caught:
        await notifier.send(delivery())
    assert caught.value.retry_after == 1.0


async def test_wrong_webhook_url_is_permanent_and_not_revealed(
    slack: LocalSlackServer, make_notifier: Callable[..., SlackNotifier]
) -> None:
    secret_url = slack.webhook_url + "-revoked"
    notifier = make_notifier(webhook_url=secret_url)
    with capture_logs() as logs, pytest.raises(PermanentDeliveryError, match="no_service"):
        await notifier.send(delivery())
    assert all("revoked" not in repr(entry) for entry in logs)
    assert "revoked" not in repr(notifier)


def test_exactly_one_of_token_or_webhook_is_required() -> None:
    with pytest.raises(ValueError, match="exactly one"):
        SlackNotifier()
    with pytest.raises(ValueError, match="exactly one"):
        SlackNotifier(token=TOKEN, webhook_url="http://127.0.0.1/hook")


# --- pre-rendered messages (digests, operator notices) ------------------------------------


@pytest.mark.parametrize("mode", ["token", "webhook"])
async def test_a_digest_message_goes_out_by_token_or_webhook(
    slack: LocalSlackServer,
    notifier: SlackNotifier,
    make_notifier: Callable[..., SlackNotifier],
    mode: str,
) -> None:
    sender = notifier if mode == "token" else make_notifier(webhook_url=slack.webhook_url)
    message = Message("digest", "digest:m:1", "slack", "#research", "Morning", "• <!here> *x*")
    await sender.post("#research", slack_blocks(message))
    (received,) = await slack.wait_for(1)
    assert received.endpoint == ("webhook" if mode == "webhook" else "chat.postMessage")
    assert received.blocks is not None
    assert received.blocks[1]["text"] == {"type": "plain_text", "text": "• <!here> *x*"}
    assert received.text is not None
    assert "<!here>" not in received.text
