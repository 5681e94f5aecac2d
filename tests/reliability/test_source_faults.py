"""Hostile and broken sources, all polled in one daemon run next to a healthy one.

Each fault must end in its own right outcome (recorded in the source's state), the healthy
source must still alert, and the process must stay within a memory bound although the
faults include a 50 MB body and a gzip bomb that inflates to 256 MiB.
"""

from __future__ import annotations

import codecs
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from support import max_rss_mib, slack_texts

from daemon_fixtures import Servers, run_once, source, source_states, write_config
from mastwatch.testing.feeds import rss

MAX_BODY = 2 * 1024 * 1024
# The peak RSS may grow by this much over the run; an unbounded read of the 50 MB body or
# the 256 MiB bomb alone would exceed it.
MEMORY_BOUND_MIB = 120
TREASURIES = {"title": "Japan trims its holdings of US Treasuries", "guid": "good-1"}

XXE_FILE_MARKER = "XXE-FILE-CONTENT-7f3a"


def _rss_bytes(title: str, guid: str, doctype: str = "", encoding: str = "utf-8") -> bytes:
    text = (
        f'<?xml version="1.0" encoding="{encoding}"?>{doctype}<rss version="2.0"><channel>'
        f"<title>t</title><item><title>{title}</title><guid>{guid}</guid>"
        f"<link>https://news.example.org/{guid}</link></item></channel></rss>"
    )
    return text.encode(encoding)


def _billion_laughs() -> bytes:
    entities = '<!ENTITY lol "lol">' + "".join(
        f'<!ENTITY lol{i} "{("&lol;" if i == 1 else f"&lol{i - 1};") * 10}">' for i in range(1, 10)
    )
    return _rss_bytes("tariff laughs &lol9;", "lol", f"<!DOCTYPE rss [{entities}]>")


def _xxe(secret: Path, probe_url: str) -> bytes:
    doctype = (
        f'<!DOCTYPE rss [<!ENTITY file SYSTEM "{secret.as_uri()}">'
        f'<!ENTITY net SYSTEM "{probe_url}">]>'
    )
    return _rss_bytes("tariff xxe &file; &net;", "xxe", doctype)


def _serve_faults(servers: Servers, tmp_path: Path) -> None:
    feeds = servers.feeds
    feeds.add_feed("/good.xml", rss([TREASURIES]))
    feeds.add_trickle("/trickle.xml", rss([TREASURIES]), interval=1.0)
    feeds.add_status("/500.xml", 500)
    feeds.add_status("/503.xml", 503, headers={"Retry-After": "120"})
    feeds.add_status("/429.xml", 429, headers={"Retry-After": "3600"})
    feeds.add_status("/404.xml", 404)
    feeds.add_status("/410.xml", 410)
    feeds.add_redirect_loop("/loop.xml")
    feeds.add_reset("/reset.xml")
    feeds.add_huge("/huge.xml", 50 * 1024 * 1024)
    feeds.add_gzip_bomb("/bomb.xml", 256 * 1024 * 1024)
    feeds.add_feed("/lol.xml", _billion_laughs())
    secret = tmp_path / "secret.txt"
    secret.write_text(XXE_FILE_MARKER)
    feeds.add_feed("/xxe.xml", _xxe(secret, feeds.url("/xxe-probe")))
    invalid = b'<rss version="2.0"><channel><item><title>tariff cut</title><guid>i</guid>'
    feeds.add_feed("/invalid.xml", invalid + b"</item><item><title>unclosed &bogus; <<")
    feeds.add_feed("/html.xml", b"<html><body><h1>Tariff news</h1></body></html>", "text/html")
    feeds.add_feed("/empty.xml", rss([]))
    feeds.add_feed("/zero.xml", b"")
    # Japanese encodings with wrong or missing labels
    feeds.add_feed("/cp932.xml", _cp932_feed(), "application/rss+xml; charset=iso-8859-1")
    # no label anywhere: detection decides (a few words alone can look like EUC-KR)
    eucjp = "<rss version='2.0'><channel><title>日本の財務省</title><item><title>米国債 売却"
    eucjp += "、財務省が発表</title><description>日本政府は米国債の保有を見直す。</description>"
    eucjp += "<guid>euc</guid></item></channel></rss>"
    feeds.add_feed("/eucjp.xml", eucjp.encode("euc_jp"), "text/xml")
    utf16 = _rss_bytes("UTF-16 tariff 関税", "u16", encoding="utf-16")
    feeds.add_feed("/utf16.xml", utf16, "application/rss+xml; charset=utf-8")


def _cp932_feed() -> bytes:
    """cp932 bytes (① and 髙 exist only in cp932, not in plain Shift_JIS), no XML label."""
    text = (
        "<?xml version='1.0'?><rss version='2.0'><channel><title>t</title><item>"
        "<title>① 髙島屋 tariff 関税</title><guid>sjis</guid></item></channel></rss>"
    )
    return codecs.encode(text, "cp932")


FAULTS: dict[str, tuple[str, dict[str, Any]]] = {
    "good": ("/good.xml", {}),
    "trickle": ("/trickle.xml", {}),
    "s500": ("/500.xml", {}),
    "s503": ("/503.xml", {}),
    "s429": ("/429.xml", {}),
    "s404": ("/404.xml", {}),
    "s410": ("/410.xml", {}),
    "loop": ("/loop.xml", {}),
    "reset": ("/reset.xml", {}),
    "huge": ("/huge.xml", {}),
    "bomb": ("/bomb.xml", {}),
    "lol": ("/lol.xml", {}),
    "xxe": ("/xxe.xml", {}),
    "invalid": ("/invalid.xml", {}),
    "html": ("/html.xml", {}),
    "empty": ("/empty.xml", {}),
    "zero": ("/zero.xml", {}),
    "cp932": ("/cp932.xml", {}),
    "eucjp": ("/eucjp.xml", {}),
    "utf16": ("/utf16.xml", {}),
}


async def test_every_source_fault_has_its_outcome_and_spares_the_others(
    tmp_path: Path, servers: Servers, blackhole_port: int
) -> None:
    _serve_faults(servers, tmp_path)
    sources = [source(servers, path, sid, **extra) for sid, (path, extra) in FAULTS.items()]
    blackhole = f"http://127.0.0.1:{blackhole_port}/feed.xml"
    sources.append({"id": "blackhole", "url": blackhole})
    config = write_config(
        tmp_path,
        servers,
        sources,
        http={
            "connect_timeout": 1,
            "total_timeout": 3,
            "max_body_bytes": MAX_BODY,
            "per_host_concurrency": 32,
        },
    )
    rss_before = max_rss_mib()
    before = datetime.now(UTC)

    daemon = await run_once(config)

    growth = max_rss_mib() - rss_before
    assert growth < MEMORY_BOUND_MIB, f"peak RSS grew by {growth:.0f} MiB"
    states = await source_states(daemon)
    errors = {sid: (s.last_error or "").split(":")[0] for sid, s in states.items()}
    assert errors == {
        "good": "",
        "trickle": "timeout",
        "blackhole": "timeout",
        "s500": "http_status",
        "s503": "http_status",
        "s429": "http_status",
        "s404": "http_status",
        "s410": "http_status",
        "loop": "redirects",
        "reset": "protocol",
        "huge": "too_large",
        "bomb": "too_large",
        "lol": "",
        "xxe": "",
        "invalid": "",
        "html": "parse",
        "empty": "",
        "zero": "parse",
        "cp932": "",
        "eucjp": "",
        "utf16": "",
    }
    assert [sid for sid, s in states.items() if s.disabled] == ["s410"]
    _assert_retry_after_honoured(states, before)
    _assert_hostile_xml_inert(servers)
    _assert_decoded_alerts(servers)


def _assert_retry_after_honoured(states: dict[str, Any], before: datetime) -> None:
    assert states["s429"].next_check_at >= before + timedelta(seconds=3600)
    assert states["s503"].next_check_at >= before + timedelta(seconds=120)
    assert states["s500"].next_check_at < before + timedelta(hours=1)  # backed off only


def _assert_hostile_xml_inert(servers: Servers) -> None:
    texts = "\n".join(slack_texts(servers))
    assert "tariff laughs" in texts  # the item still arrives, its entities unexpanded
    assert "lollollol" not in texts
    assert "tariff xxe" in texts
    assert XXE_FILE_MARKER not in texts  # no file was read
    assert servers.feeds.requests("/xxe-probe") == []  # no URL was fetched
    assert "tariff cut" in texts  # the usable part of invalid XML is kept


def _assert_decoded_alerts(servers: Servers) -> None:
    texts = "\n".join(slack_texts(servers))
    assert "① 髙島屋 tariff 関税" in texts
    assert "米国債 売却、財務省が発表" in texts
    assert "UTF-16 tariff 関税" in texts
    assert "Japan trims its holdings of US Treasuries" in texts


def _guid_feed(run: int) -> bytes:
    """Three kinds of identity trouble in one feed; ``run`` changes only the fresh GUIDs."""
    return rss(
        [
            # one GUID shared by two different items: both must be told apart
            {"title": "Dup A: tariff on steel", "guid": "same", "link": "https://ex.org/a"},
            {"title": "Dup B: tariff on aluminium", "guid": "same", "link": "https://ex.org/b"},
            # a GUID minted anew on every fetch for an unchanged item
            {"title": "Fresh: tariff talks", "guid": f"fresh-{run}", "link": "https://ex.org/f"},
            # no GUID at all
            {"title": "No GUID: Treasuries sold", "link": "https://ex.org/n"},
            {"title": "No GUID, no link: Treasuries bought"},
        ]
    )


async def test_guid_trouble_alerts_each_item_exactly_once(tmp_path: Path, servers: Servers) -> None:
    servers.feeds.add_feed("/guids.xml", _guid_feed(0))
    config = write_config(tmp_path, servers, [source(servers, "/guids.xml", "guids")])

    for run in range(4):  # the GUIDs change on every fetch; the items do not
        servers.feeds.update_feed("/guids.xml", _guid_feed(run))
        await run_once(config)

    titles = sorted(
        str(m.blocks[0]["text"]["text"]).split(" ", 1)[1] for m in servers.slack.messages
    )
    assert titles == [
        "Dup A: tariff on steel",
        "Dup B: tariff on aluminium",
        "Fresh: tariff talks",
        "No GUID, no link: Treasuries bought",
        "No GUID: Treasuries sold",
    ]
    assert len(servers.smtp.messages) == 3  # the three critical ones, once each
