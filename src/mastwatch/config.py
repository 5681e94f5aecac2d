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

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
)

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
    path: Path = Field(Path("var/mastwatch.db"), description="SQLite file, relative to config")


class RulesConfig(_Model):
    dir: Path = Path("rules")


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


class PageConfig(_Model):
    """CSS selectors that turn an HTML list page into items (``kind = "page"``)."""

    item: str = Field(min_length=1)
    title: str = Field(min_length=1)
    link: str = Field(min_length=1)
    date: str | None = None
    summary: str | None = None
    # links are resolved against the fetched URL, or this one (for file: snapshots)
    base_url: str | None = None


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


def _default_tiers() -> dict[str, TierConfig]:
    return {name: TierConfig(console=True) for name in DEFAULT_TIERS}


class Config(_Model):
    store: StoreConfig = StoreConfig()
    rules: RulesConfig = RulesConfig()
    http: HttpConfig = HttpConfig()
    schedule: ScheduleConfig = ScheduleConfig()
    delivery: DeliveryConfig = DeliveryConfig()
    log: LogConfig = LogConfig()
    performance: PerformanceConfig = PerformanceConfig()
    web: WebConfig = WebConfig()
    slack: SlackConfig = SlackConfig()
    email: EmailConfig = EmailConfig()
    tiers: dict[str, TierConfig] = Field(default_factory=_default_tiers)
    sources: tuple[SourceConfig, ...] = ()
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
        known = list(model.model_fields) if model else []
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


def _cross_checks(config: Config) -> list[str]:
    problems: list[str] = []
    for name in config.slack.mention_tiers:
        if name not in config.tiers:
            problems.append(f"slack.mention_tiers: unknown tier {name!r}")
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
