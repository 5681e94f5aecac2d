"""Rendering of a story's follow-ups: replies, updates, escalations, flood summaries.
Feed text is untrusted: it must arrive inert in every one of them."""

from __future__ import annotations

from dataclasses import replace

from test_policy_decide import cand

from mastwatch.notify.render import (
    plain_alert,
    slack_escalation,
    slack_reply,
    slack_summary,
    slack_update,
)

HOSTILE = "<!channel> <https://evil.example|click> & co"
ALERT = replace(cand("nhk", HOSTILE, link="https://n.example/a").alert)


EMPHASIS = "*bold* _it_ ~gone~ `code`"


def _mrkdwn_texts(blocks: list[dict[str, object]]) -> list[str]:
    """Every mrkdwn text object in ``blocks`` (where Slack would interpret markup)."""
    found: list[str] = []

    def walk(node: object) -> None:
        if isinstance(node, dict):
            if node.get("type") == "mrkdwn":
                found.append(str(node["text"]))
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(blocks)
    return found


def test_reply_names_the_new_source_and_keeps_feed_text_plain() -> None:
    alert = replace(ALERT, title=f"{HOSTILE} {EMPHASIS}")
    message = slack_reply(alert, {"source": "Reuters <@U1>"})
    assert message.text.startswith("Also reported by *Reuters &lt;@U1&gt;*: ")
    assert "<!channel>" not in message.text
    lead, section = message.blocks
    assert _mrkdwn_texts([lead]) == ["Also reported by *Reuters &lt;@U1&gt;*:"]
    assert section["text"]["type"] == "plain_text"
    assert EMPHASIS in section["text"]["text"]
    assert section["accessory"]["url"] == "https://n.example/a"
    assert not any(EMPHASIS in text or "channel" in text for text in _mrkdwn_texts(message.blocks))


def test_update_shows_the_sources_tier_and_escalation() -> None:
    info = {
        "title": "Japan trims Treasuries",
        "link": "https://n.example/a",
        "tier": "critical",
        "sources": ["NHK", "Reuters <x>", "Kyodo"],
        "escalation": "reported by 3 sources within 1h",
    }
    message = slack_update(ALERT, info, mention=False)
    assert "[CRITICAL] Japan trims Treasuries" in message.text
    assert "Reported by 3 sources: NHK, Reuters &lt;x&gt;, Kyodo" in message.text
    assert message.blocks[-1]["type"] == "context"
    assert "Escalated: reported by 3 sources within 1h" in message.blocks[-1]["elements"][0]["text"]


def test_escalation_mentions_only_when_the_new_tier_does() -> None:
    info = {"from": "high", "to": "critical", "reason": "tagged <ministry>"}
    loud = slack_escalation(info, mention=True)
    assert loud.text.startswith("<!here> 🚨 Escalated high → critical: tagged &lt;ministry&gt;")
    assert not slack_escalation(info, mention=False).text.startswith("<!here>")


def test_summary_lists_items_as_plain_text_with_safe_links() -> None:
    info = {
        "rule": "Tariffs",
        "hour": "2026-11-24T03",
        "count": 3,
        "items": [
            {"title": f"{HOSTILE} {EMPHASIS}", "link": "javascript:alert(1)", "source": "A"},
            {"title": "Fine", "link": "https://ok.example/x", "source": "B"},
        ],
    }
    message = slack_summary(info)
    assert message.text.startswith("3 more alerts of rule Tariffs in the hour 2026-11-24T03")
    assert "javascript:" not in message.text
    assert "&lt;!channel&gt;" in message.text
    head, hostile, fine = message.blocks
    assert head["text"]["type"] == "mrkdwn"
    assert hostile["text"] == {
        "type": "plain_text",
        "text": f"{HOSTILE} {EMPHASIS} (A)",
        "emoji": False,
    }
    assert "accessory" not in hostile  # an unsafe link gets no button
    assert fine["accessory"]["url"] == "https://ok.example/x"
    assert not any(EMPHASIS in text or "channel" in text for text in _mrkdwn_texts(message.blocks))


def test_summary_caps_its_blocks() -> None:
    items = [
        {"title": f"t{n}", "link": f"https://ok.example/{n}", "source": "S"} for n in range(60)
    ]
    message = slack_summary({"rule": "R", "hour": "h", "count": 60, "items": items})
    assert len(message.blocks) <= 50
    assert message.blocks[-1]["elements"][0]["text"] == "… and 20 more"


def test_plain_forms_for_email_and_console() -> None:
    escalated = plain_alert(ALERT, "escalation", {"to": "critical", "reason": "3 sources"})
    assert escalated.tier == "critical"
    assert escalated.title.startswith("Escalated to critical: ")
    assert escalated.summary.startswith("3 sources")
    summary = plain_alert(ALERT, "summary", {"rule": "R", "hour": "h", "items": [{"title": "x"}]})
    assert summary.title.startswith("1 more alert of rule R")
    assert summary.link is None
    assert plain_alert(ALERT, "alert", {}) is ALERT
