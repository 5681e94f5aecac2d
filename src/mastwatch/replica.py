"""Replica identity and coordination in HA mode (several daemons, one PostgreSQL).

A replica is named ``hostname-pid-random`` unless ``ha.replica_id`` or the
``MASTWATCH_REPLICA_ID`` environment variable says otherwise. The name is in every log
line (see :func:`mastwatch.log.set_replica`) and in the ``mastwatch_replica_info`` metric.
Replicas never talk to each other: :class:`SourceLeases` claims a source in the store
before a poll, and :func:`heartbeat_loop` records that the replica lives, so ``status``
can show who holds what.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import socket
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime

import structlog

from mastwatch import __version__
from mastwatch.config import Config
from mastwatch.model import SourceState
from mastwatch.store.base import CoordinationStore

log = structlog.get_logger(__name__)
REPLICA_ENV = "MASTWATCH_REPLICA_ID"


def replica_id(config: Config, environ: Mapping[str, str] | None = None) -> str:
    """The configured name, else $MASTWATCH_REPLICA_ID, else ``hostname-pid-random``."""
    env = os.environ if environ is None else environ
    chosen = config.ha.replica_id or env.get(REPLICA_ENV)
    if chosen:
        return chosen
    # the random part tells apart two processes that reuse a pid (containers restart at 1)
    return f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"


def replica_info() -> dict[str, str]:
    return {"host": socket.gethostname(), "pid": str(os.getpid()), "version": __version__}


@dataclass(frozen=True)
class SourceLeases:
    """A source is polled only by the replica that leased it (see Store.claim_source)."""

    store: CoordinationStore
    owner: str
    lease_seconds: float

    async def claim(
        self, source_id: str, now: datetime, due_tolerance: float | None
    ) -> SourceState | None:
        return await self.store.claim_source(
            source_id, self.owner, now, self.lease_seconds, due_tolerance
        )

    async def release(self, source_id: str) -> None:
        await self.store.release_source(source_id, self.owner)


async def heartbeat_loop(
    store: CoordinationStore,
    owner: str,
    interval: float,
    clock: Callable[[], datetime],
) -> None:
    """Beat until cancelled. A failed beat is logged, not fatal: the database may be
    restarting, and the leases, not the heartbeat, keep the work safe."""
    info = replica_info()
    while True:
        try:
            await store.heartbeat(owner, clock(), info)
        except Exception as exc:  # asyncpg's errors share no useful base class
            log.warning("replica_heartbeat_failed", error=f"{type(exc).__name__}: {exc}")
        await asyncio.sleep(interval)
