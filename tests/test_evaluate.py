"""Full-ranking evaluation: masking, ties, skipped users, agreement with the metric functions."""

import dataclasses
import math

import numpy as np
import pytest
import torch

from recsys.data.dataset import Pairs, SplitData
from recsys.evaluate import evaluate, recommend, user_metrics
from recsys.models.popularity import Popularity


def _fixed(scores):
    table = torch.tensor(scores, dtype=torch.float32)
    return lambda users: table[users]


def test_training_items_are_masked_and_never_recommended():
    # User 0 prefers items 0, 1 (trained) most; its held-out item 2 must then rank first.
    score = _fixed([[9.0, 8.0, 7.0, 1.0]])
    out = user_metrics(score, Pairs([0], [2]), [Pairs([0, 0], [0, 1])], 1, 4, ks=(1,)).means()
    assert out["hit@1"] == 1.0 and out["ndcg@1"] == 1.0
    items, _ = (lambda r: r)(
        recommend(
            Popularity(1, 4, torch.tensor([9.0, 8.0, 7.0, 1.0])),
            _data(
                train=Pairs([0, 0], [0, 1]),
                val=Pairs([0], [2]),
                test=Pairs([0], [3]),
                n_users=1,
                n_items=4,
            ),
            torch.tensor([0]),
            k=4,
        )
    )
    assert items.tolist() == [[3, -1, -1, -1]]


def _data(train, val, test, n_users, n_items):
    return SplitData(
        "t", "t", np.arange(n_users), np.arange(n_items), [""] * n_items, train, val, test
    )


def test_test_split_masks_validation_items_too():
    pop = Popularity(1, 4, torch.tensor([4.0, 3.0, 2.0, 1.0]))
    data = _data(Pairs([0], [0]), Pairs([0], [1]), Pairs([0], [2]), 1, 4)
    # Validation: item 1 is ranked first once item 0 (train) is masked.
    assert evaluate(pop, data, "val", ks=(1,))["hit@1"] == 1.0
    # Test: items 0 and 1 are masked, so item 2 is first.
    assert evaluate(pop, data, "test", ks=(1,))["hit@1"] == 1.0


def test_ties_are_ordered_by_item_index():
    score = _fixed([[1.0, 1.0, 1.0, 1.0]])
    out = user_metrics(score, Pairs([0], [1]), [], 1, 4, ks=(1, 2)).means()
    assert out["hit@1"] == 0.0 and out["mrr@2"] == 0.5


def test_users_without_heldout_items_are_skipped_and_counted():
    score = _fixed([[3.0, 2.0, 1.0]] * 3)
    out = user_metrics(score, Pairs([0, 2], [0, 2]), [], 3, 3, ks=(1, 3)).means()
    assert out["users"] == 2 and out["users_skipped"] == 1
    assert out["hit@1"] == pytest.approx(0.5)
    assert out["recall@3"] == 1.0


def test_several_heldout_items_and_coverage():
    score = _fixed([[5.0, 4.0, 3.0, 2.0, 1.0], [1.0, 2.0, 3.0, 4.0, 5.0]])
    heldout = Pairs([0, 0, 1], [0, 3, 4])
    out = user_metrics(score, heldout, [], 2, 5, ks=(2,)).means()
    # User 0: list [0, 1], one of its two items; user 1: list [4, 3], its only item first.
    assert out["recall@2"] == pytest.approx((1 / 2 + 1) / 2)
    assert out["precision@2"] == pytest.approx((1 / 2 + 1 / 2) / 2)
    assert out["coverage@2"] == pytest.approx(4 / 5)


def test_k_larger_than_catalogue():
    score = _fixed([[3.0, 2.0, 1.0]])
    out = user_metrics(score, Pairs([0], [2]), [Pairs([0], [0])], 1, 3, ks=(10,)).means()
    assert out["recall@10"] == 1.0
    assert out["precision@10"] == pytest.approx(1 / 10)
    assert out["coverage@10"] == pytest.approx(2 / 3)  # the masked item is not "recommended"


def test_batching_does_not_change_results():
    rng = np.random.default_rng(0)
    n_users, n_items = 57, 31
    table = torch.from_numpy(rng.random((n_users, n_items)).astype(np.float32))
    train = Pairs(rng.integers(0, n_users, 300), rng.integers(0, n_items, 300))
    keys = set(train.keys(n_items).tolist())
    cand = [(u, i) for u in range(n_users) for i in range(n_items) if u * n_items + i not in keys]
    pick = rng.choice(len(cand), 80, replace=False)
    heldout = Pairs([cand[p][0] for p in pick], [cand[p][1] for p in pick])
    full = user_metrics(
        lambda u: table[u], heldout, [train], n_users, n_items, batch_size=1000
    ).means()
    small = user_metrics(
        lambda u: table[u], heldout, [train], n_users, n_items, batch_size=7
    ).means()
    assert full == pytest.approx(small)


def test_model_tensor_is_not_modified_by_masking():
    pop = Popularity(2, 3, torch.tensor([3.0, 2.0, 1.0]))
    data = _data(Pairs([0, 1], [0, 0]), Pairs([0, 1], [1, 2]), Pairs([0, 1], [2, 1]), 2, 3)
    evaluate(pop, data, "test")
    assert pop.item_counts.tolist() == [3.0, 2.0, 1.0]


def test_test_split_absent_in_trial_copy(blocks):
    with pytest.raises(ValueError, match="no test split"):
        evaluate(Popularity.fit(blocks), blocks.without_test(), "test")


def test_per_user_values_are_each_users_own_and_average_to_the_means():
    # User 0 finds its item at rank 1, user 1 at rank 2, user 2 has nothing held out.
    table = torch.tensor([[3.0, 2.0, 1.0], [3.0, 2.0, 1.0], [1.0, 1.0, 1.0]])
    out = user_metrics(lambda u: table[u], Pairs([0, 1], [0, 1]), [], 3, 3, ks=(1, 2))
    assert out.users.tolist() == [0, 1] and out.users_skipped == 1
    assert out.values["hit@1"].tolist() == [1.0, 0.0]
    assert out.values["ndcg@2"].tolist() == pytest.approx([1.0, 1 / math.log2(3)])
    assert out.means()["ndcg@2"] == pytest.approx((1 + 1 / math.log2(3)) / 2)


def test_low_rated_items_are_masked_everywhere_and_never_hits():
    # User 0 rated item 0 low (seen, not liked): the popularity scorer ranks it first, yet it is
    # never recommended, never a hit, and leaves the first place to the held-out item.
    from recsys.tuning.results import recommendations

    pop = Popularity(2, 5, torch.tensor([9.0, 8.0, 7.0, 6.0, 5.0]))
    plain = _data(Pairs([0, 1], [4, 4]), Pairs([0, 1], [1, 0]), Pairs([0, 1], [2, 1]), 2, 5)
    data = dataclasses.replace(plain, seen_only=Pairs([0], [0]))
    # Without the low rating, item 0 takes user 0's first place, in validation and test.
    assert evaluate(pop, plain, "val", ks=(1,))["hit@1"] == 0.5
    assert evaluate(pop, plain, "test", ks=(1,))["hit@1"] == 0.5
    assert evaluate(pop, data, "val", ks=(1,))["hit@1"] == 1.0
    assert evaluate(pop, data, "test", ks=(1,))["hit@1"] == 1.0
    assert evaluate(pop, data.without_test(), "val", ks=(1,))["hit@1"] == 1.0  # a trial's copy
    items, _ = recommend(pop, data, torch.tensor([0, 1]), k=5)
    assert items.tolist() == [[2, 3, -1, -1, -1], [1, 2, 3, -1, -1]]
    frame = recommendations(pop, data, k=5)
    assert frame[frame["user_id"] == 0]["item_id"].tolist() == [2, 3]
    # A low-rated pair can never be a hit: a target that is also low rated stays masked.
    target = dataclasses.replace(plain, seen_only=Pairs([0], [2]))
    assert evaluate(pop, plain, "test", ks=(5,))["hit@5"] == 1.0
    assert evaluate(pop, target, "test", ks=(5,))["hit@5"] == 0.5
