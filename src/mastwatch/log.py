"""structlog set-up: JSON off a terminal, readable on one, secrets redacted everywhere.

Standard-library loggers (aiohttp, apscheduler, slack_sdk, asyncio) are routed through the
same processors, so a secret that a library puts in a log line is redacted too.
"""

from __future__ import annotations

import io
import json
import logging
import re
import sys
from collections.abc import Iterable, MutableMapping
from typing import Any, TextIO

import structlog
from structlog.typing import EventDict, ExcInfo, Processor, WrappedLogger

REDACTED = "[redacted]"
_SECRET_KEYS = re.compile(r"token|password|passwd|secret|webhook|authorization|api_key", re.I)
# Slack tokens and webhook paths have recognisable shapes; scrub them wherever they appear.
_SECRET_SHAPES = re.compile(
    r"xox[abposr]-[A-Za-z0-9-]+|hooks\.slack\.com/services/[A-Za-z0-9/_-]+|Bearer\s+\S+"
)
# `token=…`, `client_secret=…` in a string (a URL query, a library's message): keep the name.
_SECRET_ASSIGNMENTS = re.compile(
    r"(\b\w*(?:token|password|passwd|secret|api_key|apikey)=)[^\s&\"',;]+", re.I
)


def _may_hold_a_shape(text: str) -> bool:
    """Every match of _SECRET_SHAPES or _SECRET_ASSIGNMENTS holds one of these (the shapes
    are case-sensitive, an assignment has its "="): four substring tests instead of two
    regex scans of every string of every log line, most of which hold none of them. Written
    out, not as ``any()`` over a tuple: its generator cost more than the four tests."""
    return "=" in text or "xox" in text or "Bearer" in text or "hooks.slack.com" in text


_KEY_VERDICTS_KEPT = 4096  # log keys come from code, a few hundred at most; bounded anyway
_secret_key_verdicts: dict[str, bool] = {}


def _is_secret_key(key: str) -> bool:
    """``_SECRET_KEYS.search(key)``, remembered: every line asks it of every key."""
    verdict = _secret_key_verdicts.get(key)
    if verdict is None:
        verdict = _SECRET_KEYS.search(key) is not None
        if len(_secret_key_verdicts) < _KEY_VERDICTS_KEPT:
            _secret_key_verdicts[key] = verdict
    return verdict


_NOISY_LIBRARIES = ("aiohttp.access", "apscheduler", "slack_sdk", "asyncio", "aiosmtplib")


class SecretRedactor:
    """A processor that hides secret values by key name, by known value and by shape."""

    def __init__(self) -> None:
        self._values: tuple[str, ...] = ()

    def register(self, secrets: Iterable[str]) -> None:
        """Remember secret values read at start-up so they are scrubbed from any string."""
        fresh = {s for s in secrets if len(s) >= 4}
        # as JSON writes them too (a quote or backslash escaped), for the rendered-line pass
        fresh |= {json.dumps(s, ensure_ascii=False)[1:-1] for s in fresh}
        known = set(self._values) | fresh
        self._values = tuple(sorted(known, key=len, reverse=True))

    def scrub(self, text: str) -> str:
        for value in self._values:
            text = text.replace(value, REDACTED)
        if not _may_hold_a_shape(text):  # most values: the regexes below cannot match
            return text
        text = _SECRET_SHAPES.sub(REDACTED, text)
        return _SECRET_ASSIGNMENTS.sub(rf"\g<1>{REDACTED}", text)

    def __call__(self, logger: WrappedLogger, name: str, event_dict: EventDict) -> EventDict:
        return {key: self._clean(key, value) for key, value in event_dict.items()}

    def _clean(self, key: str, value: Any) -> Any:
        if _is_secret_key(key) and value not in (None, "", False):
            return REDACTED
        if isinstance(value, str):
            return self.scrub(value)
        if isinstance(value, MutableMapping):
            return {k: self._clean(str(k), v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self._clean(key, v) for v in value]
        return value


redactor = SecretRedactor()
_identity: dict[str, str] = {}


def set_replica(replica_id: str) -> None:
    """Name this process in every log line from now on (HA mode: which replica spoke)."""
    _identity["replica"] = replica_id


def _add_identity(logger: WrappedLogger, name: str, event_dict: EventDict) -> EventDict:
    # a processor, not a contextvar: lines from tasks the scheduler creates carry it too
    for key, value in _identity.items():
        event_dict.setdefault(key, value)
    return event_dict


def _scrub_rendered(logger: WrappedLogger, name: str, rendered: Any) -> Any:
    """The last step: the whole rendered line scrubbed again, so whatever the renderers
    added (an exception's message, its cause and context, a formatted traceback, a note)
    cannot carry a secret out, whichever way it got into the line."""
    return redactor.scrub(rendered) if isinstance(rendered, str) else rendered


def _shared_processors() -> list[Processor]:
    return [
        structlog.contextvars.merge_contextvars,
        _add_identity,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.stdlib.ExtraAdder(),
    ]


def _redacted_traceback(sio: TextIO, exc_info: ExcInfo) -> None:
    """A plain traceback (no locals) with secrets scrubbed, for the console renderer."""
    buffer = io.StringIO()
    structlog.dev.plain_traceback(buffer, exc_info)
    sio.write(redactor.scrub(buffer.getvalue()))


def _renderer(json_output: bool, colors: bool) -> list[Processor]:
    if json_output:
        # show_locals=False: a traceback's locals may hold tokens or feed bodies.
        transformer = structlog.tracebacks.ExceptionDictTransformer(show_locals=False)
        return [
            structlog.processors.ExceptionRenderer(transformer),
            redactor,
            structlog.processors.JSONRenderer(ensure_ascii=False),
            _scrub_rendered,
        ]
    return [
        redactor,
        structlog.dev.ConsoleRenderer(colors=colors, exception_formatter=_redacted_traceback),
        _scrub_rendered,
    ]


class _StreamLogger:
    """Where structlog hands mastwatch's own lines, rendered: straight to the handler's
    stream, under the handler's lock (so they never interleave with the standard library's
    records, which take the same lock). structlog's performance notes advise against
    sending one's own entries through the standard library: its LogRecord, caller lookup
    and the ProcessorFormatter's copy of each record were a third of the cost of a line
    (36.5 -> 23.4 us, bench/changes.md), and the daemon writes two per alert. Levels are
    still the standard library's (``isEnabledFor`` of the logger of the same name), so
    ``root.setLevel`` and per-logger levels hold."""

    def __init__(self, logger: logging.Logger, handler: logging.StreamHandler[TextIO]) -> None:
        self._logger = logger
        self._handler = handler
        self.name = logger.name

    def isEnabledFor(self, level: int) -> bool:  # the standard library's name
        return self._logger.isEnabledFor(level)

    def __getattr__(self, name: str) -> Any:
        """Anything else a standard library logger offers (``getEffectiveLevel``,
        ``handlers``...), for callers that ask structlog's BoundLogger for it."""
        if name.startswith("_"):  # not our own attributes: no recursion before __init__
            raise AttributeError(name)
        return getattr(self._logger, name)

    def write(self, line: str) -> None:
        handler = self._handler
        handler.acquire()
        try:
            handler.stream.write(line + handler.terminator)
            handler.flush()
        except Exception:  # as StreamHandler.emit: a logging failure never raises
            handler.handleError(logging.makeLogRecord({"msg": line, "name": self.name}))
        finally:
            handler.release()

    debug = info = warning = warn = error = exception = critical = fatal = msg = write


class _StreamLoggerFactory:
    def __init__(self, handler: logging.StreamHandler[TextIO]) -> None:
        self._handler = handler
        # names a logger by its caller's module when given none, as structlog's own does
        self._stdlib = structlog.stdlib.LoggerFactory(ignore_frame_names=[__name__])

    def __call__(self, *args: Any) -> _StreamLogger:
        return _StreamLogger(self._stdlib(*args), self._handler)


def configure_logging(level: str = "info", fmt: str = "auto", stream: TextIO | None = None) -> None:
    """Route structlog and the standard library through one redacting pipeline: the same
    processors and renderer, one stream. The standard library's records (aiohttp,
    apscheduler, slack_sdk...) reach it through a handler and ProcessorFormatter;
    mastwatch's own lines skip the standard library (see :class:`_StreamLogger`)."""
    out = stream or sys.stderr
    on_terminal = out.isatty()
    json_output = fmt == "json" or (fmt == "auto" and not on_terminal)
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=_shared_processors(),
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            *_renderer(json_output, colors=on_terminal),
        ],
    )
    handler = logging.StreamHandler(out)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in _NOISY_LIBRARIES:
        logging.getLogger(name).setLevel(max(logging.WARNING, root.level))
    structlog.configure(
        processors=[
            structlog.stdlib.filter_by_level,
            *_shared_processors(),
            structlog.processors.StackInfoRenderer(),
            *_renderer(json_output, colors=on_terminal),
        ],
        logger_factory=_StreamLoggerFactory(handler),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=False,
    )
