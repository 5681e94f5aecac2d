"""Slack and SMTP made to fail, through the whole daemon (``Daemon.run_once``).

Temporary failures are retried until the alert arrives; permanent ones are marked failed
at once, logged as the ``delivery_failed`` operator notice, and never hold up the rest.
"""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from daemon_fixtures import Servers, delivery_rows, run_once, source, write_config
from mastwatch.model import DeliveryState
from mastwatch.testing.feeds import rss
from mastwatch.testing.smtp import LocalSMTPServer

TARIFF = {"title": "US raises tariff on Japanese autos", "guid": "t-1"}  # #crit + email
TREASURIES = {"title": "Japan trims its US Treasuries", "guid": "t-2"}  # #high


def _config(tmp_path: Path, servers: Servers, **overrides: dict[str, object]) -> Path:
    servers.feeds.add_feed("/wire.xml", rss([TARIFF, TREASURIES]))
    return write_config(tmp_path, servers, [source(servers, "/wire.xml", "wire")], **overrides)


def _states(rows: list[object]) -> dict[tuple[str, str], DeliveryState]:
    return {(r.channel, r.target): r.state for r in rows}  # type: ignore[attr-defined]


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])  # nothing listens once the socket is closed


@pytest.mark.parametrize(
    "fault",
    ["slack-500", "slack-reset", "slack-429", "smtp-451", "smtp-rcpt-450"],
)
async def test_temporary_failures_are_retried_until_delivered(
    tmp_path: Path, servers: Servers, fault: str
) -> None:
    config = _config(tmp_path, servers)
    if fault == "slack-500":
        servers.slack.fail_next(3, status=500)
    elif fault == "slack-reset":
        servers.slack.reset_connection_next(3)
    elif fault == "slack-429":
        servers.slack.fail_next(5, status=429, retry_after=1)  # more than slack-sdk absorbs
    elif fault == "smtp-451":
        servers.smtp.fail_next(2, code=451)
    else:
        servers.smtp.fail_next(2, code=450, stage="rcpt")

    daemon = await run_once(config)

    rows = await delivery_rows(daemon)
    assert {state for state in _states(rows).values()} == {DeliveryState.SENT}
    assert any(r.attempts > 1 for r in rows)  # it really failed before it went
    assert sorted(m.channel for m in servers.slack.messages) == ["#crit", "#high"]
    assert len(servers.smtp.messages) == 1


@pytest.mark.parametrize("error", ["invalid_auth", "channel_not_found", "msg_too_long"])
async def test_permanent_slack_errors_fail_with_a_notice_and_block_nothing(
    tmp_path: Path, servers: Servers, error: str
) -> None:
    config = _config(tmp_path, servers)
    servers.slack.fail_channel("#crit", error)

    with capture_logs() as logs:
        daemon = await run_once(config)

    states = _states(await delivery_rows(daemon))
    assert states == {
        ("slack", "#crit"): DeliveryState.FAILED,
        ("email", "desk@example.com"): DeliveryState.SENT,
        ("slack", "#high"): DeliveryState.SENT,
    }
    notices = [e for e in logs if e["event"] == "delivery_failed"]
    assert [(n["target"], error in n["error"]) for n in notices] == [("#crit", True)]
    crit_attempts = [a for a in servers.slack.attempts if a.channel == "#crit"]
    assert len(crit_attempts) == 1  # never retried


async def test_smtp_down_is_retried_and_delivered_after_it_returns(
    tmp_path: Path, servers: Servers
) -> None:
    down = _config(tmp_path, servers, email={"port": _closed_port()}, delivery={"once_wait": 1})

    first = await run_once(down)

    states = _states(await delivery_rows(first))
    assert states[("email", "desk@example.com")] == DeliveryState.PENDING
    assert states[("slack", "#crit")] == DeliveryState.SENT  # Slack was not held up
    up = write_config(
        tmp_path, servers, [source(servers, "/wire.xml", "wire")], delivery={"retry_max": 1}
    )
    second = await run_once(up)
    assert set(_states(await delivery_rows(second)).values()) == {DeliveryState.SENT}
    assert len(servers.smtp.messages) == 1
    assert len(servers.slack.messages) == 2  # nothing sent twice


async def test_smtp_5xx_fails_with_a_notice(tmp_path: Path, servers: Servers) -> None:
    config = _config(tmp_path, servers)
    servers.smtp.fail_next(1, code=554)

    with capture_logs() as logs:
        daemon = await run_once(config)

    states = _states(await delivery_rows(daemon))
    assert states[("email", "desk@example.com")] == DeliveryState.FAILED
    assert states[("slack", "#crit")] == DeliveryState.SENT
    assert [e["channel"] for e in logs if e["event"] == "delivery_failed"] == ["email"]


async def test_smtp_auth_failure_fails_without_leaking_the_password(
    tmp_path: Path, servers: Servers, monkeypatch: pytest.MonkeyPatch
) -> None:
    wrong = "wrong-password-5c1d"
    monkeypatch.setenv("MASTWATCH_SMTP_PASSWORD", wrong)
    async with LocalSMTPServer(username="alerts", password="right") as smtp:
        email = {"port": smtp.port, "username": "alerts"}
        config = _config(tmp_path, servers, email=email)
        with capture_logs() as logs:
            daemon = await run_once(config)
        assert smtp.messages == []

    states = _states(await delivery_rows(daemon))
    assert states[("email", "desk@example.com")] == DeliveryState.FAILED
    (notice,) = [e for e in logs if e["event"] == "delivery_failed"]
    assert "535" in notice["error"]
    assert wrong not in repr(logs)
