"""`mastwatch migrate` and `mastwatch status` against a PostgreSQL store (HA mode)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from mastwatch.cli import main
from mastwatch.store.migrate import load_migrations
from mastwatch.store.postgres import MIGRATIONS_PACKAGE, PostgresStore
from pg_fixtures import fresh_database
from store_contract import make_item, make_poll


@pytest.fixture
async def pg_url() -> AsyncIterator[str]:
    async with fresh_database() as url:
        yield url


def pg_config(tmp_path: Path) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(
        '[store]\nurl_env = "TEST_STORE_URL"\n[ha]\nreplica_ttl = "1h"\n'
        '[[sources]]\nid = "mof-press"\nurl = "https://example.org/feed.xml"\n',
        encoding="utf-8",
    )
    return path


async def test_migrate_applies_then_reports_nothing_to_do(
    tmp_path: Path, pg_url: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TEST_STORE_URL", pg_url)
    config = pg_config(tmp_path)
    latest = load_migrations(MIGRATIONS_PACKAGE)[-1]
    assert await _run(["migrate", "--config", str(config)]) == 0
    out = capsys.readouterr().out
    assert "applied 0001_initial" in out
    assert f"schema version {latest.version} ({latest.version} applied now)" in out
    assert await _run(["migrate", "--config", str(config)]) == 0
    assert f"({0} applied now)" in capsys.readouterr().out


async def test_status_shows_live_replicas_and_their_leases(
    tmp_path: Path, pg_url: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TEST_STORE_URL", pg_url)
    now = datetime.now(UTC)
    async with PostgresStore(pg_url) as store:
        await store.commit_poll(make_poll(make_item("a")), now)
        await store.heartbeat("desk-a", now, {"host": "a"})
        await store.heartbeat("desk-b", now, {"host": "b"})
        await store.claim_source("mof-press", "desk-a", now, 3600, None)
        await store.claim_deliveries(now, 10, 3600, "desk-b")
    assert await _run(["status", "--config", str(pg_config(tmp_path))]) == 0
    out = capsys.readouterr().out
    assert "store postgresql 127.0.0.1:5432/" in out
    assert "replicas (2 live):" in out
    [line_a] = [line for line in out.splitlines() if "desk-a" in line]
    assert "sources leased 1  deliveries leased 0" in line_a
    [line_b] = [line for line in out.splitlines() if "desk-b" in line]
    assert "sources leased 0  deliveries leased 1" in line_b
    assert "      sources: mof-press" in out


async def _run(argv: list[str]) -> int:
    """The CLI runs its own event loop: run it in a thread, off this test's loop."""
    return await asyncio.to_thread(main, argv)
