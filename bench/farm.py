"""A feed farm on loopback: N feeds x M items of generated bilingual news.

Feeds are spread over several "hosts" (one aiohttp site per port on 127.0.0.1, since the
daemon limits requests per host and a real watch list spans many sites). Every response
carries an ETag and a Last-Modified date, and a conditional request for an unchanged
feed is answered 304. Items are generated from templates with a fixed seed; about one in
twenty names a trade tariff (関税), so the shipped rules match some of them. ``add_item``
makes a feed gain an item, as a live feed would.

``python -m bench.farm`` serves the same farm (same sizes and seed, the same documents)
on its own until SIGINT or SIGTERM, and writes its feed URLs and an OPML file, so that
tools outside the project can be pointed at it (see docs/benchmarks.md, "peers").
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import random
import signal
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from xml.sax.saxutils import escape, quoteattr

from aiohttp import web

SEED = 20261124
EN_NAMES = ["Toyota", "Nippon Steel", "Sony", "Boeing", "Micron", "SoftBank", "Hitachi",
            "Ford", "Nvidia", "Mitsubishi", "Panasonic", "Intel", "Honda", "Kioxia"]  # fmt: skip
JA_NAMES = [
    "トヨタ",
    "日本製鉄",
    "ソニー",
    "日立",
    "ホンダ",
    "三菱商事",
    "パナソニック",
    "キオクシア",
]
EN_PLAIN = [
    ("{a} quarterly profit beats forecasts as yen weakens",
     "Revenue rose {p}% to ${m} billion, helped by strong demand in Asia."),
    ("{a} and {b} announce battery joint venture",
     "The companies said on {d} that the plant in Ohio would employ 2,000 people."),
    ("{a} names new chief executive",
     "The board said the appointment takes effect on {d}; shares rose {p}%."),
    ("Weather delays {a} shipments to {b} ports",
     "A typhoon closed terminals for two days, the company said on {d}."),
]  # fmt: skip
EN_MATCHING = [
    ("{a} warns of new tariffs on exports to the US",
     "Officials said on {d} the import tariff could cost ${m} billion, or {p}% of sales."),
    ("Washington weighs Section 232 duties on {a} steel",
     "{b} executives met trade officials on {d} to discuss the reciprocal tariff plan."),
]  # fmt: skip
JA_PLAIN = [
    ("{a}、決算で増益　円安が追い風", "売上高は前年比{p}%増だった。{d}に発表した。"),
    ("{a}と{b}が提携を発表", "両社は{d}、電池事業での協力を明らかにした。"),
    ("{a}、新社長を任命", "{d}付で就任する。株価は{p}%上昇した。"),
]
JA_MATCHING = [
    ("政府、{a}向け追加関税への対応を協議", "{d}の会議で{b}と調整する。影響額は{m}億円規模。"),
]


@dataclass
class FeedDoc:
    """One feed's items (newest first) and its current body and validators."""

    number: int
    atom: bool
    items: list[tuple[str, str, str, datetime]] = field(default_factory=list)
    body: bytes = b""
    etag: str = ""
    last_modified: str = ""

    def render(self) -> None:
        self.body = (_atom if self.atom else _rss)(self).encode("utf-8")
        self.etag = '"' + hashlib.sha256(self.body).hexdigest()[:20] + '"'
        newest = max((i[3] for i in self.items), default=datetime(2026, 1, 1, tzinfo=UTC))
        self.last_modified = format_datetime(newest.astimezone(UTC), usegmt=True)


def news_text(rng: random.Random, *, japanese: bool, matching: bool) -> tuple[str, str]:
    """A headline and a summary; ``matching`` ones name a trade tariff."""
    if japanese:
        names, templates = JA_NAMES, JA_MATCHING if matching else JA_PLAIN
        date = f"{rng.randint(1, 12)}月{rng.randint(1, 28)}日"
    else:
        names, templates = EN_NAMES, EN_MATCHING if matching else EN_PLAIN
        date = f"{rng.choice(['March', 'June', 'October'])} {rng.randint(1, 28)}"
    title, summary = rng.choice(templates)
    fields = {"a": rng.choice(names), "b": rng.choice(names), "d": date,
              "m": rng.randint(1, 90), "p": rng.randint(1, 40)}  # fmt: skip
    return title.format(**fields), summary.format(**fields)


class Farm:
    """``feeds`` feeds of ``items`` items each, served from ``hosts`` loopback ports."""

    def __init__(self, feeds: int, items: int, *, hosts: int = 50, seed: int = SEED) -> None:
        self.rng = random.Random(seed)
        self.hosts = max(1, min(hosts, feeds))
        self.requests = 0
        self.not_modified = 0
        self._serial = 0
        self._ports: list[int] = []
        self._runner: web.AppRunner | None = None
        start = datetime(2026, 11, 1, tzinfo=UTC)
        self.docs = [FeedDoc(n, atom=n % 3 == 2) for n in range(feeds)]
        for doc in self.docs:
            for k in range(items):
                when = start + timedelta(minutes=k * 17 + doc.number)
                self._append(doc, self.rng.random() < 0.05, when)
            doc.render()

    def _append(self, doc: FeedDoc, matching: bool, when: datetime, tag: str = "") -> str:
        self._serial += 1
        key = f"urn:farm:{doc.number}:{self._serial}"
        title, summary = news_text(self.rng, japanese=doc.number % 4 == 1, matching=matching)
        doc.items.insert(0, (key, f"{title}{tag}", summary, when))
        return key

    def add_item(self, feed: int, *, matching: bool = True, tag: str = "") -> str:
        """Publish a new item on one feed now; returns its guid. ``tag`` ends its title."""
        doc = self.docs[feed]
        key = self._append(doc, matching, datetime.now(UTC), tag)
        doc.render()
        return key

    async def start(self, first_port: int = 0) -> None:
        """Listen on ``hosts`` ports: ``first_port`` and the ones after it, or (0) any free."""
        app = web.Application()
        app.router.add_get("/feed/{number}", self._serve)
        app.router.add_get("/stats", self._stats)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        for host in range(self.hosts):
            site = web.TCPSite(self._runner, "127.0.0.1", first_port + host if first_port else 0)
            await site.start()
        self._ports = [int(address[1]) for address in self._runner.addresses]

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def url(self, feed: int) -> str:
        port = self._ports[feed % len(self._ports)]
        ext = "atom" if self.docs[feed].atom else "xml"
        return f"http://127.0.0.1:{port}/feed/{feed}.{ext}"

    @property
    def urls(self) -> list[str]:
        return [self.url(n) for n in range(len(self.docs))]

    @property
    def ports(self) -> list[int]:
        return list(self._ports)

    async def _stats(self, _request: web.Request) -> web.Response:
        """Requests served so far: lets a harness outside this process count a tool's fetches."""
        return web.json_response({"requests": self.requests, "not_modified": self.not_modified})

    async def _serve(self, request: web.Request) -> web.StreamResponse:
        self.requests += 1
        doc = self.docs[int(request.match_info["number"].split(".")[0])]
        headers = {"ETag": doc.etag, "Last-Modified": doc.last_modified}
        if request.headers.get("If-None-Match") == doc.etag or (
            "If-None-Match" not in request.headers
            and request.headers.get("If-Modified-Since") == doc.last_modified
        ):
            self.not_modified += 1
            return web.Response(status=304, headers=headers)
        kind = "application/atom+xml" if doc.atom else "application/rss+xml"
        return web.Response(body=doc.body, headers=headers, content_type=kind, charset="utf-8")


def _rss(doc: FeedDoc) -> str:
    items = "".join(
        f"<item><title>{escape(t)}</title><link>https://news.example.com/{doc.number}/"
        f'{k.rsplit(":", 1)[1]}</link><guid isPermaLink="false">{k}</guid>'
        f"<pubDate>{format_datetime(w, usegmt=True)}</pubDate>"
        f"<description>{escape(s)}</description></item>"
        for k, t, s, w in doc.items
    )
    return (
        '<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel>'
        f"<title>Farm feed {doc.number}</title><link>https://news.example.com/{doc.number}</link>"
        f"<description>Generated news</description>{items}</channel></rss>"
    )


def _atom(doc: FeedDoc) -> str:
    entries = "".join(
        f"<entry><title>{escape(t)}</title><id>{k}</id>"
        f'<link href="https://news.example.com/{doc.number}/{k.rsplit(":", 1)[1]}"/>'
        f"<updated>{w.isoformat()}</updated><summary>{escape(s)}</summary></entry>"
        for k, t, s, w in doc.items
    )
    return (
        '<?xml version="1.0" encoding="utf-8"?><feed xmlns="http://www.w3.org/2005/Atom">'
        f"<title>Farm feed {doc.number}</title><id>urn:farm:{doc.number}</id>"
        f"<updated>{doc.items[0][3].isoformat() if doc.items else '2026-01-01T00:00:00Z'}"
        f"</updated>{entries}</feed>"
    )


def monotonic() -> float:
    """The clock the local Slack server stamps messages with."""
    return time.monotonic()


def opml(farm: Farm) -> str:
    """An OPML subscription list of every feed (what feed readers import)."""
    outlines = "".join(
        f'<outline type="rss" text="Farm feed {n}" title="Farm feed {n}"'
        f" xmlUrl={quoteattr(url)} htmlUrl={quoteattr(f'https://news.example.com/{n}')}/>\n"
        for n, url in enumerate(farm.urls)
    )
    title = f"mastwatch bench farm: {len(farm.docs)} feeds"
    return (
        '<?xml version="1.0" encoding="utf-8"?>\n<opml version="2.0">'
        f"<head><title>{escape(title)}</title></head>\n<body>\n{outlines}</body></opml>\n"
    )


READY = "farm ready"  # the line ``python -m bench.farm`` prints once it serves


def _arguments(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.farm",
        description="Serve the benchmark feed farm on loopback until SIGINT or SIGTERM.",
    )
    parser.add_argument("--feeds", type=int, default=500)
    parser.add_argument("--items", type=int, default=30, help="items per feed")
    parser.add_argument("--hosts", type=int, default=50, help="ports the feeds are spread over")
    parser.add_argument("--seed", type=int, default=SEED, help="same seed, same documents")
    parser.add_argument(
        "--first-port", type=int, default=0, help="listen on this port and the next ones"
    )
    parser.add_argument("--urls", type=Path, default=Path("var/farm/urls.txt"))
    parser.add_argument("--opml", type=Path, default=Path("var/farm/farm.opml"))
    return parser.parse_args(argv)


async def serve(args: argparse.Namespace) -> dict[str, int]:
    """Serve until SIGINT or SIGTERM; returns the request counts."""
    farm = Farm(args.feeds, args.items, hosts=args.hosts, seed=args.seed)
    await farm.start(args.first_port)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    try:
        for path, text in (
            (args.urls, "".join(f"{u}\n" for u in farm.urls)),
            (args.opml, opml(farm)),
        ):
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
        ports = " ".join(str(port) for port in farm.ports)
        print(
            f"{len(farm.docs)} feeds x {args.items} items (seed {args.seed}) on 127.0.0.1,"
            f" ports {ports}\nurls: {args.urls}\nopml: {args.opml}\nstats:"
            f" http://127.0.0.1:{farm.ports[0]}/stats\n{READY} (stop with Ctrl-C or SIGTERM)",
            flush=True,
        )
        await stop.wait()
    finally:
        await farm.stop()
    return {"requests": farm.requests, "not_modified": farm.not_modified}


def main(argv: Sequence[str] | None = None) -> int:
    counts = asyncio.run(serve(_arguments(argv)))
    print(f"farm stopped: {json.dumps(counts)}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
