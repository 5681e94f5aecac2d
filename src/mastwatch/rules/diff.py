"""What a reload changed: rules added, removed and changed, by id."""

from __future__ import annotations

from dataclasses import dataclass

from mastwatch.rules.compile import RuleSet

__all__ = ["RuleSetDiff", "diff_rulesets"]


@dataclass(frozen=True, slots=True)
class RuleSetDiff:
    """Rule ids added, removed and changed (in content, not in position) between two sets."""

    added: tuple[str, ...]
    removed: tuple[str, ...]
    changed: tuple[str, ...]

    def __bool__(self) -> bool:
        return bool(self.added or self.removed or self.changed)


def diff_rulesets(old: RuleSet, new: RuleSet) -> RuleSetDiff:
    """Compare two rule sets by rule id and canonical content (file and line do not count)."""
    before = {rule.id: rule.canonical() for rule in old.rules}
    after = {rule.id: rule.canonical() for rule in new.rules}
    return RuleSetDiff(
        added=tuple(sorted(after.keys() - before.keys())),
        removed=tuple(sorted(before.keys() - after.keys())),
        changed=tuple(sorted(i for i in before.keys() & after.keys() if before[i] != after[i])),
    )
