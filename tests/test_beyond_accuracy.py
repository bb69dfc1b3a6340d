"""Coverage, Gini, novelty and ARP computed by hand on 3 users' lists over 5 items, by the pure
functions and by the evaluator from the test lists (those of ``recommendations/``)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from recsys import beyond_accuracy as beyond
from recsys.data.dataset import Pairs, SplitData
from recsys.evaluate import evaluate_users
from recsys.models.base import Recommender
from recsys.tuning.results import recommendations

# Top-2 lists of 3 users over 5 items; training counts of the items (item 4: none).
LISTS = torch.tensor([[0, 1], [0, 2], [0, 4]])
VALID = torch.ones_like(LISTS, dtype=torch.bool)
POPULARITY = torch.tensor([3, 2, 1, 1, 0])


def test_hand_computed_coverage_gini_novelty_and_arp():
    counts = beyond.item_counts(LISTS, VALID, 5, 2)
    assert counts.tolist() == [3, 1, 1, 0, 1]
    assert beyond.coverage(counts) == pytest.approx(4 / 5)
    # Sorted counts 0, 1, 1, 1, 3 weighted by 2j - 6 = -4, -2, 0, 2, 4: 12 / (5 x 6).
    assert beyond.gini(counts) == pytest.approx(12 / 30)
    # Self-information with 3 users: item 0 log2(3/3) = 0, item 1 log2(3/2), items 2 and 4
    # log2(3) (item 4, never trained on, counts as seen once).
    novelty = beyond.novelty(LISTS, VALID, POPULARITY, 3, 2)
    assert novelty.tolist() == pytest.approx(
        [math.log2(1.5) / 2, math.log2(3) / 2, math.log2(3) / 2]
    )
    arp = beyond.average_popularity(LISTS, VALID, POPULARITY, 2)
    assert arp.tolist() == pytest.approx([2.5, 2.0, 1.5])


def test_a_smaller_cutoff_reads_the_head_of_each_list():
    counts = beyond.item_counts(LISTS, VALID, 5, 1)  # every list starts with item 0
    assert beyond.coverage(counts) == pytest.approx(1 / 5)
    assert beyond.gini(counts) == pytest.approx(4 / 5)  # one item takes every slot: (I - 1) / I
    assert beyond.novelty(LISTS, VALID, POPULARITY, 3, 1).tolist() == [0.0, 0.0, 0.0]
    assert beyond.average_popularity(LISTS, VALID, POPULARITY, 1).tolist() == [3.0, 3.0, 3.0]


def test_gini_is_zero_for_equal_counts_and_unmoved_by_scale():
    assert beyond.gini(torch.tensor([2, 2, 2, 2])) == pytest.approx(0.0)
    assert beyond.gini(torch.tensor([0, 0, 0])) == 0.0  # nothing recommended
    assert beyond.gini(torch.tensor([3, 1, 0, 2])) == pytest.approx(
        beyond.gini(torch.tensor([30, 10, 0, 20]))
    )
    assert beyond.gini(torch.tensor([1, 0, 2, 3])) == pytest.approx(10 / 24)  # 0,1,2,3: -3,-1,1,3


def test_a_short_list_counts_only_its_items():
    items = torch.tensor([[3, -1], [0, 1]])
    valid = torch.tensor([[True, False], [True, True]])
    assert beyond.item_counts(items, valid, 5, 2).tolist() == [1, 1, 0, 1, 0]
    arp = beyond.average_popularity(items, valid, POPULARITY, 2)
    assert arp.tolist() == pytest.approx([1.0, 2.5])
    assert beyond.novelty(items, valid, POPULARITY, 3, 2)[0].item() == pytest.approx(math.log2(3))


class Table(Recommender):
    """Fixed scores per user."""

    def __init__(self, table: list[list[float]]) -> None:
        super().__init__()
        self.register_buffer("table", torch.tensor(table))
        self.n_users, self.n_items = self.table.shape

    def score(self, users: torch.Tensor) -> torch.Tensor:
        return self.table[users].clone()


def _data() -> SplitData:
    """Users 0-2 are tested; users 3-5 give the items their training counts 3, 2, 1, 1, 0."""
    train = Pairs([3, 4, 5, 3, 4, 5, 3], [0, 0, 0, 1, 1, 2, 3])
    val = Pairs([2], [3])  # masked on test: user 2's list skips item 3
    test = Pairs([0, 1, 2], [1, 3, 2])
    ids = np.arange(6)
    return SplitData("t", "t", ids, np.arange(5), [""] * 5, train, val, test)


# User 0's top 2 is [0, 1], user 1's [0, 2], user 2's [0, 4] (its item 3 is a validation item).
SCORES = [
    [5.0, 4.0, 3.0, 2.0, 1.0],
    [5.0, 1.0, 4.0, 3.0, 2.0],
    [5.0, 1.0, 2.0, 3.0, 4.0],
    *[[0.0] * 5] * 3,
]


def test_the_evaluator_reports_them_from_the_test_lists():
    data, model = _data(), Table(SCORES)
    out = evaluate_users(model, data, "test", ks=(2,))
    assert out.catalogue == pytest.approx({"coverage@2": 4 / 5, "gini@2": 12 / 30})
    # Six users: self-information of items 0, 1, 2 and 4: log2(6/3) = 1, log2(3), log2(6), log2(6).
    expected = [(1 + math.log2(3)) / 2, (1 + math.log2(6)) / 2, (1 + math.log2(6)) / 2]
    assert out.values["novelty@2"].tolist() == pytest.approx(expected)
    assert out.values["arp@2"].tolist() == pytest.approx([2.5, 2.0, 1.5])
    means = out.means()
    assert means["novelty@2"] == pytest.approx(np.mean(expected)) and means["arp@2"] == 2.0
    # The same lists as the results' recommendations (training and validation items excluded).
    rec = recommendations(model, data, k=2)
    assert rec.groupby("user_id")["item_id"].apply(list).to_dict() == {
        0: [0, 1],
        1: [0, 2],
        2: [0, 4],
    }
