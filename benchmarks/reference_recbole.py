"""RecBole 1.2.1 reference models and recsys-tune's own on the same ML-100K split, side by side.

Protocol: the split of ``bench_data.ml100k_split()`` (positives rating >= 4, per-user random
80/10/10, seed 42), the one a sweep exports as ``split.parquet``. It is written as RecBole atomic
benchmark files ``<name>.train.inter`` / ``.valid.inter`` / ``.test.inter`` (raw ids as tokens;
``benchmark_filename`` in the RecBole config), so RecBole trains, validates and tests on exactly
our pairs: no filtering, no re-splitting. Both sides rank the full catalogue (RecBole
``eval_args: {mode: full}``), masking each user's training items on validation and training plus
validation items on test (RecBole: a user's items of all earlier phases), and report NDCG@10 and
Recall@10 over the users with held-out items. Both define NDCG@k with binary relevance and the
ideal DCG of min(held-out items, k) hits (RecBole's ``NDCG.metric_info``, ``recsys.metrics``);
the script checks that on a random hit matrix first (printed as ``metric check``). Every
trainable model is early-stopped on validation NDCG@10 with the same epoch budget on both sides
(RecBole: ``eval_step`` and ``stopping_step``; ours: ``quality.early_stopped``) and its best
state is tested once. The target: ours within 0.01 test NDCG@10 of RecBole's same model.

Hyperparameters are matched where both expose them (``ROWS``; e.g. EASE ``l2`` 250 and RecBole
``reg_weight`` 250, LightGCN ``l2`` 1e-4 and RecBole ``reg_weight`` 1e-4 with
``require_pow: True``, which is then the same penalty, sum of squares / (2 * batch)). What
cannot be matched is said in the row's note: initialisations (Xavier in RecBole; ours a normal
of ``init_std``, set near Xavier's scale), and for the autoencoders the batches: RecBole's
user data loader (``_get_AE_dataloader`` for MultiVAE and MultiDAE) takes ``train_batch_size``
2048 users, so the 942 users are one step per epoch, ours 500 users, two steps; both epochs see
every user's row once, but the budgets stay separate. Rows whose recsys-tune model is not in
``recsys.models.MODELS`` print the RecBole side and ``ours: model not registered``; rows
marked ``~`` pair a model with an analogue, not the same model (no 0.01 target). RecBole 1.2.1
has no GF-CF, RP3beta or iALS: those rows run ours only.

Set-up (once): ``make reference-venv`` builds ``.venv-recbole`` beside the project's ``.venv``:
``torch==2.13.0`` first (the CPU build where the index offers it), then ``recbole==1.2.1``
WITHOUT its declared dependencies (its ``ray<=2.6.3`` pin sends pip backtracking through torch
releases and their multi-GB CUDA wheels), then what RecBole's code paths used here import:
``numpy<2`` (RecBole uses ``np.float``), ``scipy==1.11.4``, ``pandas<3``, ``scikit-learn``,
``tensorboard`` (imported by ``recbole.utils``), ``setuptools<70``, ``colorlog==4.7.2``,
``colorama==0.4.4``, ``texttable``, ``tqdm``, ``pyyaml``, ``pyarrow<20``. RecBole runs in that
environment as a subprocess (``_recbole_worker.py``), with ``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1``
(its checkpoints hold a Config object, which torch >= 2.6 refuses to load by default).

Run (one command; 17 minutes for the default rows on 2 CPU cores shared with other jobs)::

    make reference-venv
    PYTHONPATH=$PWD .venv/bin/python benchmarks/reference_recbole.py [--models ease,bpr,cke]
        [--sides both|recbole|ours] [--threads 1] [--work-dir DIR] [--seed 42]
        [--reference-python .venv-recbole/bin/python]

``--time-epochs [--repeats 5] [--time-threads 1,2]`` races epoch and validation times instead,
for Mult-VAE, Mult-DAE, BPR-MF and LightGCN (``TIMED_ROWS``, or those of ``--models``): per row
and thread count, our Trainer and a RecBole worker kept alive (``serve_epochs``) each train one
epoch, then validate once (NDCG@10 and Recall@10, full ranking), in turns whose order alternates,
after one warm-up; it prints the medians and RecBole's time over ours. On a shared machine only
the ratio of one run means anything.

``--models`` takes row names (``--list``), RecBole or recsys-tune model names, or ``all``.
``--threads`` is torch's thread count on both sides; keep 1 on a shared machine (with 2 threads
on 2 busy cores, epochs of both sides were 20-30 times slower). ``--work-dir`` keeps the atomic
files, each RecBole run's job, result and log (``<row>.log``: loss and validation per epoch).
Seconds are wall time: RecBole's include its data loading, ours the model build.

The knowledge-graph rows read ``ml-100k.kg`` and ``ml-100k.link`` from the reference
environment's ``recbole`` package (``recbole/dataset_example/ml-100k/``, the files
``recsys/data/movielens.py`` reads ML-100K from). The graph is copied as it is; the links are
cut to the split's movies (RecBole does no filtering on benchmark files, and links to absent
movies make its KG dataset fail), which keeps every pair of ours: 1,376 of the 1,447 movies are
linked, the others have no graph neighbours. RecBole's KGAT needs ``dgl``, whose last release on
the index (2.1.0) has no library for torch 2.13, and KGIN needs ``torch_scatter`` (source only,
compiled against torch); both rows stay (``--models kgat,kgin``) and print that error. CKE runs.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import os
import platform
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from bench_data import ml100k_split
from quality import early_stopped

from recsys.data.dataset import SplitData
from recsys.data.movielens import RECBOLE_PREFIX
from recsys.metrics import ndcg, recall
from recsys.models import MODELS
from recsys.train import Trainer

ROOT = Path(__file__).resolve().parent.parent
WORKER = Path(__file__).resolve().parent / "_recbole_worker.py"
DEFAULT_PYTHON = ROOT / ".venv-recbole" / "bin" / "python"
# Not "ml-100k": RecBole 1.2.1 reads a dataset of that name from its own example folder, whatever
# data_path says, and applies its ml-100k.yaml.
DATASET = "rt-ml100k"
K = 10
RECBOLE_TIMEOUT_S = 900


@dataclass(frozen=True)
class Budget:
    """Early stopping: at most ``epochs``, validated every ``every``, stopped after ``patience``
    validations without improvement (RecBole ``stopping_step`` = patience - 1: it stops when
    its count of such validations exceeds ``stopping_step``)."""

    epochs: int = 1
    every: int = 1
    patience: int | None = None

    def recbole(self) -> dict[str, Any]:
        stopping = self.epochs if self.patience is None else self.patience - 1
        return {"epochs": self.epochs, "eval_step": self.every, "stopping_step": stopping}


@dataclass(frozen=True)
class Row:
    """One line of the table: a RecBole model and recsys-tune's counterpart, either may be None.

    Attributes:
        name: the row's name (``--models``).
        recbole: RecBole model class name.
        ours: recsys-tune registry name.
        recbole_config: RecBole hyperparameters (on top of its model's defaults).
        our_config: our hyperparameters (keys the model's config lacks are dropped and named in
            the note column, so that a model still being written does not fail the row).
        budget, our_budget: epochs, validation interval, patience; ``our_budget`` defaults to
            ``budget`` (the autoencoders' epochs differ in meaning, see the module docstring).
        same_model: False when ``ours`` is only an analogue of ``recbole``.
        kg: RecBole reads the knowledge graph (``.kg`` and ``.link`` files).
        note: what is not matched.
    """

    name: str
    recbole: str | None
    ours: str | None
    recbole_config: dict[str, Any] = field(default_factory=dict)
    our_config: dict[str, Any] = field(default_factory=dict)
    budget: Budget = Budget()
    our_budget: Budget | None = None
    same_model: bool = True
    kg: bool = False
    note: str = ""


NO_NEGATIVES = {"train_neg_sample_args": None}
# Xavier's std for a (n, 64) embedding table with n ~ 950 users or ~ 1450 items: sqrt(2/(n+64)).
XAVIER_STD = 0.04
LIGHTGCN = {
    "dim": 64,
    "layers": 3,
    "l2": 1e-4,
    "lr": 5e-3,
    "batch_size": 2048,
    "init_std": XAVIER_STD,
}
PAIR_BUDGET = Budget(epochs=200, every=5, patience=4)
ROWS: tuple[Row, ...] = (
    Row("ease", "EASE", "ease", {"reg_weight": 250.0, **NO_NEGATIVES}, {"l2": 250.0}),
    Row(
        "itemknn",
        "ItemKNN",
        "itemknn",
        {"k": 100, "shrink": 0.0, **NO_NEGATIVES},
        {"k": 100, "shrink": 0.0},
    ),
    Row(
        "bpr",
        "BPR",
        "bpr_mf",
        {"embedding_size": 64, "learning_rate": 5e-3, "train_batch_size": 2048},
        {"dim": 64, "lr": 5e-3, "batch_size": 2048, "l2": 0.0, "init_std": XAVIER_STD},
        PAIR_BUDGET,
        note="RecBole BPR has no L2 term: ours l2=0; init Xavier vs N(0, 0.04)",
    ),
    Row(
        "lightgcn",
        "LightGCN",
        "lightgcn",
        {
            "embedding_size": 64,
            "n_layers": 3,
            "reg_weight": 1e-4,
            "require_pow": True,
            "learning_rate": 5e-3,
            "train_batch_size": 2048,
        },
        LIGHTGCN,
        Budget(epochs=120, every=5, patience=4),
        note="short budget; init: RecBole Xavier-uniform, ours N(0, 0.04)",
    ),
    Row(
        "multvae",
        "MultiVAE",
        "mult_vae",
        {
            "mlp_hidden_size": [600],
            "latent_dimension": 200,
            "dropout_prob": 0.5,
            "anneal_cap": 0.2,
            "total_anneal_steps": 200_000,
            "learning_rate": 1e-3,
            "train_batch_size": 2048,
            **NO_NEGATIVES,
        },
        {"hidden": 600, "latent": 200, "dropout": 0.5, "beta_max": 0.2, "anneal_steps": 200_000},
        Budget(epochs=150, every=2, patience=8),
        Budget(epochs=400, every=5, patience=8),
        note="batches: RecBole 2048 interactions, ours 500 users",
    ),
    Row(
        "multdae",
        "MultiDAE",
        "mult_dae",
        {
            "mlp_hidden_size": [600],
            "latent_dimension": 200,
            "dropout_prob": 0.5,
            "learning_rate": 1e-3,
            "train_batch_size": 2048,
            **NO_NEGATIVES,
        },
        {"hidden": 600, "latent": 200, "dropout": 0.5, "lr": 1e-3, "weight_decay": 0.0},
        Budget(epochs=150, every=2, patience=8),
        Budget(epochs=400, every=5, patience=8),
        note="batches: RecBole 2048 interactions, ours 500 users",
    ),
    Row(
        "neumf_mlp",
        "NeuMF",
        "ncf_mlp",
        {
            "mf_train": False,
            "mlp_train": True,
            "mlp_embedding_size": 32,
            "mlp_hidden_size": [64, 32, 16],
            "dropout_prob": 0.0,
            "learning_rate": 1e-3,
            # A pointwise RecBole batch holds its positives and their negatives: 256 * (1 + 4).
            "train_batch_size": 1280,
            "train_neg_sample_args": {"distribution": "uniform", "sample_num": 4},
        },
        {
            "dim": 32,
            "hidden": 64,
            "n_layers": 3,
            "dropout": 0.0,
            "num_negatives": 4,
            "lr": 1e-3,
            "batch_size": 256,
            "init_std": 0.01,
        },
        Budget(epochs=40, every=2, patience=3),
        note="MLP tower only (RecBole mf_train False)",
    ),
    Row("dmf", "DMF", None, {}, {}, Budget(epochs=30, every=3, patience=3)),
    Row("cdae", "CDAE", None, NO_NEGATIVES, {}, Budget(epochs=300, every=5, patience=4)),
    Row(
        "cke",
        "CKE",
        "lightgcn_kg",
        {"learning_rate": 5e-3},
        LIGHTGCN,
        Budget(epochs=15, every=3, patience=3),
        Budget(epochs=120, every=5, patience=4),
        same_model=False,
        kg=True,
        note="short budget; ours: LightGCN on the user-item-entity graph",
    ),
    # RecBole's KGAT imports dgl, whose last release on PyPI (2.1.0) ships no library for
    # torch 2.13; KGIN imports torch_scatter, a source-only package compiled against torch.
    Row("kgat", "KGAT", None, {}, {}, Budget(epochs=60, every=5, patience=4), kg=True),
    Row("kgin", "KGIN", None, {}, {}, Budget(epochs=60, every=5, patience=4), kg=True),
    Row("gfcf", None, "gfcf"),
    Row("rp3beta", None, "rp3beta"),
    Row("ials", None, "ials", budget=Budget(epochs=30, every=2, patience=4)),
)
DEFAULT_ROWS = (
    "ease",
    "itemknn",
    "bpr",
    "lightgcn",
    "multvae",
    "multdae",
    "neumf_mlp",
    "cke",
    "gfcf",
    "rp3beta",
    "ials",
)


@dataclass
class Side:
    """One side's outcome of a row: metrics, or why there are none."""

    ndcg: float | None = None
    recall: float | None = None
    epochs: str = "-"
    seconds: float | None = None
    status: str = ""
    info: dict[str, Any] = field(default_factory=dict)


def export_split(data: SplitData, folder: Path, kg_source: Path | None) -> Path:
    """Writes the split as RecBole atomic benchmark files in ``folder/DATASET/``.

    Tokens are the raw MovieLens ids, as in ``split.parquet``; ``kg_source`` is RecBole's
    ``ml-100k`` example folder, whose ``.kg`` and ``.link`` files are copied beside them.
    """
    target = folder / DATASET
    target.mkdir(parents=True, exist_ok=True)
    for suffix, pairs in (("train", data.train), ("valid", data.val), ("test", data.test)):
        table = np.stack([data.user_ids[pairs.users], data.item_ids[pairs.items]], axis=1)
        np.savetxt(
            target / f"{DATASET}.{suffix}.inter",
            table,
            fmt="%d",
            delimiter="\t",
            header="user_id:token\titem_id:token",
            comments="",
        )
    if kg_source is not None:
        shutil.copyfile(kg_source / "ml-100k.kg", target / f"{DATASET}.kg")
        link_items = write_link(data, kg_source, target / f"{DATASET}.link")
        print(f"knowledge graph: {link_items} of the split's {data.n_items} items linked")
    return folder


def write_link(data: SplitData, kg_source: Path, path: Path) -> int:
    """RecBole's ``ml-100k.link`` cut to the split's items and the graph's entities; returns
    the number of items kept.

    RecBole skips all filtering when it reads benchmark files, so its KG dataset meets the
    links of movies that have no positive (rating >= 4) and fails (``KeyError`` in
    ``_merge_item_and_entity``). Without benchmark files its ``_filter_link`` would drop those
    links, and also every interaction with an unlinked movie, which this cut does not: RecBole
    trains and tests on all of our pairs, unlinked movies having no graph neighbours.
    """
    kg = pd.read_csv(kg_source / "ml-100k.kg", sep="\t", dtype=str)
    entities = set(kg.iloc[:, 0]) | set(kg.iloc[:, 2])
    link = pd.read_csv(kg_source / "ml-100k.link", sep="\t", dtype=str)
    items = {str(item) for item in data.item_ids.tolist()}
    kept = link[link.iloc[:, 0].isin(items) & link.iloc[:, 1].isin(entities)]
    kept.to_csv(path, sep="\t", index=False)
    return int(kept.iloc[:, 0].nunique())


def recbole_config(row: Row, data_path: Path, checkpoints: Path, seed: int) -> dict[str, Any]:
    """The full RecBole config of ``row``: our split, full ranking, NDCG@10 and Recall@10."""
    load_col: dict[str, list[str]] = {"inter": ["user_id", "item_id"]}
    if row.kg:
        load_col |= {"kg": ["head_id", "relation_id", "tail_id"], "link": ["item_id", "entity_id"]}
    return {
        "dataset": DATASET,
        "data_path": str(data_path),
        "benchmark_filename": ["train", "valid", "test"],
        "load_col": load_col,
        "eval_args": {"mode": "full", "order": "RO", "group_by": "user"},
        "metrics": ["NDCG", "Recall"],
        "topk": [K],
        "valid_metric": f"NDCG@{K}",
        "metric_decimal_place": 6,
        # Full-ranking batches hold eval_batch_size // n_items users: 4096 (the default) is 2.
        "eval_batch_size": 4_000_000,
        "checkpoint_dir": str(checkpoints),
        "use_gpu": False,
        "seed": seed,
        "reproducibility": True,
        "show_progress": False,
        **row.budget.recbole(),
        **row.recbole_config,
    }


def worker_env(threads: int) -> dict[str, str]:
    """The reference worker's environment: none of ours on its path, ``threads`` threads."""
    return {
        **os.environ,
        "TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD": "1",
        "PYTHONPATH": "",
        "OMP_NUM_THREADS": str(threads),
        "MKL_NUM_THREADS": str(threads),
    }


def call_worker(python: Path, job: dict[str, Any], work: Path, tag: str, timeout: float) -> dict:
    """Runs ``_recbole_worker.py`` on ``job`` in the reference environment; its result, or
    ``{"error": ...}`` (RecBole's own output goes to ``work/<tag>.log``)."""
    job_path, result_path, log_path = (
        work / f"{tag}{ext}" for ext in (".job.json", ".json", ".log")
    )
    job_path.write_text(json.dumps(job))
    try:
        with open(log_path, "w") as log:
            subprocess.run(
                [str(python), str(WORKER), str(job_path), str(result_path)],
                cwd=work,  # RecBole writes ./log and ./log_tensorboard
                env=worker_env(job.get("threads", 1)),
                stdout=log,
                stderr=subprocess.STDOUT,
                timeout=timeout,
                check=False,
            )
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout:.0f} s"}
    if not result_path.is_file():
        tail = log_path.read_text().strip().splitlines()[-1:] or ["no output"]
        return {"error": f"worker failed: {tail[0][:200]} (see {log_path})"}
    return json.loads(result_path.read_text())


def run_recbole(row: Row, python: Path, work: Path, seed: int, threads: int) -> Side:
    if row.recbole is None:
        return Side(status="not in RecBole 1.2.1")
    job = {
        "model": row.recbole,
        "threads": threads,
        "verbose": True,  # each epoch's loss and validation in work/<row>.log
        "config": recbole_config(row, work / "data", work / "saved" / row.name, seed),
    }
    result = call_worker(python, job, work, row.name, RECBOLE_TIMEOUT_S)
    if "error" in result:
        print(f"  RecBole {row.recbole}: {result['error']}", flush=True)
        if "traceback" in result:
            (work / f"{row.name}.traceback.txt").write_text(result["traceback"])
        return Side(status="failed: " + result["error"][:80])
    test = result["test"]
    return Side(
        ndcg=test[f"ndcg@{K}"],
        recall=test[f"recall@{K}"],
        epochs=f"{result['best_epoch']}/{result['epochs']}",
        seconds=result["seconds"],
        info=result,
    )


def count_mismatch(info: dict[str, Any], data: SplitData) -> str:
    """Empty when RecBole read the split's users, items and pairs per split, else both counts."""
    theirs = (info["users"], info["items"], *info["interactions"].values())
    ours = (data.n_users, data.n_items, len(data.train), len(data.val), len(data.test))
    return "" if theirs == ours else f"read {theirs}, not {ours}"


def run_ours(row: Row, data: SplitData, seed: int) -> Side:
    if row.ours is None:
        return Side(status="(reference only)")
    spec = MODELS.get(row.ours)
    if spec is None:
        return Side(status="model not registered")
    fields = {f.name for f in dataclasses.fields(spec.config_cls)}
    config = {key: value for key, value in row.our_config.items() if key in fields}
    dropped = sorted(set(row.our_config) - fields)
    started = time.perf_counter()
    try:
        if spec.needs_item_embeddings(spec.make_config(config)):
            from recsys.text import with_item_embeddings

            data = with_item_embeddings(data)
        trainer = Trainer(row.ours, config, data, device="cpu", seed=seed)
        budget = row.our_budget or row.budget
        best, trained = early_stopped(trainer, budget.epochs, budget.every, budget.patience, 0)
        test = trainer.evaluate("test", ks=(K,))
    except Exception as error:  # a model still being written must not stop the table
        print(f"  ours {row.ours}: {type(error).__name__}: {error}", flush=True)
        return Side(status=f"failed: {type(error).__name__}")
    return Side(
        ndcg=test[f"ndcg@{K}"],
        recall=test[f"recall@{K}"],
        epochs=f"{best}/{trained}" if spec.trainable else "-",
        seconds=time.perf_counter() - started,
        status=f"dropped {', '.join(dropped)}" if dropped else "",
    )


def metric_check(python: Path, work: Path, seed: int) -> float:
    """Largest difference between RecBole's and our NDCG@10 / Recall@10 on one random hit matrix
    of 2,000 users (1 to 30 held-out items each)."""
    rng = np.random.default_rng(seed)
    n_relevant = rng.integers(1, 31, size=2000)
    hits = rng.random((2000, K)) < 0.3
    hits &= np.arange(K)[None, :] < n_relevant[:, None]  # never more hits than held-out items
    np.savez(work / "hits.npz", hits=hits, n_relevant=n_relevant)
    theirs = call_worker(python, {"metric_check": str(work / "hits.npz")}, work, "metrics", 300)
    if "error" in theirs:
        raise SystemExit(f"metric check failed: {theirs['error']}")
    h, n = torch.from_numpy(hits), torch.from_numpy(n_relevant)
    ours = {"ndcg": ndcg(h, n, K).double().numpy(), "recall": recall(h, n, K).double().numpy()}
    return max(float(np.abs(np.array(theirs[m]) - ours[m]).max()) for m in ours)


def reference_versions(python: Path) -> str:
    code = (
        "import importlib.metadata as m; "
        "print(', '.join(f'{p} {m.version(p)}' for p in "
        "('recbole', 'torch', 'numpy', 'scipy', 'pandas')))"
    )
    out = subprocess.run([str(python), "-c", code], capture_output=True, text=True, check=False)
    return out.stdout.strip() or f"unknown ({out.stderr.strip()[-200:]})"


def recbole_example_dir(python: Path) -> Path:
    """RecBole's ML-100K example folder inside the reference environment's ``recbole``."""
    code = "import recbole, pathlib; print(pathlib.Path(recbole.__file__).parent.parent)"
    out = subprocess.run([str(python), "-c", code], capture_output=True, text=True, check=True)
    return (Path(out.stdout.strip()) / RECBOLE_PREFIX).parent


def select(spec: str) -> list[Row]:
    if spec == "all":
        return list(ROWS)
    wanted = [name.strip().lower() for name in spec.split(",") if name.strip()]
    chosen = []
    for name in wanted:
        matches = [
            row
            for row in ROWS
            if name in (row.name, (row.recbole or "").lower(), (row.ours or "").lower())
        ]
        if not matches:
            raise SystemExit(f"unknown model {name!r}; rows: {', '.join(r.name for r in ROWS)}")
        chosen += [row for row in matches if row not in chosen]
    return chosen


def progress(side: Side) -> str:
    """One side's outcome on the progress line: NDCG@10, epochs and seconds, or its status."""
    if side.ndcg is None:
        return side.status
    text = f"ndcg@10 {side.ndcg:.4f}, epochs {side.epochs}, {side.seconds:.0f} s"
    return f"{text} ({side.status})" if side.status else text


def fmt(value: float | None, digits: int = 4) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def print_table(results: list[tuple[Row, Side, Side]]) -> None:
    header = (
        f"{'model':10} {'RecBole':9} {'ndcg@10':>8} {'rec@10':>7} {'epochs':>7} {'s':>5} | "
        f"{'ours':12} {'ndcg@10':>8} {'rec@10':>7} {'epochs':>7} {'s':>5} | "
        f"{'diff':>7}  note"
    )
    print(header)
    print("-" * len(header))
    for row, theirs, ours in results:
        diff = "-"
        if theirs.ndcg is not None and ours.ndcg is not None:
            diff = ("~" if not row.same_model else "") + f"{ours.ndcg - theirs.ndcg:+.4f}"
        notes = [s for s in (theirs.status and f"RecBole: {theirs.status}", row.note) if s]
        ours_name = row.ours or "-"
        if ours.status and ours.ndcg is None:
            ours_cells = f"{'ours: ' + ours.status:<43}"
        else:
            ours_cells = (
                f"{fmt(ours.ndcg):>8} {fmt(ours.recall):>7} {ours.epochs:>7} "
                f"{fmt(ours.seconds, 0):>5}"
            )
            notes += [ours.status] if ours.status else []
        print(
            f"{row.name:10} {row.recbole or '-':9} {fmt(theirs.ndcg):>8} {fmt(theirs.recall):>7} "
            f"{theirs.epochs:>7} {fmt(theirs.seconds, 0):>5} | {ours_name:12} {ours_cells} | "
            f"{diff:>7}  {'; '.join(notes)}",
            flush=True,
        )


# --time-epochs: the trainable models whose epochs are raced (the target: ours >= 3x).
TIMED_ROWS = ("multvae", "multdae", "bpr", "lightgcn")


class RecBoleEpochs:
    """A RecBole worker kept alive (``serve_epochs``) that trains or validates one epoch on
    request, so that its epochs interleave with ours; a context manager."""

    def __init__(self, python: Path, row: Row, work: Path, seed: int, threads: int) -> None:
        config = recbole_config(row, work / "data", work / "saved" / row.name, seed)
        tag = f"{row.name}-epochs-{threads}t"
        job_path = work / f"{tag}.job.json"
        job = {"model": row.recbole, "threads": threads, "serve_epochs": True, "config": config}
        job_path.write_text(json.dumps(job))
        self.log = open(work / f"{tag}.log", "w")
        self.proc = subprocess.Popen(
            [str(python), str(WORKER), str(job_path), str(work / f"{tag}.json")],
            cwd=work,
            env=worker_env(threads),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.log,
            text=True,
        )
        self.setup_seconds = self._answer()["seconds"]

    def _answer(self) -> dict[str, Any]:
        for line in self.proc.stdout:
            if line.startswith("@@ "):
                return json.loads(line[3:])
        raise SystemExit(f"RecBole worker ended early; see {self.log.name}")

    def seconds(self, command: str = "epoch") -> float:
        """Wall seconds of one RecBole training epoch (``"epoch"``) or validation (``"eval"``)."""
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()
        return float(self._answer()["seconds"])

    def __enter__(self) -> RecBoleEpochs:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proc.poll() is None:
            self.proc.stdin.write("quit\n")
            self.proc.stdin.close()
            self.proc.wait(timeout=60)
        self.log.close()


def our_seconds(trainer: Trainer, command: str = "epoch") -> float:
    """Wall seconds of one of our training epochs or validations (NDCG@10, Recall@10)."""
    started = time.perf_counter()
    if command == "epoch":
        trainer.train_epoch()
    else:
        trainer.evaluate("val", ks=(K,))
    return time.perf_counter() - started


def race(
    row: Row, data: SplitData, python: Path, work: Path, seed: int, threads: int, repeats: int
) -> dict[str, float]:
    """Median seconds of our and RecBole's epochs and validations of ``row``, interleaved:
    one warm-up each, then ``repeats`` rounds of (ours, RecBole) in alternating order."""
    torch.set_num_threads(threads)
    trainer = Trainer(row.ours, row.our_config, data, device="cpu", seed=seed)
    times: dict[str, list[float]] = {}
    with RecBoleEpochs(python, row, work, seed, threads) as theirs:
        sides = {"ours": lambda c: our_seconds(trainer, c), "recbole": theirs.seconds}
        for command in ("epoch", "eval"):
            for side in sides.values():
                side(command)  # warm-up
        for repeat in range(repeats):
            order = list(sides.items())[:: 1 if repeat % 2 == 0 else -1]
            for command in ("epoch", "eval"):
                for name, side in order:
                    times.setdefault(f"{name} {command}", []).append(side(command))
    return {key: float(np.median(values)) for key, values in times.items()}


def time_epochs(data: SplitData, python: Path, work: Path, args: argparse.Namespace) -> None:
    """Prints, per model and thread count, the median epoch and validation seconds of both
    sides and RecBole's / ours (the speed-up; the issue's target is an epoch ratio >= 3)."""
    rows = [row for row in select(args.models) if row.name in TIMED_ROWS]
    print(
        f"epochs and validations interleaved, median of {args.repeats} after one warm-up; "
        "ratio = RecBole s / ours s"
    )
    header = (
        f"{'model':9} {'threads':>7} | {'ours epoch':>10} {'RecBole':>8} {'ratio':>6} | "
        f"{'ours eval':>9} {'RecBole':>8} {'ratio':>6}"
    )
    print(header)
    print("-" * len(header))
    for threads in args.time_threads:
        for row in rows:
            median = race(row, data, python, work, args.seed, threads, args.repeats)
            epoch = median["recbole epoch"] / median["ours epoch"]
            evals = median["recbole eval"] / median["ours eval"]
            print(
                f"{row.name:9} {threads:>7} | {median['ours epoch']:>10.3f} "
                f"{median['recbole epoch']:>8.3f} {epoch:>5.1f}x | {median['ours eval']:>9.3f} "
                f"{median['recbole eval']:>8.3f} {evals:>5.1f}x",
                flush=True,
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=",".join(DEFAULT_ROWS))
    parser.add_argument("--reference-python", type=Path, default=DEFAULT_PYTHON)
    parser.add_argument("--work-dir", type=Path, default=None)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch threads on each side (default 1: on a shared 2-core machine, 2 threads "
        "made epochs 20-30x slower than 1)",
    )
    parser.add_argument(
        "--sides", choices=("both", "recbole", "ours"), default="both", help="what to run"
    )
    parser.add_argument("--list", action="store_true", help="print the rows and exit")
    parser.add_argument(
        "--time-epochs",
        action="store_true",
        help=f"race epoch and validation times instead (rows {', '.join(TIMED_ROWS)})",
    )
    parser.add_argument("--repeats", type=int, default=5, help="--time-epochs: rounds")
    parser.add_argument(
        "--time-threads",
        type=lambda text: [int(t) for t in text.split(",")],
        default=[1, 2],
        help="--time-epochs: torch thread counts, comma-separated",
    )
    args = parser.parse_args()
    if args.list:
        for row in ROWS:
            print(
                f"{row.name:10} RecBole {row.recbole or '-':9} ours {row.ours or '-':12} {row.note}"
            )
        return
    if args.time_epochs:
        args.models = args.models if args.models != ",".join(DEFAULT_ROWS) else "all"
    rows = select(args.models)
    torch.set_num_threads(args.threads)
    python = args.reference_python
    reference = args.sides != "ours"
    if reference and not python.is_file():
        raise SystemExit(f"{python} does not exist; run `make reference-venv` first")
    work = Path(args.work_dir or tempfile.mkdtemp(prefix="recbole-ref-"))
    work.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()

    data = ml100k_split()
    print(f"date: {datetime.datetime.now().astimezone():%Y-%m-%d %H:%M %Z}")
    print(
        f"machine: {platform.node()}, {platform.machine()}, {os.cpu_count()} CPUs, "
        f"{torch.get_num_threads()} torch threads"
    )
    versions = reference_versions(python) if reference else "not run"
    print(f"recsys-tune: torch {torch.__version__}; reference: {versions}")
    print(
        f"split ml-100k {data.fingerprint}: {data.n_users} users, {data.n_items} items, "
        f"train {len(data.train)}, val {len(data.val)}, test {len(data.test)}; files in {work}"
    )
    if args.time_epochs:
        export_split(data, work / "data", None)
        time_epochs(data, python, work, args)
        return
    if reference:
        kg_source = recbole_example_dir(python) if any(row.kg for row in rows) else None
        export_split(data, work / "data", kg_source)
        print(
            f"metric check (RecBole vs recsys.metrics, NDCG@10 and Recall@10): max |diff| "
            f"{metric_check(python, work, args.seed):.2e}",
            flush=True,
        )

    results = []
    for row in rows:
        print(f"running {row.name} ...", flush=True)
        theirs = Side(status="not run")
        if reference:
            theirs = run_recbole(row, python, work, args.seed, args.threads)
        if theirs.info:
            theirs.status = count_mismatch(theirs.info, data)
        ours = run_ours(row, data, args.seed) if args.sides != "recbole" else Side(status="not run")
        print(f"  RecBole: {progress(theirs)}; ours: {progress(ours)}", flush=True)
        results.append((row, theirs, ours))
    print()
    print_table(results)
    print(
        f"\ntotal {time.perf_counter() - started:.0f} s; diff = ours - RecBole test NDCG@10, "
        "'~': ours is an analogue, not the same model; epochs = best/trained"
    )


if __name__ == "__main__":
    main()
