"""Watching the rules directory so an edited rule takes effect without a restart.

A small polling watcher, no new dependency and no inotify: every ``interval`` seconds it
takes a fingerprint of the rule files and term lists (name, size, modification time, and a
sha256 of the content, so an edit within the same second of the same size is still seen)
and calls back when it differs from the last one and has stayed the same for ``SETTLE``
seconds, so a file caught half-written (truncated, say, which would be a valid file with
no rules) is not loaded. A reload that still sees a broken file is refused as a whole.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Awaitable, Callable
from pathlib import Path

import structlog

from mastwatch.rules.schema import LISTS_DIRECTORY, RULE_FILE_SUFFIXES

__all__ = ["DEFAULT_INTERVAL", "fingerprint", "watch_rules"]

log = structlog.get_logger(__name__)
DEFAULT_INTERVAL = 2.0  # seconds between two looks at the rules directory
SETTLE = 0.5  # seconds a changed directory must stay unchanged before it is reloaded

Fingerprint = tuple[tuple[str, int, int, str], ...]


def _files(directory: Path) -> list[Path]:
    found: list[Path] = []
    for folder in (directory, directory / LISTS_DIRECTORY):
        if folder.is_dir():
            found += [p for p in folder.iterdir() if p.suffix in RULE_FILE_SUFFIXES]
    return sorted(found)


def fingerprint(directory: Path) -> Fingerprint:
    """What the rule files in ``directory`` (and ``lists/``) look like now."""
    out = []
    for path in _files(directory):
        try:
            stat = path.stat()
            digest = hashlib.sha256(path.read_bytes()).hexdigest()
        except OSError:  # removed or unreadable between listing and reading: a change too
            continue
        out.append((str(path), stat.st_size, stat.st_mtime_ns, digest))
    return tuple(out)


async def watch_rules(
    directory: Callable[[], Path],
    on_change: Callable[[], Awaitable[object]],
    interval: Callable[[], float] = lambda: DEFAULT_INTERVAL,
) -> None:
    """Call ``on_change`` whenever the rule files in ``directory()`` change; runs until
    cancelled. ``directory`` and ``interval`` are asked each time, so a reload that moves
    the directory or changes the interval is followed."""
    watched = directory()
    last = await asyncio.to_thread(fingerprint, watched)
    while True:
        await asyncio.sleep(interval())
        current_dir = directory()
        current = await asyncio.to_thread(fingerprint, current_dir)
        if current_dir != watched:
            watched, last = current_dir, current
            continue
        if current == last:
            continue
        await asyncio.sleep(SETTLE)
        settled = await asyncio.to_thread(fingerprint, current_dir)
        if settled != current:  # still being written: look again next round
            continue
        last = current
        log.info("rules_changed", directory=str(watched))
        await on_change()
