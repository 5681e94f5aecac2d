"""docs/alerting.md cannot drift: every TOML example of the alert policy sections loads as a
config, and the `mastwatch routes test` sessions shown print exactly what the page says."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from mastwatch.cli import main
from mastwatch.config import load_config

DOC = Path(__file__).resolve().parents[2] / "docs" / "alerting.md"
TEXT = DOC.read_text(encoding="utf-8")
# the sections this test covers (P1's); the digest/silence/notice sections have their own
POLICY = TEXT[TEXT.index("## Stories") : TEXT.index("## Digests")]
FENCE = re.compile(r"^```(\w*)\n(.*?)^```$", re.MULTILINE | re.DOTALL)
BLOCKS = FENCE.findall(POLICY)
TOML = [body for lang, body in BLOCKS if lang == "toml"]
CONSOLE = [body for lang, body in BLOCKS if lang == "console"]


def _write(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "alerting.toml"
    path.write_text(body, encoding="utf-8")
    return path


def test_the_page_has_examples() -> None:
    assert len(TOML) >= 5
    assert CONSOLE


@pytest.mark.parametrize("example", TOML, ids=[b.split("\n", 1)[0] for b in TOML])
def test_toml_example_loads(tmp_path: Path, example: str) -> None:
    config = load_config(_write(tmp_path, example))
    assert config.model_dump(exclude={"base_dir"}) != {}


def _sessions(console: str) -> list[tuple[list[str], str]]:
    """(argv after `mastwatch`, expected output) for each `$ mastwatch …` line."""
    sessions: list[tuple[list[str], str]] = []
    for chunk in re.split(r"^\$ ", console, flags=re.MULTILINE)[1:]:
        command, _, output = chunk.partition("\n")
        argv = shlex.split(command)
        assert argv[0] == "mastwatch"
        sessions.append((argv[1:], output))
    return sessions


ROUTING = next(body for body in TOML if "[routes]" in body and "test" not in body)
SESSIONS = [s for console in CONSOLE for s in _sessions(console)]


@pytest.mark.parametrize(("argv", "expected"), SESSIONS, ids=[" ".join(a) for a, _ in SESSIONS])
def test_routes_test_prints_what_the_page_shows(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], expected: str
) -> None:
    config = _write(tmp_path, ROUTING)
    argv = [str(config) if arg == "alerting.toml" else arg for arg in argv]

    assert main(argv) == 0
    assert capsys.readouterr().out == expected
