"""The served model (``recsys.serving``) without MLflow's store: restored from its artifacts, it
ranks as the leaderboard's recommendations file does, falls back to popularity for unknown
users, and turns a malformed request into one clear error."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from conftest import block_split
from model_checks import with_random_entities, with_random_text

from recsys.errors import RecsysError
from recsys.serving import ModelCard, RecsysPyfunc, ServedModel, save_artifacts
from recsys.train import Trainer
from recsys.tuning.results import recommendations

CONFIGS = {
    "popularity": {},
    "ease": {"l2": 10.0},
    "itemknn": {"k": 5, "shrink": 1.0},
    "bpr_mf": {"dim": 8, "lr": 0.05, "batch_size": 64},
    "lightgcn": {"dim": 8, "layers": 2, "lr": 0.05, "batch_size": 64},
    "lightgcn_kg": {"dim": 8, "layers": 2, "lr": 0.05, "batch_size": 64},
    "mult_vae": {"hidden": 16, "latent": 8, "batch_size": 16},
    "hybrid_vae": {"hidden": 16, "latent": 8, "batch_size": 16},
    "semantic": {"weighting": "idf", "popularity_blend": 0.1},
    "ncf_mlp": {"dim": 8, "hidden": 16, "n_layers": 2, "batch_size": 64},
    # With item text: the served copy rebuilds its item tower from the stored text vectors.
    "two_tower": {"dim": 8, "hidden": 16, "batch_size": 64, "item_text": True},
}


def _served(tmp_path, model: str, data=None, epochs: int = 3) -> tuple[ServedModel, Trainer]:
    data = with_random_entities(with_random_text(data if data is not None else block_split()))
    trainer = Trainer(model, CONFIGS[model], data, device="cpu", seed=1)
    for _ in trainer.run(epochs):
        pass
    card = ModelCard(model, CONFIGS[model], 1, trainer.epoch, data.name, data.fingerprint)
    artifacts = save_artifacts(tmp_path / model, card, trainer.model, data)
    return ServedModel.load(artifacts, device="cpu"), trainer


@pytest.mark.parametrize("model", sorted(CONFIGS))
def test_served_ranking_is_the_recommendations_file(tmp_path, model):
    served, trainer = _served(tmp_path, model)
    expected = recommendations(trainer.model, trainer.data)
    users = pd.unique(expected["user_id"])
    got = served.recommend(pd.DataFrame({"user_id": users, "k": trainer.data.n_items}))
    assert (got["source"] == "model").all()
    columns = ["user_id", "item_id", "rank"]
    pd.testing.assert_frame_equal(got[columns], expected[columns], check_dtype=False)
    np.testing.assert_allclose(got["score"], expected["score"], rtol=1e-5, atol=1e-6)


def test_seen_items_are_training_and_validation_items(tmp_path):
    data = block_split()
    served, _ = _served(tmp_path, "ease", data)
    got = served.recommend(pd.DataFrame({"user_id": data.user_ids, "k": data.n_items}))
    split = data.split_frame()
    seen = split[split["split"] != "test"]
    assert got.merge(seen, on=["user_id", "item_id"]).empty
    # Everything else is ranked: 20 items, 8 training and 1 validation item per user.
    assert got.groupby("user_id").size().eq(data.n_items - 9).all()
    # The checkerboard: the test item (the one unseen item of the user's group) comes first.
    test = split[split["split"] == "test"].set_index("user_id")["item_id"]
    first = got[got["rank"] == 1].set_index("user_id")["item_id"]
    assert first.equals(test.loc[first.index])


def test_unknown_user_gets_the_popularity_ranking_marked_as_such(tmp_path):
    data = block_split()
    served, _ = _served(tmp_path, "bpr_mf", data, epochs=1)
    got = served.recommend(pd.DataFrame({"user_id": ["stranger", "u0"], "k": [4, 3]}))
    stranger = got[got["user_id"] == "stranger"]
    assert (stranger["source"] == "popularity").all()
    assert (got.loc[got["user_id"] == "u0", "source"] == "model").all()
    assert list(got.groupby("user_id", sort=False).size()) == [4, 3]  # each row's own k
    counts = pd.Series(data.item_ids[data.train.items]).value_counts()
    order = sorted(counts.index, key=lambda item: (-counts[item], int(item[1:])))
    assert list(stranger["item_id"]) == order[:4]
    assert list(stranger["score"]) == [float(counts[i]) for i in order[:4]]
    assert list(stranger["rank"]) == [1, 2, 3, 4]


def test_default_k_is_ten_and_integer_ids_match_either_spelling(tmp_path):
    data = block_split()
    data = data.__class__(**{**data.__dict__, "user_ids": np.arange(100, 140)})
    served, _ = _served(tmp_path, "popularity", data, epochs=1)
    got = served.recommend(pd.DataFrame({"user_id": [100, "101"]}))
    assert list(got.groupby("user_id", sort=False).size()) == [10, 10]
    assert (got["source"] == "model").all()


@pytest.mark.parametrize(
    ("request_table", "message"),
    [
        ({"user": ["u0"]}, "the request has no 'user_id' column (columns: 'user')"),
        ({"user_id": ["u0"], "k": [0]}, "k must be at least 1, got 0"),
        ({"user_id": ["u0"], "k": [21]}, "k=21 is above the catalogue's 20 items"),
        ({"user_id": ["u0"], "k": [2.5]}, "k must be a whole number, got 2.5"),
        ({"user_id": ["u0"], "k": ["ten"]}, "k must be a whole number, got 'ten'"),
        ({"user_id": ["u0", None]}, "the request has an empty 'user_id'"),
        ({"user_id": ["u0"] * 1001}, "asks for 1001 users, more than the 1000 one request"),
    ],
)
def test_malformed_request_is_one_clear_error(tmp_path, request_table, message):
    served, _ = _served(tmp_path, "popularity", epochs=1)
    with pytest.raises(RecsysError) as error:
        served.recommend(pd.DataFrame(request_table))
    assert message in str(error.value)
    assert "\n" not in str(error.value)


def test_pyfunc_reports_a_malformed_request_as_invalid_parameter(tmp_path):
    from mlflow.exceptions import MlflowException

    served, _ = _served(tmp_path, "popularity", epochs=1)
    model = RecsysPyfunc()
    model.served = served
    with pytest.raises(MlflowException) as error:
        model.predict(None, pd.DataFrame({"user_id": ["u0"], "k": [-1]}))
    assert error.value.error_code == "INVALID_PARAMETER_VALUE"
    assert error.value.get_http_status_code() == 400
    assert "k must be at least 1" in error.value.message


def test_low_rated_items_stay_unrecommended_once_served(tmp_path):
    import dataclasses

    from recsys.data.dataset import Pairs

    data = block_split()
    split = data.split_frame()
    test = split[split["split"] == "test"]
    # Each user's test item (which the checkerboard ranks first) counts as low rated.
    index = {u: i for i, u in enumerate(data.user_ids.tolist())}
    items = {v: i for i, v in enumerate(data.item_ids.tolist())}
    low = Pairs(test["user_id"].map(index).to_numpy(), test["item_id"].map(items).to_numpy())
    served, trainer = _served(tmp_path, "ease", dataclasses.replace(data, seen_only=low))
    assert len(served.data.seen_only) == len(low)
    got = served.recommend(pd.DataFrame({"user_id": data.user_ids, "k": data.n_items}))
    assert got.merge(test, on=["user_id", "item_id"]).empty
    assert got.groupby("user_id").size().eq(data.n_items - 10).all()
    expected = recommendations(trainer.model, trainer.data, k=data.n_items)
    columns = ["user_id", "item_id", "rank"]
    pd.testing.assert_frame_equal(got[columns], expected[columns], check_dtype=False)
