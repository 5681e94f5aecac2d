"""Command line: run, check, dry-run, inspect.

Exit codes: 0 all well, 1 a problem the operator must fix (each one printed with its file
and line or key path), 2 bad command-line usage, 141 the output pipe was closed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from collections.abc import Iterator, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, TextIO
from urllib.parse import urlsplit

from mastwatch import __version__
from mastwatch.errors import ConfigError, FetchError, MastwatchError, RuleError
from mastwatch.model import DEFAULT_TIERS, Item, Match

EXIT_OK, EXIT_PROBLEM = 0, 1
EXIT_BROKEN_PIPE = 128 + 13  # what a shell reports for a process killed by SIGPIPE


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mastwatch", description=__doc__)
    parser.add_argument("--version", action="version", version=f"mastwatch {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run the daemon")
    run.add_argument("--config", type=Path, required=True)
    run.add_argument("--once", action="store_true", help="poll every source once, deliver, exit")

    check = sub.add_parser("check", help="validate the config, the rules and their inline tests")
    check.add_argument("--config", type=Path)
    check.add_argument("--rules", type=Path, help="a rules directory (instead of the config's)")

    dry = sub.add_parser("dry-run", help="match rules on feeds or URLs; sends and stores nothing")
    dry.add_argument("--rules", type=Path, help="rules directory (default: the config's)")
    dry.add_argument("--config", type=Path)
    dry.add_argument("--format", choices=("text", "jsonl"), default="text")
    dry.add_argument("inputs", nargs="*", metavar="INPUT", help="a feed file or a URL")
    dry.add_argument(
        "--source", action="append", default=[], metavar="ID", help="a source of --config"
    )

    inspect = sub.add_parser("inspect", help="print the items a feed file or URL yields")
    inspect.add_argument("input", metavar="INPUT", nargs="?")
    inspect.add_argument("--format", choices=("text", "jsonl"), default="text")
    inspect.add_argument("--config", type=Path, help="with --source: the config holding it")
    inspect.add_argument("--source", metavar="ID", help="a configured source (feed or page)")
    _add_report_commands(sub)
    from mastwatch.silence_cli import add_silence_parser  # noqa: PLC0415

    add_silence_parser(sub)
    from mastwatch.policy.routes_cli import add_routes_parser  # noqa: PLC0415

    add_routes_parser(sub)
    migrate = sub.add_parser("migrate", help="apply the store's pending schema migrations")
    migrate.add_argument("--config", type=Path, required=True)
    return parser


def _add_report_commands(sub: Any) -> None:
    """status, alerts and replay: read the daemon's store, send nothing."""
    status = sub.add_parser("status", help="sources, outbox and recent alerts from the store")
    status.add_argument("--config", type=Path, required=True)

    alerts = sub.add_parser("alerts", help="the alerts raised recently and where they went")
    alerts.add_argument("--config", type=Path, required=True)
    alerts.add_argument("--since", default="24h", help="how far back: 90m, 24h, 7d (default 24h)")
    alerts.add_argument("--format", choices=("text", "jsonl"), default="text")

    replay = sub.add_parser(
        "replay", help="run a rule set over stored items: what would have alerted, per day"
    )
    replay.add_argument("--config", type=Path, required=True)
    replay.add_argument("--since", default="7d", help="how far back: 24h, 7d (default 7d)")
    replay.add_argument("--rules", type=Path, help="a candidate rules directory")
    replay.add_argument("--format", choices=("text", "jsonl"), default="text")


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    commands = {
        "run": cmd_run,
        "check": cmd_check,
        "dry-run": cmd_dry_run,
        "inspect": cmd_inspect,
        "status": cmd_report,
        "alerts": cmd_report,
        "replay": cmd_report,
        "silence": cmd_silence,
        "routes": cmd_routes,
        "migrate": cmd_migrate,
    }
    try:
        return commands[args.command](args)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # The reader went away (`mastwatch dry-run ... | head`): stop quietly, as cat does.
        # Point stdout at /dev/null so the flush at exit does not fail again.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_BROKEN_PIPE


def _print_problems(title: str, problems: Sequence[str], out: TextIO = sys.stderr) -> None:
    print(f"{title} ({len(problems)}):", file=out)
    for problem in problems:
        print(f"  {problem}", file=out)


def cmd_run(args: argparse.Namespace) -> int:
    from mastwatch.app import load_everything, run_daemon  # noqa: PLC0415 (keeps --help fast)
    from mastwatch.log import configure_logging  # noqa: PLC0415

    try:
        loaded = load_everything(args.config)
    except (ConfigError, RuleError) as exc:
        _print_problems("mastwatch cannot start", exc.problems)
        return EXIT_PROBLEM
    config = loaded[0]
    configure_logging(config.log.level, config.log.format)
    try:
        return asyncio.run(run_daemon(args.config, once=args.once, loaded=loaded))
    except MastwatchError as exc:
        _print_problems("mastwatch stopped", getattr(exc, "problems", [str(exc)]))
        return EXIT_PROBLEM


def cmd_check(args: argparse.Namespace) -> int:
    if args.config is None and args.rules is None:
        print("mastwatch check: give --config FILE or --rules DIR", file=sys.stderr)
        return 2
    problems: list[str] = []
    tiers: Sequence[str] = DEFAULT_TIERS
    rules_dir = args.rules
    if args.config is not None:
        tiers, config_rules_dir = _check_config(args.config, problems)
        rules_dir = rules_dir or config_rules_dir
    ruleset = None if rules_dir is None else _check_rules(rules_dir, tiers, problems)
    if problems or ruleset is None:
        _print_problems("problems found", problems)
        return EXIT_PROBLEM
    print(f"ok: {len(ruleset)} rules, inline tests pass, rule set {ruleset.content_hash[:12]}")
    return EXIT_OK


def _check_config(path: Path, problems: list[str]) -> tuple[Sequence[str], Path | None]:
    """Validate the config and its secrets, adding to ``problems``; return tiers and rules dir.

    When the config is invalid, the rules are still checked if its ``[rules] dir`` and
    tiers can be read, so one run lists every problem.
    """
    from mastwatch.config import load_config, resolve_secrets  # noqa: PLC0415

    try:
        config = load_config(path)
    except ConfigError as exc:
        problems += exc.problems
        return _raw_rules_settings(path)
    try:
        resolve_secrets(config)
    except ConfigError as exc:
        problems += exc.problems
    return config.tier_names, config.resolve(config.rules.dir)


def _raw_rules_settings(path: Path) -> tuple[Sequence[str], Path | None]:
    """Tiers and rules dir read straight from a config that failed validation, if usable."""
    import tomllib  # noqa: PLC0415

    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return DEFAULT_TIERS, None
    rules, tiers = raw.get("rules", {}), raw.get("tiers")
    rules_dir = rules.get("dir", "rules") if isinstance(rules, dict) else None
    if not isinstance(rules_dir, str):
        return DEFAULT_TIERS, None
    names = tuple(tiers) if isinstance(tiers, dict) and tiers else DEFAULT_TIERS
    return names, path.resolve().parent / Path(rules_dir).expanduser()


def _check_rules(rules_dir: Path, tiers: Sequence[str], problems: list[str]) -> Any:
    """Load the rules and run their inline tests, adding to ``problems``; the RuleSet or None."""
    from mastwatch.rules import load_rules, run_inline_tests  # noqa: PLC0415

    try:
        ruleset = load_rules(rules_dir, tiers)
    except RuleError as exc:
        problems += exc.problems + _inline_failures_of_valid_files(rules_dir, tiers)
        return None
    problems += run_inline_tests(ruleset)
    return ruleset


def _inline_failures_of_valid_files(rules_dir: Path, tiers: Sequence[str]) -> list[str]:
    """Inline-test failures of the files that load on their own, when others do not."""
    from mastwatch import rules  # noqa: PLC0415

    try:
        paths = rules.rule_files(rules_dir)
    except RuleError:
        return []
    failures: list[str] = []
    for path in paths:
        try:
            loaded = rules.load_rule_files([path], tiers)
        except RuleError:
            continue
        failures += rules.run_inline_tests(rules.compile_rules(loaded))
    return failures


def _source_id_of(text: str) -> str:
    parts = urlsplit(text)
    if parts.scheme in {"http", "https"}:
        return parts.netloc
    return Path(parts.path if parts.scheme == "file" else text).stem or "input"


def _items_of_input(text: str, config_path: Path | None) -> list[Item]:
    """Items of ``source:ID`` (a source of the config, feed or page) or of a feed file/URL."""
    if not text.startswith("source:"):
        return _read_items(text)
    from mastwatch.config import load_config  # noqa: PLC0415

    if config_path is None:
        raise ConfigError(["--source needs --config FILE"])
    config = load_config(config_path)
    source_id = text.removeprefix("source:")
    for source in config.sources:
        if source.id == source_id:
            return asyncio.run(_fetch_source(config, source))
    known = ", ".join(s.id for s in config.sources)
    raise ConfigError([f"{config_path}: no source {source_id!r}; sources: {known}"])


async def _fetch_once(url: str) -> Any:
    """One unconditional fetch; raises FetchError naming the URL when it fails."""
    from mastwatch.sources.http import Fetched, Fetcher, FetchSettings, make_session  # noqa: PLC0415

    settings = FetchSettings()
    # the operator named this URL or source: internal addresses are allowed
    async with make_session(settings, allow_private=True) as session:
        result = await Fetcher(session, settings).fetch(
            url, etag=None, last_modified=None, previous_body_hash=None
        )
    if not isinstance(result, Fetched):
        raise FetchError(f"{url}: {getattr(result, 'reason', 'not fetched')}")
    return result


async def _fetch_source(config: Any, source: Any) -> list[Item]:
    """Fetch and parse one configured source the way a poll does (selectors included)."""
    from mastwatch.sources.page import ParsedPage, page_selectors_of  # noqa: PLC0415
    from mastwatch.sources.parsing import ParseCall  # noqa: PLC0415

    url = config.source_url(source)
    result = await _fetch_once(url)
    parsed = ParseCall.of(source.id, result, page_selectors_of(source))()
    if isinstance(parsed, ParsedPage):
        for name in parsed.empty_selectors:
            print(f"selector {name} matched nothing on {url}", file=sys.stderr)
    return list(parsed.items)


def _read_items(text: str) -> list[Item]:
    """Items of a feed file or URL; raises FetchError naming the input."""
    from mastwatch.sources.feed import parse_feed  # noqa: PLC0415

    source_id = _source_id_of(text)
    scheme = urlsplit(text).scheme
    if scheme in {"http", "https", "file"}:
        return asyncio.run(_fetch_items(text, source_id))
    try:
        body = Path(text).read_bytes()
    except OSError as exc:
        raise FetchError(f"{text}: cannot read: {exc.strerror}") from None
    return list(parse_feed(body, source_id=source_id, base_url=None).items)


async def _fetch_items(url: str, source_id: str) -> list[Item]:
    from mastwatch.sources.feed import parse_feed  # noqa: PLC0415

    result = await _fetch_once(url)
    parsed = parse_feed(
        result.body,
        source_id=source_id,
        http_charset=result.http_charset,
        content_type=result.content_type,
        base_url=result.final_url,
    )
    return list(parsed.items)


def _load_ruleset(args: argparse.Namespace) -> Any:
    from mastwatch.config import load_config  # noqa: PLC0415
    from mastwatch.rules import load_rules  # noqa: PLC0415

    tiers: Sequence[str] = DEFAULT_TIERS
    rules_dir = args.rules
    if args.config is not None:
        config = load_config(args.config)
        tiers = config.tier_names
        rules_dir = rules_dir or config.resolve(config.rules.dir)
    if rules_dir is None:
        raise ConfigError(["dry-run: give --rules DIR or --config FILE"])
    return load_rules(rules_dir, tiers)


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None


def _match_record(item: Item, found: Match) -> dict[str, object]:
    return {
        "rule": found.rule_id,
        "tier": found.tier,
        "guid": item.guid,
        "key": item.key,
        "title": item.title,
        "link": item.link,
        "source": item.source_id,
        "published": _iso(item.published),
        "matched": list(found.matched),
        "evidence": _evidence_of(item, found),
    }


def _evidence_of(item: Item, found: Match) -> list[dict[str, object]]:
    """Where each matched term was found: field, character span and the text there."""
    from mastwatch.rules.explain import evidence_records  # noqa: PLC0415
    from mastwatch.text import make_document  # noqa: PLC0415

    return evidence_records(make_document(item), found.evidence)


def _matches(ruleset: Any, items: list[Item]) -> Iterator[tuple[Item, Match]]:
    from mastwatch.rules import match  # noqa: PLC0415
    from mastwatch.text import make_document  # noqa: PLC0415

    for item in items:
        for found in match(ruleset, make_document(item)):
            yield item, found


def cmd_dry_run(args: argparse.Namespace) -> int:
    try:
        ruleset = _load_ruleset(args)
    except (ConfigError, RuleError) as exc:
        _print_problems("cannot load rules", exc.problems)
        return EXIT_PROBLEM
    status = EXIT_OK
    if not args.inputs and not args.source:
        _print_problems("nothing to read", ["give a feed file, a URL or --source ID"])
        return EXIT_PROBLEM
    for text in [*args.inputs, *(f"source:{sid}" for sid in args.source)]:
        try:
            items = _items_of_input(text, args.config)
        except (FetchError, ConfigError) as exc:
            print(f"mastwatch dry-run: {exc}", file=sys.stderr)
            status = EXIT_PROBLEM
            continue
        for item, found in _matches(ruleset, items):
            _print_match(item, found, args.format)
    return status


def _print_match(item: Item, found: Match, fmt: str) -> None:
    if fmt == "jsonl":
        print(json.dumps(_match_record(item, found), ensure_ascii=False))
        return
    print(f"[{found.tier}] {found.rule_id}: {item.title}")
    print(f"    source {item.source_id} · {item.link or item.key}")
    print(f"    matched: {', '.join(found.matched)}")
    _print_highlights(item, found)


def _print_highlights(item: Item, found: Match) -> None:
    """Each field holding evidence, normalised, with the matched spans in [brackets]."""
    from mastwatch.rules.explain import highlighted_fields  # noqa: PLC0415
    from mastwatch.text import make_document  # noqa: PLC0415

    for field, text in highlighted_fields(make_document(item), found):
        print(f"    {field}: {text}")


def cmd_inspect(args: argparse.Namespace) -> int:
    from mastwatch.text import make_document  # noqa: PLC0415

    text = f"source:{args.source}" if args.source else args.input
    if text is None:
        _print_problems("nothing to inspect", ["give a feed file, a URL or --source ID"])
        return EXIT_PROBLEM
    try:
        items = _items_of_input(text, args.config)
    except (FetchError, ConfigError) as exc:
        print(f"mastwatch inspect: {exc}", file=sys.stderr)
        return EXIT_PROBLEM
    for item in items:
        doc = make_document(item)
        if args.format == "jsonl":
            record = {
                "key": item.key,
                "guid": item.guid,
                "title": item.title,
                "link": item.link,
                "published": _iso(item.published),
                "tags": list(item.tags),
                "text": {"title": doc.title, "summary": doc.summary, "content": doc.content},
            }
            print(json.dumps(record, ensure_ascii=False))
        else:
            print(f"{_iso(item.published) or '-':25} {item.key}  {doc.title}")
    print(f"{len(items)} items", file=sys.stderr)
    return EXIT_OK


def cmd_silence(args: argparse.Namespace) -> int:
    from mastwatch.silence_cli import cmd_silence as run  # noqa: PLC0415

    return run(args)


def cmd_routes(args: argparse.Namespace) -> int:
    from mastwatch.policy.routes_cli import cmd_routes as run  # noqa: PLC0415

    return run(args)


def cmd_report(args: argparse.Namespace) -> int:
    """``status``, ``alerts`` and ``replay``: reports from the store (see mastwatch.report)."""
    from mastwatch.store.base import StoreError  # noqa: PLC0415

    try:
        return asyncio.run(_report(args))
    except (ConfigError, RuleError) as exc:
        _print_problems(f"mastwatch {args.command}: problems found", exc.problems, sys.stderr)
    except StoreError as exc:
        print(f"mastwatch {args.command}: {exc}", file=sys.stderr)
    return EXIT_PROBLEM


async def _report(args: argparse.Namespace) -> int:
    from mastwatch import report  # noqa: PLC0415
    from mastwatch.config import load_config  # noqa: PLC0415
    from mastwatch.delivery import utc_now  # noqa: PLC0415
    from mastwatch.log import configure_logging  # noqa: PLC0415

    config = load_config(args.config)
    configure_logging("warning", config.log.format)  # stdout carries the report alone
    since = utc_now() - report.since_delta(args.since) if args.command != "status" else None
    ruleset = _load_ruleset(args) if args.command == "replay" else None
    store = await report.open_existing_store(config)
    try:
        if since is None:
            await report.print_status(config, store, sys.stdout)
        elif ruleset is None:
            await report.print_alerts(store, since, sys.stdout, as_json=args.format == "jsonl")
        else:
            await report.print_replay(
                config, store, ruleset, since, sys.stdout, as_json=args.format == "jsonl"
            )
    finally:
        await store.close()
    return EXIT_OK


def cmd_migrate(args: argparse.Namespace) -> int:
    """Apply pending migrations (replicas also do at start-up); print what was applied."""
    from mastwatch.config import load_config  # noqa: PLC0415
    from mastwatch.log import configure_logging  # noqa: PLC0415
    from mastwatch.store.base import StoreError  # noqa: PLC0415

    try:
        config = load_config(args.config)
        configure_logging("warning", config.log.format)  # stdout carries the answer alone
        applied, described, version = asyncio.run(_migrate(config))
    except ConfigError as exc:
        _print_problems("mastwatch migrate: problems found", exc.problems)
        return EXIT_PROBLEM
    except StoreError as exc:
        print(f"mastwatch migrate: {exc}", file=sys.stderr)
        return EXIT_PROBLEM
    for migration in applied:
        print(f"applied {migration.version:04d}_{migration.name}")
    print(f"{described}: schema version {version} ({len(applied)} applied now)")
    return EXIT_OK


async def _migrate(config: Any) -> tuple[list[Any], str, int]:
    from mastwatch.store.factory import make_store  # noqa: PLC0415

    store = make_store(config)
    await store.open()  # opening applies what is pending
    applied = list(store.applied_migrations)
    try:
        return applied, store.describe(), await store.schema_version()
    finally:
        await store.close()


if __name__ == "__main__":
    sys.exit(main())
