"""`[store]`: SQLite path by default, or PostgreSQL by url/url_env/url_file; `[ha]`."""

from __future__ import annotations

from pathlib import Path

import pytest

from mastwatch.config import load_config, store_url
from mastwatch.errors import ConfigError
from mastwatch.log import _add_identity, set_replica
from mastwatch.replica import replica_id
from mastwatch.store.factory import make_store
from mastwatch.store.postgres import PostgresStore
from mastwatch.store.sqlite import SQLiteStore

URL = "postgresql://mastwatch:pw@db.internal:5432/alerts"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(text, encoding="utf-8")
    return path


def problems_of(path: Path) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    return caught.value.problems


def test_sqlite_is_the_default(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, ""))
    assert not config.store.is_postgres
    assert store_url(config, {}) is None
    store = make_store(config, {})
    assert isinstance(store, SQLiteStore)
    assert store.describe() == f"sqlite {tmp_path / 'var' / 'mastwatch.db'}"


def test_url_inline_selects_postgresql(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, f'[store]\nurl = "{URL}"\n'))
    store = make_store(config, {})
    assert isinstance(store, PostgresStore)
    assert store.describe() == "postgresql db.internal:5432/alerts"  # no user, no password


def test_url_from_env_and_file(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, '[store]\nurl_env = "DB_URL"\n'))
    assert store_url(config, {"DB_URL": URL}) == URL
    with pytest.raises(ConfigError) as caught:
        store_url(config, {})
    assert caught.value.problems == ["store.url_env: environment variable DB_URL is not set"]
    (tmp_path / "db-url").write_text(URL + "\n", encoding="utf-8")
    config = load_config(write(tmp_path, '[store]\nurl_file = "db-url"\n'))
    assert store_url(config, {}) == URL


@pytest.mark.parametrize(
    "store",
    [
        f'path = "x.db"\nurl = "{URL}"',
        'url_env = "A"\nurl_file = "b"',
    ],
)
def test_exactly_one_backend(tmp_path: Path, store: str) -> None:
    [problem] = problems_of(write(tmp_path, f"[store]\n{store}\n"))
    assert "config.toml: store: set exactly one of path, url, url_env, url_file" in problem
    assert ":pw@" not in problem  # the URL (it may hold a password) is not echoed


def test_url_must_be_postgresql(tmp_path: Path) -> None:
    [problem] = problems_of(write(tmp_path, '[store]\nurl = "mysql://db/x"\n'))
    assert "expected a postgresql:// URL" in problem


def test_replica_id_from_config_env_or_made_up(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, ""))
    made_up = replica_id(config, {})
    host_part, pid, random_part = made_up.rsplit("-", 2)
    assert host_part and pid.isdigit() and len(random_part) == 6
    assert replica_id(config, {}) != made_up  # the random part tells restarts apart
    assert replica_id(config, {"MASTWATCH_REPLICA_ID": "desk-a"}) == "desk-a"
    named = load_config(write(tmp_path, '[ha]\nreplica_id = "desk-b"\n'))
    assert replica_id(named, {"MASTWATCH_REPLICA_ID": "desk-a"}) == "desk-b"


def test_replica_is_in_every_log_event() -> None:
    set_replica("desk-a")
    assert _add_identity(None, "info", {"event": "x"}) == {"event": "x", "replica": "desk-a"}
