"""config.toml → frozen models: every problem at once, durations, paths, secrets."""

from __future__ import annotations

import re
import typing
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import BaseModel, ValidationError

from mastwatch.config import (
    Config,
    Secrets,
    load_config,
    resolve_secrets,
)
from mastwatch.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "config.example.toml"

MINIMAL_SOURCE = """
[[sources]]
id = "wire"
url = "https://example.org/feed.xml"
"""


def write(tmp_path: Path, text: str, name: str = "config.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def problems_of(path: Path) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    return caught.value.problems


# --- the shipped example -------------------------------------------------------------------


def test_example_config_loads_without_problems() -> None:
    config = load_config(EXAMPLE)

    enabled = [s for s in config.sources if s.enabled]
    assert [s.id for s in enabled] == [
        "wire-en",
        "ministry-ja",
        "markets",
        "desk-json",
        "ministry-page",
    ]
    # the real sources are listed for the operator to switch on, and are off offline
    assert len(config.sources) > len(enabled) + 10
    assert config.tier_names == ("critical", "high", "normal", "digest")
    assert config.base_dir == REPO
    assert config.resolve(config.rules.dir) == REPO / "rules"
    for source in enabled:
        url = config.source_url(source)
        assert url.startswith("file:///")
        assert Path(url.removeprefix("file://")).is_file(), url


def test_example_config_needs_no_secret_to_load() -> None:
    secrets = resolve_secrets(load_config(EXAMPLE), environ={})

    assert secrets.values() == []


def _models_in(annotation: object) -> Iterator[type[BaseModel]]:
    """The pydantic models an annotation mentions (in unions, tuples, dict values)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        yield annotation
    for argument in typing.get_args(annotation):
        yield from _models_in(argument)


def _model_keys(model: type[BaseModel], seen: set[type[BaseModel]]) -> Iterator[tuple[str, str]]:
    """(model name, key) for every key a config file may set, walking nested models."""
    seen.add(model)
    for name, field in model.model_fields.items():
        if model is Config and name == "base_dir":
            continue  # set by load_config from the file's location, never by the file
        yield model.__name__, field.alias or name  # `continue` in the file, continue_ here
        for nested in _models_in(field.annotation):
            if nested not in seen:
                yield from _model_keys(nested, seen)


def test_walker_finds_nested_models() -> None:
    keys = set(_model_keys(Config, set()))

    assert ("SourceConfig", "interval") in keys  # through tuple[SourceConfig, ...]
    assert ("TierConfig", "console") in keys  # through dict[str, TierConfig]
    assert ("SlackConfig", "webhook_url_file") in keys
    assert ("Config", "base_dir") not in keys


def test_every_config_key_is_documented_in_the_example() -> None:
    """Each key appears as `key = …` (set or commented out), `[key]`, or `key: …` in a comment."""
    text = EXAMPLE.read_text(encoding="utf-8")
    missing = [
        f"{model}.{key}"
        for model, key in _model_keys(Config, set())
        if not re.search(rf"(^|[\s#\[.]){re.escape(key)}(\s*[=:]|\]|\.)", text, re.MULTILINE)
    ]

    assert missing == []


# --- every problem at once, with file and key path -----------------------------------------


def test_all_problems_are_reported_together_with_file_and_key(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
[schedule]
defualt_interval = "5m"
max_backoff = "soon"

[http]
per_host_concurrency = 0

[tiers.high]
slak = ["#alerts"]

[[sources]]
id = "wire"
url = "https://example.org/a.xml"
intervall = "1m"

[[sources]]
id = "Bad Id"
url = "ftp://example.org/b.xml"

[[sources]]
id = "wire"

[stroe]
path = "x.db"
""",
    )

    problems = problems_of(path)

    expected = [
        "schedule.defualt_interval: unknown key; did you mean 'default_interval'?",
        "schedule.max_backoff: expected a duration such as 30s, 5m or 2h, got 'soon'",
        "http.per_host_concurrency:",
        "tiers.high.slak: unknown key; did you mean 'slack'?",
        "sources[0].intervall: unknown key; did you mean 'interval'?",
        "sources[1].id:",
        "sources[1].url: expected an http, https or file URL, got 'ftp://example.org/b.xml'",
        "sources[2].url: required key is missing",
        "stroe: unknown key; did you mean 'store'?",
        "sources: id 'wire' is used by 2 sources",
    ]
    for fragment in expected:
        assert any(p.startswith(f"{path}: {fragment}") for p in problems), (fragment, problems)
    assert len(problems) == len(expected)


def test_duplicate_source_ids_are_a_problem_on_their_own(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL_SOURCE * 3)

    assert problems_of(path) == [f"{path}: sources: id 'wire' is used by 3 sources"]


def test_page_selectors_that_do_not_parse_are_refused_at_load(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
[[sources]]
id = "meti"
kind = "page"
url = "https://www.meti.go.jp/press/index.html"
[sources.page]
item = "ul >> li"
title = "a"
link = "a"
date = "span:nth-child("
""",
    )

    assert problems_of(path) == [
        f"{path}: sources[0].page.item: not a CSS selector lexbor can parse: 'ul >> li'",
        f"{path}: sources[0].page.date: not a CSS selector lexbor can parse: 'span:nth-child('",
    ]


def test_cross_checks_name_the_key(tmp_path: Path) -> None:
    path = write(tmp_path, '[slack]\nmention_tiers = ["critical", "urgent"]\n')

    assert problems_of(path) == [f"{path}: slack.mention_tiers: unknown tier 'urgent'"]


def test_base_dir_is_not_a_file_key(tmp_path: Path) -> None:
    path = write(tmp_path, 'base_dir = "/elsewhere"\n')

    assert problems_of(path) == [f"{path}: base_dir: unknown key"]


def test_invalid_toml_names_the_file_and_line(tmp_path: Path) -> None:
    path = write(tmp_path, '[store]\npath = "a.db"\n\n[http]\nconnect_timeout = \n')

    (problem,) = problems_of(path)

    assert problem.startswith(f"{path}: invalid TOML:")
    assert "line 5" in problem


def test_unreadable_and_non_utf8_files_are_named(tmp_path: Path) -> None:
    missing = tmp_path / "nope.toml"
    latin1 = tmp_path / "latin1.toml"
    latin1.write_bytes(b'[email]\nsender = "caf\xe9@example.org"\n')

    (not_found,) = problems_of(missing)
    (not_utf8,) = problems_of(latin1)

    assert not_found.startswith(f"{missing}: cannot read:")
    assert not_utf8.startswith(f"{latin1}: not UTF-8 text:")


# --- values -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("written", "seconds"),
    [
        ('"30s"', 30.0),
        ('"5m"', 300.0),
        ('"2h"', 7200.0),
        ('"1d"', 86400.0),
        ('"250ms"', 0.25),
        ('"1.5h"', 5400.0),
        ('" 90 "', 90.0),
        ("45", 45.0),
        ("2.5", 2.5),
    ],
)
def test_durations(tmp_path: Path, written: str, seconds: float) -> None:
    config = load_config(write(tmp_path, f"[schedule]\ndefault_interval = {written}\n"))

    assert config.schedule.default_interval == seconds


@pytest.mark.parametrize("written", ['"soon"', '"5 minutes"', '"5w"', '"-5m"', "0", "-3", "true"])
def test_invalid_durations_are_reported_with_key(tmp_path: Path, written: str) -> None:
    path = write(tmp_path, f"[delivery]\nlease = {written}\n")

    (problem,) = problems_of(path)

    assert problem.startswith(f"{path}: delivery.lease: ")


def test_source_defaults_come_from_the_schedule(tmp_path: Path) -> None:
    config = load_config(
        write(
            tmp_path,
            '[schedule]\ndefault_interval = "2m"\nbaseline_new_sources = false\n'
            + MINIMAL_SOURCE
            + '\n[[sources]]\nid = "own"\nurl = "https://example.org/b"\n'
            'interval = "10s"\nbaseline = true\n',
        )
    )
    inherited, own = config.sources

    assert (config.interval_of(inherited), config.baseline_of(inherited)) == (120.0, False)
    assert (config.interval_of(own), config.baseline_of(own)) == (10.0, True)
    assert inherited.display_name == "wire"


def test_models_are_frozen(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, MINIMAL_SOURCE))

    with pytest.raises(ValidationError):
        config.http.max_redirects = 50  # type: ignore[misc]
    with pytest.raises(ValidationError):
        config.sources[0].url = "https://evil.example/"  # type: ignore[misc]
    assert isinstance(config.sources, tuple)


# --- paths resolve against the config file's directory -----------------------------------


def test_relative_paths_resolve_against_the_config_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    conf_dir = tmp_path / "etc"
    conf_dir.mkdir()
    path = write(
        conf_dir,
        '[store]\npath = "state/m.db"\n[rules]\ndir = "/srv/rules"\n'
        '[[sources]]\nid = "local"\nurl = "file:feeds/a.xml"\n'
        '[[sources]]\nid = "absolute"\nurl = "file:///data/b.xml"\n'
        '[[sources]]\nid = "remote"\nurl = "https://example.org/c.xml"\n',
    )
    monkeypatch.chdir(tmp_path)  # somewhere else: the working directory must not matter

    config = load_config(path.relative_to(tmp_path))
    local, absolute, remote = config.sources

    assert config.resolve(config.store.path) == conf_dir / "state" / "m.db"
    assert config.resolve(config.rules.dir) == Path("/srv/rules")
    assert config.source_url(local) == (conf_dir / "feeds" / "a.xml").as_uri()
    assert config.source_url(absolute) == "file:///data/b.xml"
    assert config.source_url(remote) == "https://example.org/c.xml"


# --- secrets ----------------------------------------------------------------------------------


def test_secrets_come_from_the_given_environment_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MASTWATCH_SLACK_TOKEN", "xoxb-from-the-real-environment")
    config = load_config(
        write(tmp_path, '[email]\nusername_env = "SMTP_USER"\npassword_env = "SMTP_PASS"\n')
    )

    secrets = resolve_secrets(
        config,
        environ={"SMTP_USER": "desk", "SMTP_PASS": "pw-1234", "MASTWATCH_SLACK_WEBHOOK_URL": ""},
    )

    assert secrets == Secrets(smtp_username="desk", smtp_password="pw-1234")


def test_secret_files_resolve_against_the_config_and_win_over_env(tmp_path: Path) -> None:
    (tmp_path / "creds").mkdir()
    (tmp_path / "creds" / "slack").write_text("xoxb-from-file\n", encoding="utf-8")
    (tmp_path / "smtp-password").write_text("smtp-from-file", encoding="utf-8")
    config = load_config(
        write(
            tmp_path,
            '[slack]\ntoken_file = "${CREDENTIALS_DIRECTORY}/slack"\n'
            '[email]\npassword_file = "smtp-password"\n',
        )
    )

    secrets = resolve_secrets(
        config,
        environ={
            "CREDENTIALS_DIRECTORY": str(tmp_path / "creds"),
            "MASTWATCH_SLACK_TOKEN": "xoxb-from-env",
            "MASTWATCH_SMTP_PASSWORD": "smtp-from-env",
        },
    )

    assert secrets.slack_token == "xoxb-from-file"
    assert secrets.smtp_password == "smtp-from-file"


def test_every_unreadable_secret_file_is_named(tmp_path: Path) -> None:
    config = load_config(
        write(
            tmp_path,
            '[slack]\ntoken_file = "missing-token"\n[email]\npassword_file = "/no/such/pw"\n',
        )
    )

    with pytest.raises(ConfigError) as caught:
        resolve_secrets(config, environ={"MASTWATCH_SLACK_TOKEN": "xoxb-unused"})

    assert caught.value.problems == [
        f"secret file {tmp_path / 'missing-token'}: cannot read: No such file or directory",
        "secret file /no/such/pw: cannot read: No such file or directory",
    ]


def test_secrets_repr_never_shows_a_value() -> None:
    secrets = Secrets(slack_token="xoxb-very-secret", smtp_password="hunter2-pw")

    for shown in (repr(secrets), str(secrets), f"{secrets}", repr([secrets])):
        assert "xoxb-very-secret" not in shown
        assert "hunter2-pw" not in shown
    assert "slack_token" in repr(secrets)
    assert sorted(secrets.values()) == ["hunter2-pw", "xoxb-very-secret"]
