"""The two implementations of matching's growing steps (see ``mastwatch/rules/_native.c``):
tests run the Python one by switching the C one off for a while."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from mastwatch.rules import evaluate


@contextmanager
def python_only() -> Iterator[None]:
    """Within: ``mastwatch.rules.evaluate`` decides and explains in Python, as an install
    without a C compiler does."""
    native = evaluate._native
    evaluate._native = None
    try:
        yield
    finally:
        evaluate._native = native
