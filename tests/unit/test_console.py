"""ConsoleNotifier writes a readable, escape-free block per alert."""

from __future__ import annotations

import io
from datetime import UTC, datetime

import pytest

from mastwatch.model import Alert, Delivery
from mastwatch.notify.console import SEPARATOR, ConsoleNotifier

ALERT = Alert(
    id="a" * 32,
    rule_id="g7-summit",
    rule_title="G7 summit",
    tier="normal",
    source_id="mofa",
    source_name="MOFA press",
    item_key="guid:3",
    title="\x1b[31mG7 leaders meet\x1b[0m in Kananaskis",
    link="https://example.test/g7",
    summary="Leaders discussed trade and tariffs.",
    matched=("G7", "summit"),
    published=None,
    created_at=datetime(2025, 6, 15, tzinfo=UTC),
)


def delivery(n: int = 1) -> Delivery:
    return Delivery(id=n, alert=ALERT, channel="console", target="stdout")


async def test_writes_the_facts_and_a_separator() -> None:
    stream = io.StringIO()
    notifier = ConsoleNotifier(stream)
    assert notifier.channel == "console"

    assert await notifier.send(delivery()) is None
    await notifier.close()

    output = stream.getvalue()
    for fact in (
        "[NORMAL]",
        "G7 leaders meet in Kananaskis",
        "G7 summit [g7-summit]",
        "MOFA press",
        "https://example.test/g7",
        "G7, summit",
        "Leaders discussed trade and tariffs.",
        "unknown time",
    ):
        assert fact in output
    assert "\x1b" not in output
    assert output.endswith(SEPARATOR + "\n")


async def test_defaults_to_stdout_looked_up_at_send_time(
    capsys: pytest.CaptureFixture[str],
) -> None:
    notifier = ConsoleNotifier()
    await notifier.send(delivery(1))
    await notifier.send(delivery(2))
    output = capsys.readouterr().out
    assert output.count(SEPARATOR) == 2
    assert "G7 leaders meet" in output
