"""Helpers for the reliability suite: run the daemon once, read back what it stored."""

from __future__ import annotations

import contextlib
import resource
import sqlite3
from pathlib import Path

from daemon_fixtures import Servers
from daemon_process import DaemonProcess

__all__ = ["DaemonProcess", "integrity_check", "max_rss_mib", "outbox_counts", "slack_texts"]


def max_rss_mib() -> float:
    """The process's peak resident set so far, in MiB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def slack_texts(servers: Servers) -> list[str]:
    return [m.text or "" for m in servers.slack.messages]


def outbox_counts(db: Path) -> dict[str, int]:
    """Deliveries per state, read straight from the SQLite file (the daemon may run)."""
    with contextlib.closing(sqlite3.connect(db, timeout=5)) as conn:
        rows = conn.execute("SELECT state, count(*) FROM deliveries GROUP BY state").fetchall()
    return {str(state): int(count) for state, count in rows}


def integrity_check(db: Path) -> str:
    with contextlib.closing(sqlite3.connect(db, timeout=5)) as conn:
        return str(conn.execute("PRAGMA integrity_check").fetchone()[0])
