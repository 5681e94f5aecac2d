"""One peer's first fetch of the farm, run inside the peer's own environment.

``bench.peers`` runs ``python bench/peer_run.py TOOL WORKDIR URLS OPML`` with ``PYTHONPATH``
set to ``.venv/bench-extras``, where ``make bench`` installs the peers: they and their
dependencies (their own feedparser among them) stay out of the project's environment, and a
peer that blocks (both do their fetching synchronously) cannot stall the harness, whose
event loop has work of its own. This file imports only the standard library and the peer.

It prints one JSON line: the peer's version, the seconds of its timed part (the first
update or run, after importing and subscribing), what subscribing took, the items it
stored and the feeds it could not read.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

Report = dict[str, object]


def reader_first_update(workdir: Path, urls: list[str], _opml: Path) -> Report:
    """lemon24/reader: ``make_reader`` on a fresh database, ``add_feed`` for every URL,
    then one ``update_feeds()`` with its defaults (every feed, one worker)."""
    started = time.perf_counter()
    import reader  # type: ignore[import-not-found]  # noqa: PLC0415 (timed apart)

    imported = time.perf_counter()
    with reader.make_reader(str(workdir / "reader.sqlite")) as feeds:
        for url in urls:
            feeds.add_feed(url)
        subscribed = time.perf_counter()
        feeds.update_feeds()
        updated = time.perf_counter()
        entries = feeds.get_entry_counts().total
        counts = feeds.get_feed_counts()
    return {
        "version": reader.__version__,
        "timed": "update_feeds()",
        "import_seconds": imported - started,
        "setup_seconds": subscribed - imported,
        "seconds": updated - subscribed,
        "items": entries,
        "feeds": counts.total,
        "failed_feeds": counts.broken,
    }


def rss2email_first_run(workdir: Path, _urls: list[str], opml: Path) -> Report:
    """rss2email: ``r2e new``, ``r2e opmlimport`` (one ``add`` per feed of the OPML list),
    then ``r2e run --no-send``: every feed fetched and each new entry made into an email
    message, which is not sent."""
    started = time.perf_counter()
    from rss2email import __version__  # type: ignore[import-not-found]  # noqa: PLC0415
    from rss2email.main import run  # type: ignore[import-not-found]  # noqa: PLC0415

    imported = time.perf_counter()
    config, data = workdir / "rss2email.cfg", workdir / "rss2email.json"

    def r2e(*args: str) -> None:
        run(["-c", str(config), "-d", str(data), *args])

    r2e("new", "bench@example.invalid")
    r2e("opmlimport", str(opml))
    subscribed = time.perf_counter()
    r2e("run", "--no-send")
    ran = time.perf_counter()
    feeds = json.loads(data.read_text(encoding="utf-8"))["feeds"]
    return {
        "version": __version__,
        "timed": "r2e run --no-send",
        "import_seconds": imported - started,
        "setup_seconds": subscribed - imported,
        "seconds": ran - subscribed,
        "items": sum(len(feed.get("seen") or {}) for feed in feeds),
        "feeds": len(feeds),
        # a feed that could not be fetched or parsed has no entries recorded
        "failed_feeds": sum(1 for feed in feeds if not feed.get("seen")),
    }


TOOLS: dict[str, Callable[[Path, list[str], Path], Report]] = {
    "reader": reader_first_update,
    "rss2email": rss2email_first_run,
}


def main(argv: list[str]) -> int:
    tool, workdir, urls_file, opml = argv
    urls = Path(urls_file).read_text(encoding="utf-8").split()
    report = TOOLS[tool](Path(workdir), urls, Path(opml))
    print(json.dumps(report), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
