"""Rendering of alerts: untrusted feed text must arrive inert in Slack, email and terminals."""

from __future__ import annotations

import dataclasses
import re
from datetime import UTC, datetime
from html.parser import HTMLParser
from typing import Any

import pytest

from mastwatch.model import Alert
from mastwatch.notify.render import (
    SLACK_BLOCK_TEXT_MAX,
    SLACK_HEADER_MAX,
    SLACK_LINK_LABEL,
    SUBJECT_MAX,
    SUMMARY_MAX,
    console_text,
    email_bodies,
    email_subject,
    safe_url,
    slack_escape,
    slack_message,
    truncate,
)

BASE = Alert(
    id="0123456789abcdef0123456789abcdef",
    rule_id="tariffs-autos",
    rule_title="Auto tariffs",
    tier="high",
    source_id="mof",
    source_name="Ministry of Finance",
    item_key="guid:1",
    title="US and Japan agree on auto tariffs",
    link="https://example.test/news/1",
    summary="Negotiators reached a deal on Section 232 tariffs.",
    matched=("tariff", "Section 232"),
    published=datetime(2025, 7, 22, 9, 30, tzinfo=UTC),
    created_at=datetime(2025, 7, 22, 9, 31, tzinfo=UTC),
)


def make(**changes: Any) -> Alert:
    return dataclasses.replace(BASE, **changes)


def feed_section(blocks: list[dict[str, Any]]) -> dict[str, Any]:
    """The section with the feed's words: plain_text, which Slack shows literally."""
    (section,) = [b for b in blocks if b["type"] == "section" and b["text"]["type"] != "mrkdwn"]
    assert section["text"]["type"] == "plain_text"
    return section


def section_text(blocks: list[dict[str, Any]]) -> str:
    return str(feed_section(blocks)["text"]["text"])


def mrkdwn_strings(node: Any) -> list[str]:
    """Every text Slack reads as mrkdwn in the blocks."""
    if isinstance(node, list):
        return [s for child in node for s in mrkdwn_strings(child)]
    if isinstance(node, dict):
        if node.get("type") == "mrkdwn":
            return [str(node["text"])]
        return [s for child in node.values() for s in mrkdwn_strings(child)]
    return []


def header_text(blocks: list[dict[str, Any]]) -> str:
    (header,) = [b for b in blocks if b["type"] == "header"]
    assert header["text"]["type"] == "plain_text"
    return str(header["text"]["text"])


def context_text(blocks: list[dict[str, Any]]) -> str:
    (context,) = [b for b in blocks if b["type"] == "context"]
    return str(context["elements"][0]["text"])


def all_mrkdwn(alert: Alert, *, mention: bool = False) -> str:
    message = slack_message(alert, mention=mention)
    return "\n".join([message.text, *mrkdwn_strings(message.blocks)])


# --- Slack escaping --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "escaped"),
    [
        ("<!channel>", "&lt;!channel&gt;"),
        ("<@U1>", "&lt;@U1&gt;"),
        ("AT&T", "AT&amp;T"),
        ("<http://evil.test|click>", "&lt;http://evil.test|click&gt;"),
        ("&lt;", "&amp;lt;"),
    ],
)
def test_slack_escape(raw: str, escaped: str) -> None:
    assert slack_escape(raw) == escaped


def test_feed_mentions_arrive_inert_everywhere() -> None:
    alert = make(
        title="Breaking <!channel> <@U1> AT&T <!here>",
        summary="see <http://evil.test|this> <!everyone>",
        source_name="Wire <@U2>",
    )
    rendered = all_mrkdwn(alert)
    # none of Slack's control sequences survives: no "<" except those we wrote ourselves
    assert "<!channel>" not in rendered
    assert "<@U1>" not in rendered
    assert "<@U2>" not in rendered
    assert "<!here>" not in rendered
    assert "<http://evil.test" not in rendered
    # the feed's words reach the blocks only as plain_text, shown literally
    assert "Breaking <!channel> <@U1> AT&T <!here>" in section_text(
        slack_message(alert, mention=False).blocks
    )
    assert "AT&amp;T" in rendered
    assert re.search(r"&(?!amp;|lt;|gt;)", rendered) is None  # every other & is an entity


def test_link_with_pipe_and_angle_bracket_is_percent_encoded() -> None:
    alert = make(link="https://example.test/a?b=1|2>x<y", title="T")
    button = feed_section(slack_message(alert, mention=False).blocks)["accessory"]
    assert button["url"] == "https://example.test/a?b=1%7C2%3Ex%3Cy"
    assert button["text"] == {"type": "plain_text", "text": SLACK_LINK_LABEL}


@pytest.mark.parametrize(
    "link",
    [
        "javascript:alert(1)",
        "JAVASCRIPT:alert(1)",
        " javascript:alert(1)",
        "data:text/html,<script>x</script>",
        "file:///etc/passwd",
        "//example.test/no-scheme",
        "https://exa\nmple.test/",
        None,
        "",
    ],
)
def test_non_http_links_are_not_linked(link: str | None) -> None:
    alert = make(link=link)
    section = feed_section(slack_message(alert, mention=False).blocks)
    assert section["text"]["text"].startswith("US and Japan agree on auto tariffs")
    assert "accessory" not in section
    assert "javascript" not in all_mrkdwn(alert).lower()
    assert safe_url(link) is None
    _text, html_body = email_bodies(alert)
    assert "href" not in html_body


def test_http_link_is_linked() -> None:
    section = feed_section(slack_message(BASE, mention=False).blocks)
    assert section["text"]["text"].startswith("US and Japan agree on auto tariffs")
    assert section["accessory"]["url"] == "https://example.test/news/1"
    assert safe_url("HTTP://Example.test/x y") == "HTTP://Example.test/x%20y"


# --- Slack limits and content ------------------------------------------------------------


def test_header_is_capped_at_150() -> None:
    message = slack_message(make(title="word " * 100), mention=False)
    header = header_text(message.blocks)
    assert len(header) <= SLACK_HEADER_MAX
    assert header.endswith("…")


def test_section_is_capped_at_3000_even_when_escaping_expands_it() -> None:
    # escaping turns every "<" into four characters where text is mrkdwn (context, fallback)
    alert = make(title="<" * 400, summary="<&> " * 2000, link="https://example.test/" + "a" * 900)
    message = slack_message(alert, mention=True)
    section = section_text(message.blocks)
    assert len(section) <= SLACK_BLOCK_TEXT_MAX
    assert len(context_text(message.blocks)) <= SLACK_BLOCK_TEXT_MAX
    # the cut never leaves half an entity behind in mrkdwn
    for text in mrkdwn_strings(message.blocks):
        assert re.search(r"&(?!amp;|lt;|gt;)", text.replace("<!here>", "")) is None


def test_summary_is_cut_on_a_word_boundary() -> None:
    summary = " ".join(f"word{i}" for i in range(300))
    section = section_text(slack_message(make(summary=summary), mention=False).blocks)
    shown = section.split("\n", 1)[1]
    assert len(shown) <= SUMMARY_MAX
    assert shown.endswith("…")
    assert re.fullmatch(r"(word\d+ )*word\d+…", shown)


def test_context_says_why_it_fired() -> None:
    context = context_text(slack_message(BASE, mention=False).blocks)
    assert "Rule: Auto tariffs [tariffs-autos]" in context
    assert "Tier: high" in context
    assert "Matched: tariff, Section 232" in context
    assert "Source: Ministry of Finance" in context
    assert "2025-07-22 09:30 UTC" in context


def test_fallback_text_carries_the_same_facts() -> None:
    text = slack_message(BASE, mention=False).text
    for fact in (
        "US and Japan agree",
        "Auto tariffs",
        "tariff, Section 232",
        "Ministry of Finance",
    ):
        assert fact in text
    assert "<https://example.test/news/1>" in text


def test_critical_mention_prepends_here() -> None:
    plain = slack_message(make(tier="critical"), mention=False)
    loud = slack_message(make(tier="critical"), mention=True)
    assert loud.text.startswith("<!here> ")
    assert loud.blocks[1] == {"type": "section", "text": {"type": "mrkdwn", "text": "<!here>"}}
    assert "<!here>" not in plain.text
    assert "<!here>" not in all_mrkdwn(make(tier="critical"))
    assert [b["type"] for b in plain.blocks] == ["header", "section", "context"]
    assert header_text(loud.blocks).startswith("🚨")


@pytest.mark.parametrize("marks", ["*bold*", "_italic_", "~strike~", "`code`", "```block```"])
def test_feed_emphasis_characters_arrive_inert(marks: str) -> None:
    alert = make(title=f"Tariffs {marks} now", summary=f"see {marks} here")
    message = slack_message(alert, mention=True)
    # the feed's words are in plain_text objects only, which Slack never formats
    assert f"Tariffs {marks} now\nsee {marks} here" == section_text(message.blocks)
    assert header_text(message.blocks).endswith(f"Tariffs {marks} now")
    assert not [text for text in mrkdwn_strings(message.blocks) if marks in text]


def test_untitled_item_still_has_a_header() -> None:
    assert "(untitled)" in header_text(slack_message(make(title="  \n "), mention=False).blocks)


# --- email -----------------------------------------------------------------------------


def test_subject_has_no_line_breaks_and_is_capped() -> None:
    title = "Tariffs\r\nBcc: victim@example.test\u2028more\x00" + "x" * 500
    subject = email_subject(make(title=title, tier="critical"))
    assert subject.startswith("[mastwatch][CRITICAL] Tariffs Bcc: victim@example.test more")
    assert len(subject) <= SUBJECT_MAX
    assert not re.search(r"[\r\n\x00\u2028\u2029]", subject)
    assert subject.endswith("…")


def test_html_body_escapes_feed_text() -> None:
    alert = make(
        title="<script>alert(1)</script>",
        summary='<img src=x onerror="alert(2)">',
        source_name="<b>Wire</b>",
        link='https://example.test/?q="><script>',
    )
    text, html_body = email_bodies(alert)
    assert "<script>" not in html_body
    assert "<img" not in html_body
    assert "<b>Wire" not in html_body
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html_body
    # the link stays one attribute: its quote and brackets are percent-encoded
    assert 'href="https://example.test/?q=%22%3E%3Cscript%3E"' in html_body
    assert "<script>alert(1)</script>" in text  # plain text shows it literally, harmlessly


def test_html_body_is_well_formed_with_expected_elements() -> None:
    class Collector(HTMLParser):
        def __init__(self) -> None:
            super().__init__()
            self.tags: list[str] = []

        def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
            self.tags.append(tag)

    collector = Collector()
    collector.feed(email_bodies(BASE)[1])
    assert set(collector.tags) <= {"html", "body", "h2", "a", "table", "tr", "th", "td", "p"}
    assert "a" in collector.tags


def test_text_body_says_why_it_fired() -> None:
    text, _html = email_bodies(BASE)
    assert "Rule: Auto tariffs [tariffs-autos]" in text
    assert "Matched: tariff, Section 232" in text
    assert "Link: https://example.test/news/1" in text
    assert BASE.id in text


# --- console ---------------------------------------------------------------------------


def test_console_text_strips_terminal_escapes() -> None:
    alert = make(
        title="\x1b[31mRED\x1b[0m alert",
        summary="\x1b]0;pwned\x07 body",
        source_name="src\x1b[2J",
        link="https://example.test/\x1b[1m",
    )
    text = console_text(alert)
    assert "\x1b" not in text
    assert "\x07" not in text
    assert "[31m" not in text  # the whole sequence goes, not just its ESC
    assert "pwned" not in text  # an OSC "set window title" sequence goes with its payload
    assert "[HIGH] RED alert" in text
    lines = text.split("\n")
    assert all(not re.search(r"[\x00-\x1f\x7f]", line) for line in lines)


def test_console_text_lists_the_facts() -> None:
    text = console_text(BASE)
    for fact in (
        "[HIGH]",
        "US and Japan agree on auto tariffs",
        "Auto tariffs [tariffs-autos]",
        "Ministry of Finance",
        "https://example.test/news/1",
        "tariff, Section 232",
        "Negotiators reached a deal",
    ):
        assert fact in text


def test_truncate_keeps_short_text_and_marks_cuts() -> None:
    assert truncate("short", 10) == "short"
    assert truncate("a" * 20, 10) == "a" * 9 + "…"
    assert len(truncate("alpha beta gamma delta", 12)) <= 12
