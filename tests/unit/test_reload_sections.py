"""A reload applies what it can and keeps the running values of start-up-only sections."""

from __future__ import annotations

from pathlib import Path

from structlog.testing import capture_logs

from mastwatch.app import keep_restart_only
from mastwatch.config import Config, load_config

SOURCE = """
[[sources]]
id = "{id}"
url = "https://example.org/{id}.xml"
"""


def _config(tmp_path: Path, name: str, text: str) -> Config:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return load_config(path)


def test_web_and_store_changes_wait_for_a_restart_and_say_so(tmp_path: Path) -> None:
    running = _config(tmp_path, "a.toml", "[web]\nport = 9470\n" + SOURCE.format(id="wire"))
    edited = _config(
        tmp_path,
        "b.toml",
        '[web]\nport = 9999\n[store]\npath = "other.db"\n' + SOURCE.format(id="mof"),
    )

    with capture_logs() as logs:
        applied = keep_restart_only(edited, running)

    assert applied.web == running.web
    assert applied.store == running.store
    assert [s.id for s in applied.sources] == ["mof"]  # the rest of the reload applies
    (warning,) = [e for e in logs if e["event"] == "reload_restart_needed"]
    assert warning["sections"] == ["store", "web"]
    assert warning["log_level"] == "warning"


def test_an_unchanged_config_comes_back_as_it_is(tmp_path: Path) -> None:
    running = _config(tmp_path, "a.toml", SOURCE.format(id="wire"))
    edited = _config(tmp_path, "b.toml", SOURCE.format(id="mof"))

    with capture_logs() as logs:
        assert keep_restart_only(edited, running) is edited
    assert logs == []
