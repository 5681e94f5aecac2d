"""The mastwatch command line, run as a real subprocess: check, dry-run, inspect, --version."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

import mastwatch
from mastwatch.model import DEFAULT_TIERS
from mastwatch.rules import load_rules, match
from mastwatch.sources.feed import parse_feed
from mastwatch.testing.feeds import FeedServer, rss
from mastwatch.testing.slack import LocalSlackServer
from mastwatch.testing.smtp import LocalSMTPServer
from mastwatch.text import make_document, normalize

REPO = Path(__file__).resolve().parents[2]
EXAMPLE_CONFIG = REPO / "config.example.toml"
SHIPPED_RULES = REPO / "rules"
WIRE_EN = REPO / "examples" / "feeds" / "wire-en.xml"
MINISTRY_JA = REPO / "examples" / "feeds" / "ministry-ja.rdf"
MATCH_KEYS = {"rule", "tier", "guid", "title", "link", "source", "matched"}
TIMEOUT = 30

TEST_RULES = """\
- id: trade
  title: Tariffs
  tier: high
  match:
    all:
      - any: [tariff, 関税]
      - none: [feed-in tariff]
  tests:
    - title: "US raises tariffs on cars"
      expect: match
- id: bonds
  title: Treasuries
  tier: normal
  match:
    any: [treasury yield, 米国債]
"""


def _entry_point() -> str:
    beside = Path(sys.executable).parent / "mastwatch"
    found = str(beside) if beside.exists() else shutil.which("mastwatch")
    assert found, "the mastwatch entry point is not installed (pip install -e .)"
    return found


MASTWATCH = _entry_point()


@dataclass
class Result:
    code: int
    out: str
    err: str

    def jsonl(self) -> list[dict[str, object]]:
        return [json.loads(line) for line in self.out.splitlines()]


def cli(*args: str | Path, cwd: Path, env: dict[str, str] | None = None) -> Result:
    done = subprocess.run(
        [MASTWATCH, *map(str, args)],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        env=env,
        check=False,
    )
    return Result(done.returncode, done.stdout, done.stderr)


async def cli_async(*args: str | Path, cwd: Path, env: dict[str, str] | None = None) -> Result:
    """The CLI as a subprocess that does not block the loop (which serves its requests)."""
    proc = await asyncio.create_subprocess_exec(
        MASTWATCH,
        *map(str, args),
        cwd=cwd,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), TIMEOUT)
    assert proc.returncode is not None
    return Result(proc.returncode, out.decode(), err.decode())


def write_rules(directory: Path, text: str = TEST_RULES) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "topics.yaml").write_text(text, encoding="utf-8")
    return directory


def expected_matches(rules_dir: Path, feed: Path) -> set[tuple[str | None, str]]:
    """(guid, rule id) pairs the library finds, to hold the CLI's output against."""
    ruleset = load_rules(rules_dir, DEFAULT_TIERS)
    items = parse_feed(feed.read_bytes(), source_id=feed.stem).items
    return {(item.guid, m.rule_id) for item in items for m in match(ruleset, make_document(item))}


def files_under(directory: Path) -> list[Path]:
    return sorted(directory.rglob("*"))


# --- --version and check ----------------------------------------------------------------------


def test_version(tmp_path: Path) -> None:
    result = cli("--version", cwd=tmp_path)

    assert result.code == 0
    assert result.out.strip() == f"mastwatch {mastwatch.__version__}"


def test_check_example_config_is_ok(tmp_path: Path) -> None:
    result = cli("check", "--config", EXAMPLE_CONFIG, cwd=tmp_path)

    assert (result.code, result.err) == (0, "")
    assert result.out.startswith(f"ok: {len(load_rules(SHIPPED_RULES, DEFAULT_TIERS))} rules")
    assert files_under(tmp_path) == []  # checking creates no database


def test_check_rules_dir_alone(tmp_path: Path) -> None:
    result = cli("check", "--rules", SHIPPED_RULES, cwd=tmp_path)

    assert result.code == 0
    assert result.out.startswith("ok: ")


def test_check_needs_config_or_rules(tmp_path: Path) -> None:
    result = cli("check", cwd=tmp_path)

    assert result.code == 2
    assert "--config" in result.err


def _broken_copy(tmp_path: Path) -> Path:
    """The example config and shipped rules, copied and broken in several ways at once."""
    shutil.copytree(SHIPPED_RULES, tmp_path / "rules")
    shutil.copytree(REPO / "examples", tmp_path / "examples")
    text = EXAMPLE_CONFIG.read_text(encoding="utf-8")
    text = text.replace('default_interval = "5m"', 'default_intervl = "5m"')
    text = text.replace('max_backoff = "3h"', 'max_backoff = "a while"')
    text += '\n[[sources]]\nid = "markets"\nurl = "https://example.org/again.xml"\n'
    config = tmp_path / "broken.toml"
    config.write_text(text, encoding="utf-8")
    (tmp_path / "rules" / "bad.yaml").write_text(
        "id: bad\ntitle: Bad rule\ntier: urgent\nmatch:\n  anyy: [x]\n", encoding="utf-8"
    )
    with (tmp_path / "rules" / "g7.yaml").open("a", encoding="utf-8") as g7:
        g7.write('  - title: "Weather is fine today"\n    expect: match\n')
    return config


def test_check_broken_copy_lists_every_problem(tmp_path: Path) -> None:
    config = _broken_copy(tmp_path)

    result = cli("check", "--config", config, cwd=tmp_path)

    assert result.code == 1
    assert "ok" not in result.out
    expected = [
        f"{config}: schedule.default_intervl: unknown key; did you mean 'default_interval'?",
        f"{config}: schedule.max_backoff: expected a duration",
        f"{config}: sources: id 'markets' is used by 2 sources",
        f"{tmp_path}/rules/bad.yaml:3:7: rule 'bad': unknown tier 'urgent'",
        f"{tmp_path}/rules/bad.yaml:5:3: rule 'bad': unknown key 'anyy' in match tree;"
        " did you mean 'any'?",
        f"{tmp_path}/rules/g7.yaml:",  # the failing inline test, found despite bad.yaml
    ]
    lines = result.err.splitlines()
    assert lines[0] == f"problems found ({len(expected)}):"
    for fragment in expected:
        assert any(line.strip().startswith(fragment) for line in lines[1:]), (fragment, lines)
    assert "expected match, got no-match" in result.err


def test_check_reports_unreadable_secret_file_and_still_checks_rules(tmp_path: Path) -> None:
    rules = write_rules(tmp_path / "rules", TEST_RULES.replace("expect: match", "expect: no-match"))
    config = tmp_path / "c.toml"
    config.write_text('[rules]\ndir = "rules"\n[slack]\ntoken_file = "no-token"\n', "utf-8")

    result = cli("check", "--config", config, cwd=tmp_path)

    assert result.code == 1
    assert f"secret file {tmp_path / 'no-token'}: cannot read" in result.err
    assert f"{rules / 'topics.yaml'}:9: rule 'trade' test 1: expected no-match" in result.err


def test_check_invalid_toml_names_file_and_line(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text('[store]\npath = "x.db"\n[rules\n', encoding="utf-8")

    result = cli("check", "--config", config, cwd=tmp_path)

    assert result.code == 1
    assert f"{config}: invalid TOML:" in result.err
    assert "line 3" in result.err


def test_check_missing_config_is_named(tmp_path: Path) -> None:
    result = cli("check", "--config", tmp_path / "nope.toml", cwd=tmp_path)

    assert result.code == 1
    assert f"{tmp_path / 'nope.toml'}: cannot read" in result.err


# --- dry-run ----------------------------------------------------------------------------------


def test_dry_run_prints_matches_of_the_shipped_rules(tmp_path: Path) -> None:
    result = cli("dry-run", "--rules", SHIPPED_RULES, WIRE_EN, cwd=tmp_path)

    assert (result.code, result.err) == (0, "")
    expected = expected_matches(SHIPPED_RULES, WIRE_EN)
    headlines = [line for line in result.out.splitlines() if line.startswith("[")]
    assert len(headlines) == len(expected) > 0
    assert any(line.startswith("[high] tariffs: US to raise tariffs") for line in headlines)
    assert result.out.count("    matched: ") == len(expected)
    assert files_under(tmp_path) == []


def test_dry_run_jsonl_is_one_object_per_item_and_rule(tmp_path: Path) -> None:
    result = cli(
        "dry-run", "--rules", SHIPPED_RULES, "--format", "jsonl", WIRE_EN, MINISTRY_JA, cwd=tmp_path
    )

    assert result.code == 0
    records = result.jsonl()
    assert all(record.keys() >= MATCH_KEYS for record in records)
    by_source = {
        source: {(r["guid"], r["rule"]) for r in records if r["source"] == source}
        for source in ("wire-en", "ministry-ja")
    }
    assert by_source["wire-en"] == expected_matches(SHIPPED_RULES, WIRE_EN)
    assert by_source["ministry-ja"] == expected_matches(SHIPPED_RULES, MINISTRY_JA)
    assert len(records) == sum(len(pairs) for pairs in by_source.values())
    tariffs = next(
        r for r in records if r["guid"] == "wire-2026-0310-001" and r["rule"] == "tariffs"
    )
    assert (tariffs["rule"], tariffs["tier"]) == ("tariffs", "high")
    assert tariffs["link"] == "https://wire.example.com/policy/2026/03/10/auto-tariffs"
    assert isinstance(tariffs["matched"], list)
    assert tariffs["matched"]
    assert files_under(tmp_path) == []


async def test_dry_run_with_a_live_config_sends_and_stores_nothing(tmp_path: Path) -> None:
    work = tmp_path / "work"
    work.mkdir()
    async with LocalSlackServer() as slack, LocalSMTPServer() as smtp:
        config = tmp_path / "live.toml"
        config.write_text(
            f'[store]\npath = "{tmp_path}/state/mastwatch.db"\n'
            f'[rules]\ndir = "{write_rules(tmp_path / "rules")}"\n'
            f'[slack]\nbase_url = "{slack.base_url}"\nmention_tiers = []\n'
            f'[email]\nhost = "127.0.0.1"\nport = {smtp.port}\ntls = "none"\n'
            '[tiers.high]\nslack = ["#alerts"]\nemail = ["desk@example.com"]\n'
            '[tiers.normal]\nslack = ["#news"]\n'
            f'[[sources]]\nid = "wire-en"\nurl = "{WIRE_EN.as_uri()}"\n',
            encoding="utf-8",
        )
        env = {**os.environ, "MASTWATCH_SLACK_TOKEN": "xoxb-test-token"}

        result = await cli_async(
            "dry-run", "--config", config, "--format", "jsonl", WIRE_EN, cwd=work, env=env
        )

        assert result.code == 0
        assert {(r["guid"], r["rule"]) for r in result.jsonl()} == {
            ("wire-2026-0310-001", "trade"),
            ("wire-2026-0310-002", "bonds"),
        }
        assert slack.attempts == []
        assert smtp.messages == []
    assert not (tmp_path / "state").exists()
    assert files_under(work) == []


async def test_dry_run_reads_a_url(tmp_path: Path) -> None:
    rules = write_rules(tmp_path / "rules")
    feed = rss(
        [
            {"title": "Japan weighs retaliatory tariff", "link": "https://ex.org/1", "guid": "a"},
            {"title": "Rainy season starts early", "link": "https://ex.org/2", "guid": "b"},
            {"title": "米国債の保有残高が増加", "link": "https://ex.org/3", "guid": "c"},
        ]
    )
    async with FeedServer() as server:
        server.add_feed("/news.xml", feed)

        result = await cli_async(
            "dry-run", "--rules", rules, "--format", "jsonl", server.url("/news.xml"), cwd=tmp_path
        )

        assert [method for method, _ in server.requests("/news.xml")] == ["GET"]
    assert result.code == 0
    host = server.url("").removeprefix("http://")
    assert result.jsonl() == [
        {
            "rule": "trade",
            "tier": "high",
            "guid": "a",
            "key": "guid:a",
            "title": "Japan weighs retaliatory tariff",
            "link": "https://ex.org/1",
            "source": host,
            "published": None,
            "matched": ["tariff"],
            "evidence": [
                {"term": "tariff", "field": "title", "start": 25, "end": 31, "text": "tariff"}
            ],
        },
        {
            "rule": "bonds",
            "tier": "normal",
            "guid": "c",
            "key": "guid:c",
            "title": "米国債の保有残高が増加",
            "link": "https://ex.org/3",
            "source": host,
            "published": None,
            "matched": ["米国債"],
            "evidence": [
                {"term": "米国債", "field": "title", "start": 0, "end": 3, "text": "米国債"}
            ],
        },
    ]


def test_dry_run_reports_a_missing_file_and_goes_on(tmp_path: Path) -> None:
    missing = tmp_path / "gone.xml"
    not_a_feed = tmp_path / "notes.txt"
    not_a_feed.write_text("just some words about tariffs", encoding="utf-8")

    result = cli(
        "dry-run", "--rules", write_rules(tmp_path / "rules"), missing, not_a_feed, WIRE_EN,
        cwd=tmp_path,
    )  # fmt: skip

    assert result.code == 1
    assert f"{missing}: cannot read: No such file or directory" in result.err
    assert "'notes'" in result.err  # the input that is not a feed is named too
    assert "[high] trade: US to raise tariffs on imported passenger cars" in result.out


def test_dry_run_with_broken_rules_says_so(tmp_path: Path) -> None:
    rules = write_rules(tmp_path / "rules", "id: x\ntitle: X\ntier: high\nmatch: {any: []}\n")

    result = cli("dry-run", "--rules", rules, WIRE_EN, cwd=tmp_path)

    assert result.code == 1
    assert result.out == ""
    assert "cannot load rules (1):" in result.err
    assert f"{rules / 'topics.yaml'}:4:" in result.err


# --- inspect ----------------------------------------------------------------------------------


def test_inspect_prints_one_line_per_item_with_key_and_normalised_text(tmp_path: Path) -> None:
    items = parse_feed(MINISTRY_JA.read_bytes(), source_id="ministry-ja").items

    result = cli("inspect", MINISTRY_JA, cwd=tmp_path)

    assert result.code == 0
    lines = result.out.splitlines()
    assert len(lines) == len(items) > 0
    for line, item in zip(lines, items, strict=True):
        assert f" {item.key} " in line  # the whole key, not a truncated one
        assert line.endswith(normalize(item.title))
    assert "g7財務大臣" in result.out  # the feed's full-width G7 came out as g7
    assert f"{len(items)} items" in result.err


def test_inspect_jsonl(tmp_path: Path) -> None:
    items = parse_feed(WIRE_EN.read_bytes(), source_id="wire-en").items

    result = cli("inspect", "--format", "jsonl", WIRE_EN, cwd=tmp_path)

    assert result.code == 0
    records = result.jsonl()
    assert [r["key"] for r in records] == [item.key for item in items]
    first = records[0]
    assert {"key", "guid", "title", "link", "published", "tags", "text"} <= first.keys()
    doc = make_document(items[0])
    assert first["text"] == {"title": doc.title, "summary": doc.summary, "content": doc.content}
    assert "<p>" in items[0].summary
    assert "<p>" not in first["text"]["summary"]  # markup stripped, text case-folded
    assert first["text"]["summary"].startswith("the white house")


def test_inspect_missing_file(tmp_path: Path) -> None:
    result = cli("inspect", tmp_path / "gone.xml", cwd=tmp_path)

    assert result.code == 1
    assert f"{tmp_path / 'gone.xml'}: cannot read" in result.err
    assert result.out == ""


@pytest.mark.parametrize("command", ["dry-run", "inspect"])
def test_closed_output_pipe_ends_quietly(tmp_path: Path, command: str) -> None:
    big = tmp_path / "big.xml"  # far more output than a pipe buffers
    big.write_bytes(
        rss({"title": f"Tariff story {n} " + "words " * 30, "guid": f"g{n}"} for n in range(1500))
    )
    args = ["--rules", str(write_rules(tmp_path / "rules"))] if command == "dry-run" else []
    with subprocess.Popen(
        [MASTWATCH, command, *args, str(big)],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    ) as proc:
        assert proc.stdout is not None
        assert proc.stderr is not None
        assert proc.stdout.readline()
        proc.stdout.close()  # like `| head -1`
        err = proc.stderr.read().decode()
        code = proc.wait(TIMEOUT)

    assert "Traceback" not in err
    assert "BrokenPipe" not in err
    assert code == 141
