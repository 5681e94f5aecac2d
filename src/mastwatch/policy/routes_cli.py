"""``mastwatch routes`` (print the routing tree) and ``mastwatch routes test k=v …``
(which routes and receivers an alert with these facts would reach). Read-only."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from mastwatch.errors import ConfigError
from mastwatch.policy.routing import Route, Routing, build_routing, describe

EXIT_OK, EXIT_PROBLEM, EXIT_USAGE = 0, 1, 2


def add_routes_parser(sub: Any) -> None:
    routes = sub.add_parser(
        "routes",
        help="print the routing tree; `routes test k=v …` shows where such an alert goes",
    )
    routes.add_argument("--config", type=Path, required=True)
    routes.add_argument(
        "args",
        nargs="*",
        metavar="test K=V",
        help="test, then facts: tier=high rule=<id> source=<id> tag=<t> topic=<label> …",
    )


def cmd_routes(args: argparse.Namespace) -> int:
    from mastwatch.config import load_config  # noqa: PLC0415 (keeps --help fast)

    try:
        config = load_config(args.config)
    except ConfigError as exc:
        print(f"problems found ({len(exc.problems)}):", file=sys.stderr)
        for problem in exc.problems:
            print(f"  {problem}", file=sys.stderr)
        return EXIT_PROBLEM
    routing = build_routing(config)
    if not args.args:
        print("\n".join(describe(routing)))
        return EXIT_OK
    if args.args[0] != "test":
        print(f"mastwatch routes: unknown action {args.args[0]!r} (expected test)", file=sys.stderr)
        return EXIT_USAGE
    facts, problems = parse_facts(args.args[1:])
    if problems:
        for problem in problems:
            print(f"mastwatch routes test: {problem}", file=sys.stderr)
        return EXIT_USAGE
    print("\n".join(explain_lines(routing, facts)))
    return EXIT_OK


def parse_facts(pairs: list[str]) -> tuple[dict[str, tuple[str, ...]], list[str]]:
    """``k=v`` words → facts; a key given twice holds both values (e.g. two tags)."""
    facts: dict[str, tuple[str, ...]] = {}
    problems = []
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key or not value:
            problems.append(f"expected KEY=VALUE, got {pair!r}")
            continue
        facts[key] = (*facts.get(key, ()), value)
    if not facts and not problems:
        problems.append("give at least one KEY=VALUE, e.g. tier=high topic=trade")
    return facts, problems


def explain_lines(routing: Routing, facts: dict[str, tuple[str, ...]]) -> list[str]:
    """What ``routes test`` prints: each matching route, then each receiver's targets."""
    lines = []
    for route in routing.routes_for(facts):
        lines.append(f"{route.path}{_match_text(route)}")
        if route.digest is not None:
            lines.append(f"  digest {route.digest}")
        for name in route.receivers:
            targets = ", ".join(f"{r.channel} {r.target}" for r in routing.receivers.get(name, ()))
            lines.append(f"  {name}: {targets or '(no targets)'}")
        if route.quiet_hours is not None:
            q = route.quiet_hours
            critical = ", critical passes" if q.allow_critical else ""
            lines.append(
                f"  quiet hours {q.start}-{q.end} {q.timezone}: defer to {q.defer}{critical}"
            )
        if not route.receivers and route.digest is None:
            lines.append("  (no receivers: the alert is recorded, not sent)")
    return lines


def _match_text(route: Route) -> str:
    if not route.match:
        return " (matches everything)"
    return " (match " + ", ".join(f"{k}={'|'.join(v)}" for k, v in route.match.items()) + ")"
