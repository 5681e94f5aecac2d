"""Operator-written YAML rules: loading with positioned errors, compiling, pure matching.

Typical use::

    ruleset = load_rules(Path("rules"), tiers=("critical", "high", "normal", "digest"))
    for found in match(ruleset, make_document(item)):
        ...

See docs/rules.md for the language, :mod:`mastwatch.rules.compile` for how terms match
(word boundaries, prefixes, plurals, CJK substrings), :mod:`mastwatch.rules.schema` for the
file format and :mod:`mastwatch.rules.reference` for a plain evaluator the compiled matcher
is tested against.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from mastwatch.rules.compile import RuleSet, compile_rules
from mastwatch.rules.diff import RuleSetDiff, diff_rulesets
from mastwatch.rules.evaluate import match, rule_fires, run_inline_tests
from mastwatch.rules.fields import field_texts
from mastwatch.rules.schema import (
    InlineTest,
    MatchNode,
    Near,
    Rule,
    Term,
    load_rule_files,
    load_term_lists,
    rule_files,
)

__all__ = [
    "InlineTest",
    "MatchNode",
    "Near",
    "Rule",
    "RuleSet",
    "RuleSetDiff",
    "Term",
    "compile_rules",
    "diff_rulesets",
    "field_texts",
    "load_rule_files",
    "load_rules",
    "load_term_lists",
    "match",
    "rule_files",
    "rule_fires",
    "run_inline_tests",
]


def load_rules(directory: Path | str, tiers: Sequence[str]) -> RuleSet:
    """Load, validate and compile every ``*.yaml``/``*.yml`` file directly in ``directory``.

    Files are read in name order; named term lists come from ``directory/lists/``. Raises
    :class:`~mastwatch.errors.RuleError` listing every problem found, each with
    ``file:line:column``.
    """
    return compile_rules(load_rule_files(rule_files(directory), tiers))
