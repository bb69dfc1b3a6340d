"""Tune's experiment snapshot, made consistent with the checkpoints on storage before a resume.

Tune writes its experiment snapshot (every trial's state and latest checkpoint) every ten seconds
or so, while trials keep checkpointing and ``CheckpointConfig(num_to_keep)`` deletes the older
checkpoints at once. A driver killed between the two (``kill -9``, a lost head node) leaves a
snapshot that can name checkpoints that are gone; Tune then refuses to resume such a trial
(``Could not recover from checkpoint as it does not exist on storage anymore``) and, after its
retries, loses it. :func:`repair` rewrites the newest snapshot before ``Tuner.restore`` so that
each trial's latest checkpoint is one on storage (the oldest after the one named, else the newest
before it), with the metrics the trial reported with it, and the trial numbers its next
checkpoint after it. The
trial then goes on from there: the evaluations after it are reported again, and the MLflow trial
callback logs each epoch once.

This reads Tune's private snapshot types (``ray.tune.experiment.Trial`` and its checkpoint
manager, Ray 2.x); a test kills a real driver and deletes the checkpoints its snapshot named.
"""

from __future__ import annotations

import json
import os
import pickle
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from recsys.errors import RecsysError

_CHECKPOINT = re.compile(r"^checkpoint_(\d+)$")


@dataclass(frozen=True)
class Repaired:
    """One trial whose snapshot named a checkpoint that was gone: the one named, the one it goes
    on from instead (None: none is left, and it starts again from epoch 0)."""

    trial_dir: str
    named: str
    used: str | None

    def describe(self) -> str:
        instead = f"goes on from {self.used}" if self.used else "starts again from epoch 0"
        return (
            f"trial {self.trial_dir}: its checkpoint {self.named} was deleted after the last "
            f"snapshot of the search; it {instead}"
        )


# The search's own state files, rewritten at every snapshot (the trials' are checked by repair).
STATE_FILES = ("experiment_state-*.json", "search_gen_state-*.json", "searcher-state-*.pkl")


def restore_damaged(experiment_path: str) -> list[str]:
    """Puts back the search's state files that a kill left cut short, from the copy the killed
    driver staged, whole, in its Ray session folder (Tune writes each there atomically, then
    copies it to storage, which a kill can interrupt); returns the names it put back.

    Raises:
        RecsysError: a file is damaged and no whole copy is left: the search cannot go on.
    """
    import pyarrow.fs as pafs

    fs, root, _ = newest(experiment_path)
    if not isinstance(fs, pafs.LocalFileSystem):
        return []  # a remote storage's copies are whole or absent
    folder = Path(root)
    fixed = []
    for path in sorted(p for pattern in STATE_FILES for p in folder.glob(pattern)):
        if _whole(path):
            continue
        copy = _staged_copy(folder.name, path.name)
        if copy is None:
            raise RecsysError(
                f"{path}: the search's saved state was cut short (the sweep was killed while "
                f"writing it) and no whole copy is left; start the sweep again (another --name)"
            )
        spare = path.with_name(f".{path.name}.restore")
        shutil.copyfile(copy, spare)
        os.replace(spare, path)
        fixed.append(path.name)
    return fixed


def _whole(path: Path) -> bool:
    """Whether a state file reads to its end: the experiment state is JSON, the searcher's
    files are pickles (``search_gen_state-*.json`` too, whatever its name says)."""
    try:
        if path.name.startswith("experiment_state-"):
            json.loads(path.read_text())
        else:
            with open(path, "rb") as f:
                pickle.load(f)  # noqa: S301 (the sweep's own file)
        return True
    except Exception:
        return False


def _staged_copy(experiment: str, name: str) -> Path | None:
    """The newest whole copy of ``name`` in a Ray session's staging folder of ``experiment``."""
    temp = Path(os.environ.get("RAY_TMPDIR", tempfile.gettempdir())) / "ray"
    found = temp.glob(f"session_*/artifacts/*/{experiment}/driver_artifacts/{name}")
    whole = [p for p in found if p.stat().st_size and _whole(p)]
    return max(whole, key=lambda p: p.stat().st_mtime) if whole else None


def newest(experiment_path: str) -> tuple[Any, str, str | None]:
    """The experiment's filesystem, its path there, and its newest snapshot file (None: none)."""
    from ray.train._internal.storage import get_fs_and_path
    from ray.tune.execution.experiment_state import _find_newest_experiment_checkpoint

    fs, root = get_fs_and_path(experiment_path)
    return fs, root, _find_newest_experiment_checkpoint(root, fs=fs)


def latest_checkpoints(experiment_path: str) -> dict[str, str]:
    """Per trial folder, the latest checkpoint the newest snapshot names (trials with one)."""
    from ray.tune.experiment import Trial

    fs, _, path = newest(experiment_path)
    if path is None:
        return {}
    with fs.open_input_stream(path) as f:
        state = json.loads(f.readall())
    named = {}
    for trial_json, meta_json in state["trial_data"]:
        trial = Trial.from_json_state(trial_json, stub=True)
        trial.restore_run_metadata(meta_json)
        manager = trial.run_metadata.checkpoint_manager
        if manager is not None and manager.latest_checkpoint_result is not None:
            named[trial.storage.trial_dir_name] = _name(manager.latest_checkpoint_result)
    return named


def repair(experiment_path: str) -> list[Repaired]:
    """Rewrites the newest experiment snapshot under ``experiment_path`` so that it names only
    checkpoints that exist; returns the trials it changed (none: the file is left untouched)."""
    from ray.tune.utils.serialization import TuneFunctionEncoder

    fs, root, newest_file = newest(experiment_path)
    if newest_file is None:
        return []
    with fs.open_input_stream(newest_file) as f:
        state = json.loads(f.readall())
    changed = []
    for i, (trial_json, meta_json) in enumerate(state["trial_data"]):
        fixed = _repair_trial(fs, root, trial_json, meta_json)
        if fixed is not None:
            state["trial_data"][i], record = fixed
            changed.append(record)
    if changed:
        temporary = f"{newest_file}.repair"
        with fs.open_output_stream(temporary) as f:
            f.write(json.dumps(state, cls=TuneFunctionEncoder).encode())
        fs.move(temporary, newest_file)
    return changed


def _repair_trial(
    fs: Any, root: str, trial_json: str, meta_json: str
) -> tuple[list[str], Repaired] | None:
    """The trial's snapshot entry with its checkpoints made to exist, or None if they do."""
    from ray.tune import Checkpoint
    from ray.tune.experiment import Trial

    trial = Trial.from_json_state(trial_json, stub=True)
    trial.restore_run_metadata(meta_json)
    manager = trial.run_metadata.checkpoint_manager
    latest = manager.latest_checkpoint_result if manager is not None else None
    if latest is None:
        return None
    folder = f"{root}/{trial.storage.trial_dir_name}"
    named = _name(latest)
    on_storage = _checkpoints(fs, folder)
    if named in on_storage:
        return None
    kept = [r for r in manager._checkpoint_results if _name(r) in on_storage]
    used = replacement(named, on_storage)
    result = None
    if used is not None:
        metrics = _reported_with(fs, folder, used)
        score = manager.checkpoint_config.checkpoint_score_attribute
        if score and score not in metrics:  # never logged: it ranks last, never the best
            metrics = {**metrics, score: float("-inf")}
        result = type(latest)(
            checkpoint=Checkpoint(f"{folder}/{used}", filesystem=fs), metrics=metrics
        )
        kept = sorted(
            [*(r for r in kept if _name(r) != used), result], key=manager._get_checkpoint_score
        )
        # The trial numbers its next checkpoint after the one it goes on from, as it did then.
        trial.storage.current_checkpoint_index += _index(used) - _index(named)
    manager._checkpoint_results = kept
    manager._latest_checkpoint_result = result
    trial.stub = json.loads(trial_json).get("stub", False)  # as it was, not as read here
    trial.invalidate_json_state()
    trial.run_metadata.invalidate_cache()
    record = Repaired(trial.storage.trial_dir_name, named, used)
    return list(trial.get_json_state()), record


def replacement(named: str, on_storage: set[str]) -> str | None:
    """The checkpoint a trial goes on from when ``named`` is gone: the oldest one after it (the
    next the trial registered), else the newest before it (its best, kept), else none."""
    later = sorted((n for n in on_storage if _index(n) > _index(named)), key=_index)
    earlier = sorted((n for n in on_storage if _index(n) < _index(named)), key=_index)
    return later[0] if later else (earlier[-1] if earlier else None)


def _checkpoints(fs: Any, folder: str) -> set[str]:
    import pyarrow.fs as pafs

    found = fs.get_file_info(pafs.FileSelector(folder, allow_not_found=True))
    return {
        info.base_name
        for info in found
        if info.type == pafs.FileType.Directory and _CHECKPOINT.match(info.base_name)
    }


def _reported_with(fs: Any, folder: str, name: str) -> dict[str, Any]:
    """The result the trial reported with checkpoint ``name`` (its ``result.json`` row); empty
    if the driver died before logging it."""
    try:
        with fs.open_input_stream(f"{folder}/result.json") as f:
            lines = f.readall().decode().splitlines()
    except (FileNotFoundError, OSError):
        return {}
    for line in reversed(lines):
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue  # a line cut short by the kill
        if row.get("checkpoint_dir_name") == name:
            return row
    return {}


def _name(result: Any) -> str:
    return result.checkpoint.path.rstrip("/").rsplit("/", 1)[-1]


def _index(name: str) -> int:
    match = _CHECKPOINT.match(name)
    return int(match.group(1)) if match else -1
