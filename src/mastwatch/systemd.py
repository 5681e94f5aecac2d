"""The sd_notify protocol, spoken directly: one datagram per state change, no dependency.

systemd passes ``NOTIFY_SOCKET`` (a path, or ``@name`` for the abstract namespace) to a
``Type=notify`` service and reads ``KEY=value`` lines from datagrams sent there. Outside
systemd the variable is unset and every call here is a cheap no-op, so the daemon calls
them unconditionally. A failed send is logged once and never stops the daemon: the
watchdog, if armed, will notice a daemon that truly cannot talk to systemd.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Mapping
from dataclasses import dataclass, field

import structlog

log = structlog.get_logger(__name__)


def socket_address(value: str) -> str | bytes:
    """The address to send to: ``@name`` is Linux's abstract namespace (a leading NUL)."""
    if value.startswith("@"):
        return b"\0" + value[1:].encode()
    return value


def monotonic_usec() -> int:
    """CLOCK_MONOTONIC in microseconds, as systemd wants with ``RELOADING=1``."""
    return time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000


def watchdog_interval(environ: Mapping[str, str]) -> float | None:
    """Seconds between ``WATCHDOG=1`` pings: half of ``WATCHDOG_USEC``, as sd_watchdog_enabled
    advises; None when no watchdog is armed for this process (``WATCHDOG_PID`` names another)."""
    raw = environ.get("WATCHDOG_USEC", "")
    pid = environ.get("WATCHDOG_PID")
    if not raw.isdigit() or int(raw) == 0:
        return None
    if pid is not None and pid != str(os.getpid()):
        return None
    return int(raw) / 1_000_000 / 2


@dataclass
class SystemdNotifier:
    """Sends sd_notify messages to ``address``; a notifier without one does nothing."""

    address: str | bytes | None
    _socket: socket.socket | None = field(default=None, init=False, repr=False)
    _warned: bool = field(default=False, init=False, repr=False)

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] | None = None) -> SystemdNotifier:
        env = os.environ if environ is None else environ
        value = env.get("NOTIFY_SOCKET", "")
        return cls(socket_address(value) if value else None)

    @property
    def enabled(self) -> bool:
        return self.address is not None

    def notify(self, **fields: str | int) -> bool:
        """Send ``KEY=value`` lines (keyword names are the keys); True if the datagram left."""
        if self.address is None:
            return False
        message = "\n".join(f"{key}={value}" for key, value in fields.items()).encode()
        try:
            if self._socket is None:
                self._socket = socket.socket(
                    socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC
                )
                self._socket.setblocking(False)  # never stall the event loop on systemd
            self._socket.sendto(message, self.address)
        except OSError as exc:
            if not self._warned:
                log.warning("sd_notify_failed", error=str(exc), fields=sorted(fields))
                self._warned = True
            return False
        return True

    def ready(self, status: str = "") -> bool:
        return self.notify(READY=1, **({"STATUS": status} if status else {}))

    def reloading(self) -> bool:
        # systemd ≥ 253 checks MONOTONIC_USEC to tell this reload from an older one
        return self.notify(RELOADING=1, MONOTONIC_USEC=monotonic_usec())

    def stopping(self) -> bool:
        return self.notify(STOPPING=1)

    def watchdog(self) -> bool:
        return self.notify(WATCHDOG=1)

    def close(self) -> None:
        if self._socket is not None:
            self._socket.close()
            self._socket = None
