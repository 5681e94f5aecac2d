"""A tiny versioned-migration runner that every store backend shares.

Migrations are plain SQL files named ``NNNN_name.sql`` inside a package
(``mastwatch.store.migrations.<backend>``), read with :mod:`importlib.resources` so they
work from a wheel as well as a checkout. Each backend records what it applied in a
``schema_migrations(version, applied_at)`` table and applies the rest, each in its own
transaction, through the small :class:`MigrationTarget` interface; this module only
finds, checks and orders the files and drives the loop, so SQLite and PostgreSQL keep one
idea of what "version N" means.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from importlib import resources

from mastwatch.errors import MastwatchError

_NAME = re.compile(r"^(?P<version>\d{4})_(?P<name>[a-z0-9_]+)\.sql$")


class MigrationError(MastwatchError):
    """The migration files are malformed (bad name, duplicate or missing version)."""


@dataclass(frozen=True, slots=True)
class Migration:
    """One schema step: its version number, short name and SQL text."""

    version: int
    name: str
    sql: str


def load_migrations(package: str) -> list[Migration]:
    """Every ``NNNN_name.sql`` file of ``package``, in version order.

    Versions must run 1, 2, 3… without gaps or duplicates, so a file lost in packaging
    is an error at start-up rather than a silently skipped schema change.
    """
    found: list[Migration] = []
    for entry in resources.files(package).iterdir():
        match = _NAME.match(entry.name)
        if match is None:
            if entry.name.endswith(".sql"):
                raise MigrationError(
                    f"{package}: migration file name {entry.name!r} is not NNNN_name.sql"
                )
            continue
        found.append(
            Migration(int(match["version"]), match["name"], entry.read_text(encoding="utf-8"))
        )
    found.sort(key=lambda migration: migration.version)
    _check_sequence(package, found)
    return found


def _check_sequence(package: str, migrations: list[Migration]) -> None:
    for expected, migration in enumerate(migrations, start=1):
        if migration.version != expected:
            raise MigrationError(
                f"{package}: expected migration {expected:04d}, found {migration.version:04d}"
                f"_{migration.name} (versions must run 1, 2, 3… without gaps or duplicates)"
            )


def pending(migrations: Iterable[Migration], applied: Iterable[int]) -> list[Migration]:
    """The migrations whose versions are not in ``applied``, in version order."""
    done = set(applied)
    return sorted(
        (migration for migration in migrations if migration.version not in done),
        key=lambda migration: migration.version,
    )


@dataclass(frozen=True, slots=True)
class MigrationTarget:
    """What a backend supplies to :func:`migrate`.

    ``applied_versions`` reads ``schema_migrations`` (creating it if missing).
    ``apply`` runs one migration and records its version in the same transaction; it
    returns False, changing nothing, when another process recorded that version first.
    """

    applied_versions: Callable[[], Awaitable[set[int]]]
    apply: Callable[[Migration], Awaitable[bool]]


async def migrate(target: MigrationTarget, migrations: Iterable[Migration]) -> list[Migration]:
    """Apply every pending migration in order; return the ones this call applied."""
    applied_now: list[Migration] = []
    for migration in pending(migrations, await target.applied_versions()):
        if await target.apply(migration):
            applied_now.append(migration)
    return applied_now
