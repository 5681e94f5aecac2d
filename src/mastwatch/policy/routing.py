"""The routing tree, in the manner of Prometheus Alertmanager.

A route matches when each of its ``match`` keys has one of the listed values among the
alert's facts (see :mod:`mastwatch.policy.facts`). The root matches everything. Inside a
matching route the children are tried in order: the first that matches wins, unless it
says ``continue``, in which case the next ones are tried too. A route none of whose
children matched delivers itself. Children inherit receivers and timings they do not set.
Without a ``[routes]`` table there is one implicit route per tier, to that tier's
``[tiers.<name>]`` receivers: the configuration before routing existed works unchanged.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace

from mastwatch.config import Config, QuietHours, ReceiverConfig, RouteConfig
from mastwatch.model import Receiver
from mastwatch.policy.facts import Facts, facts_match

DEFAULT_GROUP_WAIT = 0.0


@dataclass(frozen=True, slots=True)
class Route:
    """A route with its inherited settings resolved."""

    path: str  # "routes", "routes.routes[1]" … (for `mastwatch routes` and logs)
    match: Mapping[str, tuple[str, ...]]
    receivers: tuple[str, ...]
    continue_: bool = False
    group_wait: float = DEFAULT_GROUP_WAIT
    repeat_interval: float | None = None
    digest: str | None = None
    quiet_hours: QuietHours | None = None
    children: tuple[Route, ...] = field(default=())


@dataclass(frozen=True, slots=True)
class Routing:
    """The resolved tree plus the receivers each name stands for."""

    root: Route
    receivers: Mapping[str, tuple[Receiver, ...]]

    def routes_for(self, facts: Facts) -> tuple[Route, ...]:
        """The routes that deliver an alert with these facts (at least the root)."""
        return _walk(self.root, facts) or (self.root,)

    def targets(self, route: Route) -> tuple[Receiver, ...]:
        found = [r for name in route.receivers for r in self.receivers.get(name, ())]
        return tuple(dict.fromkeys(found))


def _walk(route: Route, facts: Facts) -> tuple[Route, ...]:
    if not facts_match(facts, route.match):
        return ()
    found: list[Route] = []
    for child in route.children:
        matched = _walk(child, facts)
        found += matched
        if matched and not child.continue_:
            break
    return tuple(found) or (route,)


def _own_receivers(config: RouteConfig, parent: Route) -> tuple[str, ...]:
    """A route's receivers, else its parent's; a route to a digest inherits none (it
    collects instead of sending)."""
    if config.receivers is not None:
        return config.receivers
    return () if config.digest is not None else parent.receivers


def _resolve(config: RouteConfig, parent: Route | None, path: str) -> Route:
    inherited = parent or Route(path="", match={}, receivers=())
    route = Route(
        path=path,
        match=config.wanted(),
        receivers=_own_receivers(config, inherited),
        continue_=config.continue_,
        group_wait=config.group_wait if config.group_wait is not None else inherited.group_wait,
        repeat_interval=config.repeat_interval or inherited.repeat_interval,
        digest=config.digest if config.digest is not None else inherited.digest,
        quiet_hours=config.quiet_hours or inherited.quiet_hours,
    )
    children = tuple(
        _resolve(child, route, f"{path}.routes[{i}]") for i, child in enumerate(config.routes)
    )
    return replace(route, children=children)


def _receivers(
    named: Mapping[str, ReceiverConfig], *, slack_ready: bool, email_ready: bool
) -> dict[str, tuple[Receiver, ...]]:
    """Each receiver name's targets; Slack or email without secrets/server → the console
    (so the outbox records where an alert really went, and `make run` works offline)."""
    console = Receiver("console", "stdout")
    table: dict[str, tuple[Receiver, ...]] = {}
    for name, receiver in named.items():
        found = [Receiver("slack", ch) if slack_ready else console for ch in receiver.slack]
        found += [Receiver("email", a) if email_ready else console for a in receiver.email]
        if receiver.console:
            found.append(console)
        table[name] = tuple(dict.fromkeys(found))
    return table


def build_routing(config: Config, *, slack_ready: bool = True, email_ready: bool = True) -> Routing:
    """The routing tree of ``config``: its ``[routes]``, or one implicit route per tier."""
    named: dict[str, ReceiverConfig] = dict(config.receivers)
    if config.routes is not None:
        root = _resolve(config.routes, None, "routes")
    else:
        root = _implicit_tree(config, named)
    ready = {"slack_ready": slack_ready, "email_ready": email_ready}
    return Routing(root=root, receivers=_receivers(named, **ready))


def _implicit_tree(config: Config, named: dict[str, ReceiverConfig]) -> Route:
    """``[tiers.X]`` → a route matching tier X to a receiver named ``tier:X``; the
    ``digest`` tier goes to the first ``[[digests]]`` entry when there is one."""
    first_digest = config.digests[0].id if config.digests else None
    children = []
    for tier, settings in config.tiers.items():
        name = f"tier:{tier}"
        named[name] = ReceiverConfig(
            slack=settings.slack, email=settings.email, console=settings.console
        )
        digest = first_digest if tier == "digest" else None
        children.append(
            Route(
                path=f"tiers.{tier}",
                match={"tier": (tier,)},
                receivers=(name,) if digest is None else (),
                digest=digest,
            )
        )
    return Route(path="routes", match={}, receivers=(), children=tuple(children))


def describe(routing: Routing) -> list[str]:
    """The tree as indented lines, for ``mastwatch routes``."""
    lines: list[str] = []
    _describe(routing, routing.root, 0, lines)
    return lines


def _describe(routing: Routing, route: Route, depth: int, lines: list[str]) -> None:
    match = ", ".join(f"{k}={'|'.join(v)}" for k, v in route.match.items()) or "(everything)"
    parts = [f"{'  ' * depth}{route.path}: match {match}"]
    if route.receivers:
        parts.append("→ " + ", ".join(route.receivers))
    if route.digest:
        parts.append(f"→ digest {route.digest}")
    if route.continue_:
        parts.append("[continue]")
    if route.quiet_hours:
        q = route.quiet_hours
        parts.append(f"[quiet {q.start}-{q.end} {q.timezone}, defer {q.defer}]")
    lines.append(" ".join(parts))
    for child in route.children:
        _describe(routing, child, depth + 1, lines)
