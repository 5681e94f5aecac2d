"""Stories: items about the same news, clustered by link or by near-identical title.

Two items are one story when their normalised links are equal, or when the MinHash
estimate of the Jaccard similarity of their titles' character shingles reaches the
configured threshold (bigrams for Japanese and Chinese, trigrams otherwise), within the
story window. Pure functions; the store keeps the stories between polls.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from urllib.parse import parse_qsl, urlencode, urlsplit

from mastwatch.model import Report, Story
from mastwatch.text import has_cjk, normalize

MINHASH_SIZE = 64
_PRIME = (1 << 61) - 1
# Fixed seeds (not random per process): signatures are stored and compared across restarts.
_SEEDS = tuple(
    (
        int.from_bytes(hashlib.blake2b(b"a%d" % i, digest_size=8).digest()) % _PRIME or 1,
        int.from_bytes(hashlib.blake2b(b"b%d" % i, digest_size=8).digest()) % _PRIME,
    )
    for i in range(MINHASH_SIZE)
)
_TRACKING = re.compile(r"^(utm_\w+|fbclid|gclid|mc_cid|mc_eid|ref|cmpid|ocid)$", re.IGNORECASE)
# " - Reuters", " | NHK", "(共同)" (NFKC has made full-width brackets ASCII): a short
# source suffix says nothing about the story
_SUFFIX = re.compile(r"(\s[-|\u2013\u2014:]\s[^-|\u2013\u2014:]{1,30}|\([^()]{1,12}\))\s*$")
_NOT_WORD = re.compile(r"[^\w]+")
_CJK_GAP = re.compile(r"(?<=[^\x00-\u2e7f]) (?=[^\x00-\u2e7f])")


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


def normalise_title(title: str) -> str:
    text = normalize(title)
    stripped = _SUFFIX.sub("", text)
    if len(stripped) >= 8:  # never strip a title down to nothing
        text = stripped
    text = _NOT_WORD.sub(" ", text).strip()
    return _CJK_GAP.sub("", text)


def shingles(title: str) -> set[str]:
    """Character bigrams for CJK titles (no word spaces), trigrams for the others."""
    text = normalise_title(title)
    size = 2 if has_cjk(text) else 3
    if len(text) <= size:
        return {text} if text else set()
    return {text[i : i + size] for i in range(len(text) - size + 1)}


def signature(title: str) -> tuple[int, ...]:
    """The title's MinHash signature (``MINHASH_SIZE`` values; empty for an empty title)."""
    hashes = [
        int.from_bytes(hashlib.blake2b(s.encode(), digest_size=8).digest()) for s in shingles(title)
    ]
    if not hashes:
        return ()
    return tuple(min((a * h + b) % _PRIME for h in hashes) for a, b in _SEEDS)


def similarity(a: Sequence[int], b: Sequence[int]) -> float:
    """Estimated Jaccard similarity of two signatures (0 when either is empty)."""
    if not a or not b or len(a) != len(b):
        return 0.0
    return sum(x == y for x, y in zip(a, b, strict=True)) / len(a)


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
    for story in live:
        if source_id in story.source_ids:
            continue
        score = similarity(story.signature, sig)
        if score >= best_score:
            best, best_score = story, score
    return best


def story_id(source_id: str, item_key: str) -> str:
    return hashlib.sha256(f"{source_id}\x00{item_key}".encode()).hexdigest()[:20]
