"""The served model end to end: one real sweep (Popularity, EASE, BPR-MF on the checkerboard)
logs every best checkpoint as an MLflow model and registers the champion, which loads with
``mlflow.pyfunc.load_model`` (without Ray) and answers over ``mlflow models serve``."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pandas as pd
import pytest
from conftest import block_split

from recsys.tuning import registry, tracking
from recsys.tuning.config import SweepConfig
from recsys.tuning.space import default_space_dir
from recsys.tuning.sweep import run_sweep

MODELS = ("popularity", "ease", "bpr_mf")
SPACES = {
    "ease.yaml": "budget: {max_epochs: 1, grace_period: 1, reduction_factor: 2, eval_every: 1, "
    "num_samples: 2}\nparams:\n  l2: {choice: [5.0, 250.0]}\n",
    "bpr_mf.yaml": "budget: {max_epochs: 2, grace_period: 1, reduction_factor: 2, eval_every: 1, "
    "num_samples: 1}\nparams: {dim: 8, lr: 0.05, l2: 1.0e-4, batch_size: 64, sampler: uniform}\n",
}
CHAMPION = "models:/recsys-tune-blocks@champion"


@pytest.fixture(scope="module")
def sweep(ray_session, tmp_path_factory):
    """One finished sweep; its tracking URI is the process's for the module's tests."""
    root = tmp_path_factory.mktemp("served")
    spaces = root / "spaces"
    spaces.mkdir()
    shutil.copy(default_space_dir() / "popularity.yaml", spaces)
    for name, text in SPACES.items():
        (spaces / name).write_text(text)
    uri = f"sqlite:///{root}/mlflow.db"
    cfg = SweepConfig(
        dataset="blocks",
        models=MODELS,
        tracking_uri=uri,
        storage_path=str(root / "ray"),
        results_dir=str(root / "results"),
        space_dir=str(spaces),
        seed=3,
        verbose=0,
        command="pytest",
    )
    cwd, environment = os.getcwd(), os.environ.get("MLFLOW_TRACKING_URI")
    os.chdir(root)  # MLflow's default artifact root is ./mlruns
    os.environ["MLFLOW_TRACKING_URI"] = uri
    try:
        yield run_sweep(cfg, data=block_split())
    finally:
        os.chdir(cwd)
        if environment is None:
            os.environ.pop("MLFLOW_TRACKING_URI", None)
        else:
            os.environ["MLFLOW_TRACKING_URI"] = environment


def _expected(sweep, model: str, k: int) -> pd.DataFrame:
    """The first ``k`` rows of each test user in the model's recommendations file."""
    recs = pd.read_parquet(sweep.state.results_dir / "recommendations" / f"{model}.parquet")
    return recs[recs["rank"] <= k].reset_index(drop=True)


def _group(pgid: int) -> list[int]:
    """The live processes of process group ``pgid``."""
    out = subprocess.run(["ps", "-eo", "pid=,pgid=,stat="], capture_output=True, text=True)
    return [
        int(pid)
        for pid, group, stat in (line.split() for line in out.stdout.splitlines())
        if int(group) == pgid and not stat.startswith("Z")
    ]


def _same_ranking(got: pd.DataFrame, expected: pd.DataFrame) -> None:
    columns = ["user_id", "item_id", "rank"]
    pd.testing.assert_frame_equal(got[columns], expected[columns], check_dtype=False)
    assert (got["score"] - expected["score"]).abs().max() < 1e-4


@pytest.mark.slow
def test_champion_loads_and_predicts_for_known_and_unknown_users(sweep):
    import mlflow

    champion = sweep.leaderboard.best_model().model
    loaded = mlflow.pyfunc.load_model(CHAMPION)
    assert loaded.unwrap_python_model().served.card.model == champion
    expected = _expected(sweep, champion, 3)
    users = pd.unique(expected["user_id"])
    got = loaded.predict(pd.DataFrame({"user_id": users, "k": 3}))
    assert (got["source"] == "model").all()
    _same_ranking(got, expected)
    # An unknown user gets the popularity ranking, marked; k defaults to 10.
    stranger = loaded.predict(pd.DataFrame({"user_id": ["nobody"]}))
    assert len(stranger) == 10 and (stranger["source"] == "popularity").all()
    assert list(stranger["rank"]) == list(range(1, 11))
    assert stranger["score"].is_monotonic_decreasing


@pytest.mark.slow
def test_every_best_run_links_to_its_model_which_ranks_as_its_recommendations_file(sweep):
    import mlflow

    uri = sweep.state.tracking_uri
    client = tracking.client(uri)
    for outcome in sweep.outcomes:
        models = mlflow.search_logged_models(
            experiment_ids=[client.get_run(outcome.best_run_id).info.experiment_id],
            filter_string=f"source_run_id = '{outcome.best_run_id}'",
            output_format="list",
        )
        assert [m.name for m in models] == ["model"]
        loaded = mlflow.pyfunc.load_model(f"models:/{models[0].model_id}")
        signature = loaded.metadata.signature
        assert signature.inputs.input_names() == ["user_id", "k"]
        assert signature.outputs.input_names() == ["user_id", "item_id", "rank", "score", "source"]
        expected = _expected(sweep, outcome.model, 100)  # every unseen item: 11 per user
        users = pd.unique(expected["user_id"])
        _same_ranking(loaded.predict(pd.DataFrame({"user_id": users, "k": 20})), expected)
    champion = client.get_model_version_by_alias("recsys-tune-blocks", "champion")
    best = {o.model: o.best_run_id for o in sweep.outcomes}[sweep.leaderboard.best_model().model]
    assert champion.tags[registry.TAG_BEST_RUN] == best


@pytest.mark.slow
def test_experiment_opens_on_its_runs_with_descriptions_and_the_leaderboard_table(sweep):
    client = tracking.client(sweep.state.tracking_uri)
    parent = client.get_run(sweep.state.parent_run_id)
    experiment = client.get_experiment(parent.info.experiment_id)
    assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"
    assert "recsys-tune-blocks" in experiment.tags["mlflow.note.content"]
    note = parent.data.tags["mlflow.note.content"]
    assert "popularity, ease, bpr_mf" in note and "**blocks**" in note
    table = client.load_table(experiment.experiment_id, "leaderboard.json", [parent.info.run_id])
    assert list(table["model"]) == [r.model for r in sweep.leaderboard.rows]
    assert list(table.columns) == list(sweep.leaderboard.to_frame().columns)


@pytest.mark.slow
def test_loading_the_champion_needs_no_ray(sweep):
    script = f"""
import importlib.abc, sys
class NoRay(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "ray" or name.startswith("ray."):
            raise ImportError("ray is not installed here")
sys.meta_path.insert(0, NoRay())
import mlflow, pandas as pd
model = mlflow.pyfunc.load_model({CHAMPION!r})
answer = model.predict(pd.DataFrame({{"user_id": ["u0", "nobody"], "k": [2, 2]}}))
print(list(answer["source"]), "ray" in sys.modules)
"""
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=300, check=False
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert (
        out.stdout.strip().splitlines()[-1]
        == "['model', 'model', 'popularity', 'popularity'] False"
    )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _post(url: str, body: dict) -> tuple[int, dict]:
    request = urllib.request.Request(
        url, json.dumps(body).encode(), {"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as response:  # noqa: S310
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


@contextlib.contextmanager
def _server(command: list[str], tmp_path: Path):
    """A model server started by ``command`` (in its own process group, on a free port it is
    given), once it answers /ping; yields (process, base URL). Afterwards it is stopped by its
    process group, and no process of the group may outlive its SIGTERM."""
    port = _free_port()
    log = tmp_path / "serve.log"
    server = subprocess.Popen(
        [*command, "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,  # its own process group, stopped as one below
        # mlflow models serve runs `uvicorn` from PATH: this environment's.
        env={
            **os.environ,
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        },
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 180
        while True:
            assert server.poll() is None, log.read_text()[-3000:]
            try:
                with urllib.request.urlopen(f"{url}/ping", timeout=5) as response:  # noqa: S310
                    if response.status == 200:
                        break
            except OSError:
                pass
            assert time.time() < deadline, f"{command[:3]} did not answer /ping in 180 s"
            time.sleep(1)
        yield server, url
        os.killpg(server.pid, signal.SIGTERM)  # the server and its workers stop on SIGTERM
        server.wait(timeout=30)
        time.sleep(1)
        assert not [p for p in _group(server.pid)], "a worker outlived the server's SIGTERM"
    finally:
        with contextlib.suppress(ProcessLookupError):  # the group is gone if it exited
            os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()


def _top_k_and_malformed_bodies(sweep, url: str) -> None:
    """The served top-k equals the recommendations file; malformed bodies are one-line 400s."""
    champion = sweep.leaderboard.best_model().model
    expected = _expected(sweep, champion, 3)
    users = list(pd.unique(expected["user_id"]))
    body = {"dataframe_split": {"columns": ["user_id", "k"], "data": [[u, 3] for u in users]}}
    status, answer = _post(f"{url}/invocations", body)
    assert status == 200
    _same_ranking(pd.DataFrame(answer["predictions"]), expected)

    status, answer = _post(f"{url}/invocations", {"dataframe_records": [{"user": "u0"}]})
    assert 400 <= status < 500 and "user_id" in answer["message"]
    status, answer = _post(f"{url}/invocations", {"dataframe_records": [{"user_id": "u0", "k": 0}]})
    assert 400 <= status < 500 and "k must be at least 1" in answer["message"]
    assert "stack_trace" not in answer
    status, answer = _post(
        f"{url}/invocations", {"dataframe_records": [{"user_id": "u0", "k": 2.5}]}
    )  # MLflow casts before predict: k is a double in the signature, so 2.5 reaches it
    assert 400 <= status < 500 and "k must be a whole number, got 2.5" in answer["message"]
    many = {"dataframe_split": {"columns": ["user_id"], "data": [["u0"]] * 5000}}
    status, answer = _post(f"{url}/invocations", many)
    assert 400 <= status < 500 and "more than the 1000 one request may" in answer["message"]


@pytest.mark.slow
def test_mlflow_models_serve_answers_with_the_top_k_and_rejects_a_malformed_body(sweep, tmp_path):
    mlflow_cli = Path(sys.executable).with_name("mlflow")
    command = [str(mlflow_cli), "models", "serve", "-m", CHAMPION, "--env-manager", "local"]
    with _server(command, tmp_path) as (_, url):
        _top_k_and_malformed_bodies(sweep, url)


@pytest.mark.slow
def test_the_guarded_server_cannot_be_knocked_over_by_a_request(sweep, tmp_path):
    command = [sys.executable, str(Path(__file__).parents[1] / "launch" / "serve.py")]
    with _server([*command, "-m", CHAMPION, "--max-body-bytes", "65536"], tmp_path) as (_, url):
        _top_k_and_malformed_bodies(sweep, url)
        # What mlflow models serve answers with a 500, a stack trace or a long wait:
        nested = b"[" * 20_000 + b"]" * 20_000  # 40 KB, under the cap
        status, answer = _post_raw(f"{url}/invocations", nested, "application/json")
        assert status == 400 and "levels deep" in answer["message"], answer
        status, answer = _post_raw(f"{url}/invocations", b'user_id,k\n"u0,3\n', "text/csv")
        assert status == 400 and set(answer) == {"error_code", "message"}, answer
        started = time.time()
        huge = b"user_id\n" + b"u0\n" * 1_000_000  # 3 MB, ten times the cap here
        status, answer = _post_raw(f"{url}/invocations", huge, "text/csv")
        assert status == 413 and "larger than 65536 bytes" in answer["message"]
        assert time.time() - started < 10
        status, _ = _post(f"{url}/invocations", {"dataframe_records": [{"user_id": "u0"}]})
        assert status == 200  # still up


def _post_raw(url: str, body: bytes, content_type: str) -> tuple[int, dict]:
    request = urllib.request.Request(url, body, {"Content-Type": content_type})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:  # noqa: S310
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def test_logging_a_model_keeps_mlflows_info_lines_off_the_console(tmp_path):
    import logging

    log = logging.getLogger("mlflow.pyfunc")
    before = log.level
    with registry._store(f"sqlite:///{tmp_path}/m.db"):
        assert not log.isEnabledFor(logging.INFO)  # "Validating input example ..." per model
        assert log.isEnabledFor(logging.WARNING)
    assert log.level == before
