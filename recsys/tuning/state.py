"""What a sweep has done so far, kept in ``<results>/.sweep/`` so that ``--resume`` can go on.

``SweepState`` is the one owner of that record: ``sweep.json`` (the config, where the sweep
writes, its MLflow parent run, each model's search time), one ``<model>.json`` per model whose
outcome is final, ``spaces/`` (the space files the sweep started with: a resume goes on with
them) and ``lock`` (the claim of the sweep running there, :mod:`recsys.tuning.claim`).
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from recsys.errors import EXIT_OK, RecsysError, SweepEnded
from recsys.io import check_writable, redact, write_text_atomic
from recsys.tuning import console
from recsys.tuning.claim import Claim
from recsys.tuning.config import DEFAULT_TRACKING_URI, SweepConfig, check_name
from recsys.tuning.outcome import ModelOutcome
from recsys.tuning.space import SearchSpace, default_space_dir

STATE_DIR = ".sweep"
SPACES = "spaces"


class AlreadyFinished(SweepEnded):
    """``--resume`` of a sweep that finished: nothing to do, nothing started."""

    exit_status = EXIT_OK
    label = "finished"


UNTRACKED = "untracked"  # the status of a sweep that finished while its tracking store broke
TIME_BUDGET = "time_budget"  # the status of a sweep whose --time-budget ended its search


@dataclass
class SweepState:
    """A sweep's resumable record.

    Attributes:
        name: the sweep's name (MLflow parent run name, results folder).
        sweep_id: unique to this sweep; its Ray storage folder is ``<name>-<sweep_id>``, so two
            sweeps of the same name never restore each other's trials.
        results_dir: absolute results directory; the state lives in its ``.sweep/``.
        config: the sweep's settings (on resume: the saved ones, see ``resumed_with``).
        storage: Ray Tune storage of this sweep (its experiment is the folder ``search``).
        tracking_uri, experiment: the MLflow store and experiment.
        parent_run_id: the sweep's MLflow run, once started.
        search_seconds: the search's wall time summed over the runs of the sweep.
        status: ``running``; or how it ended: ``finished``, ``trials_lost`` (finished, some
            trials failed), ``failed`` (a model has no result, or the driver failed),
            ``interrupted`` (``--resume`` continues it), ``untracked`` (finished, results
            written, but the tracking store broke: ``--resume`` logs the sweep again) or
            ``time_budget`` (its ``--time-budget`` ended the search; results written of the
            trials that ran; final: a new sweep with ``--warm-start`` goes on from it).
        time_cut: whether the time budget ended the search (trials stopped or never started).
        tracking_problem: why the tracking store broke during this run of the sweep (see
            ``tracking.store_problem``); None while it works.
    """

    name: str
    sweep_id: str
    results_dir: Path
    config: SweepConfig
    storage: str
    tracking_uri: str
    experiment: str
    parent_run_id: str | None = None
    search_seconds: float = 0.0
    status: str = "running"
    tracking_problem: str | None = None
    time_cut: bool = False
    claim: Claim | None = field(default=None, repr=False, compare=False)  # held while it runs

    @classmethod
    def create(cls, cfg: SweepConfig) -> SweepState:
        """A new sweep's state, its results directory claimed (nothing else written yet);
        refuses a folder that holds a sweep or that another sweep is using."""
        name, results_dir = _names(cfg)
        claim = Claim.take(results_dir, STATE_DIR)
        if _path(results_dir).is_file():
            claim.release(undo=True)
            raise RecsysError(
                f"{results_dir} already holds a sweep; pass --resume to continue it, or another "
                f"--name / --results-dir"
            )
        storage = cfg.storage_path or str(Path("ray_results").resolve())
        if "://" not in storage:
            storage = str(Path(storage).resolve())
        sweep_id = uuid.uuid4().hex[:12]
        return cls(
            name=name,
            sweep_id=sweep_id,
            results_dir=results_dir,
            config=cfg,
            storage=f"{storage.rstrip('/')}/{name}-{sweep_id}",
            tracking_uri=cfg.tracking_uri
            or os.environ.get("MLFLOW_TRACKING_URI")
            or DEFAULT_TRACKING_URI,
            experiment=cfg.experiment or f"recsys-tune-{cfg.dataset}",
            claim=claim,
        )

    @classmethod
    def resume(cls, cfg: SweepConfig) -> SweepState:
        """The state of the sweep ``cfg`` names (or the latest), claimed, continued with
        ``cfg``'s choices of where and how to run and with the space files it started with.

        Raises:
            AlreadyFinished: the sweep finished; nothing is started.
        """
        results_dir = find_resumable(cfg)
        status = cls.load(results_dir).status
        if status == "finished":
            raise AlreadyFinished(
                f"sweep at {results_dir} already finished: nothing to resume; its leaderboard "
                f"is {results_dir / 'leaderboard.md'}"
            )
        if status == TIME_BUDGET:
            raise AlreadyFinished(
                f"sweep at {results_dir} ended by its --time-budget: its results are final "
                f"({results_dir / 'leaderboard.md'}); to search on, start a new sweep with "
                f"--warm-start on the same tracking store"
            )
        claim = Claim.take(results_dir, STATE_DIR)
        state = cls.load(results_dir)  # again: the sweep that held it may have moved on
        state.claim = claim
        if state.status == UNTRACKED:
            # The runs went with the broken store: log the sweep anew, in --tracking-uri's
            # store if given, else in a new database where the old one was.
            state.tracking_uri = cfg.tracking_uri or state.tracking_uri
            state.parent_run_id = None
            state.tracking_problem = None
            for model in state.config.models:  # their best runs were in the broken store
                state._outcome_path(model).unlink(missing_ok=True)
        else:
            try:
                state.tracking_uri = _with_credentials(state.tracking_uri, cfg.tracking_uri)
            except RecsysError:
                claim.release()
                raise
        state.config = _kept_spaces(state.config.resumed_with(cfg), cfg, results_dir)
        return state

    def release(self, undo: bool = False) -> None:
        """Lets the results directory go (``undo``: removes what the claim created)."""
        if self.claim is not None:
            self.claim.release(undo)

    def keep_spaces(self, spaces: Mapping[str, SearchSpace]) -> None:
        """Keeps the space files the sweep starts with, for its resumes: those of ``spaces``
        and of every other model of the sweep (a cold-item split does not search a model that
        cannot score cold items, yet its resume reads the same files)."""
        folder = Path(self.config.space_dir or default_space_dir())
        files = {m: folder / f"{m}.yaml" for m in self.config.models}
        files.update({m: space.path for m, space in spaces.items()})
        for model, source in files.items():
            path = self.results_dir / STATE_DIR / SPACES / f"{model}.yaml"
            if not path.is_file() and source.is_file():
                write_text_atomic(path, source.read_text())

    @classmethod
    def load(cls, results_dir: Path) -> SweepState:
        raw = json.loads(_path(results_dir).read_text())
        return cls(
            name=raw["name"],
            sweep_id=raw.get("sweep_id", ""),
            results_dir=results_dir,
            config=SweepConfig.from_dict(raw["config"]),
            storage=raw["storage"],
            tracking_uri=raw["tracking_uri"],
            experiment=raw["experiment"],
            parent_run_id=raw.get("parent_run_id"),
            search_seconds=float(raw.get("search_seconds", 0.0)),
            status=raw.get("status", "running"),
            tracking_problem=raw.get("tracking_problem"),
            time_cut=bool(raw.get("time_cut", False)),
        )

    def check_paths(self) -> None:
        """Raises unless the results directory and a local Ray storage can be written."""
        check_writable(self.results_dir, "--results-dir")
        if "://" not in self.storage:
            check_writable(self.storage, "--storage-path")

    def save(self) -> None:
        """Writes ``sweep.json``; a tracking URI's credentials are left out (``redact``)."""
        raw = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "claim"}
        config = self.config.to_dict()
        if config.get("tracking_uri"):
            config["tracking_uri"] = redact(config["tracking_uri"])
        raw.update(
            results_dir=str(self.results_dir),
            config=config,
            tracking_uri=redact(self.tracking_uri),
        )
        write_text_atomic(_path(self.results_dir), json.dumps(raw, indent=1, default=str))

    def record_search(self, seconds: float, cut: bool) -> None:
        """Adds a search's wall time, and whether its time budget cut it short; saves."""
        self.search_seconds += seconds
        self.time_cut = self.time_cut or cut
        self.save()

    @property
    def tracked(self) -> bool:
        """Whether the sweep's runs are still logged (its tracking store has not broken)."""
        return self.tracking_problem is None

    def lose_tracking(self, problem: str) -> None:
        """Records that the tracking store broke: from here on nothing is logged there, and no
        model's outcome is kept as final (a resume re-logs them)."""
        if self.tracking_problem is None:
            self.tracking_problem = problem
            self.save()

    def outcome(self, model: str) -> ModelOutcome | None:
        """``model``'s final outcome, if an earlier run of the sweep reached it."""
        path = self._outcome_path(model)
        return ModelOutcome.from_json(path.read_text()) if path.is_file() else None

    def save_outcome(self, outcome: ModelOutcome) -> None:
        """Keeps ``outcome`` as final, unless the tracking store broke (see ``lose_tracking``)."""
        if self.tracked:
            write_text_atomic(self._outcome_path(outcome.model), outcome.to_json())

    def _outcome_path(self, model: str) -> Path:
        return self.results_dir / STATE_DIR / f"{model}.json"

    def resume_command(self) -> str:
        return f"python launch/sweep.py --resume --results-dir {self.results_dir}"


def _with_credentials(saved: str, given: str | None) -> str:
    """The sweep's tracking URI with the credentials its saved copy leaves out: from
    ``--tracking-uri`` or ``$MLFLOW_TRACKING_URI`` when it names the same store."""
    candidates = [u for u in (given, os.environ.get("MLFLOW_TRACKING_URI")) if u]
    for uri in candidates:
        if redact(uri) == saved:
            return uri
    if given is not None:
        raise RecsysError(
            f"--resume keeps the sweep's tracking store {saved}; --tracking-uri {redact(given)} "
            f"names another: drop it, or pass that store's URI"
        )
    if saved != redact(saved) or "***@" in saved:
        raise RecsysError(
            f"the sweep's tracking URI {saved} had credentials, which are not saved: resume "
            f"with --tracking-uri and its full URI, or set MLFLOW_TRACKING_USERNAME and "
            f"MLFLOW_TRACKING_PASSWORD and start it with a URI without them"
        )
    return saved


def _kept_spaces(config: SweepConfig, given: SweepConfig, results_dir: Path) -> SweepConfig:
    """``config`` reading the space files its sweep started with, saying which files changed
    since (a sweep started before they were kept reads its space folder as before)."""
    kept = results_dir / STATE_DIR / SPACES
    if not kept.is_dir():
        return config
    current = Path(given.space_dir or config.space_dir or default_space_dir())
    for model in config.models:
        now = current / f"{model}.yaml"
        if now.is_file() and now.read_bytes() != (kept / f"{model}.yaml").read_bytes():
            console.say(
                f"resume: {now} changed since the sweep started; it goes on with the space it "
                f"started with ({kept / f'{model}.yaml'}); start a new sweep to search the new one"
            )
    return dataclasses.replace(config, space_dir=str(kept))


def _path(results_dir: Path) -> Path:
    return results_dir / STATE_DIR / "sweep.json"


def _names(cfg: SweepConfig) -> tuple[str, Path]:
    """The sweep's name and absolute results directory."""
    check_name(cfg.name)
    name = cfg.name
    if name is None and cfg.results_dir is not None:
        name = Path(cfg.results_dir).name
    if name is None:
        name = f"{cfg.dataset}-{time.strftime('%Y%m%d-%H%M%S')}"
    results_dir = Path(cfg.results_dir) if cfg.results_dir else Path("results") / name
    return name, results_dir.resolve()


def find_resumable(cfg: SweepConfig) -> Path:
    """The results directory of the sweep ``--resume`` continues."""
    if cfg.results_dir or cfg.name:
        _, results_dir = _names(cfg)
        if not _path(results_dir).is_file():
            raise RecsysError(
                f"--resume: {results_dir} holds no interrupted sweep ({STATE_DIR}/sweep.json "
                f"missing); check --name / --results-dir"
            )
        return results_dir
    candidates = sorted(Path("results").glob(f"*/{STATE_DIR}/sweep.json"), key=os.path.getmtime)
    if not candidates:
        raise RecsysError("--resume: no sweep under results/; pass --results-dir or --name")
    return candidates[-1].parents[1].resolve()
