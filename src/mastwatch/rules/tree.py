"""The validated form of a rule: frozen models for rules, match trees, terms and inline tests.

These are what :mod:`mastwatch.rules.schema` produces from YAML and what
:mod:`mastwatch.rules.compile` and :mod:`mastwatch.rules.reference` consume. A plain string
leaf is a term, a prefix (``tariff*``) or a built-in pattern (``@date``); the rarer forms
(exact case, regular expression, named list, inline alternatives) are :class:`Term` objects.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

__all__ = [
    "BUILTINS",
    "DEFAULT_FIELDS",
    "FIELDS",
    "InlineTest",
    "Leaf",
    "MatchNode",
    "Near",
    "Rule",
    "Term",
]

FIELDS: tuple[str, ...] = ("title", "summary", "content", "source", "tags", "link")
DEFAULT_FIELDS: tuple[str, ...] = ("title", "summary", "content")
BUILTINS: tuple[str, ...] = ("@date", "@money", "@percent")


class Term(BaseModel):
    """A leaf that is not a plain term string.

    - ``exact``: ``text`` must appear with this letter case (after NFKC);
    - ``regex``: ``text`` is a regular expression (RE2 syntax, linear time);
    - ``list``: the named term list ``text``, its terms in ``items`` (resolved at load);
    - ``any``: inline alternatives in ``items`` (a YAML list inside ``near``).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: Literal["exact", "regex", "list", "any"]
    text: str = ""
    items: tuple[str | Term, ...] = ()

    @property
    def written(self) -> str:
        """How the term is shown in explanations."""
        if self.kind == "list":
            return f"list:{self.text}"
        if self.kind == "exact":
            return self.text
        if self.kind == "regex":
            return f"/{self.text}/"
        if self.kind == "any":
            return " | ".join(
                item if isinstance(item, str) else item.written for item in self.items
            )
        return self.text


Leaf = str | Term


class Near(BaseModel):
    """Every entry of ``terms`` found within ``within`` words (Latin) or characters (CJK)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    terms: tuple[Leaf, ...]
    within: int
    fields: tuple[str, ...] = ()  # empty: inherited from the enclosing node


class MatchNode(BaseModel):
    """One node of a match tree: ``op`` over leaves, proximity conditions and nested nodes."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    op: Literal["any", "all", "none"]
    children: tuple[str | Term | Near | MatchNode, ...]
    fields: tuple[str, ...] = ()  # empty: inherited (the default is DEFAULT_FIELDS)


class InlineTest(BaseModel):
    """An example written next to a rule, with the outcome the rule must give on it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    title: str = ""
    summary: str = ""
    content: str = ""
    link: str = ""
    source: str = ""  # the item's source id ("inline-test" when empty)
    source_tags: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()
    expect: Literal["match", "no-match"]
    tier: str = ""  # when set (with expect: match), the tier the alert must carry
    line: int = 0  # 1-based line of the test in its file (not part of the rule's content)


class Rule(BaseModel):
    """One validated rule, as the operator wrote it (terms not yet compiled)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str
    title: str
    tier: str
    description: str = ""
    owner: str = ""
    enabled: bool = True
    labels: tuple[tuple[str, str], ...] = ()  # sorted by key
    sources: tuple[str, ...] = ()  # source ids; with source_tags: either may let an item in
    source_tags: tuple[str, ...] = ()
    languages: tuple[str, ...] = ()  # "en", "ja"; empty: every language
    match: MatchNode
    tests: tuple[InlineTest, ...] = ()
    source: str = ""  # the file, as the caller named it
    line: int = 0  # 1-based position of the rule in its file
    column: int = 0

    @property
    def location(self) -> str:
        """``path:line:column`` of the rule, for messages."""
        return f"{self.source}:{self.line}:{self.column}"

    def canonical(self) -> dict[str, Any]:
        """The rule's content without where it was written, for hashing and comparison."""
        data = self.model_dump(mode="json", exclude={"source", "line", "column"})
        for test in data["tests"]:
            del test["line"]
        return data
