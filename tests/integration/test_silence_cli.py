"""``mastwatch silence`` as docs/alerting.md shows it: the documented session is run for real
(ids and times differ, so those are compared as placeholders), then checked in the store."""

from __future__ import annotations

import json
import re
import shlex
from datetime import UTC, datetime
from pathlib import Path

import pytest

from daemon_fixtures import Servers, run_once, source, write_config
from mastwatch.cli import main
from mastwatch.model import Alert
from mastwatch.store.sqlite import SQLiteStore
from mastwatch.testing.feeds import rss

DOC = Path(__file__).resolve().parents[2] / "docs" / "alerting.md"
TIME = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\dZ")


def documented_session() -> list[tuple[str, list[str]]]:
    """(command, expected output lines) of the console block in the Silences section."""
    section = DOC.read_text(encoding="utf-8").split("## Silences", 1)[1].split("\n## ", 1)[0]
    block = section.split("```console\n", 1)[1].split("```", 1)[0]
    session: list[tuple[str, list[str]]] = []
    for line in block.splitlines():
        if line.startswith("$ "):
            session.append((line[2:], []))
        else:
            session[-1][1].append(line)
    return session


def normalise(text: str, ids: dict[str, str]) -> str:
    for real, placeholder in ids.items():
        text = text.replace(real, placeholder)
    return TIME.sub("<time>", text)


async def test_the_documented_silence_session_works(
    tmp_path: Path, servers: Servers, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(tmp_path, servers, [])
    session = documented_session()
    assert [cmd.split()[:3] for cmd, _ in session] == [
        ["mastwatch", "silence", "add"],
        ["mastwatch", "silence", "list"],
        ["mastwatch", "silence", "expire"],
        ["mastwatch", "silence", "list"],
    ]
    doc_id = session[0][1][0]
    real_id = ""
    for command, expected in session:
        argv = [str(config) if a == "config.toml" else a for a in shlex.split(command)[1:]]
        argv = [real_id if a == doc_id and real_id else a for a in argv]
        assert await _run(argv) == 0, command
        out = capsys.readouterr().out
        if not real_id:
            real_id = out.strip()
            assert re.fullmatch(r"[0-9a-f]{12}", real_id)
        assert normalise(out, {real_id: "ID"}).splitlines() == [
            normalise(line, {doc_id: "ID"}) for line in expected
        ]

    async with SQLiteStore(tmp_path / "state" / "mastwatch.db") as store:
        [stored] = await store.list_silences(datetime.now(UTC), expired=True)
        assert stored.id == real_id
        assert stored.matchers == (("rule", "trade-tariffs"), ("source", "wire"))
        assert stored.author == "aiko"
        assert await store.active_silences(datetime.now(UTC)) == []


async def _run(argv: list[str]) -> int:
    # main() runs asyncio.run itself, so it needs a thread without a running loop
    import asyncio  # noqa: PLC0415

    return await asyncio.to_thread(main, argv)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--match", "rule", "--for", "4h", "--comment", "x"], "expected KEY=VALUE"),
        (["--match", "rule=a", "--for", "soon", "--comment", "x"], "a duration such as"),
        (["--match", "rule=a", "--for", "4h", "--comment", " "], "must say why"),
    ],
)
async def test_bad_silences_are_refused_and_nothing_is_stored(
    tmp_path: Path,
    servers: Servers,
    capsys: pytest.CaptureFixture[str],
    args: list[str],
    message: str,
) -> None:
    config = write_config(tmp_path, servers, [])
    assert await _run(["silence", "add", "--config", str(config), *args]) == 1
    assert message in capsys.readouterr().err
    assert not (tmp_path / "state" / "mastwatch.db").exists()


async def test_expiring_an_unknown_silence_fails(
    tmp_path: Path, servers: Servers, capsys: pytest.CaptureFixture[str]
) -> None:
    config = write_config(tmp_path, servers, [])
    assert await _run(["silence", "expire", "--config", str(config), "nope"]) == 1
    assert "no active silence 'nope'" in capsys.readouterr().err


TARIFF = {
    "title": "US raises tariff on Japanese autos to 25%",
    "link": "https://news.example.org/a/1",
    "guid": "a-1",
    "description": "The decision takes effect next month.",
}
TREASURIES = {
    "title": "Japan trims its holdings of US Treasuries",
    "link": "https://news.example.org/a/2",
    "guid": "a-2",
    "description": "Holdings fell for a third month.",
}


async def test_a_silence_suppresses_delivery_but_the_alert_is_recorded(
    tmp_path: Path, servers: Servers, capsys: pytest.CaptureFixture[str]
) -> None:
    servers.feeds.add_feed("/wire.xml", rss([TARIFF, TREASURIES]))
    config = write_config(tmp_path, servers, [source(servers, "/wire.xml")])
    add = ["silence", "add", "--config", str(config), "--match", "rule=trade-tariffs"]
    assert (
        await _run([*add, "--match", "source=wire", "--for", "1h", "--comment", "retracted"]) == 0
    )
    silence_id = capsys.readouterr().out.strip()

    daemon = await run_once(config)  # a separate process from the CLI: the store is shared

    assert [m.channel for m in servers.slack.messages] == ["#high"]  # treasuries only
    assert servers.smtp.messages == []  # the critical tier's mailbox got nothing either
    async with SQLiteStore(tmp_path / "state" / "mastwatch.db") as store:
        tariff = Alert.make_id("wire", "guid:a-1", "trade-tariffs")
        found = await store.alert_disposition(tariff)
        assert found is not None
        assert found[1] == f"silenced:{silence_id}"
    assert daemon.config.store.path.name == "mastwatch.db"
    assert await _run(["alerts", "--config", str(config), "--format", "jsonl"]) == 0
    records = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert {r["rule"]: r["disposition"] for r in records} == {
        "trade-tariffs": f"silenced:{silence_id}",
        "us-treasuries": "sent",
    }
