"""Digests and notices on Slack: feed titles and error texts inside them stay inert."""

from __future__ import annotations

from mastwatch.messages import SLACK_MAX_BLOCKS, SLACK_SECTION_MAX, slack_blocks
from mastwatch.model import Message

HOSTILE = "<!channel> <https://evil.example|bank> *bold* _it_ ~gone~ `code`"


def _message(text: str, subject: str = "Morning digest") -> Message:
    return Message("digest", "digest:morning:x", "slack", "#research", subject, text)


def test_subject_and_text_are_plain_text_and_the_fallback_is_escaped() -> None:
    rendered = slack_blocks(_message(f"• {HOSTILE} (NHK)", subject=f"Notice {HOSTILE}"))
    header, section = rendered.blocks
    assert header["type"] == "header"
    assert header["text"]["type"] == "plain_text"
    assert section["text"] == {"type": "plain_text", "text": f"• {HOSTILE} (NHK)"}
    assert "<!channel>" not in rendered.text
    assert "&lt;!channel&gt;" in rendered.text


def test_a_long_digest_is_split_at_line_ends_and_capped() -> None:
    line = "x" * 99 + "\n"
    rendered = slack_blocks(_message(line * 100))  # 10,000 characters
    sections = [b["text"]["text"] for b in rendered.blocks[1:]]
    assert all(len(text) <= SLACK_SECTION_MAX for text in sections)
    assert all(text.endswith("\n") for text in sections)
    assert "".join(sections) == line * 100

    huge = slack_blocks(_message(line * 2000))
    assert len(huge.blocks) == SLACK_MAX_BLOCKS
    assert huge.blocks[-1]["text"]["text"].endswith("…")
