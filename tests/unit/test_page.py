"""HTML list pages into items: selectors, links, Japanese dates, keys, empty selectors."""

# ruff: noqa: RUF001  (full-width digits and punctuation are what Japanese pages hold)

from __future__ import annotations

import pickle
from datetime import UTC, datetime
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from mastwatch.errors import FetchError
from mastwatch.sources.page import (
    PageSelectors,
    SelectorRuns,
    count_empty_runs,
    parse_japanese_date,
    parse_page,
    repeat_empty_runs,
)

SAMPLE = Path(__file__).resolve().parents[2] / "examples" / "pages" / "ministry-press.html"
SELECTORS = PageSelectors(
    item="ul.news-list li.news-item", title="a", link="a", date=".date", summary=".summary"
)
BASE = "https://www.example.go.jp/press/2026/03/index.html"


def _tokyo_midnight(year: int, month: int, day: int) -> datetime:
    return datetime(year, month, day - 1, 15, tzinfo=UTC)


@pytest.mark.parametrize(
    "text",
    [
        "2025年5月2日",
        "令和7年5月2日",
        "令和７年５月２日（金）",
        "R7.5.2",
        "Ｒ７．５．２",
        "r7/5/2",
        "2025/5/2",
        "2025.5.2",
        "2025-05-02",
        "掲載日：2025年05月02日 更新",
    ],
)
def test_japanese_dates_are_that_day_in_tokyo(text: str) -> None:
    assert parse_japanese_date(text) == _tokyo_midnight(2025, 5, 2)


def test_first_year_of_an_era_and_heisei() -> None:
    assert parse_japanese_date("令和元年5月1日") == datetime(2019, 4, 30, 15, tzinfo=UTC)
    assert parse_japanese_date("H31.4.30") == datetime(2019, 4, 29, 15, tzinfo=UTC)


@pytest.mark.parametrize("text", ["", "お知らせ", "2025年2月30日", "第123回", "R7"])
def test_text_without_a_valid_date_gives_none(text: str) -> None:
    assert parse_japanese_date(text) is None


def test_the_bundled_sample_yields_dated_items_with_absolute_links() -> None:
    parsed = parse_page(SAMPLE.read_bytes(), source_id="mof", selectors=SELECTORS, base_url=BASE)

    assert len(parsed.items) == 7
    first, second, third = parsed.items[:3]
    assert first.title == "日米関税協議（第３回閣僚協議）の結果について"
    assert first.link == "https://www.example.go.jp/press/2026/03/0310_01.html"
    assert first.key == "link:https://www.example.go.jp/press/2026/03/0310_01.html"
    assert first.published == _tokyo_midnight(2026, 3, 10)
    assert "ラトニック商務長官" in first.summary
    # a relative link, resolved against the page; an R-era short date
    assert second.link == "https://www.example.go.jp/press/2026/03/0309_g7.html"
    assert second.published == _tokyo_midnight(2026, 3, 9)
    # tracking parameters are not part of the key
    assert third.key == "link:https://www.example.go.jp/press/2026/03/0306_reserves.html"
    assert parsed.items[-1].summary == ""  # the optional summary is missing there
    assert parsed.empty_selectors == ()
    assert parsed.title is not None
    assert parsed.title.startswith("報道発表")


def test_keys_do_not_change_when_the_page_is_restyled() -> None:
    restyled = SAMPLE.read_bytes().replace(b'class="date"', b'class="date new"')
    before = parse_page(SAMPLE.read_bytes(), source_id="m", selectors=SELECTORS, base_url=BASE)
    after = parse_page(restyled, source_id="m", selectors=SELECTORS, base_url=BASE)

    assert [i.key for i in after.items] == [i.key for i in before.items]


def test_unsafe_links_are_dropped_and_items_without_title_skipped() -> None:
    html = (
        b"<ul><li><a href='javascript:alert(1)'>Bad link</a></li>"
        b"<li><a href='/a.html'></a></li>"
        b"<li><a href='b.html'>Good</a><span>2025/1/2</span></li></ul>"
    )
    selectors = PageSelectors(item="li", title="a", link="a", date="span")

    parsed = parse_page(html, source_id="s", selectors=selectors, base_url="https://x.example/n/")

    assert [(i.title, i.link) for i in parsed.items] == [
        ("Bad link", None),
        ("Good", "https://x.example/n/b.html"),
    ]
    assert parsed.warning == "1 items without a title were skipped"


def test_selectors_that_match_nothing_are_named() -> None:
    selectors = PageSelectors(item="li", title="a", link="a", date=".when", summary=".gone")
    parsed = parse_page(SAMPLE.read_bytes(), source_id="s", selectors=selectors, base_url=BASE)
    assert parsed.empty_selectors == ("date", "summary")

    nothing = PageSelectors(item="table.press tr", title="a", link="a")
    parsed = parse_page(SAMPLE.read_bytes(), source_id="s", selectors=nothing, base_url=BASE)
    assert parsed.items == ()
    assert parsed.empty_selectors == ("item", "title", "link")


def test_a_malformed_selector_is_a_fetch_error_naming_the_source() -> None:
    selectors = PageSelectors(item="li[[", title="a", link="a")
    with pytest.raises(FetchError, match="'mof'"):
        parse_page(SAMPLE.read_bytes(), source_id="mof", selectors=selectors)


def test_a_shift_jis_page_is_decoded_from_its_meta_charset() -> None:
    html = "<meta charset='Shift_JIS'><ul><li><a href='/x'>追加関税について</a></li></ul>"
    selectors = PageSelectors(item="li", title="a", link="a")

    parsed = parse_page(html.encode("cp932"), source_id="s", selectors=selectors)

    assert parsed.items[0].title == "追加関税について"


def test_parsed_pages_and_selectors_pickle_for_a_process_pool() -> None:
    parsed = parse_page(SAMPLE.read_bytes(), source_id="s", selectors=SELECTORS, base_url=BASE)
    assert pickle.loads(pickle.dumps(parsed)) == parsed
    assert pickle.loads(pickle.dumps(SELECTORS)) == SELECTORS


def _polls(empties: list[tuple[str, ...]], runs: SelectorRuns = ()) -> list[SelectorRuns]:
    """The runs after each poll, each poll starting from the runs the last one left."""
    after = []
    for empty in empties:
        runs = count_empty_runs("mof", SELECTORS, runs, empty)
        after.append(runs)
    return after


def test_an_empty_selector_is_noticed_after_three_polls_in_a_row() -> None:
    with capture_logs() as logs:
        runs = _polls([("date",)] * 3)
    assert runs == [(("date", 1),), (("date", 2),), (("date", 3),)]
    notices = [e for e in logs if e["event"] == "page_selectors_empty"]
    assert notices == [
        {
            "event": "page_selectors_empty",
            "log_level": "warning",
            "source": "mof",
            "setting": "date",
            "selector": ".date",
            "polls": 3,
        }
    ]


def test_a_poll_that_finds_the_selector_again_resets_the_run() -> None:
    with capture_logs() as logs:
        runs = _polls([("item",), ("item",), (), ("item", "date"), ("item",), ("item",)])
    assert runs[2] == ()
    assert runs[-1] == (("item", 3),)  # "date" matched again on the fifth poll
    assert [(e["setting"], e["polls"]) for e in logs] == [("item", 3)]
    assert count_empty_runs("feed", None, (("item", 2),), ("item",)) == (("item", 2),)


def test_a_run_goes_on_from_the_stored_runs_and_notices_again_every_three_polls() -> None:
    with capture_logs() as logs:
        runs = _polls([("date",)] * 4, runs=(("date", 2),))  # as a restart reads them back
    assert runs[-1] == (("date", 6),)
    assert [e["polls"] for e in logs] == [3, 6]


def test_an_unchanged_page_repeats_the_last_result() -> None:
    with capture_logs() as logs:
        once = count_empty_runs("mof", SELECTORS, (), ("date",))
        twice = repeat_empty_runs("mof", SELECTORS, once)
        thrice = repeat_empty_runs("mof", SELECTORS, twice)
    assert thrice == (("date", 3),)
    assert [e["polls"] for e in logs] == [3]
    assert repeat_empty_runs("other", SELECTORS, ()) == ()
