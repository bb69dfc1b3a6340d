"""The final evaluation of one model: its best checkpoint restored and scored on validation and
test, then its seed runs (or, with ``--folds``, its fold runs, each on its fold's test) scored
on test. The one step of a sweep that reads the test pairs.

How test is scored is the sweep's :class:`EvalProtocol`: full ranking at the reported cut-offs
(with the beyond-accuracy metrics of the same lists, and recall and NDCG within the head, torso
and tail of training popularity: ``recsys.buckets``), and, with ``--sampled-negatives``, the
sampled protocol on candidates drawn once for the whole sweep. On a cold-item split, the full
ranking is among the test's cold items, and again among every item (``all_<metric>``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from recsys.metrics import REPORT_KS, metric_key, report_ks
from recsys.seeds import derive_seed
from recsys.tuning.best import Choice, search_cost, trial_curves
from recsys.tuning.outcome import ModelOutcome
from recsys.tuning.records import TrialRecord
from recsys.tuning.replicas import SeedRun, load_weights, replica_seeds
from recsys.tuning.trainable import load_checkpoint

if TYPE_CHECKING:
    import torch

    from recsys.data.dataset import SplitData
    from recsys.evaluate import UserMetrics
    from recsys.sampled import SampledCandidates
    from recsys.train import Trainer
    from recsys.tuning.config import SweepConfig


@dataclass(frozen=True)
class EvalProtocol:
    """How every model of a sweep is scored on test: the cut-offs (the target's among them),
    the sampled protocol's candidates (None: full ranking only), whether the split is a
    cold-item one (``cold``: test ranks among its cold items, then among every item too) and the
    item buckets whose metrics each user gets (name -> (n_items,) bool mask; None: none)."""

    ks: tuple[int, ...] = REPORT_KS
    candidates: SampledCandidates | None = None
    cold: bool = False
    buckets: Mapping[str, torch.Tensor] | None = None

    @classmethod
    def of(cls, cfg: SweepConfig, data: SplitData) -> EvalProtocol:
        """The protocol of ``cfg``; its sampled candidates are drawn from a seed derived once
        from the root seed, so every model (and a resumed sweep) ranks the same ones; its item
        buckets are the head, torso and tail of ``data``'s training popularity."""
        from recsys.buckets import popularity_buckets
        from recsys.evaluate import training_popularity

        ks = report_ks(cfg.metric, cfg.report_ks)
        cold = data.cold_items is not None
        buckets = popularity_buckets(training_popularity(data))
        if not cfg.sampled_negatives:
            return cls(ks, cold=cold, buckets=buckets)
        from recsys.sampled import sample_candidates

        seed = derive_seed(cfg.seed, "sampled-negatives")
        return cls(ks, sample_candidates(data, cfg.sampled_negatives, seed), cold, buckets)

    def test_users(self, trainer: Trainer) -> UserMetrics:
        """``trainer``'s model on test: full ranking (with the item buckets' metrics; a cold
        split's: among its cold items, and among every item as ``all_<metric>``), and the
        sampled protocol if any."""
        from recsys.evaluate import evaluate_users

        model, data = trainer.model, trainer.data
        test = evaluate_users(model, data, "test", self.ks, buckets=self.buckets)
        if self.cold:
            from recsys.metrics import ALL_ITEMS

            every = evaluate_users(model, data, "test", self.ks, all_items=True)
            test = test.merged(every.prefixed(ALL_ITEMS))
        if self.candidates is None:
            return test
        from recsys.sampled import sampled_user_metrics

        data, model = trainer.data, trainer.model
        was_training = model.training
        model.eval()
        try:
            sampled = sampled_user_metrics(
                model.score,
                self.candidates,
                data.n_users,
                data.n_items,
                self.ks,
                device=model.device,
            )
        finally:
            model.train(was_training)
        return test.merged(sampled)


@dataclass(frozen=True)
class Fold:
    """One fold of a cross-validated sweep (``--folds``: ``recsys.tuning.folds``).

    Attributes:
        number: 1..K (1: the search's split).
        data: its full split (the driver's, to score on its test).
        protocol: how its test is scored (its own sampled candidates, if any).
        trial_data: an object-store reference to ``data.without_test()``, what its runs train on.
    """

    number: int
    data: SplitData
    protocol: EvalProtocol
    trial_data: Any


@dataclass(frozen=True)
class Scored:
    """A model's outcome, with the trainer restored from its best checkpoint, that checkpoint,
    and every seed run's per-user test metrics (the best checkpoint's first): ``(seed,
    metrics)``, or with ``--folds`` ``(seed, metrics, fold)``."""

    outcome: ModelOutcome
    trainer: Trainer
    checkpoint: Any  # ray.tune.Checkpoint
    per_user: list[tuple] = field(default_factory=list)


def score(
    choice: Choice,
    records: Sequence[TrialRecord],
    data: SplitData,
    metric: str,
    protocol: EvalProtocol | None = None,
) -> Scored:
    """Restores ``choice`` and scores it on ``data``'s validation and test pairs.

    Args:
        choice: the model's best checkpoint (:func:`recsys.tuning.best.choose`).
        records: the model's trials (for the search's cost and curves).
        data: the full split (the test pairs included).
        metric: the validation target that chose the checkpoint.
        protocol: how test is scored (default: full ranking at the default cut-offs and the
            target's).
    """
    from recsys.train import Trainer, resolve_device

    trainer = Trainer(choice.model, choice.config, data, device=resolve_device(), seed=choice.seed)
    with choice.checkpoint.as_directory() as folder:
        load_checkpoint(trainer, folder)
    protocol = protocol or EvalProtocol(report_ks(metric))
    ks = protocol.ks
    test = protocol.test_users(trainer)
    cost = search_cost(records)
    means = _floats(test.means())
    outcome = ModelOutcome(
        model=choice.model,
        trial_id=choice.trial_id,
        config=choice.config,
        seed=choice.seed,
        best_epoch=trainer.epoch,
        val=_floats(trainer.evaluate(split="val", ks=ks)),
        test=means,
        trials=cost.trials,
        epochs=cost.epochs,
        wall_seconds=cost.wall_seconds,
        seconds_per_epoch=cost.seconds / max(1, cost.epochs),
        curves=trial_curves(records, metric_key("val", metric)),
        trials_stopped=cost.stopped,
        trials_failed=cost.failed,
        seeds=[choice.seed],
        seed_tests=[dict(means)],
    )
    return Scored(outcome, trainer, choice.checkpoint, [(choice.seed, test)])


def add_seed_runs(
    scored: Scored,
    runs: Sequence[SeedRun],
    n: int,
    data: SplitData,
    metric: str,
    protocol: EvalProtocol | None = None,
) -> Scored:
    """``scored`` with its seed runs scored on test: its outcome's test metrics are their mean
    over the seeds (the best checkpoint's included).

    Args:
        runs: the seed runs that trained (:meth:`recsys.tuning.replicas.Replicas.collect`);
            none for a closed-form model, whose every seed fits the same model: it counts ``n``
            seeds with the same scores.
        n: the number of seeds asked for.
        protocol: how test is scored (as :func:`score`'s).
    """
    from recsys.models import get_spec
    from recsys.train import Trainer

    outcome = scored.outcome
    if n <= 1:
        return scored
    if not get_spec(outcome.model).trainable:  # the same model for every seed
        seeds = replica_seeds(outcome.seed, n)
        return _with(scored, outcome.with_seeds(seeds, [outcome.seed_tests[0]] * n), [])
    protocol = protocol or EvalProtocol(report_ks(metric))
    per_user, tests = [], []
    for run in runs:
        trainer = Trainer(
            outcome.model, outcome.config, data, device=scored.trainer.device, seed=run.seed
        )
        load_weights(trainer, run.weights)
        scores = protocol.test_users(trainer)
        per_user.append((run.seed, scores))
        tests.append(_floats(scores.means()))
    seeds = [outcome.seed, *(run.seed for run in runs)]
    return _with(scored, outcome.with_seeds(seeds, [outcome.seed_tests[0], *tests]), per_user)


def add_fold_runs(scored: Scored, runs: Sequence[SeedRun], folds: Sequence[Fold]) -> Scored:
    """``scored`` (fold 1's best checkpoint) with its config's runs on folds 2..K scored on each
    fold's test, by each fold's protocol: its outcome's test metrics are their mean over the
    folds, and every per-user row knows its fold.

    Args:
        runs: the fold runs that trained (:meth:`recsys.tuning.replicas.Replicas.collect`; its
            seed runs are ignored); none for a closed-form model, fitted here on each fold.
        folds: every fold, fold 1 first (:func:`recsys.tuning.folds.load_folds`); none: no
            cross-validation, ``scored`` is returned as it is.
    """
    from recsys.models import get_spec
    from recsys.train import Trainer

    outcome = scored.outcome
    if len(folds) <= 1:
        return scored
    trainable = get_spec(outcome.model).trainable
    weights = {run.fold: run.weights for run in runs if run.fold > 1}
    done, tests = [1], [outcome.seed_tests[0]]
    per_user = [(seed, scores, 1) for seed, scores, *_ in scored.per_user]
    for fold in folds[1:]:
        if trainable and fold.number not in weights:  # its run failed: the mean is over the rest
            continue
        trainer = Trainer(
            outcome.model,
            outcome.config,
            fold.data,
            device=scored.trainer.device,
            seed=outcome.seed,
        )
        if trainable:
            load_weights(trainer, weights[fold.number])
        scores = fold.protocol.test_users(trainer)
        per_user.append((outcome.seed, scores, fold.number))
        done.append(fold.number)
        tests.append(_floats(scores.means()))
    return Scored(outcome.with_folds(done, tests), scored.trainer, scored.checkpoint, per_user)


def _with(scored: Scored, outcome: ModelOutcome, per_user: list) -> Scored:
    return Scored(outcome, scored.trainer, scored.checkpoint, [*scored.per_user, *per_user])


def _floats(values: dict[str, Any]) -> dict[str, float]:
    return {k: float(v) for k, v in values.items()}
