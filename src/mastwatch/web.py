"""The daemon's HTTP endpoint: /healthz, /readyz, /metrics and the /status page.

Bound to 127.0.0.1 by default. When a bearer token is configured, /metrics and /status
require it (``Authorization: Bearer …``); /healthz and /readyz never do, since they only
say yes or no and container health checks and probes rarely carry secrets. Binding
beyond loopback without a token is refused at start-up unless the operator sets
``web.allow_unauthenticated`` (see :func:`mastwatch.config.resolve_secrets`).

The status page is rendered on the server, every feed-supplied string escaped, with no
script at all: a strict Content-Security-Policy forbids it anyway.
"""

from __future__ import annotations

import hmac
import html
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol
from urllib.parse import urlsplit

import structlog
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST

from mastwatch import __version__
from mastwatch.config import Config, WebConfig
from mastwatch.errors import MastwatchError
from mastwatch.metrics import Metrics
from mastwatch.model import Alert, SourceState
from mastwatch.rules import RuleSet
from mastwatch.sources.page import describe_empty_runs
from mastwatch.store.base import InspectableStore

log = structlog.get_logger(__name__)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
OPEN_PATHS = frozenset({"/healthz", "/readyz"})  # never behind the token
RECENT_ALERTS = 25
PAGE_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; "
        "form-action 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


class WebError(MastwatchError):
    """The endpoint cannot listen (address in use, not permitted…)."""


class DaemonView(Protocol):
    """What the endpoint reads from the running daemon."""

    config: Config
    ruleset: RuleSet
    store: InspectableStore
    metrics: Metrics

    def is_scheduling(self) -> bool: ...

    def next_polls(self) -> Mapping[str, datetime | None]: ...

    def now(self) -> datetime: ...


class WebServer:
    """An aiohttp application on its own runner, started and stopped by the daemon."""

    def __init__(self, daemon: DaemonView, settings: WebConfig, token: str | None) -> None:
        self.daemon = daemon
        self.settings = settings
        self._token = token
        self._runner: web.AppRunner | None = None
        self.port: int | None = None

    def application(self) -> web.Application:
        app = web.Application(middlewares=[self._auth])
        app.router.add_get("/healthz", self.healthz)
        app.router.add_get("/readyz", self.readyz)
        app.router.add_get("/metrics", self.metrics)
        app.router.add_get("/status", self.status)
        app.router.add_get("/", self.root)
        return app

    async def start(self) -> None:
        """Listen on the configured address; raise WebError if that is not possible."""
        self._runner = web.AppRunner(self.application(), access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.settings.host, self.settings.port)
        try:
            await site.start()
        except OSError as exc:
            await self.stop()
            where = f"{self.settings.host}:{self.settings.port}"
            raise WebError(f"web: cannot listen on {where}: {exc.strerror or exc}") from None
        addresses = self._runner.addresses  # the bound port, when port 0 asked for any
        self.port = int(addresses[0][1]) if addresses else self.settings.port
        log.info("web_listening", host=self.settings.host, port=self.port, token=bool(self._token))

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    @web.middleware
    async def _auth(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if self._token is None or request.path in OPEN_PATHS:
            return await handler(request)
        given = request.headers.get("Authorization", "")
        if hmac.compare_digest(given.encode(), f"Bearer {self._token}".encode()):
            return await handler(request)
        return web.Response(
            status=401, text="a bearer token is required\n", headers={"WWW-Authenticate": "Bearer"}
        )

    # -- handlers --------------------------------------------------------------------------

    async def healthz(self, request: web.Request) -> web.Response:
        """The event loop answered: the process is alive (a blocked loop cannot answer)."""
        return web.json_response({"status": "ok", "version": __version__})

    async def readyz(self, request: web.Request) -> web.Response:
        """Ready when the store answers, rules are loaded and polls are being scheduled."""
        checks = {
            "store": await self.daemon.store.ping(),
            "rules": len(self.daemon.ruleset) > 0,
            "scheduler": self.daemon.is_scheduling(),
        }
        ready = all(checks.values())
        body = {"status": "ready" if ready else "not ready", "checks": checks}
        return web.json_response(body, status=200 if ready else 503)

    async def metrics(self, request: web.Request) -> web.Response:
        await refresh_gauges(self.daemon)
        body = self.daemon.metrics.exposition()
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def status(self, request: web.Request) -> web.Response:
        page = await gather_status(self.daemon)
        return web.Response(
            text=render_status(page),
            content_type="text/html",
            charset="utf-8",
            headers=PAGE_HEADERS,
        )

    async def root(self, request: web.Request) -> web.Response:
        raise web.HTTPFound("/status")


async def refresh_gauges(daemon: DaemonView) -> None:
    """Set the gauges that describe stored state, just before a scrape reads them."""
    metrics = daemon.metrics
    metrics.set_outbox(await daemon.store.outbox_counts())
    metrics.set_message_outbox(await daemon.store.message_counts())
    metrics.set_sources(await daemon.store.list_source_states())
    metrics.set_ruleset(daemon.ruleset.content_hash, len(daemon.ruleset))


# -- the status page ---------------------------------------------------------------------------


@dataclass(frozen=True)
class SourceRow:
    id: str
    name: str
    enabled: bool
    state: SourceState
    next_poll: datetime | None


@dataclass(frozen=True)
class StatusPage:
    now: datetime
    sources: Sequence[SourceRow]
    outbox: Mapping[str, int]
    alerts: Sequence[Alert]
    deliveries: Mapping[str, Sequence[tuple[str, str, str]]]
    ruleset: RuleSet


async def gather_status(daemon: DaemonView) -> StatusPage:
    """Everything the page shows, read from config, scheduler and store."""
    store = daemon.store
    states = {s.source_id: s for s in await store.list_source_states()}
    next_polls = daemon.next_polls()
    rows = [
        SourceRow(
            id=source.id,
            name=source.display_name,
            enabled=source.enabled,
            state=states.get(source.id, SourceState(source_id=source.id)),
            next_poll=next_polls.get(source.id),
        )
        for source in daemon.config.sources
    ]
    alerts = await store.recent_alerts(RECENT_ALERTS)
    return StatusPage(
        now=daemon.now(),
        sources=rows,
        outbox=await store.outbox_counts(),
        alerts=alerts,
        deliveries=await store.delivery_states([a.id for a in alerts]),
        ruleset=daemon.ruleset,
    )


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def relative(moment: datetime | None, now: datetime) -> str:
    """``<time>`` with a relative text ("4 min ago", "in 20 s") and the exact UTC time."""
    if moment is None:
        return '<span class="muted">—</span>'
    seconds = (moment - now).total_seconds()
    size = abs(seconds)
    if size < 90:
        amount = f"{size:.0f} s"
    elif size < 5400:
        amount = f"{size / 60:.0f} min"
    elif size < 2 * 86400:
        amount = f"{size / 3600:.1f} h"
    else:
        amount = f"{size / 86400:.0f} d"
    text = f"in {amount}" if seconds > 0 else f"{amount} ago"
    exact = moment.strftime("%Y-%m-%d %H:%M:%S UTC")
    return f'<time datetime="{_e(moment.isoformat())}" title="{_e(exact)}">{_e(text)}</time>'


def safe_link(url: str | None, text: str) -> str:
    """A link only for http(s) URLs from a feed; anything else (javascript:…) stays text."""
    if url and urlsplit(url).scheme in {"http", "https"}:
        return f'<a href="{_e(url)}" rel="noopener noreferrer nofollow">{_e(text)}</a>'
    return _e(text)


def _tier(tier: str) -> str:
    return f'<span class="tier tier-{_e(tier)}">{_e(tier)}</span>'


def _source_health(row: SourceRow) -> str:
    state = row.state
    if not row.enabled:
        return '<span class="badge off">paused</span>'
    if state.disabled:
        return '<span class="badge bad">disabled (410)</span>'
    if state.error_count:
        return f'<span class="badge bad">failing: {state.error_count} in a row</span>'
    if state.last_success_at is None:
        return '<span class="badge off">not polled yet</span>'
    return '<span class="badge ok">ok</span>'


def _next_poll(row: SourceRow) -> datetime | None:
    """The scheduler's next tick, unless backoff stored a later time (ticks before it skip)."""
    times = [t for t in (row.next_poll, row.state.next_check_at) if t is not None]
    return max(times) if times else None


def _sources_section(page: StatusPage) -> str:
    rows = []
    for row in page.sources:
        error = row.state.last_error or ""
        error_html = (
            f'{relative(row.state.last_error_at, page.now)} <span class="err">{_e(error)}</span>'
            if error
            else '<span class="muted">—</span>'
        )
        if row.state.empty_runs:  # a page source whose selectors stopped matching
            described = describe_empty_runs(row.state.empty_runs)
            error_html += f'<br><span class="err">{_e(described)}</span>'

        rows.append(
            f"<tr><td><b>{_e(row.name)}</b><br><code>{_e(row.id)}</code></td>"
            f"<td>{_source_health(row)}</td>"
            f"<td>{relative(row.state.last_success_at, page.now)}</td>"
            f"<td>{error_html}</td>"
            f"<td>{relative(_next_poll(row), page.now)}</td></tr>"
        )
    body = "".join(rows) or '<tr><td colspan="5" class="muted">no sources configured</td></tr>'
    return (
        f'<section id="sources"><h2>Sources <small>{len(page.sources)}</small></h2><table>'
        "<tr><th>source</th><th>health</th><th>last success</th><th>last error</th>"
        f"<th>next poll</th></tr>{body}</table></section>"
    )


def _alerts_section(page: StatusPage) -> str:
    rows = []
    for alert in page.alerts:
        sent = " ".join(
            f'<span class="dlv dlv-{_e(state)}">{_e(channel)} {_e(target)}: {_e(state)}</span>'
            for channel, target, state in page.deliveries.get(alert.id, ())
        )
        rows.append(
            f"<tr><td>{relative(alert.created_at, page.now)}</td><td>{_tier(alert.tier)}</td>"
            f"<td><code>{_e(alert.rule_id)}</code><br>{_e(alert.rule_title)}</td>"
            f"<td>{safe_link(alert.link, alert.title)}<br>"
            f'<span class="muted">{_e(alert.source_name)} · matched '
            f"{_e(', '.join(alert.matched))}</span></td><td>{sent}</td></tr>"
        )
    body = "".join(rows) or '<tr><td colspan="5" class="muted">no alerts yet</td></tr>'
    counts = " · ".join(f"{_e(state)} {count}" for state, count in page.outbox.items())
    return (
        f'<section id="alerts"><h2>Recent alerts <small>outbox: {counts}</small></h2><table>'
        "<tr><th>when</th><th>tier</th><th>rule</th><th>item</th><th>deliveries</th></tr>"
        f"{body}</table></section>"
    )


def _rules_section(ruleset: RuleSet) -> str:
    rows = "".join(
        f"<tr><td><code>{_e(rule.id)}</code></td><td>{_e(rule.title)}</td>"
        f"<td>{_tier(rule.tier)}</td><td>{'yes' if rule.enabled else 'no'}</td></tr>"
        for rule in ruleset.rules
    )
    return (
        f'<section id="rules"><h2>Rule set <small>{len(ruleset)} rules · hash '
        f"<code>{_e(ruleset.content_hash[:12])}</code></small></h2><table>"
        f"<tr><th>id</th><th>title</th><th>tier</th><th>enabled</th></tr>{rows}</table></section>"
    )


SILENCES = (
    '<section id="silences"><h2>Active silences</h2>'
    '<p class="muted">no silences (arrive with the alerting issue)</p></section>'
)

STYLE = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;margin:0;background:#f4f5f7;
color:#1d2330}
header{background:#1d2330;color:#fff;padding:14px 28px;display:flex;align-items:baseline;gap:16px}
header h1{font-size:20px;margin:0}header span{color:#aab2c0}
main{padding:8px 28px 28px;max-width:1400px}
section{background:#fff;border-radius:8px;box-shadow:0 1px 3px #0002;margin:16px 0;
padding:4px 16px 12px}
h2{font-size:16px;margin:12px 0}h2 small{font-weight:normal;color:#6b7385;margin-left:8px}
table{border-collapse:collapse;width:100%}
th{text-align:left;color:#6b7385;font-weight:600;border-bottom:2px solid #e3e6eb;padding:6px 8px}
td{border-bottom:1px solid #eef0f3;padding:6px 8px;vertical-align:top}
code{font:12px ui-monospace,monospace;color:#4a5468}
a{color:#1a5fb4}.muted{color:#8a91a0}.err{color:#a51d2d}
.badge,.tier,.dlv{display:inline-block;border-radius:10px;padding:1px 8px;font-size:12px;
font-weight:600;margin:1px 0}
.ok{background:#dff3e4;color:#1e6b35}.bad{background:#fbe3e4;color:#a51d2d}
.off{background:#eceef1;color:#5c6475}
.tier{background:#eceef1;color:#3d4555;text-transform:uppercase}
.tier-critical{background:#c01c28;color:#fff}.tier-high{background:#e66100;color:#fff}
.tier-normal{background:#1a5fb4;color:#fff}.tier-digest{background:#77767b;color:#fff}
.dlv{font-weight:normal;background:#eceef1}.dlv-sent{background:#dff3e4}
.dlv-failed{background:#fbe3e4}.dlv-pending{background:#fff1c7}
"""


def render_status(page: StatusPage) -> str:
    """The whole page as one HTML string; it refreshes itself every 30 s without script."""
    generated = page.now.strftime("%Y-%m-%d %H:%M:%S UTC")
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta http-equiv="refresh" content="30">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>mastwatch status</title><style>{STYLE}</style></head><body>"
        f"<header><h1>mastwatch</h1><span>v{_e(__version__)} · {_e(generated)}</span></header>"
        f"<main>{_sources_section(page)}{_alerts_section(page)}{SILENCES}"
        f"{_rules_section(page.ruleset)}</main></body></html>"
    )
