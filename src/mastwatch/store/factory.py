"""Which store a config asks for: SQLite (``store.path``, the default) or PostgreSQL
(``store.url``/``url_env``/``url_file``). app.py, cli.py and report.py build stores only
through here, so a backend is chosen in one place."""

from __future__ import annotations

from collections.abc import Mapping

from mastwatch.config import Config, store_url
from mastwatch.store.base import InspectableStore


def make_store(config: Config, environ: Mapping[str, str] | None = None) -> InspectableStore:
    """The configured store, not yet opened (``open()`` connects and migrates)."""
    url = store_url(config, environ)
    if url is not None:
        # imported here: a SQLite deployment never loads the PostgreSQL driver
        from mastwatch.store.postgres import PostgresStore  # noqa: PLC0415

        return PostgresStore(url)
    from mastwatch.store.sqlite import SQLiteStore  # noqa: PLC0415

    return SQLiteStore(config.resolve(config.store.path))


async def open_store(config: Config, environ: Mapping[str, str] | None = None) -> InspectableStore:
    """The configured store, opened: connected and migrated."""
    store = make_store(config, environ)
    await store.open()
    return store
