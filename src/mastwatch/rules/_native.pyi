"""Types of the C module built from ``_native.c`` (see there and ``evaluate.py``)."""

from array import array
from collections.abc import Iterable, Sequence

from mastwatch.model import Evidence, Match

SOURCE_SHA256: str  # of the _native.c it was built from

def decide(
    found: dict[int, int],
    bit_of: dict[int, int],
    pairs: array[int],
    candidates: Iterable[int],
) -> tuple[list[int], list[int] | None, list[int] | None]: ...
def explain(
    found: dict[int, int],
    hits: dict[int, list[tuple[int, int, int]]],
    at: array[int],
    ints: array[int],
    objects: tuple[object, ...],
    fired: Sequence[int],
    fields: tuple[str, ...],
    evidence: type[Evidence],
    match: type[Match],
    max_evidence: int,
) -> list[Match | None]: ...
