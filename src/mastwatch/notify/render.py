"""Pure rendering of an alert for Slack, email and a terminal.

Everything taken from a feed (title, summary, link, source name) is untrusted: it is
escaped here, at the edge where it meets each output format, and nowhere earlier. The
rule title, rule id and matched terms come from operators, but they are escaped the same
way because nothing is gained by trusting them.
"""

from __future__ import annotations

import html
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, urlsplit

from mastwatch.model import Alert

# Limits of Slack's Block Kit and chat.postMessage, declared once here and re-exported
# on SlackNotifier so the sending code never hard-codes them.
SLACK_HEADER_MAX = 150  # header block plain_text
SLACK_BLOCK_TEXT_MAX = 3000  # section / context text
SLACK_TEXT_MAX = 40_000  # top-level message text

SUMMARY_MAX = 500  # characters of the summary a subscriber sees
SUBJECT_MAX = 200  # characters of an email subject
TITLE_MAX = 250  # characters of a title inside a section (the header has its own cap)
SLACK_LINK_LABEL = "Open"  # the link button's label: fixed, so no feed text is ever a link
URL_MAX = 1000  # longer links are not linked: a feed does not need them, an attacker might

ELLIPSIS = "…"

TIER_EMOJI: dict[str, str] = {
    "critical": "🚨",
    "high": "🔶",
    "normal": "🔹",
    "digest": "📰",
}
DEFAULT_EMOJI = "🔔"

# C0/C1 controls (incl. ESC, CR, LF, NEL), the Unicode line/paragraph separators and the
# bidirectional overrides, which can make a subject or a terminal line lie about its text.
_CONTROL_RE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u200e\u200f\u202a-\u202e\u2066-\u2069]")
# Whole terminal escape sequences (CSI such as "ESC[31m", OSC such as "ESC]0;title BEL",
# and two-character escapes), removed before the lone control characters so no printable
# remnant like "[31m" is left behind.
_ANSI_RE = re.compile(
    r"(?:\x1b\[|\x9b)[0-?]*[ -/]*[@-~]"
    r"|(?:\x1b\]|\x9d)[^\x07\x1b\x9c]*(?:\x07|\x1b\\|\x9c)?"
    r"|\x1b[@-Z\\-_]"
)
# Zero-width and other invisible format characters (ZWSP, ZWNJ, ZWJ, word joiner, invisible
# operators, BOM, soft hyphen, Mongolian vowel separator): removed outright, as they can hide
# inside a word ("ba\u200bnk") to dodge a reader's eye or a filter.
_INVISIBLE_RE = re.compile("[\u00ad\u180e\u200b-\u200d\u2060-\u2064\ufeff]")
_SPACE_RE = re.compile(r"\s+")
# Characters kept as they are in a link; everything else (|, <, >, ", space, non-ASCII,
# backslash, braces...) is percent-encoded so it cannot end Slack's <url|label> syntax
# or an HTML attribute.
_URL_SAFE = "!#$%&'()*+,/:;=?@[]~"
_SAFE_SCHEMES = frozenset({"http", "https"})


@dataclass(frozen=True, slots=True)
class SlackMessage:
    """A Slack message: Block Kit blocks plus the plain-text fallback Slack requires."""

    text: str
    blocks: list[dict[str, Any]]


def clean_line(text: str) -> str:
    """Return ``text`` as one line: control characters removed, whitespace collapsed."""
    text = _CONTROL_RE.sub(" ", _INVISIBLE_RE.sub("", _ANSI_RE.sub("", text)))
    return _SPACE_RE.sub(" ", text).strip()


def truncate(text: str, limit: int) -> str:
    """Cut ``text`` to at most ``limit`` characters, on a word boundary when one is near,
    ending with an ellipsis when anything was cut."""
    if len(text) <= limit:
        return text
    cut = text[: limit - 1]
    space = cut.rfind(" ")
    if space > limit * 0.6:
        cut = cut[:space]
    return cut.rstrip(" ,.;:-") + ELLIPSIS


def short_summary(alert: Alert) -> str:
    """The alert's summary as one plain-text paragraph of at most ``SUMMARY_MAX`` chars."""
    return truncate(clean_line(alert.summary), SUMMARY_MAX)


def safe_url(url: str | None) -> str | None:
    """Return an http(s) link safe to embed in Slack mrkdwn or an HTML attribute, or
    ``None`` when the link is missing, too long or of any other scheme (javascript:,
    data:, file: ... are never linked)."""
    if not url:
        return None
    url = url.strip()
    if _CONTROL_RE.search(url):
        return None
    try:
        parts = urlsplit(url)
    except ValueError:  # e.g. an invalid IPv6 literal
        return None
    if parts.scheme.lower() not in _SAFE_SCHEMES or not parts.netloc:
        return None
    encoded = quote(url, safe=_URL_SAFE)
    return encoded if len(encoded) <= URL_MAX else None


def slack_escape(text: str) -> str:
    """Escape ``&``, ``<`` and ``>`` for Slack mrkdwn.

    That is all Slack needs: a special mention (``<!channel>``), a user mention
    (``<@U123>``) or a link (``<http://x|y>``) only exists inside angle brackets, so once
    they are escaped a feed title arrives inert. A bare ``@here`` or ``@channel`` typed as
    text does not notify anyone when the message is posted with ``parse="none"``, which
    the notifier always does, so it needs no treatment here.
    """
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def cap_mrkdwn(text: str, limit: int) -> str:
    """Cut escaped mrkdwn to ``limit`` characters without splitting an ``&amp;`` entity."""
    if len(text) <= limit:
        return text
    cut = text[: limit - 1]
    amp = cut.rfind("&")
    if amp != -1 and ";" not in cut[amp:]:
        cut = cut[:amp]
    return cut + ELLIPSIS


def format_published(published: datetime | None) -> str:
    """A publication time in UTC, or ``"unknown time"``; a naive time is taken as UTC."""
    if published is None:
        return "unknown time"
    if published.tzinfo is None:
        published = published.replace(tzinfo=UTC)
    return published.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def _title(alert: Alert) -> str:
    return clean_line(alert.title) or "(untitled)"


def _emoji(tier: str) -> str:
    return TIER_EMOJI.get(tier, DEFAULT_EMOJI)


def _facts(alert: Alert) -> list[tuple[str, str]]:
    """The facts every format shows, as (label, plain text) pairs, not yet escaped."""
    matched = ", ".join(clean_line(term) for term in alert.matched) or "(none)"
    return [
        ("Rule", f"{clean_line(alert.rule_title)} [{clean_line(alert.rule_id)}]"),
        ("Tier", clean_line(alert.tier)),
        ("Matched", matched),
        ("Source", clean_line(alert.source_name)),
        ("Published", format_published(alert.published)),
    ]


# --- Slack ---------------------------------------------------------------------------


def _slack_section(alert: Alert) -> dict[str, Any]:
    """The feed's words (title, summary) as ``plain_text``, which Slack shows literally: no
    mention, link or emphasis (``*``, ``_``, ``~``, `` ` ``) written in a feed comes alive.
    The link goes on a button whose label is ours, never on feed text."""
    text = truncate(_title(alert), TITLE_MAX)
    summary = short_summary(alert)
    if summary:
        text += "\n" + summary
    return _plain_section(text, alert.link)


def _plain_section(text: str, link: str | None) -> dict[str, Any]:
    """A section of feed text as ``plain_text`` with, for a safe link, an "Open" button."""
    block: dict[str, Any] = {
        "type": "section",
        "text": {
            "type": "plain_text",
            "text": truncate(text, SLACK_BLOCK_TEXT_MAX),
            "emoji": False,
        },
    }
    url = safe_url(link)
    if url:
        block["accessory"] = {
            "type": "button",
            "text": {"type": "plain_text", "text": SLACK_LINK_LABEL},
            "url": url,
            "action_id": "open-item",
        }
    return block


def _slack_context(alert: Alert) -> str:
    text = " · ".join(f"{label}: {slack_escape(value)}" for label, value in _facts(alert))
    return cap_mrkdwn(text, SLACK_BLOCK_TEXT_MAX)


def _slack_fallback(alert: Alert, mention: bool) -> str:
    lines = [f"{_emoji(alert.tier)} [{alert.tier.upper()}] {slack_escape(_title(alert))}"]
    lines += [f"{label}: {slack_escape(value)}" for label, value in _facts(alert)]
    url = safe_url(alert.link)
    if url:
        lines.append(f"<{url}>")
    summary = short_summary(alert)
    if summary:
        lines.append(slack_escape(summary))
    text = ("<!here> " if mention else "") + "\n".join(lines)
    return cap_mrkdwn(text, SLACK_TEXT_MAX)


def slack_message(alert: Alert, *, mention: bool) -> SlackMessage:
    """Render ``alert`` as Block Kit blocks plus a plain-text fallback.

    ``mention`` (used for the critical tier) prepends ``<!here>`` to the fallback text and
    adds it as a mrkdwn section of its own before the feed's (plain_text) section.
    """
    header = truncate(f"{_emoji(alert.tier)} {_title(alert)}", SLACK_HEADER_MAX)
    blocks: list[dict[str, Any]] = [
        # plain_text is shown literally by Slack: no mrkdwn escaping, only the length cap
        {"type": "header", "text": {"type": "plain_text", "text": header, "emoji": True}},
        _slack_section(alert),
        {
            "type": "context",
            "elements": [{"type": "mrkdwn", "text": _slack_context(alert)}],
        },
    ]
    if mention:  # our own mrkdwn, apart from any feed text
        blocks.insert(1, {"type": "section", "text": {"type": "mrkdwn", "text": "<!here>"}})
    return SlackMessage(text=_slack_fallback(alert, mention), blocks=blocks)


# --- email ---------------------------------------------------------------------------


def email_subject(alert: Alert) -> str:
    """``[mastwatch][TIER] title`` on one line (no CR, LF or other control character)
    and at most ``SUBJECT_MAX`` characters, so a feed title cannot inject a header."""
    subject = f"[mastwatch][{clean_line(alert.tier).upper()}] {_title(alert)}"
    return truncate(subject, SUBJECT_MAX)


def _email_text(alert: Alert) -> str:
    lines = [f"[{clean_line(alert.tier).upper()}] {_title(alert)}", ""]
    lines += [f"{label}: {value}" for label, value in _facts(alert)]
    url = safe_url(alert.link)
    if url:
        lines.append(f"Link: {url}")
    summary = short_summary(alert)
    if summary:
        lines += ["", summary]
    lines += ["", "--", f"Sent by mastwatch. Alert id: {alert.id}"]
    return "\n".join(lines) + "\n"


def _email_html(alert: Alert) -> str:
    esc = html.escape
    title = esc(_title(alert))
    url = safe_url(alert.link)
    heading = f'<a href="{esc(url)}">{title}</a>' if url else title
    rows = "".join(
        f"<tr><th align='left'>{esc(label)}</th><td>{esc(value)}</td></tr>"
        for label, value in _facts(alert)
    )
    summary = short_summary(alert)
    return (
        "<!DOCTYPE html>\n<html><body>\n"
        f"<h2>{esc(_emoji(alert.tier))} [{esc(clean_line(alert.tier).upper())}] {heading}</h2>\n"
        f"<table>{rows}</table>\n"
        + (f"<p>{esc(summary)}</p>\n" if summary else "")
        + f"<p style='color:#888'>Sent by mastwatch. Alert id: {esc(alert.id)}</p>\n"
        "</body></html>\n"
    )


def email_bodies(alert: Alert) -> tuple[str, str]:
    """The plain-text and HTML bodies of an alert email; every feed-derived string in the
    HTML is escaped and only an http(s) link becomes an anchor."""
    return _email_text(alert), _email_html(alert)


# --- terminal ------------------------------------------------------------------------


def console_text(alert: Alert) -> str:
    """A readable multi-line block for a terminal. Control characters (ESC included) are
    removed from every field, so a feed cannot move the cursor or recolour the screen."""
    lines = [f"{_emoji(alert.tier)} [{clean_line(alert.tier).upper()}] {_title(alert)}"]
    lines += [f"  {label.lower() + ':':<10} {value}" for label, value in _facts(alert)]
    link = clean_line(alert.link or "")
    if link:
        lines.append(f"  {'link:':<10} {link}")
    summary = short_summary(alert)
    if summary:
        lines.append(f"  {summary}")
    return "\n".join(lines)


# --- stories: Slack threads, updates, escalations, flood summaries (issue 5, P1) -----------


def _sources_line(info: Mapping[str, Any]) -> str:
    names = [clean_line(str(n)) for n in info.get("sources") or ()]
    if not names:
        return ""
    noun = "source" if len(names) == 1 else "sources"
    return f"Reported by {len(names)} {noun}: " + ", ".join(names)


def story_alert(alert: Alert, info: Mapping[str, Any]) -> Alert:
    """The story's first message as it should read now: its title and link, its tier."""
    link = info.get("link")
    sources = info.get("sources") or [alert.source_name]
    return replace(
        alert,
        title=str(info.get("title") or alert.title),
        link=str(link) if link else None,
        tier=str(info.get("tier") or alert.tier),
        source_name=str(sources[0]),
    )


def slack_update(alert: Alert, info: Mapping[str, Any], *, mention: bool) -> SlackMessage:
    """The parent message re-rendered with the story's sources (and escalation)."""
    message = slack_message(story_alert(alert, info), mention=mention)
    lines = [_sources_line(info)]
    if info.get("escalation"):
        lines.append(f"Escalated: {clean_line(str(info['escalation']))}")
    extra = slack_escape(" · ".join(line for line in lines if line))
    if not extra:
        return message
    block = {"type": "context", "elements": [{"type": "mrkdwn", "text": extra}]}
    text = cap_mrkdwn(f"{message.text}\n{extra}", SLACK_TEXT_MAX)
    return SlackMessage(text=text, blocks=[*message.blocks, block])


def slack_reply(alert: Alert, info: Mapping[str, Any]) -> SlackMessage:
    """``Also reported by <source>:`` in the story's thread, then the feed's title as
    ``plain_text`` (inert, as in the parent) with the item's link on a button."""
    source = slack_escape(clean_line(str(info.get("source") or alert.source_name)))
    title = truncate(_title(alert), TITLE_MAX)
    lead = f"Also reported by *{source}*:"
    blocks = [
        {"type": "context", "elements": [{"type": "mrkdwn", "text": cap_mrkdwn(lead, 3000)}]},
        _plain_section(title, alert.link),
    ]
    return SlackMessage(text=cap_mrkdwn(f"{lead} {slack_escape(title)}", 3000), blocks=blocks)


def slack_escalation(info: Mapping[str, Any], *, mention: bool) -> SlackMessage:
    before, after = clean_line(str(info.get("from", "?"))), clean_line(str(info.get("to", "?")))
    reason = slack_escape(clean_line(str(info.get("reason", ""))))
    prefix = "<!here> " if mention else ""
    text = f"{prefix}{_emoji(after)} Escalated {before} → {after}: {reason}"
    text = cap_mrkdwn(text, SLACK_BLOCK_TEXT_MAX)
    return SlackMessage(text=text, blocks=[_mrkdwn_section(text)])


def _summary_lines(info: Mapping[str, Any]) -> tuple[str, list[tuple[str, str | None, str]]]:
    items = [i for i in info.get("items") or () if isinstance(i, Mapping)]
    count = int(info.get("count") or len(items))
    head = (
        f"{count} more alert{'s' if count != 1 else ''} of rule "
        f"{clean_line(str(info.get('rule', '?')))} in the hour {clean_line(str(info.get('hour')))}"
        " (flood guard)"
    )
    rows = [
        (
            truncate(clean_line(str(i.get("title") or "(untitled)")), TITLE_MAX),
            safe_url(str(i.get("link") or "")),
            clean_line(str(i.get("source") or "")),
        )
        for i in items
    ]
    return head, rows


SLACK_SUMMARY_ROWS = 40  # a message holds at most 50 blocks: one per row, and ours


def slack_summary(info: Mapping[str, Any]) -> SlackMessage:
    """The flood guard's summary: our heading in mrkdwn, then each item's title and source
    as ``plain_text`` with its link on a button (feed text never becomes mrkdwn)."""
    head, rows = _summary_lines(info)
    blocks: list[dict[str, Any]] = [_mrkdwn_section(f"*{slack_escape(head)}*")]
    blocks += [
        _plain_section(f"{title} ({source})" if source else title, url)
        for title, url, source in rows[:SLACK_SUMMARY_ROWS]
    ]
    if len(rows) > SLACK_SUMMARY_ROWS:
        more = f"… and {len(rows) - SLACK_SUMMARY_ROWS} more"
        blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": more}]})
    lines = [slack_escape(head)] + [f"• {slack_escape(title)}" for title, _, _ in rows]
    return SlackMessage(text=cap_mrkdwn("\n".join(lines), SLACK_TEXT_MAX), blocks=blocks)


def _mrkdwn_section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text}}


def plain_alert(alert: Alert, kind: str, info: Mapping[str, Any]) -> Alert:
    """An escalation or a flood summary as an alert, for email and the console (which
    have no threads): the escalation's reason or the summarised titles in the summary."""
    if kind == "escalation":
        after = str(info.get("to") or alert.tier)
        return replace(
            alert,
            tier=after,
            title=f"Escalated to {after}: {alert.title}",
            summary=f"{info.get('reason', '')}. {alert.summary}".strip(" ."),
        )
    if kind == "summary":
        head, rows = _summary_lines(info)
        listed = "; ".join(f"{title} ({source})" for title, _, source in rows)
        return replace(alert, title=head, link=None, summary=listed)
    return alert
