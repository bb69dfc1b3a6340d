"""One RecBole 1.2.1 model on pre-split atomic files; run by ``reference_recbole.py`` with the
reference environment's interpreter (``make reference-venv``), never with the project's.

It imports nothing of recsys-tune (the two environments share no packages). Reads a JSON job,
writes a JSON result:

    .venv-recbole/bin/python benchmarks/_recbole_worker.py JOB.json RESULT.json

The job is ``{"model": "EASE", "config": {...RecBole config...}}`` (the config names the data
folder, the ``benchmark_filename`` files and the checkpoint folder; ``"verbose": true`` logs
each epoch, ``"threads"`` sets torch's threads); the result holds the test and best validation
metrics, epochs trained, the best epoch, seconds and RecBole's counts of users, items and
interactions per split. A job ``{"metric_check": "hits.npz"}`` instead returns RecBole's own
NDCG@k and Recall@k of the hit matrix in the file, so that the caller can compare them with
recsys.metrics on exactly the same input. A job with ``"serve_epochs": true`` builds the model and
trainer, prints ``@@ {"ready": ...}``, then trains (or validates) one epoch per ``epoch`` (``eval``)
line read from stdin and answers each with ``@@ {"seconds": ...}`` on stdout, until ``quit``: the
caller times RecBole's epochs interleaved with its own (``reference_recbole.py --time-epochs``).

PyTorch >= 2.6 loads with ``weights_only=True`` by default and RecBole's checkpoints hold its
Config object, so the caller sets ``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1``.
"""

from __future__ import annotations

import json
import logging
import sys
import time
import traceback


def metric_check(path: str) -> dict:
    """RecBole's NDCG@k and Recall@k per user of the hit matrix saved in ``path``."""
    import numpy as np
    from recbole.evaluator.metrics import NDCG, Recall

    # RecBole's Config sets these aliases, which NumPy 1.24 removed; the metrics use np.float.
    np.float, np.int, np.bool = np.float64, np.int_, np.bool_
    arrays = np.load(path)
    hits, n_relevant = arrays["hits"].astype(bool), arrays["n_relevant"].astype(np.int64)
    k = hits.shape[1]
    config = {"topk": [k], "metric_decimal_place": 8}
    return {
        "ndcg": NDCG(config).metric_info(hits, n_relevant)[:, k - 1].tolist(),
        "recall": Recall(config).metric_info(hits, n_relevant)[:, k - 1].tolist(),
    }


def build(model_name: str, config_dict: dict, verbose: bool, threads: int):
    """RecBole's dataset, data loaders, model and trainer, as ``run_recbole_model`` makes them."""
    import torch
    from recbole.config import Config
    from recbole.data import create_dataset, data_preparation
    from recbole.utils import get_model, get_trainer, init_seed

    torch.set_num_threads(threads)
    config = Config(model=model_name, dataset=config_dict.pop("dataset"), config_dict=config_dict)
    init_seed(config["seed"], config["reproducibility"])
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING)
    dataset = create_dataset(config)
    train_data, valid_data, test_data = data_preparation(config, dataset)
    init_seed(config["seed"] + config["local_rank"], config["reproducibility"])
    model = get_model(config["model"])(config, train_data._dataset).to(config["device"])
    trainer = get_trainer(config["MODEL_TYPE"], config["model"])(config, model)
    return config, dataset, (train_data, valid_data, test_data), trainer


def serve_epochs(model_name: str, config_dict: dict, threads: int) -> dict:
    """Trains or validates one epoch per stdin command (see the module docstring)."""
    started = time.perf_counter()
    _, _, (train_data, valid_data, _), trainer = build(model_name, config_dict, False, threads)
    trainer.eval_collector.data_collect(train_data)  # what fit() does before its first epoch
    answer({"ready": True, "seconds": time.perf_counter() - started})
    epoch = 0
    for line in sys.stdin:
        command = line.strip()
        if command == "quit":
            break
        started = time.perf_counter()
        if command == "epoch":
            loss = trainer._train_epoch(train_data, epoch, show_progress=False)
            epoch += 1
            answer({"seconds": time.perf_counter() - started, "loss": float(sum_loss(loss))})
        elif command == "eval":
            trainer._valid_epoch(valid_data, show_progress=False)
            answer({"seconds": time.perf_counter() - started})
        else:
            answer({"error": f"unknown command {command!r}"})
    return {"epochs": epoch}


def sum_loss(loss) -> float:
    return sum(loss) if isinstance(loss, tuple) else loss


def answer(message: dict) -> None:
    """One protocol line on stdout (RecBole's own prints never start with ``@@``)."""
    print("@@ " + json.dumps(message), flush=True)


def run_model(model_name: str, config_dict: dict, verbose: bool = False, threads: int = 1) -> dict:
    """Trains ``model_name`` with RecBole's own data pipeline, trainer and evaluator."""
    import torch

    started = time.perf_counter()
    config, dataset, splits, trainer = build(model_name, config_dict, verbose, threads)
    train_data, valid_data, test_data = splits

    saved_epochs: list[int] = []
    save = trainer._save_checkpoint

    def remember_epoch(epoch, *args, **kwargs):
        saved_epochs.append(int(epoch))
        return save(epoch, *args, **kwargs)

    trainer._save_checkpoint = remember_epoch
    best_valid_score, best_valid = trainer.fit(
        train_data, valid_data, verbose=verbose, saved=True, show_progress=False
    )
    test = trainer.evaluate(test_data, load_best_model=True, show_progress=False)
    splits = {"train": train_data, "valid": valid_data, "test": test_data}
    return {
        "model": model_name,
        "test": {key: float(value) for key, value in test.items()},
        "valid": {key: float(value) for key, value in (best_valid or {}).items()},
        "epochs": len(trainer.train_loss_dict),
        # Epochs are 0-based in RecBole; reported 1-based like recsys-tune's.
        "best_epoch": saved_epochs[-1] + 1 if saved_epochs else None,
        "seconds": time.perf_counter() - started,
        "cpu_seconds": time.process_time(),
        "users": int(dataset.user_num - 1),  # RecBole's id 0 is padding
        "items": int(dataset.item_num - 1),
        "interactions": {name: len(data._dataset) for name, data in splits.items()},
        "eval_users": {
            name: int(len(data.uid_list)) for name, data in splits.items() if name != "train"
        },
        "torch": torch.__version__,
    }


def main() -> int:
    job_path, result_path = sys.argv[1], sys.argv[2]
    sys.argv[1:] = []  # RecBole's Config reads `--key=value` options from the command line
    with open(job_path) as handle:
        job = json.load(handle)
    try:
        if "metric_check" in job:
            result = metric_check(job["metric_check"])
        elif job.get("serve_epochs"):
            result = serve_epochs(job["model"], job["config"], job.get("threads", 1))
        else:
            result = run_model(
                job["model"], job["config"], job.get("verbose", False), job.get("threads", 1)
            )
    except Exception as error:  # reported in the caller's table, with the traceback
        result = {
            "error": f"{type(error).__name__}: {error}",
            "traceback": traceback.format_exc(),
        }
    with open(result_path, "w") as handle:
        json.dump(result, handle)
    return 0


if __name__ == "__main__":
    sys.exit(main())
