"""``mastwatch silence add|list|expire``: silences in the daemon's database.

Every replica reads the same store, so a silence added here is honoured by all of them
from their next poll on.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import os
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from mastwatch.config import load_config, parse_duration
from mastwatch.errors import ConfigError
from mastwatch.log import configure_logging
from mastwatch.policy.silences import SilenceError, new_silence, parse_matchers
from mastwatch.store.base import StoreError
from mastwatch.store.factory import make_store

EXIT_OK, EXIT_PROBLEM = 0, 1


def add_silence_parser(sub: Any) -> None:
    silence = sub.add_parser(
        "silence", help="silence alerts matching rule/source/labels for a time"
    )
    verbs = silence.add_subparsers(dest="verb", required=True)
    add = verbs.add_parser("add", help="add a silence")
    add.add_argument("--config", type=Path, required=True)
    add.add_argument(
        "--match", action="append", default=[], metavar="KEY=VALUE", help="rule=…, source=…"
    )
    add.add_argument("--for", dest="duration", required=True, help="how long: 30m, 4h, 2d")
    add.add_argument("--comment", required=True, help="why (shown to everyone)")
    add.add_argument("--author", help="who (default: $USER)")
    listing = verbs.add_parser("list", help="silences in force or pending")
    listing.add_argument("--config", type=Path, required=True)
    listing.add_argument("--all", action="store_true", help="expired ones too")
    expire = verbs.add_parser("expire", help="end a silence now")
    expire.add_argument("--config", type=Path, required=True)
    expire.add_argument("id", metavar="ID")


def cmd_silence(args: argparse.Namespace) -> int:
    try:
        return asyncio.run(_silence(args, datetime.now(UTC)))
    except ConfigError as exc:
        for problem in exc.problems:
            print(f"mastwatch silence: {problem}", file=sys.stderr)
    except (SilenceError, StoreError) as exc:
        print(f"mastwatch silence: {exc}", file=sys.stderr)
    return EXIT_PROBLEM


def _author(given: str | None) -> str:
    if given:
        return given
    try:
        return os.environ.get("USER") or getpass.getuser()
    except OSError:
        return "unknown"


def _duration(text: str) -> timedelta:
    try:
        seconds = parse_duration(text)
    except ValueError:
        seconds = None
    if not isinstance(seconds, int | float):
        raise SilenceError(f"--for {text!r}: expected a duration such as 30m, 4h or 2d")
    return timedelta(seconds=seconds)


async def _silence(args: argparse.Namespace, now: datetime) -> int:
    config = load_config(args.config)
    configure_logging("warning", config.log.format)  # stdout carries the command's output alone
    if args.verb == "add":  # validate before touching the store
        silence = new_silence(
            matchers=parse_matchers(args.match),
            duration=_duration(args.duration),
            comment=args.comment,
            author=_author(args.author),
            now=now,
        )
    async with make_store(config) as store:
        if args.verb == "add":
            await store.add_silence(silence)
            print(silence.id)
            return EXIT_OK
        if args.verb == "expire":
            if not await store.expire_silence(args.id, now):
                print(f"mastwatch silence: no active silence {args.id!r}", file=sys.stderr)
                return EXIT_PROBLEM
            print(f"expired {args.id}")
            return EXIT_OK
        silences = await store.list_silences(now, expired=args.all)
    for item in silences:
        matchers = ",".join(f"{k}={v}" for k, v in item.matchers)
        state = "active" if item.is_active(now) else "expired"
        ends = item.ends_at.strftime("%Y-%m-%d %H:%MZ")
        print(f"{item.id}  {state:7}  until {ends}  {matchers}  by {item.author}: {item.comment}")
    if not silences:
        print("no silences", file=sys.stderr)
    return EXIT_OK
