"""Rule files (YAML) read into frozen models, with every problem reported by file:line:column.

A rule file holds one rule mapping or a list of rule mappings::

    - id: tariffs
      title: Tariffs and import duties
      tier: high
      labels: {desk: trade}
      match:
        all:
          - any: [tariff*, 関税, "Section 232"]
          - none: [{list: price-plan-tariffs}]
      tests:
        - title: "US raises tariffs on imported cars"
          expect: match

Loading never stops at the first mistake: every problem in every file is collected and
raised together as one :class:`~mastwatch.errors.RuleError`, each message starting with
``path:line:column:`` (1-based) so an editor can jump to it. Named term lists live in
``lists/`` beside the rule files (see :func:`load_term_lists`).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import MarkedYAMLError, YAMLError

from mastwatch.errors import RuleError
from mastwatch.rules.reader import (
    RULE_ID,
    NodeReader,
    RuleReader,
    TermLists,
    term_problem,
    type_name,
)
from mastwatch.rules.tree import InlineTest, MatchNode, Near, Rule, Term

__all__ = [
    "InlineTest",
    "MatchNode",
    "Near",
    "Rule",
    "Term",
    "load_rule_files",
    "load_term_lists",
    "rule_files",
    "term_problem",
]

RULE_FILE_SUFFIXES = (".yaml", ".yml")
LISTS_DIRECTORY = "lists"


def rule_files(directory: Path | str) -> list[Path]:
    """The rule files directly in ``directory`` (``*.yaml``, ``*.yml``), sorted by name.

    Subdirectories (such as ``lists/``) are not rule files and are skipped.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise RuleError([f"{directory}: rules directory not found"])
    paths = sorted(
        path for path in directory.iterdir() if path.suffix in RULE_FILE_SUFFIXES and path.is_file()
    )
    if not paths:
        raise RuleError([f"{directory}: no rule files (*.yaml, *.yml)"])
    return paths


def _syntax_problem(path: str, exc: MarkedYAMLError) -> str:
    """``path:line:col: YAML syntax error: ...``, naming where the broken construct began."""
    mark = exc.problem_mark or exc.context_mark
    where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else path
    context = exc.context or ""
    if context and exc.context_mark is not None and exc.context_mark is not mark:
        start = exc.context_mark
        context += f" (started at line {start.line + 1}, column {start.column + 1})"
    reason = ": ".join(part for part in (context, exc.problem) if part)
    return f"{where}: YAML syntax error: {reason}"


def _position_key(problem: str) -> tuple[int, int]:
    """(line, column) of a ``path:line:col: ...`` message, to list a file's problems in order."""
    parts = problem.split(":", 3)
    try:
        return int(parts[1]), int(parts[2])
    except (IndexError, ValueError):
        return 0, 0


def _parse_yaml(path: str, problems: list[str]) -> tuple[bool, object]:
    """Read and parse one file; on failure add a positioned problem and return (False, None)."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        problems.append(f"{path}: cannot read rule file: {exc}")
        return False, None
    try:
        return True, YAML(typ="rt").load(text)
    except MarkedYAMLError as exc:
        problems.append(_syntax_problem(path, exc))
    except YAMLError as exc:
        problems.append(f"{path}: YAML error: {exc}")
    return False, None


def _rule_nodes(path: str, data: object, problems: list[str]) -> list[CommentedMap]:
    """The rule mappings of one parsed file (a single mapping or a list of them)."""
    if data is None:
        return []
    if isinstance(data, CommentedMap):
        return [data]
    if isinstance(data, CommentedSeq):
        nodes: list[CommentedMap] = []
        for index, item in enumerate(data):
            if isinstance(item, CommentedMap):
                nodes.append(item)
                continue
            line, col = data.lc.item(index)
            problems.append(
                f"{path}:{line + 1}:{col + 1}: rule #{index + 1}: a rule must be a mapping,"
                f" not {type_name(item)}"
            )
        return nodes
    problems.append(
        f"{path}:1:1: a rule file holds one rule mapping or a list of rule mappings,"
        f" not {type_name(data)}"
    )
    return []


RuleId = tuple[str, str]  # a rule's id and its path:line:column


def _check_duplicates(ids: Sequence[RuleId], problems: list[str]) -> None:
    """Every repeat of an id, wherever it is and whether or not its rules are otherwise valid
    (an operator fixing one error must not discover the clash only on the next run)."""
    first: dict[str, str] = {}
    for rule_id, location in ids:
        if rule_id in first:
            problems.append(
                f"{location}: rule {rule_id!r}: duplicate id; first defined at {first[rule_id]}"
            )
        else:
            first[rule_id] = location


def _load_file(
    path: str, tiers: Sequence[str], problems: list[str], lists: TermLists, ids: list[RuleId]
) -> list[Rule]:
    """The valid rules of one file; the id of every rule that has a readable one goes to
    ``ids``, valid or not, for the duplicate check across files."""
    parsed, data = _parse_yaml(path, problems)
    if not parsed:
        return []
    rules = []
    for index, node in enumerate(_rule_nodes(path, data, problems)):
        reader = RuleReader(path, node, f"rule #{index + 1}", tiers, problems, lists)
        rule = reader.read()
        if reader.rule_id:
            line, col = reader.start(node)
            ids.append((reader.rule_id, f"{path}:{line + 1}:{col + 1}"))
        if rule is not None:
            rules.append(rule)
    return rules


def _read_list_file(
    path: str, problems: list[str], lists: dict[str, tuple[str | Term, ...]]
) -> None:
    """Add the lists of one file (a mapping of list names to lists of terms) to ``lists``."""
    parsed, data = _parse_yaml(path, problems)
    if not parsed or data is None:
        return
    if not isinstance(data, CommentedMap):
        problems.append(
            f"{path}:1:1: a term list file maps list names to lists of terms, not {type_name(data)}"
        )
        return
    for name, terms in data.items():
        reader = NodeReader(path, f"list {name!r}", problems)
        pos = reader.key_pos(data, name)
        if not isinstance(name, str) or not RULE_ID.match(name):
            reader.problem(pos, "invalid list name: use lowercase letters, digits, '.', '_', '-'")
            continue
        if name in lists:
            reader.problem(pos, "duplicate list name (list names are unique across files)")
            continue
        if not isinstance(terms, CommentedSeq) or not terms:
            shown = "an empty list" if isinstance(terms, CommentedSeq) else type_name(terms)
            reader.problem(pos, f"a term list is a non-empty list of terms, not {shown}")
            continue
        leaves = [reader.read_leaf(term, reader.item_pos(terms, i)) for i, term in enumerate(terms)]
        if not reader.failed:
            lists[name] = tuple(leaf for leaf in leaves if leaf is not None)


def _read_lists(directory: Path, problems: list[str]) -> dict[str, tuple[str | Term, ...]]:
    lists: dict[str, tuple[str | Term, ...]] = {}
    if not directory.is_dir():
        return lists
    for path in sorted(p for p in directory.iterdir() if p.suffix in RULE_FILE_SUFFIXES):
        file_problems: list[str] = []
        _read_list_file(str(path), file_problems, lists)
        problems.extend(sorted(file_problems, key=_position_key))
    return lists


def load_term_lists(directory: Path | str) -> dict[str, tuple[str | Term, ...]]:
    """Named term lists from every ``*.yaml`` file in ``directory`` (empty if it is missing).

    A list file maps names to lists of terms (strings, ``{exact: ...}`` or ``{regex: ...}``)::

        tariff-words: [tariff*, duty, levy, 関税]

    Raises :class:`RuleError` listing every problem.
    """
    problems: list[str] = []
    lists = _read_lists(Path(directory), problems)
    if problems:
        raise RuleError(problems)
    return lists


def load_rule_files(
    paths: Sequence[Path | str], tiers: Sequence[str], lists: TermLists | None = None
) -> tuple[Rule, ...]:
    """Read and validate rule files, in the order given.

    ``lists`` are the named term lists rules may reference; by default they are read from the
    ``lists/`` directory beside the rule files. Raises :class:`RuleError` listing every
    problem of every file (syntax, unknown keys with a hint, unknown tiers and lists, bad
    regexes, malformed match trees, duplicate ids across files). Paths appear in messages as
    given.
    """
    problems: list[str] = []
    if lists is None:
        found: dict[str, tuple[str | Term, ...]] = {}
        for parent in dict.fromkeys(Path(path).parent for path in paths):
            found.update(_read_lists(parent / LISTS_DIRECTORY, problems))
        lists = found
    rules: list[Rule] = []
    ids: list[RuleId] = []
    for path in map(str, paths):
        file_problems: list[str] = []
        rules.extend(_load_file(path, tiers, file_problems, lists, ids))
        problems.extend(sorted(file_problems, key=_position_key))
    _check_duplicates(ids, problems)
    if problems:
        raise RuleError(problems)
    return tuple(rules)
