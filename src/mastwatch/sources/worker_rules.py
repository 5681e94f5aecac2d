"""The rule set, lent to the parse workers so that each matches the items it parses.

In a cold cycle the event loop's process is the busy one: it fetches, checks for
duplicates, decides and hands rows to the store thread, all under one GIL, while the parse
workers wait for bodies. Making an item's document and matching it (a quarter of a second
for the 15,000 items of the benchmark farm) is pure CPU work on data the worker already
holds, so the worker does it and sends back only the matches (bench/changes.md, eighth
session).

A compiled :class:`~mastwatch.rules.RuleSet` does not pickle (its conditions are compiled
Python functions), and sending the rules with every body would copy them hundreds of
times a cycle. So the daemon writes each rule set it uses once, pickled, to a private
directory (:class:`SharedRules`), and a call names it (:class:`RulesRef`); a worker
compiles the set once, on the first call that names it, and keeps it until a call names
another (a reload). Whatever goes wrong on the worker's side (the file gone, a compile
error, matching raising) means only that the worker sends no matches: the daemon then
matches as it always did, and any error surfaces there, where it is logged.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import pickle
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import structlog

from mastwatch.fingerprint import signature
from mastwatch.model import Item, Match
from mastwatch.rules import RuleSet, compile_rules, match
from mastwatch.text import make_document

__all__ = ["ItemMatches", "RulesRef", "SharedRules", "mark_as_worker", "match_in_worker"]

log = structlog.get_logger(__name__)  # the daemon's side only: workers never log


@dataclass(frozen=True, slots=True)
class RulesRef:
    """A rule set as the workers find it: its key (a digest of the pickled rules, so of
    their content and order) and the file holding them."""

    key: str
    path: str


@dataclass(frozen=True, slots=True)
class ItemMatches:
    """A document's matches as a worker made them: by item key (keys are unique within a
    document), items without a match left out, and the key of the rule set used. A matched
    item's title fingerprint for story finding comes too (``fingerprint.signature``,
    76 us a title: as much again as matching it)."""

    rules_key: str
    by_item: Mapping[str, tuple[Match, ...]]
    title_signatures: Mapping[str, tuple[int, ...]] = field(default_factory=dict)


class SharedRules:
    """The daemon's side: one file per rule set, in a directory only its user can read.

    The current set's file and the one before stay (a call made before a reload may still
    be waiting for a worker); older ones are removed, and the directory on :meth:`close`.
    """

    def __init__(self) -> None:
        self._directory: Path | None = None
        self._current: tuple[RuleSet, RulesRef | None] | None = None
        self._kept: list[RulesRef] = []

    def ref(self, ruleset: RuleSet) -> RulesRef | None:
        """The reference to ``ruleset`` for a parse call, its file written on first use;
        None if it cannot be written (the daemon then matches every item itself, and
        tries again with the next rule set, not on every poll)."""
        if self._current is not None and self._current[0] is ruleset:
            return self._current[1]
        ref: RulesRef | None = None
        try:
            ref = self._write(pickle.dumps(ruleset.rules, protocol=pickle.HIGHEST_PROTOCOL))
        except (OSError, pickle.PicklingError) as exc:
            log.warning(
                "worker_rules_unavailable",
                error=f"{type(exc).__name__}: {exc}",
                effect="parse workers do not match; the daemon matches every item itself",
            )
        self._current = (ruleset, ref)
        if ref is not None:
            self._keep(ref)
        return ref

    def _write(self, pickled: bytes) -> RulesRef:
        if self._directory is None:
            self._directory = Path(tempfile.mkdtemp(prefix="mastwatch-rules-"))  # mode 0700
        key = hashlib.sha256(pickled).hexdigest()[:32]
        path = self._directory / f"{key}.pickle"
        if not path.exists():  # the same rules loaded again (a reload that changed nothing)
            partial = path.with_suffix(".partial")
            partial.write_bytes(pickled)
            os.replace(partial, path)  # a worker never reads half a file
        return RulesRef(key, str(path))

    def _keep(self, ref: RulesRef) -> None:
        self._kept = [kept for kept in self._kept if kept.key != ref.key] + [ref]
        while len(self._kept) > 2:
            with contextlib.suppress(OSError):
                os.remove(self._kept.pop(0).path)

    def close(self) -> None:
        if self._directory is not None:
            shutil.rmtree(self._directory, ignore_errors=True)
        self._directory, self._current, self._kept = None, None, []


# -- the worker's side ----------------------------------------------------------------------

# Set in parse workers only: a call run in a thread of the daemon matches nothing (the
# daemon matches, as it holds the compiled set already).
_in_worker = False
_compiled: tuple[str, RuleSet] | None = None  # (key, rule set) last compiled here
_unusable: str | None = None  # the key of a set that could not be loaded here: not retried


def mark_as_worker() -> None:
    """Called by each parse worker as it starts."""
    global _in_worker  # noqa: PLW0603 - one flag per process, set once
    _in_worker = True


def match_in_worker(
    ref: RulesRef, items: tuple[Item, ...], source_tags: tuple[str, ...]
) -> ItemMatches | None:
    """The items' matches under the rule set ``ref`` names, or None: outside a parse worker,
    or when the rules cannot be loaded or matching fails (the daemon then matches)."""
    if not _in_worker or ref.key == _unusable:
        return None
    try:
        ruleset = _ruleset(ref)
        by_item: dict[str, tuple[Match, ...]] = {}
        signatures: dict[str, tuple[int, ...]] = {}
        for item in items:
            found = match(ruleset, make_document(item, source_tags))
            if found:
                by_item[item.key] = tuple(found)
                signatures[item.key] = signature(item.title)
    except Exception:  # the daemon matches again, and reports the error if it recurs
        return None
    return ItemMatches(ref.key, by_item, signatures)


def _ruleset(ref: RulesRef) -> RuleSet:
    global _compiled, _unusable  # noqa: PLW0603 - this worker's one compiled set
    if _compiled is None or _compiled[0] != ref.key:
        _compiled = None  # the old set's memory goes before the new one is built
        try:
            rules = pickle.loads(Path(ref.path).read_bytes())  # noqa: S301 - our 0700 dir
            _compiled = (ref.key, compile_rules(rules))
        except Exception:
            _unusable = ref.key  # a compile may take seconds: not again for every body
            raise
    return _compiled[1]
