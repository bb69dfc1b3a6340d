"""The cold-item split (``--split cold_items``) and its evaluation: whole items held out, each
split ranked among its own cold items, text models that must rank the matching new item first,
and the leaderboard's row for a model that cannot score one."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest
import torch

from recsys import cli
from recsys.data import Pairs, PrepConfig, build_split, load_split
from recsys.data.dataset import ColdItems, SplitData
from recsys.data.interactions import Interactions, make_frame
from recsys.errors import RecsysError
from recsys.evaluate import evaluate, evaluate_users
from recsys.models import get_spec
from recsys.train import Trainer
from recsys.tuning.config import CANNOT_SCORE_COLD, SweepConfig, validate
from recsys.tuning.finalize import cold_skipped
from recsys.tuning.leaderboard import Leaderboard
from recsys.tuning.outcome import ModelOutcome
from recsys.tuning.results import markdown_board
from recsys.tuning.scoring import EvalProtocol

COLD = PrepConfig(threshold=None, split="cold_items", cold_share=0.2)


def _raw(n_users=40, n_items=30, per_user=12, seed=0):
    rng = np.random.default_rng(seed)
    users = np.repeat(np.arange(n_users), per_user)
    items = np.concatenate([rng.choice(n_items, per_user, replace=False) for _ in range(n_users)])
    frame = make_frame([f"u{u}" for u in users], [f"i{i}" for i in items], None, None)
    return Interactions("toy", frame, {f"i{i}": f"text {i}" for i in range(n_items)})


def test_cold_split_holds_out_whole_items_half_for_validation():
    data = build_split(_raw(), COLD)
    cold = data.cold_items
    assert len(cold.val) == 3 and len(cold.test) == 3  # round(0.2 * 30) = 6, half each
    assert not np.intersect1d(cold.val, cold.test).size
    assert not np.isin(data.train.items, cold.all()).any()  # no training pair of a cold item
    assert np.isin(data.val.items, cold.val).all() and np.isin(data.test.items, cold.test).all()
    # Coverage: every pair of a cold item is held out (no user lost a training pair here).
    assert data.summary["heldout_dropped_no_train"] == 0
    assert len(data.train) + len(data.val) + len(data.test) == 40 * 12
    assert data.summary["cold_val_items"] == 3 and data.summary["cold_test_items"] == 3


def test_cold_split_is_seeded():
    first, again = build_split(_raw(), COLD), build_split(_raw(), COLD)
    other = build_split(_raw(), dataclasses.replace(COLD, seed=7))
    assert np.array_equal(first.cold_items.val, again.cold_items.val)
    assert np.array_equal(first.test.items, again.test.items)
    assert not np.array_equal(first.cold_items.all(), other.cold_items.all())


def test_a_user_with_only_cold_items_is_dropped_from_validation_and_test():
    # u0 has items 0..9, u1 only item 10; with seed s item 10 may be cold: find such a seed.
    users = ["u0"] * 10 + ["u1"]
    items = [f"i{i}" for i in range(11)]
    raw = Interactions("t", make_frame(users, items, None, None), {})
    for seed in range(50):
        data = build_split(raw, PrepConfig(threshold=None, split="cold_items", seed=seed))
        if list(data.item_ids).index("i10") in data.cold_items.all():
            break
    assert 1 not in data.val.users and 1 not in data.test.users
    assert data.summary["heldout_dropped_no_train"] == 1


def test_cache_and_exports_tell_the_cold_split_apart(tmp_path):
    raw = _raw()
    data = load_split(raw, config=COLD, cache_dir=tmp_path)
    cached = load_split(raw, config=COLD, cache_dir=tmp_path)
    assert np.array_equal(cached.cold_items.test, data.cold_items.test)
    warm = load_split(raw, config=PrepConfig(threshold=None), cache_dir=tmp_path)
    other = load_split(raw, config=dataclasses.replace(COLD, cold_share=0.4), cache_dir=tmp_path)
    assert len({data.fingerprint, warm.fingerprint, other.fingerprint}) == 3
    assert warm.cold_items is None and len(other.cold_items.all()) == 12
    frame = pd.read_parquet(data.to_parquet(tmp_path / "split.parquet"))
    assert list(frame.columns) == ["user_id", "item_id", "split", "cold_item"]
    assert (frame["cold_item"] == (frame["split"] != "train")).all()
    trial = data.without_test()
    assert trial.test is None and len(trial.cold_items.test) == 0  # no test item in a trial


def _tiny(scores: np.ndarray) -> tuple[SplitData, torch.nn.Module]:
    """One user who trained on item 0; items 1, 2 held out for validation, 3, 4 for test (the
    user's test item is 4); a fixed scorer."""
    data = SplitData(
        name="tiny",
        fingerprint="tiny",
        user_ids=np.array(["u"], dtype=object),
        item_ids=np.array([f"i{i}" for i in range(6)], dtype=object),
        item_text=[""] * 6,
        train=Pairs(np.array([0]), np.array([0])),
        val=Pairs(np.array([0]), np.array([1])),
        test=Pairs(np.array([0]), np.array([4])),
        cold_items=ColdItems(np.array([1, 2]), np.array([3, 4])),
    )

    class Fixed(torch.nn.Module):
        def score(self, users):
            return torch.tensor(scores, dtype=torch.float32).expand(len(users), -1).clone()

        @property
        def device(self):
            return torch.device("cpu")

    return data, Fixed()


def test_each_split_ranks_among_its_own_cold_items_and_test_among_all_too():
    # Item 5 (warm, never seen) scores highest, then 2 (validation), 3 (test), 4, 1.
    data, model = _tiny(np.array([9.0, 1.0, 5.0, 4.0, 3.0, 8.0]))
    assert evaluate(model, data, "val", ks=(1,))["ndcg@1"] == 0.0  # 2 beats 1 among {1, 2}
    assert evaluate(model, data, "val", ks=(2,))["ndcg@2"] == pytest.approx(1 / np.log2(3))
    among_cold = evaluate(model, data, "test", ks=(2,))  # {3, 4}: 4 second
    every = evaluate_users(model, data, "test", ks=(2,), all_items=True).means()
    assert among_cold["recall@2"] == 1.0 and every["recall@2"] == 0.0  # 5 and 2 first of all


def _grouped_text(data: SplitData, noise: float = 0.05, seed: int = 0) -> SplitData:
    """Item text vectors that know each item's group (item // 10 of a 20-item catalogue)."""
    rng = np.random.default_rng(seed)
    group = np.arange(data.n_items) // 10
    vectors = np.eye(2)[group] + noise * rng.standard_normal((data.n_items, 2))
    return dataclasses.replace(data, item_embeddings=vectors.astype(np.float32))


def _cold_groups() -> SplitData:
    """20 users in two groups of 10 items; items 8, 9 (group 0) and 18, 19 (group 1) are cold:
    validation 9 and 19, test 8 and 18. Users of group g liked every warm item of g and the
    cold items of g, so among the cold test items {8, 18} a text model must put g's first."""
    users, items = [], []
    for u in range(20):
        g = u // 10
        users += [u] * 10
        items += list(range(10 * g, 10 * g + 10))
    users, items = np.array(users), np.array(items)
    cold = ColdItems(np.array([9, 19]), np.array([8, 18]))
    code = np.select([np.isin(items, cold.val), np.isin(items, cold.test)], [1, 2], 0)
    parts = [Pairs(users[code == c], items[code == c]) for c in (0, 1, 2)]
    data = SplitData(
        name="cold-groups",
        fingerprint="cold-groups",
        user_ids=np.array([f"u{u}" for u in range(20)], dtype=object),
        item_ids=np.array([f"i{i}" for i in range(20)], dtype=object),
        item_text=[f"group {i // 10}" for i in range(20)],
        train=parts[0],
        val=parts[1],
        test=parts[2],
        cold_items=cold,
    )
    return _grouped_text(data)


@pytest.mark.parametrize(
    "model, config, epochs",
    [
        ("semantic", {}, 1),
        ("hybrid_vae", {"hidden": 16, "latent": 4, "batch_size": 10, "lr": 1e-2}, 10),
        ("two_tower", {"item_text": True, "item_id": False, "dim": 8, "hidden": 16}, 30),
    ],
)
def test_a_text_model_ranks_the_new_item_of_the_users_taste_first(model, config, epochs):
    data = _cold_groups()
    trainer = Trainer(model, config, data, device="cpu", seed=0)
    for _ in trainer.run(epochs, eval_every=epochs, ks=(1,)):
        pass
    assert trainer.evaluate("test", ks=(1,))["hit@1"] == 1.0  # every user: their group's item
    assert trainer.evaluate("val", ks=(1,))["hit@1"] == 1.0


def test_hybrid_vae_keeps_no_bias_for_an_item_nobody_trained_on():
    data = _cold_groups()
    trainer = Trainer("hybrid_vae", {"trainable_residual": True, "lr": 1e-2}, data, seed=0)
    for _ in range(5):
        trainer.train_epoch()
    decoder = trainer.model.decoder
    cold = torch.from_numpy(data.cold_items.all())
    assert decoder.item_bias.abs()[cold].max() == 0 and decoder.residual[cold].abs().max() == 0
    assert decoder.item_bias.abs().max() > 0  # the warm items' did move


def test_lightgcn_text_keeps_a_new_items_text_vector_through_training():
    data = _cold_groups()
    config = {"dim": 2, "layers": 1, "text_init": "pca", "lr": 5e-2}
    trainer = Trainer("lightgcn_text", config, data, device="cpu", seed=0)
    before = trainer.model.item_weight.detach().clone()
    for _ in range(5):
        trainer.train_epoch()
    after = trainer.model.item_weight.detach()
    cold = torch.from_numpy(data.cold_items.all())
    warm = torch.from_numpy(np.setdiff1d(np.arange(20), data.cold_items.all()))
    assert torch.equal(after[cold], before[cold]) and not torch.equal(after[warm], before[warm])


def test_capability_of_each_model():
    able = {m for m in ("semantic", "hybrid_vae", "lightgcn_text", "ease", "lightgcn", "ials")
            if get_spec(m).scores_cold_items(get_spec(m).config_cls())}  # fmt: skip
    assert able == {"semantic", "hybrid_vae", "lightgcn_text"}
    two_tower = get_spec("two_tower")
    assert two_tower.scores_cold_items(two_tower.make_config({"item_text": True}))
    assert not two_tower.scores_cold_items(two_tower.config_cls())


def _cold_cfg(models, **prep):
    return SweepConfig(models=tuple(models), prep={"split": "cold_items", **prep})


def test_a_cold_sweep_searches_only_models_that_score_new_items():
    cfg = _cold_cfg(["semantic", "ease", "hybrid_vae"])
    assert list(validate(cfg)) == ["semantic", "hybrid_vae"]  # ease is not trained for nothing
    skipped = cold_skipped(cfg, "ease")
    assert skipped.skipped == CANNOT_SCORE_COLD and not skipped.has_scores
    assert cold_skipped(cfg, "semantic") is None
    assert cold_skipped(SweepConfig(models=("ease",)), "ease") is None  # a warm split


def test_the_leaderboard_row_of_a_cf_model_says_it_cannot_score_cold_items():
    scored = ModelOutcome(
        "semantic", "t1", {}, 0, 1, {"ndcg@10": 0.3}, {"ndcg@10": 0.2, "all_ndcg@10": 0.05},
        1, 1, 1.0, 1.0,
    )  # fmt: skip
    skipped = ModelOutcome.not_searched("ease", CANNOT_SCORE_COLD)
    board = Leaderboard.build([skipped, scored], "ndcg@10", cold=True)
    frame = board.to_frame().set_index("model")
    assert board.best_model().model == "semantic" and list(frame.index) == ["semantic", "ease"]
    assert frame.loc["ease", "status"] == CANNOT_SCORE_COLD
    assert frame.loc["semantic", "status"] == "scored"
    assert np.isnan(frame.loc["ease", "test_ndcg_at_10"])  # no number from random embeddings
    assert frame.loc["semantic", "test_all_ndcg_at_10"] == 0.05
    text = markdown_board(board)
    assert "| ease |" in text and CANNOT_SCORE_COLD in text and "(all items)" in text
    assert "status" not in Leaderboard.build([scored], "ndcg@10").to_frame()  # warm: as before


def test_the_protocol_knows_a_cold_split():
    data = build_split(_raw(), COLD)
    assert EvalProtocol.of(SweepConfig(), data).cold
    assert not EvalProtocol.of(SweepConfig(), build_split(_raw(), PrepConfig())).cold


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--split", "cold_items", "--cold-share", "1.5"], "--cold-share 1.5 must be a fraction"),
        (["--split", "cold_items", "--cold-share", "0"], "--cold-share 0.0 must be a fraction"),
        (["--cold-share", "0.2"], "--cold-share is for --split cold_items"),
        (["--split", "cold_items", "--ratios", "0.8,0.1,0.1"], "--ratios does not apply"),
        (["--split", "cold_items", "--sampled-negatives", "99"], "--sampled-negatives does not"),
        (["--split", "cold_items", "--models", "ease,ials"], "none of ease, ials can score"),
    ],
)
def test_bad_cold_flags_are_one_line_before_ray(argv, message):
    with pytest.raises(RecsysError, match=message) as error:
        validate(cli.parse_args(["--models", "semantic", *argv]))
    assert "\n" not in str(error.value)


def test_a_space_that_searches_the_text_input_is_narrowed_to_the_text_on_a_cold_split(capsys):
    from recsys.tuning.config import scores_cold_items

    spaces = validate(cli.parse_args(["--split", "cold_items", "--models", "two_tower"]))
    space = spaces["two_tower"]
    assert space.params["item_text"].fixed and space.params["item_text"].value is True
    assert "item_text" not in space.first_trial  # fixed now: not a default to enqueue
    assert "two_tower: on --split cold_items, item_text True" in capsys.readouterr().out
    shipped = validate(cli.parse_args(["--models", "two_tower"]))["two_tower"]
    with pytest.raises(RecsysError, match="scores new items only with some"):
        scores_cold_items(shipped)  # the shipped space as it is: some corners cannot


def test_a_cold_sweep_keeps_the_space_of_a_model_it_skips_for_its_resume(tmp_path):
    from recsys.tuning.state import SPACES, STATE_DIR, SweepState

    cfg = _cold_cfg(["semantic", "ease"])
    cfg = dataclasses.replace(cfg, results_dir=str(tmp_path / "r"), tracking_uri="sqlite:///x")
    state = SweepState.create(cfg)
    try:
        state.keep_spaces(validate(cfg))  # semantic's only: ease is not searched
    finally:
        state.release()
    kept = tmp_path / "r" / STATE_DIR / SPACES
    assert sorted(p.name for p in kept.iterdir()) == ["ease.yaml", "semantic.yaml"]
    resumed = dataclasses.replace(cfg, space_dir=str(kept))
    assert list(validate(resumed)) == ["semantic"] and cold_skipped(resumed, "ease").skipped
