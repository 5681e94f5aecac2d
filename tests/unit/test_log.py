"""configure_logging: JSON off a terminal, one pipeline for structlog and stdlib, redaction."""

from __future__ import annotations

import copy
import io
import json
import logging
import threading
from collections.abc import Iterator
from typing import Any

import pytest
import structlog

from mastwatch.log import REDACTED, configure_logging, redactor

NOISY = ("aiohttp.access", "apscheduler", "slack_sdk", "asyncio", "aiosmtplib")


class TerminalStream(io.StringIO):
    """A stream that says it is a terminal, as stderr does in an interactive shell."""

    def isatty(self) -> bool:
        return True


@pytest.fixture(autouse=True)
def restore_logging(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Put the root logger, library levels, structlog and the redactor back after each test."""
    root = logging.getLogger()
    saved_handlers, saved_level = root.handlers[:], root.level
    saved_levels = {name: logging.getLogger(name).level for name in NOISY}
    saved_structlog = structlog.get_config()
    monkeypatch.setattr(redactor, "_values", ())
    yield
    root.handlers[:] = saved_handlers
    root.setLevel(saved_level)
    for name, level in saved_levels.items():
        logging.getLogger(name).setLevel(level)
    structlog.reset_defaults()
    structlog.configure(**saved_structlog)


def json_logging(level: str = "info") -> io.StringIO:
    stream = io.StringIO()
    configure_logging(level, "auto", stream)
    return stream


def records(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


# --- format and routing ---------------------------------------------------------------------


def test_json_lines_when_the_stream_is_not_a_terminal() -> None:
    stream = json_logging()

    structlog.get_logger("mastwatch.sources").info("feed_polled", source="wire-en", items=3)
    structlog.get_logger("mastwatch.sources").warning("feed_parse_failed", source="ja")

    first, second = records(stream)
    assert first["event"] == "feed_polled"
    assert (first["source"], first["items"]) == ("wire-en", 3)
    assert (first["level"], first["logger"]) == ("info", "mastwatch.sources")
    assert first["timestamp"].endswith("Z")
    assert (second["event"], second["level"]) == ("feed_parse_failed", "warning")


def test_non_ascii_is_kept_readable() -> None:
    stream = json_logging()

    structlog.get_logger("t").info("rule_matched", title="米国債保有残高")

    assert "米国債保有残高" in stream.getvalue()


def test_stdlib_loggers_go_through_the_same_pipeline() -> None:
    stream = json_logging()

    logging.getLogger("aiohttp.client").warning("connection to %s failed", "ministry.example.jp")

    (record,) = records(stream)
    assert record["event"] == "connection to ministry.example.jp failed"
    assert (record["level"], record["logger"]) == ("warning", "aiohttp.client")
    assert "timestamp" in record


def test_level_filters_both_kinds_of_logger() -> None:
    stream = json_logging("warning")

    structlog.get_logger("t").info("quiet")
    logging.getLogger("some.library").info("quiet too")
    structlog.get_logger("t").error("loud")

    assert [r["event"] for r in records(stream)] == ["loud"]


def test_noisy_libraries_only_warn() -> None:
    stream = json_logging("debug")

    logging.getLogger("aiohttp.access").info("GET /feed.xml 200")
    logging.getLogger("asyncio").debug("poll took 0.1 s")
    logging.getLogger("asyncio").warning("slow callback")
    structlog.get_logger("mastwatch").debug("own_debug")

    assert [r["event"] for r in records(stream)] == ["slow callback", "own_debug"]


def test_a_level_set_on_a_named_logger_holds_for_structlog_lines() -> None:
    stream = json_logging("debug")
    logging.getLogger("mastwatch.quiet").setLevel(logging.WARNING)
    try:
        structlog.get_logger("mastwatch.quiet").info("dropped")
        structlog.get_logger("mastwatch.quiet").warning("kept")
        structlog.get_logger("mastwatch.other").debug("kept too")
    finally:
        logging.getLogger("mastwatch.quiet").setLevel(logging.NOTSET)

    assert [r["event"] for r in records(stream)] == ["kept", "kept too"]


def test_own_and_library_lines_from_many_threads_never_interleave() -> None:
    stream = json_logging()
    lines_each = 200

    def own(worker: int) -> None:
        for n in range(lines_each):
            structlog.get_logger("mastwatch.t").info("own", worker=worker, n=n, pad="x" * 300)

    def library(worker: int) -> None:
        for n in range(lines_each):
            logging.getLogger("some.library").warning("library %d %d %s", worker, n, "y" * 300)

    threads = [threading.Thread(target=f, args=(w,)) for w in range(3) for f in (own, library)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    parsed = records(stream)  # every line whole JSON
    assert len(parsed) == len(threads) * lines_each
    own_lines = [(r["worker"], r["n"]) for r in parsed if r["event"] == "own"]
    for worker in range(3):  # each thread's own lines in the order it wrote them
        assert [n for w, n in own_lines if w == worker] == list(range(lines_each))


def test_the_stream_logger_passes_other_questions_to_the_stdlib_logger() -> None:
    json_logging("warning")
    bound = structlog.get_logger("mastwatch.asked").bind()

    assert bound.getEffectiveLevel() == logging.WARNING  # asked of the stdlib logger
    assert copy.copy(bound._logger).name == "mastwatch.asked"  # no recursion in a copy


class BrokenStream(io.StringIO):
    def write(self, text: str) -> int:
        raise OSError(28, "No space left on device")


def test_a_stream_that_fails_never_raises_into_the_caller(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(logging, "raiseExceptions", True)  # report it, as by default
    configure_logging("info", "json", BrokenStream())

    structlog.get_logger("mastwatch.t").info("lost_line", source="wire-en")
    logging.getLogger("some.library").warning("lost too")

    reported = capsys.readouterr().err
    assert "No space left on device" in reported  # told on stderr, as the stdlib does
    assert reported.count("--- Logging error ---") == 2


def test_configuring_twice_keeps_one_handler() -> None:
    configure_logging("info", "json", io.StringIO())
    stream = json_logging()

    structlog.get_logger("t").info("once")

    assert len(records(stream)) == 1
    assert len(logging.getLogger().handlers) == 1


def test_console_format_is_readable_and_plain_off_a_terminal() -> None:
    stream = io.StringIO()
    configure_logging("info", "console", stream)

    structlog.get_logger("t").info("feed_polled", source="wire-en")

    text = stream.getvalue()
    assert "feed_polled" in text
    assert "source=wire-en" in text
    assert "\x1b[" not in text  # no colour codes in a file
    with pytest.raises(json.JSONDecodeError):
        json.loads(text)


def test_auto_format_on_a_terminal_is_the_console_renderer() -> None:
    stream = TerminalStream()
    configure_logging("info", "auto", stream)

    structlog.get_logger("t").info("feed_polled", source="wire-en")

    assert "feed_polled" in stream.getvalue()
    assert "\x1b[" in stream.getvalue()
    assert not stream.getvalue().lstrip().startswith("{")


def test_json_format_is_forced_even_on_a_terminal() -> None:
    stream = TerminalStream()
    configure_logging("info", "json", stream)

    structlog.get_logger("t").info("feed_polled")

    assert json.loads(stream.getvalue())["event"] == "feed_polled"


# --- redaction ------------------------------------------------------------------------------


def test_values_of_secret_keys_are_redacted() -> None:
    stream = json_logging()

    structlog.get_logger("t").info(
        "connecting",
        token="plain-token-value",
        smtp_password="pw-value-123",
        headers={"Authorization": "Basic dXNlcjpwYXNz", "Accept": "application/json"},
        token_missing=None,
    )

    (record,) = records(stream)
    assert record["token"] == REDACTED
    assert record["smtp_password"] == REDACTED
    assert record["headers"] == {"Authorization": REDACTED, "Accept": "application/json"}
    assert record["token_missing"] is None  # nothing there to hide
    for value in ("plain-token-value", "pw-value-123", "dXNlcjpwYXNz"):
        assert value not in stream.getvalue()


def test_key_value_pairs_inside_strings_are_redacted() -> None:
    stream = json_logging()

    logging.getLogger("aiohttp.client").warning(
        "GET https://api.example.org/feed?token=abc123def&page=2 failed; password=hunter22"
    )
    structlog.get_logger("t").info("retry", url="https://x.example/?client_secret=s3cr3t&a=1")

    text = stream.getvalue()
    for value in ("abc123def", "hunter22", "s3cr3t"):
        assert value not in text
    assert f"token={REDACTED}&page=2" in text
    assert f"password={REDACTED}" in text
    assert f"client_secret={REDACTED}&a=1" in text


def test_registered_values_are_redacted_anywhere() -> None:
    redactor.register(["pw-Q7v9-registered", "bad"])  # too short to scrub safely: ignored
    stream = json_logging()

    structlog.get_logger("t").info(
        "smtp_login_failed",
        detail="server said: bad credentials pw-Q7v9-registered!",
        attempts=["xpw-Q7v9-registeredx", "fine"],
    )
    logging.getLogger("aiosmtplib").error("AUTH PLAIN pw-Q7v9-registered rejected")

    text = stream.getvalue()
    assert "pw-Q7v9-registered" not in text
    assert text.count(REDACTED) == 3
    assert "fine" in text
    assert "bad credentials" in text


@pytest.mark.parametrize(
    "secret",
    [
        "xoxb-1234567890-0987654321-AbCdEfGhIjKl",
        "xoxp-1111-2222-3333",
        "hooks.slack.com/services/T0000/B0000/XXXXXXXXXXXXXXXX",
        "Bearer eyJhbGciOiJIUzI1NiJ9.payload.sig",
    ],
)
def test_secret_shapes_are_redacted(secret: str) -> None:
    stream = json_logging()

    structlog.get_logger("t").warning("slack_post_failed", detail=f"request with {secret} failed")
    logging.getLogger("slack_sdk.web").warning("sending %s", secret)

    assert secret not in stream.getvalue()
    assert [r.get("detail", r["event"]).count(REDACTED) for r in records(stream)] == [1, 1]


# --- exceptions -----------------------------------------------------------------------------


def _fail_with_a_secret_in_a_local() -> None:
    api_credentials = "local-secret-Zx81-value"
    raise ValueError(f"upstream rejected {len(api_credentials)}-char key xoxb-999-leaked")


def test_exception_traceback_is_rendered_without_locals() -> None:
    stream = json_logging()
    log = structlog.get_logger("mastwatch.notify")

    try:
        _fail_with_a_secret_in_a_local()
    except ValueError:
        log.exception("delivery_failed", channel="#alerts")

    text = stream.getvalue()
    (record,) = records(stream)
    (exception,) = record["exception"]
    assert record["event"] == "delivery_failed"
    assert exception["exc_type"] == "ValueError"
    assert "upstream rejected" in exception["exc_value"]
    assert [f["name"] for f in exception["frames"]][-1] == "_fail_with_a_secret_in_a_local"
    assert "local-secret-Zx81-value" not in text
    assert "api_credentials" not in text
    assert "xoxb-999-leaked" not in text


def test_stdlib_exception_is_rendered_and_scrubbed_too() -> None:
    stream = json_logging()

    try:
        _fail_with_a_secret_in_a_local()
    except ValueError:
        logging.getLogger("asyncio").exception("Task exception was never retrieved")

    (record,) = records(stream)
    assert record["exception"][0]["exc_type"] == "ValueError"
    assert "local-secret-Zx81-value" not in stream.getvalue()
    assert "xoxb-999-leaked" not in stream.getvalue()


def test_console_traceback_has_no_locals_and_no_secrets() -> None:
    stream = io.StringIO()
    configure_logging("info", "console", stream)

    try:
        _fail_with_a_secret_in_a_local()
    except ValueError:
        structlog.get_logger("t").exception("delivery_failed")

    text = stream.getvalue()
    assert "Traceback (most recent call last)" in text
    assert "_fail_with_a_secret_in_a_local" in text
    assert "ValueError: upstream rejected" in text
    assert "local-secret-Zx81-value" not in text
    assert "xoxb-999-leaked" not in text
