"""Runs in MLflow, checked through MLflow's own client and store: what a sync logs, that it logs each
run once, that a broken store never fails a run and is caught up with, and the run's HTML report."""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import tarfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import joblib
import mlflow
import mlflow.artifacts
import mlflow.sklearn
import pandas as pd
import pytest
from mlflow import MlflowClient
from rich.console import Console

from ml import run_report, tracking, ui
from ml.__main__ import main
from ml.config import PROJECT_ROOT, load_config
from ml.context import make_context
from ml.summary import Summary
from tests import mermaid
from tests.conftest import merge, open_gate, quiet_console, weak_training, write_config
from tests.test_tune import tiny_search

pytestmark = pytest.mark.xdist_group("tracking")


@dataclass
class TwoRuns:
    state: Path
    configs: tuple[Path, Path]
    records: list[dict[str, Any]]


def _records(state: Path) -> list[dict[str, Any]]:
    return [json.loads(p.read_text()) for p in sorted((state / "runs").glob("*.json"))]


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TwoRuns]:
    """The project's model, then the task's dummy estimator (other parameters), each through `make pipeline`."""
    base = tmp_path_factory.mktemp("tracking")
    state = base / "state"
    (base / "one").mkdir()
    (base / "two").mkdir()
    first = write_config(base / "one")
    second = write_config(base / "two", **merge(weak_training(), {"gate": open_gate()}))
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLOPS_HOME", str(state))
        patch.setenv("MLOPS_ENV", "local")
        try:
            for config in (first, second):
                patch.setenv("MLOPS_CONFIG", str(config))
                assert main(["pipeline"]) == 0
        finally:
            main(["stop"])  # before any copy of the state is made: a copy must not share its server
    yield TwoRuns(state, (first, second), _records(state))


def _pipeline() -> int:
    try:
        return main(["pipeline"])
    finally:
        main(["stop"])


def _context(state: Path, config: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("MLOPS_HOME", str(state))
    monkeypatch.setenv("MLOPS_ENV", "local")
    monkeypatch.setenv("MLOPS_CONFIG", str(config))
    return make_context(load_config(), quiet_console())


def _copy(runs: TwoRuns, target: Path) -> Path:
    """The two runs' state without its MLflow store: a project whose runs were never logged."""
    shutil.copytree(runs.state, target, ignore=shutil.ignore_patterns("mlflow"))
    return target


def _client(state: Path) -> MlflowClient:
    return MlflowClient(f"sqlite:///{state / 'mlflow' / 'mlflow.db'}")


def _mlflow_runs(state: Path) -> list[Any]:
    client = _client(state)
    experiment = client.get_experiment_by_name(load_config().project.resource_prefix)
    assert experiment is not None
    return list(client.search_runs([experiment.experiment_id], order_by=["attributes.start_time ASC"]))


@pytest.fixture(scope="module")
def synced(two_runs: TwoRuns) -> tracking.SyncReport:
    with pytest.MonkeyPatch.context() as patch:
        report = tracking.sync(_context(two_runs.state, two_runs.configs[0], patch))
    assert report.failed == {}, report.failed
    return report


def test_every_run_is_logged_with_its_parameters_metrics_lineage_and_files(
    two_runs: TwoRuns, synced: tracking.SyncReport, monkeypatch: pytest.MonkeyPatch
) -> None:
    registry = _context(two_runs.state, two_runs.configs[0], monkeypatch).backends.registry
    assert sorted(synced.logged) == [r["run_id"] for r in two_runs.records]
    logged = _mlflow_runs(two_runs.state)
    assert [r.data.tags[tracking.RUN_ID_TAG] for r in logged] == [r["run_id"] for r in two_runs.records]
    client = _client(two_runs.state)
    for run, record in zip(logged, two_runs.records, strict=True):
        assert run.info.status == "FINISHED"
        assert run.data.params["estimator"] == record["params"]["estimator"]
        for name, value in record["metrics"].items():
            assert run.data.metrics[name] == pytest.approx(value)
        evaluation = json.loads((Path(record["paths"]["report"]) / "evaluation.json").read_text())
        for role, baseline in evaluation["baselines"].items():
            for name, value in baseline["metrics"].items():
                assert run.data.metrics[f"baseline.{role}.{name}"] == pytest.approx(value)
        for slice_name, cut in evaluation["slices"].items():
            for group in cut["groups"]:
                assert run.data.metrics[tracking.key(f"slice.{slice_name}.{group['group']}.rows")] == group["rows"]
        tags = run.data.tags
        assert tags["registry.version"] == str(record["model"]["version"])
        assert tags["registry.approval"] == record["model"]["approval"] == "Approved"
        assert tags["data.hash"] == record["data"]["hash"] == tags["lineage.data_hash"]
        # The registry's whole lineage (git_sha is "unknown" in a project with no commit yet).
        lineage = registry.get(record["model"]["version"]).package.lineage
        assert {name: tags[tracking.key(f"lineage.{name}")] for name in lineage} == {
            k: str(v) for k, v in lineage.items()
        }
        assert "lineage.git_sha" in tags
        assert tags["model.fingerprint"] == record["model"]["fingerprint"]
        files = {a.path for a in client.list_artifacts(run.info.run_id, "evaluation")}
        assert {"evaluation/evaluation.json", "evaluation/importance.png", "evaluation/model_card.md"} <= files
        top = {a.path for a in client.list_artifacts(run.info.run_id)}
        assert {f"{record['run_id']}.json", f"{record['run_id']}.html"} <= top
    # The two runs differ in what was trained, and MLflow says so.
    assert logged[0].data.params["estimator"] != logged[1].data.params["estimator"]
    assert "champion." + next(iter(two_runs.records[1]["metrics"])) in logged[1].data.metrics


def test_the_logged_model_is_the_registered_one_in_mlflows_sklearn_flavour(
    two_runs: TwoRuns, synced: tracking.SyncReport, monkeypatch: pytest.MonkeyPatch
) -> None:
    ctx = _context(two_runs.state, two_runs.configs[0], monkeypatch)
    run = _mlflow_runs(two_runs.state)[0]
    client = MlflowClient(tracking.tracking_uri(ctx.config))
    (entry,) = client.search_logged_models(
        [run.info.experiment_id], filter_string=f"source_run_id = '{run.info.run_id}'"
    )
    assert run.data.tags["model.mlflow_id"] == entry.model_id
    logged = mlflow.sklearn.load_model(mlflow.artifacts.download_artifacts(artifact_uri=entry.artifact_location))
    package = ctx.backends.registry.get(1).package
    archive = ctx.backends.artifacts.get(package.model_uri, Path(ctx.config.state_dir) / "check.tar.gz")
    with tarfile.open(archive) as tar:
        model, metadata = (tar.extractfile(name) for name in ("model.joblib", "metadata.json"))
        assert model is not None and metadata is not None
        registered = joblib.load(io.BytesIO(model.read()))
        features = json.loads(metadata.read())["features"]
    rows = pd.read_csv(ctx.config.root / ctx.config.data.source).head(20)[features]
    assert (logged.predict(rows) == registered.predict(rows)).all()


def test_a_second_sync_logs_nothing_twice(
    two_runs: TwoRuns, synced: tracking.SyncReport, monkeypatch: pytest.MonkeyPatch
) -> None:
    again = tracking.sync(_context(two_runs.state, two_runs.configs[0], monkeypatch))
    assert again.logged == [] and again.already == 2 and again.failed == {}
    assert len(_mlflow_runs(two_runs.state)) == 2


def test_an_experiment_deleted_in_the_ui_is_restored_and_logged_to(
    two_runs: TwoRuns, synced: tracking.SyncReport, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    state = tmp_path / "state"
    shutil.copytree(two_runs.state, state)
    client = _client(state)
    experiment = client.get_experiment_by_name(load_config().project.resource_prefix)
    assert experiment is not None
    client.delete_experiment(experiment.experiment_id)
    record = json.loads((state / "runs" / f"{two_runs.records[0]['run_id']}.json").read_text())
    record["run_id"] = "20990101-000000-000001"
    (state / "runs" / f"{record['run_id']}.json").write_text(json.dumps(record))
    report = tracking.sync(_context(state, two_runs.configs[0], monkeypatch))
    assert report.failed == {} and report.logged == [record["run_id"]]
    assert len(_mlflow_runs(state)) == 3


def test_a_run_cut_short_while_logging_is_deleted_and_logged_again(
    two_runs: TwoRuns, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    state = _copy(two_runs, tmp_path / "state")
    ctx = _context(state, two_runs.configs[0], monkeypatch)

    def crash(*_: object) -> None:
        raise RuntimeError("killed while logging the model")

    monkeypatch.setattr(tracking, "_log_model", crash)
    report = tracking.sync(ctx)
    assert set(report.failed) == {r["run_id"] for r in two_runs.records}
    assert all("killed while logging the model" in message for message in report.failed.values())
    assert "killed while logging" in tracking.after_run(ctx.config)  # the next run's summary says so
    monkeypatch.undo()
    ctx = _context(state, two_runs.configs[0], monkeypatch)
    caught_up = tracking.sync(ctx)
    assert sorted(caught_up.logged) == sorted(report.failed) and caught_up.failed == {}
    runs = _mlflow_runs(state)  # the half-logged ones were deleted: one MLflow run per record
    assert len(runs) == 2 and all(r.data.tags[tracking.COMPLETE_TAG] == "true" for r in runs)
    assert tracking.last_failures(ctx.config) == {}


def test_a_corrupt_store_never_fails_the_pipeline_and_the_fix_it_names_catches_up(
    two_runs: TwoRuns, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    state = _copy(two_runs, tmp_path / "state")
    database = state / "mlflow" / "mlflow.db"
    database.parent.mkdir()
    database.write_bytes(b"this is not an SQLite database" * 100)
    ctx = _context(state, two_runs.configs[0], monkeypatch)
    report = tracking.sync(ctx)
    assert set(report.failed) == {r["run_id"] for r in two_runs.records}
    message = next(iter(report.failed.values()))
    assert f"mv {database} {database}.broken" in message and "make ui" in message
    # A pipeline run over the broken store succeeds and names the problem.
    capsys.readouterr()
    assert _pipeline() == 0
    printed = " ".join(capsys.readouterr().out.split())
    assert "not in MLflow yet" in printed and "damaged" in printed
    assert json.loads((state / "summary.json").read_text())["status"] == "succeeded"
    # The fix, as the message gives it, and the catch-up `make ui` starts with, in a process of its own.
    database.rename(database.with_name("mlflow.db.broken"))
    caught_up = subprocess.run(
        [sys.executable, "-m", "ml", "track"], capture_output=True, text=True, check=False, cwd=PROJECT_ROOT
    )
    assert caught_up.returncode == 0, caught_up.stdout + caught_up.stderr
    assert "3 run(s) logged, 0 already there" in " ".join(caught_up.stdout.split())
    again = subprocess.run(
        [sys.executable, "-m", "ml", "track"], capture_output=True, text=True, check=False, cwd=PROJECT_ROOT
    )
    assert "0 run(s) logged, 3 already there" in " ".join(again.stdout.split()), again.stdout + again.stderr


def test_a_locked_store_is_reported_and_the_next_sync_catches_up(
    two_runs: TwoRuns, synced: tracking.SyncReport, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    state = tmp_path / "state"
    shutil.copytree(two_runs.state, state)
    ctx = _context(state, two_runs.configs[0], monkeypatch)
    # A new record, and another process holding SQLite's write lock for the whole sync.
    record = json.loads((state / "runs" / f"{two_runs.records[0]['run_id']}.json").read_text())
    record["run_id"] = "20990101-000000-000000"
    (state / "runs" / f"{record['run_id']}.json").write_text(json.dumps(record))
    holder = sqlite3.connect(state / "mlflow" / "mlflow.db", timeout=0)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        report = tracking.sync(ctx)
    finally:
        holder.rollback()
        holder.close()
    assert list(report.failed) == [record["run_id"]] or set(report.failed) >= {record["run_id"]}
    assert "another process held the MLflow store" in report.failed[record["run_id"]]
    caught_up = tracking.sync(ctx)
    assert caught_up.logged == [record["run_id"]] and caught_up.failed == {}


def test_an_unreachable_tracking_server_is_reported_not_raised(
    two_runs: TwoRuns, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLOPS_TRACKING_URI", "http://127.0.0.1:9")  # discard: nothing listens
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "2")
    ctx = _context(two_runs.state, two_runs.configs[0], monkeypatch)
    report = tracking.sync(ctx)
    assert report.logged == [] and report.failed
    assert all("did not answer" in message for message in report.failed.values())


def test_the_pipeline_logs_its_run_in_the_background(
    two_runs: TwoRuns, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    state = _copy(two_runs, tmp_path / "state")
    _context(state, two_runs.configs[0], monkeypatch)
    monkeypatch.setenv("MLOPS_TRACKING", "on")
    capsys.readouterr()
    assert _pipeline() == 0
    assert "logging to MLflow in the background" in " ".join(capsys.readouterr().out.split())
    expected = {r["run_id"] for r in _records(state)}
    status = state / "mlflow" / "status.json"
    deadline = time.monotonic() + 180  # a bound on waiting, not a timing assertion
    while time.monotonic() < deadline and not (
        status.is_file() and set(json.loads(status.read_text())["logged"]) == expected
    ):
        time.sleep(0.5)
    assert set(json.loads(status.read_text())["logged"]) == expected, (state / "mlflow" / "sync.log").read_text()
    assert len(_mlflow_runs(state)) == 3


class _Page(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.sources: list[str] = []
        self.links: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if tag in ("img", "script", "iframe"):
            self.sources.append(found.get("src") or "")
        if tag == "link" or (tag == "a" and found.get("href")):
            self.links.append(found.get("href") or "")

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def test_the_run_report_stands_alone_with_the_evaluation_and_its_plots(two_runs: TwoRuns) -> None:
    record = two_runs.records[1]
    page = _Page()
    page.feed(run_report.path_for(two_runs.state, record["run_id"]).read_text())
    text = " ".join(" ".join(page.text).split())
    assert page.sources and all(src.startswith("data:image/png;base64,") for src in page.sources)
    assert not page.links  # nothing that must resolve elsewhere
    for heading in ("Steps", "Metrics (held-out test set)", "Gate", "Plots", "Model card"):
        assert heading in text
    assert f"champion v{record['champion']['version']}" in text and "simple baseline" in text
    _, value = next(iter(record["metrics"].items()))
    assert f"{value:.4f}" in text
    assert record["params"]["estimator"] in text


def test_the_summary_prints_whole_paths_however_narrow_the_terminal() -> None:
    summary = Summary(env="local", status="succeeded")
    long = "/".join(["a-rather-long-directory-name"] * 6) + "/evaluation.json"
    summary.paths = {"report": long, "endpoint": "http://127.0.0.1:8080"}
    console = Console(file=io.StringIO(), width=40, record=True)
    summary.render(console)
    text = console.export_text()
    assert long in text and "http://127.0.0.1:8080" in text


def _page_text(browser: str, url: str, expected: list[str], tries: int = 5) -> str:
    """The page as headless Chromium renders it (scripts run, the API answered), as text and markup;
    read again while what is expected is missing, as a person would reload."""
    text = ""
    for _ in range(tries):
        dom = subprocess.run(
            [browser, "--headless", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=10000", "--dump-dom", url],
            capture_output=True, text=True, timeout=120, check=False,
        ).stdout  # fmt: skip
        text = " ".join(re.sub(r"(?s)<(style|script)[^>]*>.*?</\1>", " ", dom).split())
        if all(item in text for item in expected):
            return text
    return text


@pytest.mark.browser
def test_make_ui_shows_both_runs_comparable_in_a_real_browser(two_runs: TwoRuns, synced: tracking.SyncReport) -> None:
    browser = mermaid.browser()
    env = {**os.environ, "MLOPS_HOME": str(two_runs.state), "MLOPS_CONFIG": str(two_runs.configs[0]),
           "MLOPS_UI_PORT": "0"}  # fmt: skip
    started = subprocess.run(["make", "--no-print-directory", "ui"], cwd=PROJECT_ROOT, env=env, capture_output=True,
                             text=True, check=False, timeout=600)  # fmt: skip
    try:
        assert started.returncode == 0, started.stdout + started.stderr
        found = re.search(r"(http://127\.0\.0\.1:\d+)/#/experiments/(\d+)/runs", started.stdout)
        assert found, started.stdout
        url, experiment = found.groups()
        runs = _mlflow_runs(two_runs.state)
        names = [run.info.run_name for run in runs]
        listed = _page_text(browser, f"{url}/#/experiments/{experiment}/runs", names)
        assert all(name in listed for name in names), listed[:3000]
        # Side by side: both runs' estimators and their primary metric.
        ids = ",".join(f'"{run.info.run_id}"' for run in runs)
        metric = next(iter(two_runs.records[0]["metrics"]))
        estimators = [record["params"]["estimator"] for record in two_runs.records]
        compared = _page_text(browser, f'{url}/#/compare-runs?runs=[{ids}]&experiments=["{experiment}"]',
                              [*estimators, metric, "Comparing 2 Runs"])  # fmt: skip
        assert "Comparing 2 Runs" in compared and metric in compared, compared[:3000]
        assert all(estimator in compared for estimator in estimators), compared[:3000]
        # A plot, opened from the run's artifacts as MLflow shows it.
        plot = next(p.name for p in Path(two_runs.records[0]["paths"]["report"]).glob("*.png"))
        shown = _page_text(browser, f"{url}/#/experiments/{experiment}/runs/{runs[0].info.run_id}/artifacts/evaluation/{plot}",
                           [f'alt="evaluation/{plot}"'])  # fmt: skip
        assert re.search(rf'<img alt="evaluation/{re.escape(plot)}" src="blob:', shown), shown[:3000]
    finally:
        stopped = subprocess.run(["make", "--no-print-directory", "stop"], cwd=PROJECT_ROOT, env=env,
                                 capture_output=True, text=True, check=False)  # fmt: skip
    assert "MLflow UI stopped" in stopped.stdout, stopped.stdout + stopped.stderr
    assert ui.running(load_config(two_runs.configs[0])) is None


@pytest.mark.browser
def test_the_run_report_renders_in_a_real_browser(two_runs: TwoRuns, tmp_path: Path) -> None:
    browser = mermaid.browser()
    page = run_report.path_for(two_runs.state, two_runs.records[0]["run_id"])
    text = _page_text(browser, page.as_uri(), ["Metrics (held-out test set)"])
    assert "Metrics (held-out test set)" in text and "Gate" in text
    assert len(re.findall(r'<img alt="[^"]+\.png" src="data:image/png;base64,', text)) >= 2
    # Drawn, not only present: a screenshot of the page holds the plots' colours.
    shot = tmp_path / "report.png"
    subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", f"--screenshot={shot}",
                    "--window-size=1200,4000", page.as_uri()], capture_output=True, check=False, timeout=120)  # fmt: skip
    from PIL import Image

    with Image.open(shot) as image:
        colours = image.convert("RGB").getcolors(maxcolors=1_000_000) or []
    assert len(colours) > 200, f"{len(colours)} colours: the page drew no plots"


@pytest.mark.e2e
def test_make_tune_is_logged_as_a_run_with_one_child_per_candidate(
    tmp_path: Path, state_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLOPS_CONFIG", str(tiny_search(tmp_path)))
    assert main(["tune"]) == 0
    (path,) = (state_dir / "tuning").glob("*/tuning.json")
    searched = json.loads(path.read_text())
    report = tracking.sync(make_context(load_config(), quiet_console()))
    assert report.logged == [f"tune:{path.parent.name}"] and report.failed == {}
    runs = _mlflow_runs(state_dir)
    (parent,) = [r for r in runs if r.data.tags.get("mlops.kind") == "tuning"]
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    assert len(children) == len(searched["candidates"])
    assert parent.data.metrics[f"best.{searched['metric']}"] == pytest.approx(searched["best_score"])
    assert {k: parent.data.params[f"best.{k}"] for k in searched["best"]} == {
        k: str(v) for k, v in searched["best"].items()
    }
    scores = sorted(c.data.metrics[searched["metric"]] for c in children)
    assert scores == pytest.approx(sorted(c["score"] for c in searched["candidates"]))
    # A second sync keeps every child, and a run someone logged by hand in the same experiment.
    client = _client(state_dir)
    client.create_run(parent.info.experiment_id, run_name="by hand")
    again = tracking.sync(make_context(load_config(), quiet_console()))
    assert again.logged == [] and again.failed == {}
    assert len(_mlflow_runs(state_dir)) == len(runs) + 1
