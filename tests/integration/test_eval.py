"""The shipped rule pack scored through `mastwatch dry-run` on the labelled sets.

The development set lives next to the repository (../shared/eval, which CI provides); the
held-out set (tests/data/heldout.yaml) is ours and was not used to write the rules' terms
for its items. `make eval` prints the same tables.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from eval_pack import DEV_SET, HELDOUT_SET, TOPICS, fired_rules, load_labelled, misses, score

TARGET = 0.95


@pytest.mark.parametrize("path", [DEV_SET, HELDOUT_SET], ids=["dev", "heldout"])
def test_each_topic_reaches_the_target_through_dry_run(path: Path) -> None:
    assert DEV_SET.is_file(), f"the shared evaluation set is missing: expected {DEV_SET}"
    items = load_labelled(path)
    fired = fired_rules(items)

    scores = {s.topic: s for s in score(items, fired)}

    assert set(scores) == set(TOPICS)
    below = {
        topic: (round(s.precision, 2), round(s.recall, 2))
        for topic, s in scores.items()
        if s.precision < TARGET or s.recall < TARGET
    }
    assert below == {}, misses(items, fired)
    assert all(s.true_positives >= 3 for s in scores.values())


def test_the_harness_counts_a_wrong_label_as_a_miss_and_a_false_alarm() -> None:
    items = load_labelled(DEV_SET)[:3]
    fired = fired_rules(items)
    relabelled = [type(i)(i.id, i.title, i.summary, frozenset({"g7"})) for i in items]

    scores = {s.topic: s for s in score(relabelled, fired)}

    assert scores["g7"].false_negatives == 3
    assert sum(s.false_positives for s in scores.values()) >= 2
