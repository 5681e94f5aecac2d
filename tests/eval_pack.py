"""Score the shipped rule pack on a labelled set, through `mastwatch dry-run`.

The labelled items (YAML: ``items: [{id, title, summary, labels}]``) are written into an RSS
file whose GUIDs are the item ids; `mastwatch dry-run --format jsonl` runs the rules over it
exactly as an operator would, and the rule ids it reports per GUID are compared with the
labels. Used by `make eval` and tests/integration/test_eval.py.

    python tests/eval_pack.py [LABELLED.yaml ...]
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from xml.sax.saxutils import escape

from ruamel.yaml import YAML

ROOT = Path(__file__).resolve().parents[1]
RULES = ROOT / "rules"
DEV_SET = ROOT.parent / "shared" / "eval" / "labeled-dev.yaml"
HELDOUT_SET = ROOT / "tests" / "data" / "heldout.yaml"
TOPICS = ("tariffs", "treasuries", "g7", "election-timing")


@dataclass(frozen=True)
class Labelled:
    id: str
    title: str
    summary: str
    labels: frozenset[str]


@dataclass(frozen=True)
class TopicScore:
    topic: str
    true_positives: int
    false_positives: int
    false_negatives: int

    @property
    def precision(self) -> float:
        found = self.true_positives + self.false_positives
        return self.true_positives / found if found else 1.0

    @property
    def recall(self) -> float:
        labelled = self.true_positives + self.false_negatives
        return self.true_positives / labelled if labelled else 1.0


def load_labelled(path: Path) -> list[Labelled]:
    """The items of a labelled set."""
    data = YAML(typ="safe").load(path.read_text(encoding="utf-8"))
    return [
        Labelled(
            str(raw["id"]),
            str(raw["title"]),
            str(raw.get("summary") or ""),
            frozenset(raw.get("labels") or ()),
        )
        for raw in data["items"]
    ]


def as_rss(items: list[Labelled]) -> str:
    """An RSS 2.0 document with one entry per item, its id as the GUID."""
    entries = "".join(
        f"<item><guid isPermaLink='false'>{escape(i.id)}</guid><title>{escape(i.title)}</title>"
        f"<description>{escape(i.summary)}</description></item>\n"
        for i in items
    )
    return (
        "<?xml version='1.0' encoding='utf-8'?>\n<rss version='2.0'><channel>"
        f"<title>eval</title><link>https://eval.invalid/</link>\n{entries}</channel></rss>\n"
    )


def mastwatch_command() -> list[str]:
    """The installed `mastwatch` script of this interpreter's environment."""
    script = Path(sys.executable).parent / "mastwatch"
    if script.exists():
        return [str(script)]
    return [sys.executable, "-c", "import sys; from mastwatch.cli import main; sys.exit(main())"]


def fired_rules(items: list[Labelled], rules: Path = RULES) -> dict[str, set[str]]:
    """The rule ids `mastwatch dry-run` reports for each item id."""
    with tempfile.TemporaryDirectory() as tmp:
        feed = Path(tmp) / "eval.xml"
        feed.write_text(as_rss(items), encoding="utf-8")
        command = [*mastwatch_command(), "dry-run", "--rules", str(rules), "--format", "jsonl"]
        done = subprocess.run(
            [*command, str(feed)], capture_output=True, text=True, check=False, timeout=120
        )
    if done.returncode != 0:
        raise RuntimeError(f"dry-run failed ({done.returncode}): {done.stderr}")
    fired: dict[str, set[str]] = {i.id: set() for i in items}
    for line in done.stdout.splitlines():
        record = json.loads(line)
        fired[record["guid"]].add(record["rule"])
    return fired


def score(items: list[Labelled], fired: dict[str, set[str]]) -> list[TopicScore]:
    """Precision and recall counts per topic."""
    scores = []
    for topic in TOPICS:
        tp = sum(1 for i in items if topic in i.labels and topic in fired[i.id])
        fp = sum(1 for i in items if topic not in i.labels and topic in fired[i.id])
        fn = sum(1 for i in items if topic in i.labels and topic not in fired[i.id])
        scores.append(TopicScore(topic, tp, fp, fn))
    return scores


def misses(items: list[Labelled], fired: dict[str, set[str]]) -> list[str]:
    """One line per wrong topic decision: the item, what was missed or wrongly raised."""
    lines = []
    for item in items:
        got = fired[item.id] & set(TOPICS)
        for topic in sorted(item.labels - got):
            lines.append(f"{item.id}: missed {topic}: {item.title}")
        for topic in sorted(got - item.labels):
            lines.append(f"{item.id}: false {topic}: {item.title}")
    return lines


def table(name: str, scores: list[TopicScore]) -> str:
    """A plain-text table of the scores."""
    rows = [f"{name}", f"{'topic':18} {'tp':>3} {'fp':>3} {'fn':>3} {'precision':>9} {'recall':>6}"]
    for s in scores:
        rows.append(
            f"{s.topic:18} {s.true_positives:3} {s.false_positives:3} {s.false_negatives:3}"
            f" {s.precision:9.2f} {s.recall:6.2f}"
        )
    return "\n".join(rows)


def main(argv: list[str]) -> int:
    """Print the table (and the misses) for each labelled set; 1 if a topic is below 0.95."""
    paths = [Path(a) for a in argv] or [DEV_SET, HELDOUT_SET]
    status = 0
    for path in paths:
        items = load_labelled(path)
        fired = fired_rules(items)
        scores = score(items, fired)
        print(table(f"{path.name} ({len(items)} items)", scores))
        for line in misses(items, fired):
            print(f"  {line}")
        print()
        if any(min(s.precision, s.recall) < 0.95 for s in scores):
            status = 1
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
