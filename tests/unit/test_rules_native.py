"""The C module of the matcher (``mastwatch/rules/_native.c``): built, equal to the Python
steps it stands in for, strict about what it is given, and without leaked references."""

from __future__ import annotations

import hashlib
import sys
from array import array
from pathlib import Path

import pytest

from mastwatch.model import Evidence, Item, Match
from mastwatch.rules import MatchNode, Rule, compile_rules, match
from mastwatch.rules import evaluate as evaluate_module
from mastwatch.rules.evaluate import MAX_EVIDENCE, Scan, python_steps
from mastwatch.rules.tree import FIELDS
from mastwatch.text import make_document

native = evaluate_module._native


def _rule(number: int, *children: object) -> Rule:
    tree = MatchNode(op="all", children=children)  # type: ignore[arg-type]
    return Rule(id=f"r{number}", title=f"Rule {number}", tier="high", match=tree)


def test_the_c_module_is_built_by_the_install() -> None:
    # `pip install -e .` (make test, make run) compiles it; the Python steps are the
    # fallback for an install without a compiler, not what these tests should run alone
    assert native is not None, "mastwatch.rules._native did not build: see pip's output"


def test_the_c_module_was_built_from_the_source_as_it_is() -> None:
    assert native is not None
    source = Path(evaluate_module.__file__).with_name("_native.c")
    assert hashlib.sha256(source.read_bytes()).hexdigest() == native.SOURCE_SHA256, (
        "_native.c changed since the module was built: `make test` rebuilds it"
    )


def test_evidence_is_capped_the_same_in_both() -> None:
    ruleset = compile_rules([_rule(1, "tariff", MatchNode(op="any", children=("yen",)))])
    doc = make_document(Item("s", "k", "yen " + "tariff " * (MAX_EVIDENCE + 50)))
    (found,) = match(ruleset, doc)
    with python_steps():
        (in_python,) = match(ruleset, doc)
    assert found == in_python
    assert len(found.evidence) == MAX_EVIDENCE
    assert found.matched == ("tariff", "yen")


def test_a_rule_of_more_steps_than_the_c_stack_holds_is_explained_in_python() -> None:
    words = [f"word{number}" for number in range(70)]
    ruleset = compile_rules([_rule(1, *words)])
    doc = make_document(Item("s", "k", " ".join(reversed(words))))
    (found,) = match(ruleset, doc)
    with python_steps():
        (in_python,) = match(ruleset, doc)
    assert found == in_python
    assert found.matched == tuple(words)
    assert type(found) is Match
    assert all(type(evidence) is Evidence for evidence in found.evidence)


def test_explaining_leaves_no_reference_behind() -> None:
    ruleset = compile_rules([_rule(1, "tariff", MatchNode(op="any", children=("yen", "usd")))])
    doc = make_document(Item("s", "k", "tariff on yen", summary="tariffs in usd"))
    spelling = ruleset.explain_table.objects[4]  # the first step as the rule wrote it
    rule_id = ruleset.explain_table.objects[0]
    before = sys.getrefcount(spelling), sys.getrefcount(rule_id)
    for _ in range(1000):
        (found,) = match(ruleset, doc)
    assert found.matched == ("tariff", "yen", "usd")
    del found
    assert (sys.getrefcount(spelling), sys.getrefcount(rule_id)) == before


def test_decide_rejects_what_is_not_the_rule_set_s_data() -> None:
    assert native is not None
    pairs = array("Q", [0, 0])
    with pytest.raises(TypeError, match="array"):
        native.decide({}, {}, array("i", [0, 0, 0, 0]), [0])
    with pytest.raises(TypeError, match="dicts"):
        native.decide([], {}, pairs, [0])  # type: ignore[arg-type]
    with pytest.raises(IndexError, match="no rule at position 1"):
        native.decide({}, {}, pairs, [1])
    with pytest.raises(IndexError):
        native.decide({}, {}, pairs, [-1])
    with pytest.raises(TypeError):
        native.decide({}, {}, pairs, ["0"])  # type: ignore[list-item]
    assert native.decide({}, {}, pairs, [0]) == ([], None, [0])  # not decided by bits


def test_explain_rejects_a_table_that_does_not_hold_the_rule() -> None:
    assert native is not None
    ruleset = compile_rules([_rule(1, "tariff", MatchNode(op="any", children=("yen",)))])
    scan = Scan(ruleset, make_document(Item("s", "k", "tariff yen")))
    table = ruleset.explain_table

    def explain(at: array[int], ints: array[int], fired: list[int]) -> object:
        assert native is not None
        return native.explain(
            scan.found, scan.hits, at, ints, table.objects, fired,
            FIELDS, Evidence, Match, MAX_EVIDENCE,
        )  # fmt: skip

    assert explain(table.at, table.ints, [0]) == evaluate_module.explain(scan, [0])
    with pytest.raises(IndexError, match="no rule at position 1"):
        explain(table.at, table.ints, [1])
    with pytest.raises(ValueError, match="no rule at 0"):
        explain(table.at, array("i", [99, 0]), [0])  # more steps than the table holds
    with pytest.raises(ValueError, match="no rule at 5"):
        explain(array("i", [5]), table.ints, [0])
    with pytest.raises(TypeError, match="named tuple"):
        native.explain(
            scan.found, scan.hits, table.at, table.ints, table.objects, [0],
            FIELDS, dict, Match, MAX_EVIDENCE,  # type: ignore[arg-type]
        )  # fmt: skip


def test_python_steps_switches_the_c_module_off_and_back_on() -> None:
    ruleset = compile_rules([_rule(1, "tariff", MatchNode(op="any", children=("yen",)))])
    doc = make_document(Item("s", "k", "tariff yen"))
    with python_steps():
        assert evaluate_module._native is None
        in_python = match(ruleset, doc)
    assert evaluate_module._native is native
    assert match(ruleset, doc) == in_python != []
