"""The import direction DESIGN.md and docs/architecture.md describe, read from the source.

Type-only imports (under ``if TYPE_CHECKING:``) are left out: they cost nothing at run time
and are how a lower module names a type defined above it.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SOURCE = Path(__file__).resolve().parents[2] / "src" / "mastwatch"
GROUND = {"mastwatch", "model", "text", "log", "errors", "fingerprint"}
WINGS = {"sources", "rules", "policy", "store", "notify", "config"}
# rules and policy are pure (no I/O, no clock): neither reaches the wings that do I/O
IO_WINGS = {"sources", "store", "notify"}


def _unit(module: str) -> str:
    """The part of mastwatch a module belongs to: its package under mastwatch, or its module."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


def _without_type_checking(tree: ast.Module) -> ast.Module:
    """``tree`` with the bodies of its ``if TYPE_CHECKING:`` blocks emptied."""
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and ast.unparse(node.test).endswith("TYPE_CHECKING"):
            node.body = []
    return tree


def _imports(path: Path) -> set[str]:
    """The mastwatch modules ``path`` imports at run time (function-level imports too)."""
    found: set[str] = set()
    for node in ast.walk(_without_type_checking(ast.parse(path.read_text(encoding="utf-8")))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return {name for name in found if name == "mastwatch" or name.startswith("mastwatch.")}


def _module_name(path: Path) -> str:
    parts = path.relative_to(SOURCE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


EDGES = sorted(
    (_module_name(path), target)
    for path in SOURCE.rglob("*.py")
    for target in _imports(path)
    if _unit(target) != _unit(_module_name(path))
)


def _offending(sources: set[str], allowed: set[str]) -> list[str]:
    return [f"{a} -> {b}" for a, b in EDGES if _unit(a) in sources and _unit(b) not in allowed]


def test_the_edges_are_read_from_the_source() -> None:
    # a check over no edges would pass whatever the code does
    assert ("mastwatch.pipeline", "mastwatch.rules") in EDGES
    assert ("mastwatch.sources.worker_rules", "mastwatch.fingerprint") in EDGES
    # type-only: mastwatch.metrics names PollOutcome under TYPE_CHECKING
    assert not any(a == "mastwatch.metrics" and _unit(b) == "pipeline" for a, b in EDGES)


def test_the_ground_floor_imports_only_the_ground_floor() -> None:
    assert _offending(GROUND, GROUND) == []


def test_the_wings_never_import_upward() -> None:
    assert _offending(WINGS, GROUND | WINGS) == []


@pytest.mark.parametrize("pure", ["rules", "policy"])
def test_the_pure_wings_reach_no_io(pure: str) -> None:
    assert _offending({pure}, GROUND | WINGS - IO_WINGS) == []


def test_a_wing_imports_another_only_by_its_public_face() -> None:
    """Another wing's package (``mastwatch.rules``) or module (``mastwatch.config``), never
    a module inside it."""
    inside = [
        f"{a} -> {b}"
        for a, b in EDGES
        if _unit(a) in WINGS and _unit(b) in WINGS and b.count(".") > 1
    ]
    assert inside == []
