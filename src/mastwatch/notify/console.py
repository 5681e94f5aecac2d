"""Console notifier: prints alerts to a terminal (``run --once``, dry runs, development)."""

from __future__ import annotations

import sys
from typing import TextIO

from mastwatch.model import Delivery
from mastwatch.notify.base import NotifierLimits
from mastwatch.notify.render import console_text

SEPARATOR = "-" * 72


class ConsoleNotifier:
    """Writes each alert as a readable block, followed by a separator line."""

    channel = "console"

    def __init__(self, stream: TextIO | None = None) -> None:
        self._stream = stream
        self.limits = NotifierLimits()

    async def send(self, delivery: Delivery) -> str | None:
        """Write the alert and flush, so it is seen at once even when piped."""
        # sys.stdout is looked up now, not at construction, so redirection (pytest's
        # capsys, contextlib.redirect_stdout) made after start-up is honoured
        stream = self._stream if self._stream is not None else sys.stdout
        stream.write(f"{console_text(delivery.alert)}\n{SEPARATOR}\n")
        stream.flush()
        return None

    async def close(self) -> None:
        """Nothing to release: the stream belongs to the caller."""
