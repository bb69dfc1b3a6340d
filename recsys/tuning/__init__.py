"""All the Ray Tune and MLflow wiring of a sweep.

- ``space``: search-space files (``searchspaces/<model>.yaml``): load, validate, convert to Tune.
- ``trainable``: the one function trainable (any registered model, epoch by epoch, checkpoints).
- ``resources``: each trial's CPU/GPU share, checked against the cluster before any trial starts.
- ``tracking``: MLflow runs (sweep parent, one nested run per trial from the driver, best runs).
- ``report``: the best checkpoint of each model on the test split, and the results directory.
- ``sweep``: ``SweepConfig`` and ``run_sweep``, which ``launch/sweep.py`` calls.
"""
