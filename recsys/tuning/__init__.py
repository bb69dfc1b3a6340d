"""All the Ray Tune and MLflow wiring of a sweep, one step per module.

- ``config``: ``SweepConfig``, its validation (no Ray, no data), each model's budget.
- ``state``: ``SweepState``, what a sweep has done so far (``--resume`` reads it).
- ``space``: search-space files (``searchspaces/<model>.yaml``): load, validate, convert to Tune.
- ``resources``: the Ray cluster, and each trial's CPU/GPU share checked against it.
- ``search``: one model's search: searcher, ASHA, progress output, the Tuner.
- ``trainable``: the one function trainable (``Trainer.run`` inside a trial, checkpoints).
- ``best``: the best checkpoint, scored on validation and test, as a ``ModelOutcome``.
- ``results`` (and ``plots``): everything written to the results directory.
- ``tracking``: MLflow runs (sweep parent, one nested run per trial, best runs) and provenance.
- ``registry``: each best checkpoint as an MLflow model (``recsys.serving``), the champion's
  registration, the experiment's UI tags and descriptions, the leaderboard as an MLflow table.
- ``sweep``: ``run_sweep``, the orchestrator that calls the steps above in order.
"""
