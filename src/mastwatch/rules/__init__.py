"""Operator-written YAML rules: loading with positioned errors, compiling, pure matching.

Typical use::

    ruleset = load_rules(Path("rules"), tiers=("critical", "high", "normal", "digest"))
    for found in match(ruleset, make_document(item)):
        ...

See :mod:`mastwatch.rules.compile` for how terms match (word boundaries, prefixes, plurals,
CJK substrings) and :mod:`mastwatch.rules.schema` for the file format.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from mastwatch.rules.compile import RuleSet, compile_rules
from mastwatch.rules.evaluate import match, rule_fires, run_inline_tests
from mastwatch.rules.schema import InlineTest, MatchNode, Rule, load_rule_files, rule_files

__all__ = [
    "InlineTest",
    "MatchNode",
    "Rule",
    "RuleSet",
    "compile_rules",
    "load_rule_files",
    "load_rules",
    "match",
    "rule_files",
    "rule_fires",
    "run_inline_tests",
]


def load_rules(directory: Path | str, tiers: Sequence[str]) -> RuleSet:
    """Load, validate and compile every ``*.yaml``/``*.yml`` file directly in ``directory``.

    Files are read in name order; subdirectories (``rules/lists/``) are ignored. Raises
    :class:`~mastwatch.errors.RuleError` listing every problem found, each with
    ``file:line:column``.
    """
    return compile_rules(load_rule_files(rule_files(directory), tiers))
