"""Feed text that tries to speak with the operators' voice, through the whole daemon:
Slack mentions and links, email header injection, HTML and scripts, overlong text, and
control, bidi and zero-width characters."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from daemon_fixtures import Servers, run_once, source, write_config
from mastwatch.testing.feeds import rss

HOSTILE = (
    "tariff <!channel> <!here> <@U123> <https://evil.example|bank> *bold* `code` _it_ ~st~ "
    "\u202eevil\u202c ze\u200bro\u2060width \x07bell\x1b[31m red "
    "<script>alert(1)</script>\r\nBcc: victim@evil.example"
)
HOSTILE_SUMMARY = "<p>before <script>steal()</script><img src=x onerror=alert(1)> after</p>"
INVISIBLE = ("\u202e", "\u202c", "\u200b", "\u2060", "\x07", "\x1b", "\r")
LONG_TITLE = "Treasuries " + "very long words " * 700
LONG_SUMMARY = "Treasuries " + "paragraph text " * 8000


def _mrkdwn(node: Any) -> list[str]:
    if isinstance(node, list):
        return [s for child in node for s in _mrkdwn(child)]
    if isinstance(node, dict):
        if node.get("type") == "mrkdwn":
            return [str(node.get("text", ""))]
        return [s for child in node.values() for s in _mrkdwn(child)]
    return []


def _header(message: Any) -> str:
    return str(message.blocks[0]["text"]["text"])


async def test_hostile_feed_text_arrives_inert(tmp_path: Path, servers: Servers) -> None:
    items = [
        {"title": HOSTILE, "guid": "h-1", "description": HOSTILE_SUMMARY},
        {"title": LONG_TITLE, "guid": "h-2", "description": LONG_SUMMARY},
    ]
    servers.feeds.add_feed("/wire.xml", rss(items))
    config = write_config(tmp_path, servers, [source(servers, "/wire.xml", "wire")])

    await run_once(config)

    by_channel = {m.channel: m for m in servers.slack.messages}
    _assert_slack_inert(by_channel["#crit"])
    _assert_slack_within_limits(by_channel["#high"])
    _assert_email_inert(servers)


def _assert_slack_inert(message: Any) -> None:
    mrkdwn = [message.text or "", *_mrkdwn(message.blocks)]
    payload = "\n".join(mrkdwn)
    assert payload.count("<!here>") == 2  # our own critical mention, text and section only
    for attack in ("<!channel>", "<@U123>", "<https://evil.example|bank>", "<script>"):
        assert attack not in payload
    assert "&lt;!channel&gt;" in payload and "&lt;@U123&gt;" in payload
    # the only unescaped angle brackets are our own mention and link syntax
    residue = payload.replace("<!here>", "")
    assert all(chunk.startswith(("http", "https")) for chunk in residue.split("<")[1:])
    # mrkdwn emphasis from the feed never reaches a mrkdwn block: the feed's words are in
    # plain_text objects (header, section), which Slack shows literally
    blocks_mrkdwn = "\n".join(_mrkdwn(message.blocks))
    for mark in ("*bold*", "`code`", "_it_", "~st~"):
        assert mark not in blocks_mrkdwn
        assert mark in _header(message)
    sections = [b for b in message.blocks if b["type"] == "section"]
    assert [s["text"]["type"] for s in sections] == ["mrkdwn", "plain_text"]  # <!here>, feed
    assert sections[0]["text"]["text"] == "<!here>"
    seen = payload + _header(message)
    assert not [ch for ch in INVISIBLE if ch in seen]
    assert "zerowidth" in _header(message)  # removed, not replaced by a space
    assert message.parse == "none"
    assert message.unfurl_links is False


def _assert_slack_within_limits(message: Any) -> None:
    header = _header(message)
    assert len(header) <= 150
    assert header.endswith("…")
    for text in _mrkdwn(message.blocks):
        assert len(text) <= 3000
    (section,) = [b for b in message.blocks if b["type"] == "section"]
    assert section["text"]["type"] == "plain_text"
    assert len(section["text"]["text"]) <= 3000
    assert section["text"]["text"].endswith("…")
    assert len(message.text or "") <= 40_000


def _assert_email_inert(servers: Servers) -> None:
    (mail,) = servers.smtp.messages
    message = mail.message
    assert mail.rcpt_tos == ("desk@example.com",)
    assert message["Bcc"] is None
    subject = str(message["Subject"])
    assert "\n" not in subject and "\r" not in subject
    assert not [ch for ch in INVISIBLE if ch in subject]
    html_part = message.get_body(("html",))
    assert html_part is not None
    html = html_part.get_content()
    assert "<script" not in html and "<img" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "steal()" not in html  # scripts are dropped from summaries, not just escaped
    text_part = message.get_body(("plain",))
    assert text_part is not None
    body = text_part.get_content().replace("\r\n", "\n")  # the transport's line ends
    assert not [ch for ch in INVISIBLE if ch in body]
    assert not [line for line in body.split("\n") if line.startswith("Bcc:")]  # one line
