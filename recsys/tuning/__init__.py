"""All the Ray Tune and MLflow wiring of a sweep, one step per module (``sweep``'s docstring
draws how the types flow between them).

Before the search:

- ``config``: ``SweepConfig``, its validation (no Ray, no data), each model's budget.
- ``state``: ``SweepState``, what a sweep has done so far (``--resume`` reads it).
- ``space``: search-space files (``searchspaces/<model>.yaml``): load, validate, convert to Tune.
- ``resources``: the Ray cluster, and each trial's CPU/GPU share checked against it;
  ``memory``: each trial's peak memory and epoch time planned from the data's shape and its
  config, printed, asked of Ray as the trial's ``memory`` and refused up front if no node fits.
- ``inputs``: the split, and its copy without the test pairs for the trials.

The search:

- ``search``: every model's search in one Tuner (``--search``'s searchers, ``--time-budget``);
  ``per_model``: each model's searcher and ASHA behind the Tuner's one searcher and scheduler;
  ``bohb``: ``--search bohb``, BOHB's model learning at the rungs of the model's ASHA;
  ``interrupts``: Ctrl-C and SIGTERM.
- ``warm_start``: ``--warm-start``: the earlier sweeps of the same split in the MLflow store,
  their best configs run first and their trials told to Optuna's searchers.
- ``trainable``: the one function trainable (``Trainer.run`` inside a trial, checkpoints);
  ``accounting``: what a trial measured of itself (CPU seconds, peak RSS, peak GPU memory).
- ``snapshot``: Tune's experiment snapshot repaired before a resume.
- ``trial_runs``: one MLflow run per trial; ``progress``: the console's line per model.

After the search (Tune's shapes end in ``records``):

- ``records``: ``TrialRecord`` per trial and ``TrialEnd``, the one rule of how a trial ended.
- ``best``: pure functions of records: the best checkpoint (``Choice``), the search's cost, the
  curves.
- ``replicas``: ``--seeds``: the best configs trained again with other seeds, as Ray tasks;
  ``--folds``: on the other folds (``folds``: each fold's split, protocol and trials' copy).
- ``scoring``: the chosen checkpoint and the seed runs scored on validation and test.
- ``outcome``: ``ModelOutcome``, frozen, what every later step reads.
- ``finalize``: one model after the search: scored, its files and runs, its outcome saved.
- ``leaderboard``: ``Leaderboard`` (typed rows ranked by the target, intervals, paired tests).
- ``results`` (and ``plots``): everything written to the results directory.
- ``breakdown``: the leaderboard's metrics by user-activity and item-popularity bucket, and the
  pairs of models ``--compare`` asks for (``leaderboard_buckets.*``, ``compare.*``).
- ``tracking``: MLflow runs (sweep parent, best runs, seed runs) and provenance.
- ``registry``: each best checkpoint as an MLflow model (``recsys.serving``), the champion
  (``Leaderboard.best_model``), the experiment's UI tags, the leaderboard as an MLflow table.
- ``endings``: how a sweep ended, recorded in its state and on its MLflow runs.
- ``console``: the one console: progress (silenced by ``--quiet``) and warnings (stderr).
- ``sweep``: ``run_sweep``, the orchestrator that calls the steps above in order.
"""
