"""The rules-directory watcher: fingerprints and the change callback."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

from mastwatch.rules.watch import fingerprint, watch_rules


def test_fingerprint_sees_edits_new_files_and_lists_but_not_other_files(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text("id: a\n")
    before = fingerprint(tmp_path)
    (tmp_path / "notes.txt").write_text("not a rule file")
    assert fingerprint(tmp_path) == before
    (tmp_path / "a.yaml").write_text("id: b\n")  # same size, maybe the same mtime
    edited = fingerprint(tmp_path)
    assert edited != before
    (tmp_path / "lists").mkdir()
    (tmp_path / "lists" / "words.yaml").write_text("w: [x]\n")
    assert fingerprint(tmp_path) != edited
    assert [Path(entry[0]).name for entry in fingerprint(tmp_path)] == ["a.yaml", "words.yaml"]


async def test_watch_calls_back_once_per_settled_change(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text("id: a\n")
    changes: list[int] = []

    async def on_change() -> None:
        changes.append(len(changes))

    task = asyncio.create_task(watch_rules(lambda: tmp_path, on_change, interval=lambda: 0.05))
    try:
        await asyncio.sleep(0.2)
        assert changes == []  # nothing changed yet
        (tmp_path / "b.yaml").write_text("id: b\n")
        async with asyncio.timeout(10):
            while not changes:
                await asyncio.sleep(0.05)
        await asyncio.sleep(0.8)  # longer than the settle time: no second call
        assert changes == [0]
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
