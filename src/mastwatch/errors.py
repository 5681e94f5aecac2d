"""The one exception family of mastwatch."""

from __future__ import annotations


class MastwatchError(Exception):
    """Base of every error mastwatch raises on purpose."""


class ConfigError(MastwatchError):
    """The configuration file is invalid; ``problems`` lists every one, with file and key."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("\n".join(problems))


class RuleError(MastwatchError):
    """The rule set is invalid; ``problems`` lists every one, with file:line:column."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("\n".join(problems))


class FetchError(MastwatchError):
    """A source could not be fetched or parsed; the message names the source."""


class DeliveryError(MastwatchError):
    """A notifier could not deliver a message."""


class RetryableDeliveryError(DeliveryError):
    """Temporary: try again later (after ``retry_after`` seconds when the server said so)."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class PermanentDeliveryError(DeliveryError):
    """Will never succeed as configured (bad channel, bad auth, rejected recipient)."""
