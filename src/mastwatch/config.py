"""config.toml → frozen, typed models.

Every problem in a file is reported at once, each with the file and the key path
(``config.toml: sources[2].interval: …``), so an operator fixes them in one pass.
Secrets never live in the file: it names environment variables or files that hold them,
and ``resolve_secrets`` reads those at start-up.
"""

from __future__ import annotations

import difflib
import ipaddress
import os
import re
import tomllib
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal, get_args, get_origin
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from apscheduler.triggers.cron import CronTrigger
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)
from selectolax.lexbor import LexborHTMLParser, SelectolaxError

from mastwatch.errors import ConfigError
from mastwatch.model import DEFAULT_TIERS

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, None: 1.0}


def parse_duration(value: object) -> object:
    """Seconds as a number, or a string such as ``"90s"``, ``"5m"``, ``"2h"``, ``"1d"``."""
    if isinstance(value, bool):  # TOML `true` is not one second
        raise ValueError(f"expected a duration such as 30s, 5m or 2h, got {value!r}")
    if isinstance(value, str):
        found = _DURATION.match(value)
        if not found:
            raise ValueError(f"expected a duration such as 30s, 5m or 2h, got {value!r}")
        return float(found.group(1)) * _UNIT_SECONDS[found.group(2)]
    return value


Seconds = Annotated[float, BeforeValidator(parse_duration), Field(gt=0)]
SOURCE_ID = r"^[a-z0-9][a-z0-9._-]*$"


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class StoreConfig(_Model):
    """SQLite ``path`` (the default), or PostgreSQL (HA mode) by exactly one of ``url``,
    ``url_env`` (a variable holding it) or ``url_file``. A URL may hold a password, so it
    is a secret: prefer url_env/url_file, and it is never logged (only host/database)."""

    path: Path = Field(Path("var/mastwatch.db"), description="SQLite file, relative to config")
    url: str | None = None
    url_env: str | None = None
    url_file: Path | None = None

    @model_validator(mode="after")
    def _one_backend(self) -> StoreConfig:
        given = [
            name for name in ("path", "url", "url_env", "url_file") if name in self.model_fields_set
        ]
        given = [name for name in given if getattr(self, name) is not None]
        if len(given) > 1:
            raise ValueError(
                f"set exactly one of path, url, url_env, url_file (got {', '.join(given)})"
            )
        if self.url is not None and urlsplit(self.url).scheme not in {"postgresql", "postgres"}:
            raise ValueError("url: expected a postgresql:// URL")
        return self

    @property
    def is_postgres(self) -> bool:
        return any(value is not None for value in (self.url, self.url_env, self.url_file))


class HaConfig(_Model):
    """Replicas sharing one PostgreSQL store (see docs/operations.md, HA mode)."""

    # default: MASTWATCH_REPLICA_ID, else hostname-pid-random (see mastwatch.replica)
    replica_id: str | None = Field(None, pattern=r"^[A-Za-z0-9._:-]{1,100}$")
    # how long a claimed source stays leased if its poll never finishes (replica died)
    source_lease: Seconds = 60.0
    heartbeat_interval: Seconds = 5.0
    # a replica unseen for this long is not live (status); its leases expire on their own
    replica_ttl: Seconds = 20.0


class RulesConfig(_Model):
    dir: Path = Path("rules")
    # how often the directory is checked for edited, added or removed rule files
    watch_interval: Seconds = Field(2.0, ge=0.1)


class HttpConfig(_Model):
    connect_timeout: Seconds = 10.0
    total_timeout: Seconds = 30.0
    max_body_bytes: int = Field(10 * 1024 * 1024, gt=0)
    max_redirects: int = Field(5, ge=0, le=20)
    per_host_concurrency: int = Field(2, ge=1)
    user_agent: str | None = None


MAX_JITTER_FRACTION = 0.05  # of a source's interval (Config.jitter_of)


class ScheduleConfig(_Model):
    default_interval: Seconds = 300.0
    jitter: float = Field(10.0, ge=0)
    misfire_grace_time: Seconds = 60.0
    max_backoff: Seconds = 3 * 3600.0
    baseline_new_sources: bool = True


class DeliveryConfig(_Model):
    batch_size: int = Field(50, ge=1)
    lease: Seconds = 120.0
    retry_initial: Seconds = 5.0
    retry_max: Seconds = 900.0
    shutdown_grace: Seconds = 10.0
    once_wait: float = Field(30.0, ge=0, description="how long --once waits for retries")


class PerformanceConfig(_Model):
    # processes that parse fetched feeds, so a cold cycle uses every core; 0 parses in a
    # thread inside the daemon; "auto" (the default) is one per CPU, or 0 on a single CPU
    # (sources.parsing.resolve_workers). See docs/operations.md.
    parse_workers: Annotated[int, Field(ge=0)] | Literal["auto"] = "auto"


class LogConfig(_Model):
    level: Literal["debug", "info", "warning", "error"] = "info"
    format: Literal["auto", "json", "console"] = "auto"


class WebConfig(_Model):
    """The HTTP endpoint: /healthz, /readyz, /metrics and the /status page."""

    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = Field(9470, ge=0, lt=65536, description="0 picks a free port (tests)")
    # a bearer token for /metrics and /status; required when bound beyond loopback
    token_env: str | None = "MASTWATCH_WEB_TOKEN"  # noqa: S105 (a variable name)
    token_file: Path | None = None
    allow_unauthenticated: bool = False

    @property
    def is_loopback(self) -> bool:
        """True when only this machine can connect (127.0.0.0/8, ::1 or "localhost")."""
        if self.host == "localhost":
            return True
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:  # a host name other than localhost may resolve anywhere
            return False


class TierConfig(_Model):
    slack: tuple[str, ...] = ()
    email: tuple[str, ...] = ()
    console: bool = False


# -- alert policy: stories, escalation, throttling, receivers, routes (issue 5, helper P1) --

TIME_OF_DAY = r"^([01]\d|2[0-3]):[0-5]\d$"


def _zone(name: str) -> str:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown IANA time zone {name!r}") from None
    return name


class StoriesConfig(_Model):
    """``[stories]``: items about one story (same link or near-identical title) cluster."""

    enabled: bool = True
    window: Seconds = 24 * 3600.0
    # Jaccard similarity of the titles' character shingle sets (policy/stories.py)
    title_similarity: float = Field(0.6, gt=0, le=1)


class EscalationConfig(_Model):
    """One escalation policy, for a tier (``[escalation.tiers.high]``) or a rule
    (``[escalation.rules."rule-id"]``, which wins)."""

    sources: int | None = Field(None, ge=2, description="distinct sources that corroborate")
    window: Seconds = 3600.0
    to: str = "critical"
    source_tags: tuple[str, ...] = ()  # an item from a source with one of these tags escalates


class EscalationSettings(_Model):
    tiers: dict[str, EscalationConfig] = Field(default_factory=dict)
    rules: dict[str, EscalationConfig] = Field(default_factory=dict)


class ThrottleRule(_Model):
    realert_interval: Seconds | None = None
    flood_max_per_hour: int | None = Field(None, ge=1)


class ThrottleConfig(_Model):
    """``[throttle]``: per rule and story re-alert interval; per-rule flood guard."""

    realert_interval: Seconds = 4 * 3600.0
    flood_max_per_hour: int = Field(30, ge=1)
    rules: dict[str, ThrottleRule] = Field(default_factory=dict)


class ReceiverConfig(_Model):
    """``[receivers.<name>]``: a named set of Slack channels and email addresses."""

    slack: tuple[str, ...] = ()
    email: tuple[str, ...] = ()
    console: bool = False


class QuietHours(_Model):
    start: str
    end: str
    timezone: str = "UTC"
    allow_critical: bool = True
    defer: str = "end"

    _zone_ok = field_validator("timezone")(_zone)

    @field_validator("start", "end")
    @classmethod
    def _time_of_day(cls, value: str) -> str:
        if not re.match(TIME_OF_DAY, value):
            raise ValueError(f"expected a time of day as HH:MM (00:00 to 23:59), got {value!r}")
        return value

    @field_validator("defer")
    @classmethod
    def _defer(cls, value: str) -> str:
        if not re.match(r"^(end|digest:[a-z0-9][a-z0-9._-]*)$", value):
            raise ValueError(f'expected "end" or "digest:<digest id>", got {value!r}')
        return value


class RouteConfig(_Model):
    """One node of the routing tree (``[routes]`` is the root; children in ``routes``)."""

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    match: dict[str, str | tuple[str, ...]] = Field(default_factory=dict)
    receivers: tuple[str, ...] | None = None  # None: inherited from the parent
    continue_: bool = Field(False, alias="continue")
    group_wait: float | None = Field(None, ge=0)
    repeat_interval: Seconds | None = None
    digest: str | None = None
    quiet_hours: QuietHours | None = None
    routes: tuple[RouteConfig, ...] = ()

    @field_validator("group_wait", mode="before")
    @classmethod
    def _wait(cls, value: object) -> object:
        return parse_duration(value) if value != 0 else 0.0

    def wanted(self) -> dict[str, tuple[str, ...]]:
        return {k: (v,) if isinstance(v, str) else v for k, v in self.match.items()}


class SlackConfig(_Model):
    token_env: str | None = "MASTWATCH_SLACK_TOKEN"  # noqa: S105 (a variable name)
    token_file: Path | None = None
    webhook_url_env: str | None = "MASTWATCH_SLACK_WEBHOOK_URL"
    webhook_url_file: Path | None = None
    base_url: str | None = None
    min_interval: float = Field(1.0, ge=0)
    # messages to one channel that may go at once before min_interval applies: Slack
    # allows "short bursts >1" over its one message a second per channel (notify.slack)
    burst: int = Field(3, ge=1)
    mention_tiers: tuple[str, ...] = ("critical",)


class EmailConfig(_Model):
    host: str | None = None
    port: int = Field(587, gt=0, lt=65536)
    tls: Literal["starttls", "implicit", "none"] = "starttls"
    sender: str = "mastwatch@localhost"
    username: str | None = None
    username_env: str | None = None
    password_env: str | None = "MASTWATCH_SMTP_PASSWORD"  # noqa: S105 (a variable name)
    password_file: Path | None = None
    timeout: Seconds = 30.0


_EMPTY_PAGE = LexborHTMLParser("<html></html>")  # to check selectors against


class PageConfig(_Model):
    """CSS selectors that turn an HTML list page into items (``kind = "page"``)."""

    item: str = Field(min_length=1)
    title: str = Field(min_length=1)
    link: str = Field(min_length=1)
    date: str | None = None
    summary: str | None = None
    # links are resolved against the fetched URL, or this one (for file: snapshots)
    base_url: str | None = None

    @field_validator("item", "title", "link", "date", "summary")
    @classmethod
    def _parses_as_css(cls, selector: str | None) -> str | None:
        """A selector lexbor cannot parse would fail on every poll: refuse it at load."""
        if selector is not None:
            try:
                _EMPTY_PAGE.css(selector)
            except SelectolaxError:
                raise ValueError(f"not a CSS selector lexbor can parse: {selector!r}") from None
        return selector


class SourceConfig(_Model):
    id: str = Field(pattern=SOURCE_ID)
    name: str | None = None
    kind: Literal["feed", "page"] = "feed"
    url: str
    page: PageConfig | None = None
    interval: Seconds | None = None
    tags: tuple[str, ...] = ()
    enabled: bool = True
    baseline: bool | None = None
    # let this source reach loopback, private and link-local addresses (off: SSRF guard)
    allow_private: bool = False

    @field_validator("url")
    @classmethod
    def _known_scheme(cls, url: str) -> str:
        scheme = urlsplit(url).scheme
        if scheme not in {"http", "https", "file"}:
            raise ValueError(f"expected an http, https or file URL, got {url!r}")
        return url

    @property
    def display_name(self) -> str:
        return self.name or self.id


# -- digests and operator notices (issue 5, helper P2) ---------------------------------------


class DigestConfig(_Model):
    """One ``[[digests]]`` entry: held alerts sent together on a cron schedule."""

    id: str = Field(pattern=SOURCE_ID)
    title: str | None = None
    cron: str = Field(min_length=1, description='crontab fields, e.g. "0 7 * * *"')
    timezone: str = "UTC"  # an IANA name: the cron fields are read in this zone
    email: tuple[str, ...] = ()
    slack: str | None = None  # one Slack message per digest to this channel (optional)
    console: bool = False

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, name: str) -> str:
        try:
            ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown IANA time zone {name!r}") from None
        return name

    @field_validator("cron")
    @classmethod
    def _valid_cron(cls, cron: str) -> str:
        try:
            CronTrigger.from_crontab(cron, timezone="UTC")
        except ValueError as err:
            raise ValueError(f"invalid cron expression {cron!r}: {err}") from None
        fields = cron.split()
        if any(char.isdigit() for char in fields[-1]):
            # APScheduler 3 counts weekdays from 0 = Monday, cron from 0 = Sunday: a number
            # would silently shift the day, so only names are accepted
            raise ValueError(f"cron {cron!r}: write the weekday as names, e.g. mon-fri, sun")
        return cron

    @property
    def display_title(self) -> str:
        return self.title or f"mastwatch digest {self.id}"


class NoticesConfig(_Model):
    """``[notices]``: where operator notices (a source failing, a reload refused…) go."""

    source_failures: int = Field(3, ge=1, description="failed polls in a row before a notice")
    slack: tuple[str, ...] = ()
    email: tuple[str, ...] = ()
    console: bool = True  # so a fresh install (and `make run`) shows notices somewhere


def _default_tiers() -> dict[str, TierConfig]:
    return {name: TierConfig(console=True) for name in DEFAULT_TIERS}


class Config(_Model):
    store: StoreConfig = StoreConfig()
    rules: RulesConfig = RulesConfig()
    http: HttpConfig = HttpConfig()
    schedule: ScheduleConfig = ScheduleConfig()
    delivery: DeliveryConfig = DeliveryConfig()
    ha: HaConfig = HaConfig()
    log: LogConfig = LogConfig()
    performance: PerformanceConfig = PerformanceConfig()
    web: WebConfig = WebConfig()
    slack: SlackConfig = SlackConfig()
    email: EmailConfig = EmailConfig()
    tiers: dict[str, TierConfig] = Field(default_factory=_default_tiers)
    sources: tuple[SourceConfig, ...] = ()
    stories: StoriesConfig = StoriesConfig()
    escalation: EscalationSettings = EscalationSettings()
    throttle: ThrottleConfig = ThrottleConfig()
    receivers: dict[str, ReceiverConfig] = Field(default_factory=dict)
    routes: RouteConfig | None = None  # None: one implicit route per tier
    digests: tuple[DigestConfig, ...] = ()
    notices: NoticesConfig = NoticesConfig()
    # set by load_config, not by the file: relative paths are resolved against it
    base_dir: Path = Path()

    @property
    def tier_names(self) -> tuple[str, ...]:
        return tuple(self.tiers)

    def resolve(self, path: Path) -> Path:
        """A path from the file, made absolute against the config file's directory."""
        expanded = Path(os.path.expandvars(str(path))).expanduser()
        return expanded if expanded.is_absolute() else self.base_dir / expanded

    def source_url(self, source: SourceConfig) -> str:
        """The source URL, with a relative ``file:`` path resolved against the config."""
        parts = urlsplit(source.url)
        if parts.scheme == "file" and not parts.netloc and not parts.path.startswith("/"):
            return self.resolve(Path(parts.path)).resolve().as_uri()
        return source.url

    def interval_of(self, source: SourceConfig) -> float:
        return source.interval or self.schedule.default_interval

    def jitter_of(self, source: SourceConfig) -> float:
        """``schedule.jitter``, but at most a twentieth of the source's interval: it comes off
        every period (app.PhaseSpreadTrigger), so 10 s on a 10 s interval would poll every
        0-10 s."""
        return min(self.schedule.jitter, MAX_JITTER_FRACTION * self.interval_of(source))

    def baseline_of(self, source: SourceConfig) -> bool:
        if source.baseline is not None:
            return source.baseline
        return self.schedule.baseline_new_sources


def _key_path(loc: tuple[int | str, ...]) -> str:
    path = ""
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return path or "(top level)"


def _model_at(loc: tuple[int | str, ...]) -> type[BaseModel] | None:
    """The model class that holds the last key of ``loc`` (for "did you mean" hints)."""
    model: type[BaseModel] = Config
    parts = list(loc[:-1])
    while parts:
        part = parts.pop(0)
        field = model.model_fields.get(str(part))
        if field is None:
            return None
        if get_origin(field.annotation) is dict and parts:
            parts.pop(0)  # the mapping's own key, e.g. the tier name
        if parts and isinstance(parts[0], int):
            parts.pop(0)  # an index into a list of sources
        nested = [a for a in get_args(field.annotation) if _is_model(a)]
        if not nested and not _is_model(field.annotation):
            return None
        model = nested[0] if nested else field.annotation  # type: ignore[assignment]
    return model


def _is_model(candidate: object) -> bool:
    return isinstance(candidate, type) and issubclass(candidate, BaseModel)


def _describe(error: Mapping[str, Any]) -> str:
    message = str(error["msg"]).removeprefix("Value error, ")
    if error["type"] == "extra_forbidden":
        model = _model_at(error["loc"])
        known = [f.alias or n for n, f in model.model_fields.items()] if model else []
        hint = difflib.get_close_matches(str(error["loc"][-1]), known, n=1)
        return "unknown key" + (f"; did you mean {hint[0]!r}?" if hint else "")
    if error["type"] == "missing":
        return "required key is missing"
    value = error.get("input")
    if isinstance(value, str | int | float | bool) and repr(value) not in message:
        return f"{message} (got {value!r})"
    return message


def _duplicate_ids(raw: Mapping[str, Any]) -> list[str]:
    sources = raw.get("sources", [])
    ids = [s.get("id") for s in sources if isinstance(s, dict)] if isinstance(sources, list) else []
    return [
        f"sources: id {source_id!r} is used by {count} sources"
        for source_id, count in Counter(ids).items()
        if count > 1 and source_id is not None
    ]


def _route_checks(config: Config, route: RouteConfig, path: str) -> list[str]:
    problems = [
        f"{path}.receivers: unknown receiver {name!r}"
        for name in route.receivers or ()
        if name not in config.receivers
    ]
    digests = {digest.id for digest in config.digests}
    quiet = route.quiet_hours
    wanted = [route.digest, quiet.defer.removeprefix("digest:") if quiet else None]
    for digest in wanted:
        if digest not in {None, "end"} and digest not in digests:
            problems.append(f"{path}: unknown digest {digest!r}")
    for index, child in enumerate(route.routes):
        problems += _route_checks(config, child, f"{path}.routes[{index}]")
    return problems


def _policy_checks(config: Config) -> list[str]:
    """Names that the alert policy tables use must exist (issue 5, helper P1)."""
    problems = [] if config.routes is None else _route_checks(config, config.routes, "routes")
    escalations = {
        **{f"escalation.tiers.{k}": v for k, v in config.escalation.tiers.items()},
        **{f"escalation.rules.{k}": v for k, v in config.escalation.rules.items()},
    }
    for path, policy in escalations.items():
        if policy.to not in config.tiers:
            problems.append(f"{path}.to: unknown tier {policy.to!r}")
    return problems


def _cross_checks(config: Config) -> list[str]:
    problems: list[str] = []
    problems += _policy_checks(config)
    for name in config.slack.mention_tiers:
        if name not in config.tiers:
            problems.append(f"slack.mention_tiers: unknown tier {name!r}")
    digest_ids = [digest.id for digest in config.digests]
    problems += [
        f"digests: id {name!r} is used by {count} digests"
        for name, count in Counter(digest_ids).items()
        if count > 1
    ]
    if not config.tiers:
        problems.append("tiers: at least one tier is needed")
    for index, source in enumerate(config.sources):
        if (source.kind == "page") != (source.page is not None):
            problems.append(f"sources[{index}].page: a [sources.page] table goes with kind 'page'")
    return problems


def load_config(path: Path) -> Config:
    """Read and validate a config file; raise ConfigError listing every problem."""
    name = str(path)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError([f"{name}: cannot read: {exc.strerror or exc}"]) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([f"{name}: invalid TOML: {exc}"]) from None
    except UnicodeDecodeError as exc:
        raise ConfigError([f"{name}: not UTF-8 text: {exc.reason} at byte {exc.start}"]) from None
    # base_dir is set from the file's location; a key of that name in the file is a mistake
    misplaced = [f"{name}: base_dir: unknown key"] if raw.pop("base_dir", None) is not None else []
    duplicates = misplaced + [f"{name}: {p}" for p in _duplicate_ids(raw)]
    try:
        config = Config.model_validate({**raw, "base_dir": path.resolve().parent})
    except ValidationError as exc:
        problems = [f"{name}: {_key_path(e['loc'])}: {_describe(e)}" for e in exc.errors()]
        raise ConfigError(problems + duplicates) from None
    problems = duplicates + [f"{name}: {p}" for p in _cross_checks(config)]
    if problems:
        raise ConfigError(problems)
    return config


@dataclass(frozen=True)
class Secrets:
    """Secret values read from the environment or files. ``repr`` never shows them."""

    slack_token: str | None = None
    slack_webhook_url: str | None = None
    smtp_username: str | None = None
    smtp_password: str | None = None
    web_token: str | None = None

    def __repr__(self) -> str:
        present = [k for k, v in self.__dict__.items() if v]
        return f"Secrets(present={present})"

    def values(self) -> list[str]:
        return [v for v in self.__dict__.values() if v]


_ENV_REFERENCE = re.compile(r"\$(\w+)|\$\{(\w+)\}")


def _expand(path: Path, environ: Mapping[str, str]) -> Path:
    """``$VAR`` and ``${VAR}`` in a secret file's path, from ``environ``; unknown ones kept."""

    def value(found: re.Match[str]) -> str:
        return environ.get(found.group(1) or found.group(2), found.group(0))

    return Path(_ENV_REFERENCE.sub(value, str(path)))


def _read_secret(
    config: Config,
    env_name: str | None,
    file: Path | None,
    environ: Mapping[str, str],
    problems: list[str],
) -> str | None:
    if file is not None:
        expanded = _expand(file, environ).expanduser()
        secret_path = expanded if expanded.is_absolute() else config.base_dir / expanded
        try:
            return secret_path.read_text(encoding="utf-8").strip() or None
        except (OSError, UnicodeDecodeError) as exc:
            reason = exc.reason if isinstance(exc, UnicodeDecodeError) else exc.strerror or exc
            problems.append(f"secret file {secret_path}: cannot read: {reason}")
            return None
    if env_name:
        return environ.get(env_name) or None
    return None


def resolve_secrets(config: Config, environ: Mapping[str, str] | None = None) -> Secrets:
    """Read every secret the config points at; a named file that cannot be read is an error.

    Every unreadable file is reported in one :class:`ConfigError`. ``$VAR`` in a file's
    path (such as systemd's ``${CREDENTIALS_DIRECTORY}``) is taken from ``environ`` too.
    """
    env = os.environ if environ is None else environ
    slack, email = config.slack, config.email
    problems: list[str] = []
    secrets = Secrets(
        slack_token=_read_secret(config, slack.token_env, slack.token_file, env, problems),
        slack_webhook_url=_read_secret(
            config, slack.webhook_url_env, slack.webhook_url_file, env, problems
        ),
        smtp_username=email.username
        or _read_secret(config, email.username_env, None, env, problems),
        smtp_password=_read_secret(config, email.password_env, email.password_file, env, problems),
        web_token=_read_secret(config, config.web.token_env, config.web.token_file, env, problems),
    )
    problems += _web_exposure_problems(config.web, secrets.web_token)
    if problems:
        raise ConfigError(problems)
    return secrets


def _web_exposure_problems(web: WebConfig, token: str | None) -> list[str]:
    """/metrics and /status tell anyone who connects what the desk watches: beyond loopback
    they need a token, unless the operator says another layer guards the port."""
    if not web.enabled or web.is_loopback or token or web.allow_unauthenticated:
        return []
    return [
        f"web.host: {web.host!r} is reachable from other machines: set a token "
        f"(web.token_env or web.token_file) or web.allow_unauthenticated = true"
    ]


def store_url(config: Config, environ: Mapping[str, str] | None = None) -> str | None:
    """The PostgreSQL URL the config points at (None for SQLite). A secret: never log it."""
    store = config.store
    env = os.environ if environ is None else environ
    if store.url is not None:
        return store.url
    problems: list[str] = []
    url = _read_secret(config, store.url_env, store.url_file, env, problems)
    if problems:
        raise ConfigError(problems)
    if url is None and store.is_postgres:
        raise ConfigError([f"store.url_env: environment variable {store.url_env} is not set"])
    return url
