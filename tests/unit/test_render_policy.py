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


def test_reply_names_the_new_source_and_escapes() -> None:
    message = slack_reply(ALERT, {"source": "Reuters <@U1>"})
    assert message.text.startswith("Also reported by *Reuters &lt;@U1&gt;*: ")
    assert "&lt;!channel&gt;" in message.text
    assert "<!channel>" not in message.text
    assert "<https://n.example/a|" in message.text


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


def test_summary_lists_items_with_safe_links() -> None:
    info = {
        "rule": "Tariffs",
        "hour": "2026-11-24T03",
        "count": 3,
        "items": [
            {"title": HOSTILE, "link": "javascript:alert(1)", "source": "A"},
            {"title": "Fine", "link": "https://ok.example/x", "source": "B"},
        ],
    }
    message = slack_summary(info)
    assert message.text.startswith("*3 more alerts of rule Tariffs in the hour 2026-11-24T03")
    assert "javascript:" not in message.text
    assert "• <https://ok.example/x|Fine> (B)" in message.text
    assert "&lt;!channel&gt;" in message.text


def test_plain_forms_for_email_and_console() -> None:
    escalated = plain_alert(ALERT, "escalation", {"to": "critical", "reason": "3 sources"})
    assert escalated.tier == "critical"
    assert escalated.title.startswith("Escalated to critical: ")
    assert escalated.summary.startswith("3 sources")
    summary = plain_alert(ALERT, "summary", {"rule": "R", "hour": "h", "items": [{"title": "x"}]})
    assert summary.title.startswith("1 more alert of rule R")
    assert summary.link is None
    assert plain_alert(ALERT, "alert", {}) is ALERT
