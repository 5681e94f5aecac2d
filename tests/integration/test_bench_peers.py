"""The peers benchmark's plumbing: the standalone farm (``python -m bench.farm``) serves what
the in-process farm serves, and ``bench.peers`` reports every tool, measured or not."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from xml.etree import ElementTree

import aiohttp
import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # bench/ is a top-level package beside src/
    sys.path.insert(0, str(ROOT))

from bench.farm import Farm  # noqa: E402
from bench.peers import (  # noqa: E402
    FarmProcess,
    Result,
    Seen,
    figures,
    median_result,
    peer_result,
    run_peer,
    run_peers,
    table,
)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(60)]


async def test_the_standalone_farm_serves_the_same_documents_and_validators(
    tmp_path: Path,
) -> None:
    in_process = Farm(6, 3, hosts=2)
    async with FarmProcess(6, 3, tmp_path, hosts=2) as farm, aiohttp.ClientSession() as session:
        assert [u.split("/feed/")[1] for u in farm.urls] == [
            u.split("/feed/")[1] for u in _shape(in_process)
        ]
        for number in (0, 1, 2, 5):
            doc = in_process.docs[number]
            async with session.get(farm.urls[number]) as response:
                assert response.status == 200
                assert await response.read() == doc.body
                assert response.headers["ETag"] == doc.etag
            async with session.get(farm.urls[number], headers={"If-None-Match": doc.etag}) as again:
                assert again.status == 304
            stale = {"If-None-Match": '"stale"', "If-Modified-Since": doc.last_modified}
            async with session.get(farm.urls[number], headers=stale) as changed:
                assert changed.status == 200  # an ETag that differs wins over the date
        assert await farm.requests() == 12
        outlines = ElementTree.parse(farm.opml_file).getroot().iter("outline")
        assert [o.get("xmlUrl") for o in outlines] == farm.urls
    assert len({u.split("/feed/")[0] for u in farm.urls}) == 2  # two ports ("hosts")
    assert farm.returncode == 0  # it stops cleanly on SIGTERM


def _shape(farm: Farm) -> list[str]:
    """The URL paths an in-process farm gives its feeds (its ports are not started)."""
    return [f"http://x/feed/{d.number}.{'atom' if d.atom else 'xml'}" for d in farm.docs]


async def test_a_quick_run_measures_the_baselines_and_mastwatch_and_names_missing_peers(
    tmp_path: Path,
) -> None:
    run = await run_peers(5, 3, rounds=1, extras=tmp_path / "no-extras")
    bare, parsed, mastwatch, reader, rss2email = run.results
    assert (bare.items, bare.requests) == (5, 5)
    assert (parsed.items, parsed.requests) == (15, 5)
    assert mastwatch.tool.startswith("mastwatch ")
    assert (mastwatch.items, mastwatch.requests) == (15, 5)
    assert mastwatch.seconds is not None and mastwatch.process_seconds is not None
    assert mastwatch.process_seconds > mastwatch.seconds
    assert mastwatch.cpu_seconds is not None and mastwatch.cpu_seconds > 0
    for peer in (reader, rss2email):
        assert peer.seconds is None
        assert peer.note.startswith("not installed")
    rows = table(run).splitlines()
    assert len(rows) == 2 + 5
    assert sum("not measured" in row for row in rows) == 2
    by_value = [f.value for f in figures(run)]
    assert by_value[1:] == ["not measured", "not measured"]
    assert "15 items" in by_value[0]


async def test_a_peer_that_fails_is_reported_and_the_run_goes_on(tmp_path: Path) -> None:
    extras = tmp_path / "extras"
    (extras / "reader").mkdir(parents=True)
    (extras / "reader" / "__init__.py").write_text("raise RuntimeError('broken install')\n")
    (extras / "reader-9.9.dist-info").mkdir()
    (extras / "reader-9.9.dist-info" / "METADATA").write_text("Name: reader\nVersion: 9.9\n")
    async with FarmProcess(2, 2, tmp_path, hosts=1) as farm:
        result = await run_peer("reader", farm, tmp_path / "reader", extras)
    assert result.tool == "reader 9.9"
    assert result.seconds is None
    assert result.note.startswith("failed (exit 1)")
    assert "broken install" in result.note


def test_a_peer_report_becomes_a_row_and_garbage_does_not_raise() -> None:
    report = {
        "version": "1.0",
        "timed": "update_feeds()",
        "import_seconds": 0.1,
        "setup_seconds": 0.2,
        "seconds": 1.5,
        "items": 150,
        "feeds": 5,
        "failed_feeds": 1,
    }
    out = b"some log line\n" + json.dumps(report).encode() + b"\n"
    row = peer_result("reader 1.0", out, Seen(wall=2.0, cpu=1.8, requests=5, load=0.5))
    assert (row.seconds, row.process_seconds, row.cpu_seconds) == (1.5, 2.0, 1.8)
    assert (row.items, row.requests, row.load) == (150, 5, 0.5)
    assert row.timed == "update_feeds()"
    assert "1 feeds failed" in row.note
    broken = peer_result("reader 1.0", b"Traceback ...\n", Seen(2.0, 1.8, 5, 0.5))
    assert broken.seconds is None
    assert broken.note.startswith("unreadable report")


def test_rounds_combine_into_the_median_run_with_every_rounds_seconds() -> None:
    runs = [
        Result("reader 1.0", "update_feeds()", 9.0, 10.0, 8.0, 150, 5, "a", 1.0),
        Result("reader 1.0", "update_feeds()", 7.0, 8.0, 6.0, 150, 5, "b", 2.0),
        Result("reader 1.0", "update_feeds()", 8.0, 9.5, 9.0, 150, 5, "c", 3.0),
    ]
    row = median_result(runs)
    assert (row.seconds, row.process_seconds, row.load) == (8.0, 9.5, 3.0)
    assert row.cpu_seconds == 8.0  # the median CPU, not the median run's
    assert row.note == "median of 3: 9.00, 7.00, 8.00 s; c"
    failed = Result("reader 1.0", "", note="failed (exit 1): boom")
    assert median_result([failed, failed]) == failed
    assert "1 failed: failed (exit 1)" in median_result([*runs[:2], failed]).note
