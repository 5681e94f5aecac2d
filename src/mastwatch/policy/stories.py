"""Stories: items about the same news, clustered by link or by near-identical title.

Two items are one story when their normalised links are equal, or when the Jaccard
similarity of their titles' character shingles (bigrams for Japanese and Chinese, trigrams
otherwise) reaches the configured threshold, within the story window. Pure functions; the
store keeps the stories between polls. Titles are compared by their fingerprints
(:mod:`mastwatch.fingerprint`): sorted 64-bit shingle hashes, so similarity is exact.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from urllib.parse import parse_qsl, urlencode, urlsplit

from mastwatch.model import Report, Story

_TRACKING = re.compile(r"^(utm_\w+|fbclid|gclid|mc_cid|mc_eid|ref|cmpid|ocid)$", re.IGNORECASE)


def normalise_link(link: str | None) -> str | None:
    """Host (without ``www.``), path without a trailing slash, and the query minus
    tracking parameters; the scheme and fragment do not make another story."""
    if not link:
        return None
    parts = urlsplit(link.strip())
    if not parts.netloc:
        return None
    host = parts.netloc.lower().removeprefix("www.")
    query = urlencode(sorted(p for p in parse_qsl(parts.query) if not _TRACKING.match(p[0])))
    path = parts.path.rstrip("/")
    return f"{host}{path}" + (f"?{query}" if query else "")


def similarity(a: Sequence[int], b: Sequence[int]) -> float:
    """Jaccard similarity of two fingerprints (0 when either is empty)."""
    return _jaccard(frozenset(a), b, at_least=0.0)


def reported_by(story: Story, source_id: str, source_name: str, now: datetime) -> Story:
    """The story with this source's report added (a source counts once)."""
    if source_id in story.source_ids:
        return replace(story, last_seen_at=now)
    report = Report(source_id, source_name, now)
    return replace(story, reports=(*story.reports, report), last_seen_at=now)


def find_story(
    stories: Iterable[Story],
    *,
    link: str | None,
    sig: Sequence[int],
    source_id: str,
    now: datetime,
    window: float,
    threshold: float,
) -> Story | None:
    """The live story (seen within ``window``) with the same link, else the one whose
    title is most similar at or above ``threshold`` among those ``source_id`` has not
    reported: a source's own items join a story by link only, since two items one source
    keeps apart (distinct GUIDs and links) are two pieces of news, however alike their
    titles ("Tokyo stocks close higher")."""
    since = now - timedelta(seconds=window)
    live = [s for s in stories if s.last_seen_at >= since]
    key = normalise_link(link)
    if key is not None:
        for story in live:
            if story.link_key == key:
                return story
    best, best_score = None, threshold
    mine = frozenset(sig)
    for story in live:
        score = _jaccard(mine, story.signature, at_least=best_score)
        # whether this source reported it, only for a story that would win: it is the
        # dearer test, and this loop runs over every live story for every match
        if score >= best_score and source_id not in story.source_ids:
            best, best_score = story, score
    return best


def _jaccard(mine: frozenset[int], other: Sequence[int], at_least: float) -> float:
    """Jaccard similarity, or 0 when the sizes alone rule out ``at_least`` (the smaller
    set over the larger bounds it), which spares the intersection."""
    size, other_size = len(mine), len(other)
    if not other_size or min(size, other_size) < at_least * max(size, other_size):
        return 0.0
    shared = len(mine.intersection(other))
    return shared / (size + other_size - shared)


def story_id(source_id: str, item_key: str) -> str:
    return hashlib.sha256(f"{source_id}\x00{item_key}".encode()).hexdigest()[:20]
