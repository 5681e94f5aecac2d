"""HTML list pages (ministries without feeds) into Items, by CSS selectors.

A page source names an ``item`` selector (one element per news entry) and, relative to each
item, ``title``, ``link`` and optionally ``date`` and ``summary`` selectors. Links are
resolved against the page URL and items are keyed by their normalised link, so a page that
reorders or restyles its list raises no repeat alert.

Like ``parse_feed``, ``parse_page`` is pure and picklable (plain data in, plain data out),
so the pipeline may run it in a process pool. Selectors that matched nothing are reported
in ``ParsedPage.empty_selectors``; the pipeline turns a run of those into an operator
notice, because a ministry redesign otherwise looks exactly like a quiet news day.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from typing import TYPE_CHECKING
from urllib.parse import urljoin, urlsplit

import structlog
from selectolax.lexbor import LexborHTMLParser, LexborNode, SelectolaxError

from mastwatch.errors import FetchError
from mastwatch.model import Item
from mastwatch.sources.decode import decode_document
from mastwatch.sources.keys import RawEntry, assign_keys, normalise_link

if TYPE_CHECKING:  # the parse workers import this module, and need no config (pydantic)
    from mastwatch.config import SourceConfig

log = structlog.get_logger(__name__)
EMPTY_POLLS_BEFORE_NOTICE = 3
# Japanese ministries publish dates without a time: midnight in Tokyo is the honest reading.
JST = timezone(timedelta(hours=9), "JST")
_SAFE_LINK_SCHEMES = frozenset({"http", "https"})
_MAX_ITEMS = 500  # a list page with more "items" than this is a selector mistake
# Japanese era name (or its initial) → the Gregorian year before the era's first year.
_ERAS = {"令和": 2018, "r": 2018, "平成": 1988, "h": 1988, "昭和": 1925, "s": 1925}

_ERA_DATE = re.compile(r"(令和|平成|昭和)\s*(元|\d{1,2})\s*年\s*(\d{1,2})\s*月\s*(\d{1,2})\s*日")
_ERA_SHORT = re.compile(r"(?<![a-z0-9])([rhs])\s*(\d{1,2})\s*[./]\s*(\d{1,2})\s*[./]\s*(\d{1,2})")
_KANJI_DATE = re.compile(r"(\d{4})\s*年\s*(\d{1,2})\s*月\s*(\d{1,2})\s*日")
_NUMERIC_DATE = re.compile(r"(?<!\d)(\d{4})\s*[./-]\s*(\d{1,2})\s*[./-]\s*(\d{1,2})(?!\d)")


@dataclass(frozen=True, slots=True)
class PageSelectors:
    """CSS selectors for one list page; all but ``item`` are relative to an item."""

    item: str
    title: str
    link: str
    date: str | None = None
    summary: str | None = None
    base_url: str | None = None  # resolve links against this instead of the fetched URL

    def named(self) -> tuple[tuple[str, str], ...]:
        """(setting name, selector) for every configured selector, in a stable order."""
        pairs = (
            ("item", self.item),
            ("title", self.title),
            ("link", self.link),
            ("date", self.date),
            ("summary", self.summary),
        )
        return tuple((name, sel) for name, sel in pairs if sel)


@dataclass(frozen=True, slots=True)
class ParsedPage:
    """What a list page holds: its title, its items, any warning, and which selectors found
    nothing at all (``"item"``, or a relative selector that matched in no item)."""

    title: str | None
    items: tuple[Item, ...]
    warning: str | None = None
    empty_selectors: tuple[str, ...] = ()


def parse_page(
    body: bytes,
    *,
    source_id: str,
    selectors: PageSelectors,
    http_charset: str | None = None,
    base_url: str | None = None,
) -> ParsedPage:
    """Turn an HTML list page into Items with ``selectors``.

    Raises FetchError (naming the source) for an invalid selector; a page where nothing
    matches gives no items and names the empty selectors.
    """
    text = decode_document(body, http_charset=http_charset, content_type="text/html").text
    tree = LexborHTMLParser(text)
    try:
        nodes = tree.css(selectors.item)[:_MAX_ITEMS]
        entries, found = _entries(nodes, selectors, base_url)
    except (SelectolaxError, ValueError) as exc:  # a malformed selector
        raise FetchError(f"source {source_id!r}: bad CSS selector: {exc}") from exc
    empty = tuple(name for name, _ in selectors.named() if name not in found)
    title_node = tree.css_first("title")
    title = _clean(title_node.text()) if title_node is not None else None
    warning = (
        f"{len(nodes) - len(entries)} items without a title were skipped"
        if len(entries) < len(nodes)
        else None
    )
    return ParsedPage(title, assign_keys(source_id, entries), warning, empty)


def _entries(
    nodes: list[LexborNode], selectors: PageSelectors, base_url: str | None
) -> tuple[list[RawEntry], set[str]]:
    """RawEntries for the item nodes, and the names of the selectors that found something."""
    found: set[str] = {"item"} if nodes else set()
    entries: list[RawEntry] = []
    for node in nodes:
        parts = {name: node.css_first(sel) for name, sel in selectors.named() if name != "item"}
        found.update(name for name, part in parts.items() if part is not None)
        title = _text_of(parts["title"])
        if not title:
            continue
        link = _link_of(parts["link"], base_url)
        entries.append(
            RawEntry(
                title=title,
                # no GUID: the normalised link is the item's identity ("link:..." key)
                link=normalise_link(link) if link else None,
                summary=_text_of(parts.get("summary")),
                published=_date_of(parts.get("date")),
            )
        )
    return entries, found


def _link_of(node: LexborNode | None, base_url: str | None) -> str | None:
    """The node's href (or that of the first link inside it), absolute, http(s) only."""
    if node is None:
        return None
    href = node.attributes.get("href")
    if href is None:
        inner = node.css_first("a[href]")
        href = inner.attributes.get("href") if inner is not None else None
    if not href:
        return None
    absolute = urljoin(base_url, href.strip()) if base_url else href.strip()
    return absolute if urlsplit(absolute).scheme in _SAFE_LINK_SCHEMES else None


def _date_of(node: LexborNode | None) -> datetime | None:
    if node is None:
        return None
    return parse_japanese_date(node.attributes.get("datetime") or node.text())


def parse_japanese_date(text: str) -> datetime | None:
    """The first date in ``text`` as midnight Tokyo time (in UTC), or None.

    Understands 2025年5月2日, 令和7年5月2日 (and 令和元年, 平成, 昭和), R7.5.2 / H31.4.30,
    2025/5/2, 2025.5.2 and 2025-05-02, in full- or half-width digits.
    """
    folded = unicodedata.normalize("NFKC", text).lower()
    for pattern in (_ERA_DATE, _ERA_SHORT):
        hit = pattern.search(folded)
        if hit:
            era, year, month, day = hit.groups()
            offset = _ERAS[era]
            return _midnight_tokyo(offset + (1 if year == "元" else int(year)), month, day)
    for pattern in (_KANJI_DATE, _NUMERIC_DATE):
        hit = pattern.search(folded)
        if hit:
            return _midnight_tokyo(int(hit[1]), hit[2], hit[3])
    return None


def _midnight_tokyo(year: int, month: str, day: str) -> datetime | None:
    try:
        return datetime(year, int(month), int(day), tzinfo=JST).astimezone(UTC)
    except ValueError:  # 2025年2月30日 is a typo, not a date
        return None


def _text_of(node: LexborNode | None) -> str:
    return _clean(node.text(separator=" ")) if node is not None else ""


def _clean(text: str | None) -> str:
    return " ".join((text or "").split())


def page_selectors_of(source: SourceConfig) -> PageSelectors | None:
    """The selectors of a ``kind = "page"`` source, or None for a feed."""
    page = source.page
    if source.kind != "page" or page is None:
        return None
    return PageSelectors(
        item=page.item,
        title=page.title,
        link=page.link,
        date=page.date,
        summary=page.summary,
        base_url=page.base_url,
    )


SelectorRuns = tuple[tuple[str, int], ...]  # (setting name, polls in a row it found nothing)


def count_empty_runs(
    source_id: str,
    selectors: PageSelectors | None,
    runs: SelectorRuns,
    empty: tuple[str, ...],
    threshold: int = EMPTY_POLLS_BEFORE_NOTICE,
) -> SelectorRuns:
    """The runs after one more poll whose ``empty`` selectors found nothing, from the runs
    before it (``SourceState.empty_runs``: stored, so a restart or another replica goes on
    counting). Logs ``page_selectors_empty`` when a run reaches ``threshold`` and every
    ``threshold`` polls after, so a redesigned page is noticed instead of going quiet."""
    if selectors is None:
        return runs
    before = dict(runs)
    after: list[tuple[str, int]] = []
    for name, selector in selectors.named():
        if name not in empty:
            continue
        run = before.get(name, 0) + 1
        after.append((name, run))
        if run % threshold == 0:
            log.warning(
                "page_selectors_empty", source=source_id, setting=name, selector=selector, polls=run
            )
    return tuple(after)


def repeat_empty_runs(
    source_id: str,
    selectors: PageSelectors | None,
    runs: SelectorRuns,
    threshold: int = EMPTY_POLLS_BEFORE_NOTICE,
) -> SelectorRuns:
    """A poll that found the page unchanged (304, same body): the last result stands, so
    every selector in a run found nothing once more."""
    return count_empty_runs(source_id, selectors, runs, tuple(name for name, _ in runs), threshold)


def describe_empty_runs(runs: SelectorRuns) -> str:
    """The selectors in a run, for ``mastwatch status`` and the status page."""
    listed = ", ".join(f"{name} ({run} polls)" for name, run in runs)
    return f"selectors matching nothing: {listed}"


def selector_verdict(runs: SelectorRuns, threshold: int = EMPTY_POLLS_BEFORE_NOTICE) -> str:
    """After a poll that read the page: "empty" when a selector has found nothing
    ``threshold`` polls in a row (the operator notice is raised), "ok" when every selector
    found something (it is cleared), "short" for a run not yet long enough (no change)."""
    if any(run >= threshold for _, run in runs):
        return "empty"
    return "short" if runs else "ok"
