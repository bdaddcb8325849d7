"""The whole local loop, for real: subprocess jobs, SQLite registry, an HTTP endpoint.

One champion is trained per module; the other tests build on it and check that nothing
they do (a worse model, bad data, a broken deploy) disturbs it.
"""

from __future__ import annotations

import csv
import json
import tarfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from ml import pipeline, tasks
from ml.__main__ import main
from ml.backends.base import ModelPackage, ModelVersion
from ml.config import load_config
from ml.context import Context, make_context
from ml.errors import EndpointError
from ml.schema import Task
from ml.steps import monitor as monitor_step
from ml.summary import Summary
from tests.conftest import merge, open_gate, quiet_console, weak_training, write_config
from tests.data_factory import csv_line, example_frame, good_frame, numeric_features, project_schema, write_csv
from tests.test_model_card import assert_card_beside, assert_in_aws_schema, registered_card

SCHEMA = project_schema()
# A model no better than guessing: whatever the project's task, the gate must reject it.
DUMMY = "sklearn.dummy.DummyRegressor" if SCHEMA.task is Task.REGRESSION else "sklearn.dummy.DummyClassifier"

# One worker runs the whole module, so its champion is trained once (make unit uses --dist loadgroup).
pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("e2e-local")]


@dataclass
class Champion:
    state: Path
    ctx: Context
    summary: Summary


def fresh_context() -> Context:
    return make_context(load_config(), quiet_console())


def last_summary(state: Path) -> dict[str, object]:
    summary: dict[str, object] = json.loads((state / "summary.json").read_text())
    return summary


def snapshot(state: Path) -> tuple[list[tuple[int, str]], bytes, int | None]:
    ctx = fresh_context()
    status = ctx.backends.endpoint.status()
    assert status is not None and status.healthy
    registry: list[tuple[int, str]] = [(v.version, v.package.approval_status) for v in ctx.backends.registry.versions()]
    return registry, ctx.backends.desired_state.path.read_bytes(), status.version


@pytest.fixture(scope="module")
def champion(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Champion]:
    state = tmp_path_factory.mktemp("e2e") / "state"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLOPS_HOME", str(state))
        patch.setenv("MLOPS_ENV", "local")
        patch.delenv("MLOPS_CONFIG", raising=False)
        ctx = fresh_context()
        try:
            summary = pipeline.run(ctx, Summary(env="local"))
            yield Champion(state, ctx, summary)
        finally:
            ctx.backends.endpoint.stop()


def test_the_first_run_trains_registers_promotes_and_serves(champion: Champion) -> None:
    steps = {step.name: step.status for step in champion.summary.steps}
    assert steps == dict.fromkeys(pipeline.STEPS, "ok")
    model = champion.ctx.backends.registry.get(1)
    assert model.approved
    assert set(model.package.lineage) >= {"git_sha", "data_hash", "code_hash", "params_hash", "fingerprint"}
    assert set(model.package.metrics) == {m.name for m in tasks.METRICS[SCHEMA.task]}
    assert model.package.lineage["schema_signature"] == SCHEMA.signature()
    assert champion.ctx.backends.desired_state.read() == 1
    status = champion.ctx.backends.endpoint.status()
    assert status is not None and status.healthy and status.version == 1
    report = Path(champion.summary.paths["report"])
    plots = {
        Task.BINARY: ("roc_curve.png", "confusion_matrix.png"),
        Task.MULTICLASS: ("confusion_matrix.png", "per_class.png"),
        Task.REGRESSION: ("residuals.png",),
    }[SCHEMA.task]
    for plot in (*plots, "importance.png", "slices.png"):
        assert (report / plot).read_bytes().startswith(b"\x89PNG")
    # Its model card: beside the evaluation for people, and with the version, in AWS's schema.
    assert_card_beside(report, 1, "Approved")
    assert_in_aws_schema(registered_card(champion.ctx.backends.registry.journal, 1))  # type: ignore[attr-defined]


def test_an_unchanged_rerun_reuses_the_model_and_says_so(champion: Champion) -> None:
    before = snapshot(champion.state)
    assert main(["pipeline"]) == 0
    summary = last_summary(champion.state)
    steps = {s["name"]: s["status"] for s in summary["steps"]}  # type: ignore[attr-defined]
    assert steps["data"] == "reused" and steps["train"] == "reused"
    assert steps["evaluate"] == steps["register"] == "skipped"
    assert summary["model"] == {**summary["model"], "version": 1, "reused": True}  # type: ignore[dict-item]
    assert snapshot(champion.state) == before


def test_a_worse_model_is_rejected_and_the_champion_keeps_serving(
    champion: Champion, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    registry_before, desired_before, serving_before = snapshot(champion.state)
    worse = {"estimator": DUMMY, "hyperparameters": {}}
    monkeypatch.setenv("MLOPS_CONFIG", str(write_config(tmp_path, train=worse)))
    assert main(["pipeline"]) == 3
    summary = last_summary(champion.state)
    assert summary["status"] == "rejected"
    assert "vs champion v1" in str(summary["error"])
    registry_after, desired_after, serving_after = snapshot(champion.state)
    assert registry_after == [*registry_before, (len(registry_before) + 1, "Rejected")]
    assert desired_after == desired_before
    assert serving_after == serving_before == 1
    # The same rejected inputs again: no retraining, and still rejected.
    assert main(["pipeline"]) == 3
    assert "unchanged since" in str(last_summary(champion.state)["error"])


def _judged_metric() -> str:
    """A metric every task's model has on any slice: accuracy, or mae for regression."""
    return "mae" if SCHEMA.task is Task.REGRESSION else "accuracy"


def _cut(parts: int) -> dict[str, Any]:
    """A slice of the project's own data: its first numeric feature in one group or halves at the median,
    else its first categorical feature's first category against the rest."""
    frame = pd.read_csv(load_config().root / load_config().data.source)
    if NUMERIC is not None:
        values = pd.to_numeric(frame[NUMERIC], errors="coerce")
        edge = float(values.max()) + 1 if parts == 1 else float(values.median())
        return {"column": NUMERIC, "bins": [edge], "min_rows": 1}
    feature = SCHEMA.features[0]
    return {"column": feature.name, "values": list(feature.categories[:1]), "min_rows": 1}


def _beat_the_simple_model() -> dict[str, Any]:
    return {"min_gain_over_simple": 0.0}


def _be_perfect_on_a_slice() -> dict[str, Any]:
    name = _judged_metric()
    known = tasks.metric(SCHEMA.task, name)
    perfect = known.highest if known.higher_is_better else known.lowest  # accuracy 1, or no error at all
    return {"slices": {"probe": {**_cut(1), "thresholds": {name: perfect}}}}


def _serve_both_halves_exactly_alike() -> dict[str, Any]:
    return {
        "slices": {"halves": _cut(2)},
        "fairness": {"groups": ["halves"], "metrics": [_judged_metric()], "max_disparity": 0.0},
    }


# Each judgement alone, made strict, on the task's dummy model (class priors or the mean) with
# every other check opened: the dummy reads no feature, so it loses to the linear model, is
# imperfect on the whole test set, and scores two halves of a feature differently.
JUDGEMENTS: dict[str, tuple[Callable[[], dict[str, Any]], str]] = {
    "loses-to-the-simple-model": (_beat_the_simple_model, "vs simple baseline"),
    "fails-a-slice": (_be_perfect_on_a_slice, "on probe = "),
    "disparity-too-high": (_serve_both_halves_exactly_alike, f"{_judged_metric()} disparity across halves"),
}


@pytest.mark.parametrize(("seed", "judgement"), list(enumerate(JUDGEMENTS, start=101)), ids=list(JUDGEMENTS))
def test_a_candidate_the_judgements_reject_leaves_the_champion_serving_and_nothing_half_written(
    champion: Champion, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, seed: int, judgement: str
) -> None:
    """A new model (its own split) that a baseline, a slice or a disparity rejects, and nothing else."""
    registry_before, desired_before, serving_before = snapshot(champion.state)
    strict, named = JUDGEMENTS[judgement]
    gate = merge(open_gate(), strict())
    config = write_config(tmp_path, data={"seed": seed}, gate=gate, **weak_training())
    monkeypatch.setenv("MLOPS_CONFIG", str(config))
    assert main(["pipeline"]) == 3
    summary = last_summary(champion.state)
    assert summary["status"] == "rejected"
    failures = str(summary["error"]).split("\n  - ")[1:]
    assert failures and all(named in failure for failure in failures), summary["error"]
    registry_after, desired_after, serving_after = snapshot(champion.state)
    assert registry_after == [*registry_before, (len(registry_before) + 1, "Rejected")]
    assert desired_after == desired_before
    assert serving_after == serving_before == 1
    assert_card_beside(Path(str(summary["paths"]["report"])), len(registry_after), "Rejected")  # type: ignore[index]


def test_a_slice_of_a_column_the_data_lacks_fails_before_any_job(
    champion: Champion, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = snapshot(champion.state)
    jobs = sorted((champion.state / "jobs").iterdir())
    config = write_config(
        tmp_path, data={"seed": 100}, gate={"slices": {"probe": {"column": "no such column", "bins": [1.0]}}}
    )
    monkeypatch.setenv("MLOPS_CONFIG", str(config))
    assert main(["pipeline"]) == 1
    error = " ".join(str(last_summary(champion.state)["error"]).split())
    assert "[gate.slices.probe].column = 'no such column'" in error and "name one of them" in error
    assert sorted((champion.state / "jobs").iterdir()) == jobs  # no training, no evaluation
    assert snapshot(champion.state) == before


# Corruptions of the project's own data, by what its schema declares (tests/test_validation.py covers every kind).
FIRST = SCHEMA.names[0]
NEVER_MISSING = next((f.name for f in SCHEMA.features if not f.nullable), None)
NUMERIC = next(iter(numeric_features(SCHEMA)), None)


def _missing_column(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.drop(columns=[FIRST])


def _wrong_dtype(frame: pd.DataFrame) -> pd.DataFrame:
    # Text in a numeric feature; in a project of categories only, a category the schema does not list.
    column = NUMERIC or FIRST
    frame = frame.astype({column: object})
    frame.loc[5, column] = "huge" if NUMERIC else "a category nobody declared"
    return frame


def _nan(frame: pd.DataFrame) -> pd.DataFrame:
    frame.loc[3, NEVER_MISSING or SCHEMA.label] = float("nan")
    return frame


def _unknown_label(frame: pd.DataFrame) -> pd.DataFrame:
    frame = frame.astype({SCHEMA.label: object})
    frame.loc[0, SCHEMA.label] = "no such class" if SCHEMA.task.is_classification else "not a number"
    return frame


CORRUPTIONS = [
    (_missing_column, f"missing column(s): {FIRST}"),
    (_wrong_dtype, f"{NUMERIC!r} must be numeric but has 'huge'" if NUMERIC else "not among the schema's categories"),
    (_nan, f"{NEVER_MISSING or SCHEMA.label!r}"),
    (_unknown_label, "unknown value(s) 'no such class'" if SCHEMA.task.is_classification else "must be numeric"),
    (None, "is empty"),
]


@pytest.mark.parametrize(
    ("corrupt", "message"), CORRUPTIONS, ids=["missing-column", "wrong-dtype", "nan", "unknown-label", "empty-file"]
)
def test_bad_data_stops_the_run_and_changes_nothing(
    champion: Champion, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, corrupt: object, message: str
) -> None:
    before = snapshot(champion.state)
    if corrupt is None:
        (tmp_path / "data.csv").write_text("")
    else:
        write_csv(corrupt(good_frame()), tmp_path)  # type: ignore[operator]
    monkeypatch.setenv("MLOPS_CONFIG", str(write_config(tmp_path, data={"source": "data.csv"})))
    assert main(["pipeline"]) == 1
    summary = last_summary(champion.state)
    assert message in str(summary["error"])
    assert [s["status"] for s in summary["steps"]][:1] == ["failed"]  # type: ignore[attr-defined]
    assert snapshot(champion.state) == before


def test_a_model_that_cannot_start_leaves_the_old_one_serving(champion: Champion, tmp_path: Path) -> None:
    ctx = fresh_context()
    broken = tmp_path / "model.tar.gz"
    with tarfile.open(broken, "w:gz") as archive:
        note = tmp_path / "README"
        note.write_text("no code/inference.py in here")
        archive.add(note, arcname="README")
    evaluation = tmp_path / "evaluation.json"
    evaluation.write_text("{}")
    artifacts = ctx.backends.artifacts
    # Approved (else the endpoint refuses it before trying), but never registered: no later test
    # finds it as the champion.
    package = ModelPackage(artifacts.put(broken), artifacts.put(evaluation), "broken", "Approved", {}, {})
    version = ModelVersion(99, ctx.backends.registry.group, "2026-01-01T00:00:00+00:00", package)
    with pytest.raises(EndpointError, match="cannot be served, so it was not deployed; v1 keeps serving"):
        ctx.backends.endpoint.deploy(version)
    status = ctx.backends.endpoint.status()
    assert status is not None and status.healthy and status.version == 1


def test_a_rejected_version_is_never_served_nor_passes_verify(champion: Champion) -> None:
    ctx = fresh_context()
    # The champion's own model, registered again as Rejected: only the approval status differs.
    served = ctx.backends.registry.get(1).package
    rejected = ctx.backends.registry.register(
        ModelPackage(served.model_uri, served.evaluation_uri, "rejected-copy", "Rejected", {}, {})
    )
    with pytest.raises(EndpointError, match=f"v{rejected.version} is Rejected: only Approved versions are served"):
        ctx.backends.endpoint.deploy(rejected)
    # Written into the desired state by hand, it is refused by deploy and verify alike.
    before = ctx.backends.desired_state.path.read_bytes()
    ctx.backends.desired_state.write(rejected.version)
    try:
        assert main(["deploy"]) == 1
        assert main(["verify"]) == 1
        assert main(["check-deployable"]) == 1
    finally:
        ctx.backends.desired_state.path.write_bytes(before)
    status = ctx.backends.endpoint.status()
    assert status is not None and status.healthy and status.version == 1


def _request(url: str, body: bytes | None = None, content_type: str = "text/csv") -> tuple[int, bytes]:
    request = urllib.request.Request(url, data=body, headers={"Content-Type": content_type})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def test_the_endpoint_speaks_the_sagemaker_serving_contract(champion: Champion) -> None:
    status = fresh_context().backends.endpoint.status()
    assert status is not None
    row = csv_line(good_frame().iloc[0], SCHEMA.names).encode()
    assert _request(f"{status.url}/ping") == (200, b"")
    code, body = _request(f"{status.url}/invocations", row)
    answer = json.loads(body)["predictions"][0]
    assert code == 200 and (answer["label"] in SCHEMA.classes if SCHEMA.task.is_classification else "value" in answer)
    # As the SageMaker scikit-learn container answers (tests/serving/ proves it against its code):
    # every handler error is a 500, never 400 or 415.
    assert _request(f"{status.url}/invocations", b"1," * len(SCHEMA.names) + b"1\n")[0] == 500
    assert _request(f"{status.url}/invocations", b"x", "application/x-npy")[0] == 500
    assert _request(f"{status.url}/nowhere") == (404, b"{}")


def test_each_step_runs_on_its_own_as_the_make_targets_do(
    champion: Champion, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A new split makes a new candidate; a generous tolerance makes the gate outcome certain.
    config = write_config(tmp_path, data={"seed": 7}, gate=open_gate())
    monkeypatch.setenv("MLOPS_CONFIG", str(config))
    for command in ("data", "train", "evaluate", "register", "promote", "deploy", "smoke-test", "status"):
        assert main([command]) == 0, command
    ctx = fresh_context()
    newest = ctx.backends.registry.versions()[-1]
    assert newest.approved
    assert ctx.backends.desired_state.read() == newest.version
    status = ctx.backends.endpoint.status()
    assert status is not None and status.version == newest.version
    # Rolling back is promoting the earlier version again.
    assert main(["promote", "--version", "1"]) == 0
    assert main(["deploy"]) == 0
    status = ctx.backends.endpoint.status()
    assert status is not None and status.version == 1


def test_a_step_without_its_inputs_says_what_to_run(state_dir: Path) -> None:
    assert main(["train"]) == 1
    assert main(["promote", "--version", "99"]) == 1


def test_verify_checks_the_served_version_and_smoke_tests(champion: Champion) -> None:
    assert main(["verify"]) == 0


def test_the_endpoint_captures_requests_in_the_sagemaker_format(champion: Champion) -> None:
    ctx = fresh_context()
    row = csv_line(good_frame().iloc[0], SCHEMA.names)
    ctx.backends.endpoint.invoke(f"{row}\n".encode(), "text/csv", "application/json", inference_id="e2e-capture")
    # Capture is written in the background, off the request path: wait for the record to land.
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and not any(
        "e2e-capture" in path.read_text() for path in Path(ctx.backends.endpoint.capture_location()).rglob("*.jsonl")
    ):
        time.sleep(0.05)
    files = sorted(Path(ctx.backends.endpoint.capture_location()).rglob("*.jsonl"))
    assert files and files[0].relative_to(champion.state / "endpoint" / "data-capture").parts[:2] == (
        ctx.backends.endpoint.name,
        "AllTraffic",
    )
    last = next(
        json.loads(line) for path in reversed(files) for line in reversed(path.read_text().splitlines())
        if "e2e-capture" in line
    )  # fmt: skip
    assert last["eventVersion"] == "0" and last["eventMetadata"]["eventId"]
    assert last["eventMetadata"]["inferenceId"] == "e2e-capture"
    assert last["captureData"]["endpointInput"] == {
        "observedContentType": "text/csv",
        "mode": "INPUT",
        "data": f"{row}\n",
        "encoding": "CSV",
    }
    assert json.loads(last["captureData"]["endpointOutput"]["data"])["predictions"]


def capture_lines(ctx: Context) -> list[str]:
    return [line for path in sorted(Path(ctx.backends.endpoint.capture_location()).rglob("*.jsonl"))
            for line in path.read_text().splitlines()]  # fmt: skip


def test_drift_demo_catches_shifted_traffic_and_keeps_the_real_capture(champion: Champion) -> None:
    ctx = fresh_context()
    before = capture_lines(ctx)
    assert main(["drift-demo"]) == 0
    after = capture_lines(ctx)
    assert set(before) <= set(after), "the demo deleted or changed captured traffic"
    demo = [line for line in set(after) - set(before) if '"mlops-demo-' in line]
    assert demo, "the demo's requests carry its own InferenceIds"
    # `make monitor` judges production traffic only: the demo's shifted rows are not in it.
    report = monitor_step.run(ctx)
    assert report.metrics["rows"] < len(demo) * 10


def test_quality_demo_catches_a_model_that_degrades_on_later_labels(champion: Champion) -> None:
    assert main(["quality-demo"]) == 0


def test_an_empty_window_is_reported_as_too_small_to_judge(champion: Champion) -> None:
    report = monitor_step.run(fresh_context(), only_ids="nothing-was-sent-with-this-id-")
    assert report.metrics["requests"] == 0 and report.metrics["judged_drift"] is False
    assert "drift not judged: 0 rows" in report.report_file.read_text()


# ---- batch scoring (make batch): the desired state's version, over a whole file ----


def batch_files(directory: Path, stem: str) -> set[str]:
    return {path.name for path in directory.iterdir() if path.name.startswith((stem, f".{stem}"))}


def test_batch_scores_a_file_with_the_desired_version_beside_the_input(champion: Champion, tmp_path: Path) -> None:
    frame = example_frame().sample(n=150, random_state=0)  # rows drawn as the training data was
    source = write_csv(frame, tmp_path, "nightly.csv")
    assert main(["batch", "--input", str(source)]) == 0
    summary = json.loads((tmp_path / "nightly.batch.json").read_text())
    desired = fresh_context().backends.desired_state.read()
    assert summary["version"] == desired
    assert (summary["rows"], summary["scored"], summary["rejected"]) == (150, 150, 0)
    assert summary["drift_judged"] and summary["drifted"] == []  # rows like the training data
    scored = pd.read_csv(tmp_path / "nightly.predictions.csv")
    assert list(scored.columns[: len(frame.columns)]) == list(frame.columns)  # JoinSource Input
    assert len(scored) == 150 and scored["prediction"].notna().all()
    assert (tmp_path / "nightly.rejects.csv").read_text().splitlines() == [",".join(["line", *frame.columns, "reason"])]
    assert batch_files(tmp_path, "nightly") == {
        "nightly.csv",
        "nightly.predictions.csv",
        "nightly.rejects.csv",
        "nightly.batch.json",
    }


def test_batch_finds_drift_in_a_shifted_file(champion: Champion, tmp_path: Path) -> None:
    from ml.__main__ import shift_row, shifted_features

    ctx = fresh_context()
    version = ctx.backends.desired_state.read()
    assert version is not None
    statistics, _ = monitor_step.baseline_of(ctx, version)
    moved = shifted_features(statistics)
    rows = [shift_row({str(k): "" if pd.isna(v) else str(v) for k, v in row.items()}, statistics, moved, 3.0)
            for row in good_frame(150).to_dict(orient="records")]  # fmt: skip
    source = write_csv(pd.DataFrame(rows), tmp_path, "shifted.csv")
    assert main(["batch", "--input", str(source), "--output", str(tmp_path / "out" / "scored.csv")]) == 0
    summary = json.loads((tmp_path / "out" / "scored.batch.json").read_text())
    assert set(summary["drifted"]) & set(moved), summary


def test_batch_refuses_bad_rows_and_writes_no_predictions_past_the_reject_share(
    champion: Champion, tmp_path: Path
) -> None:
    frame = good_frame(200)
    frame = pd.concat([frame] * -(-200 // len(frame)), ignore_index=True).head(200)  # a small data set, repeated
    lines = write_csv(frame, tmp_path, "x.csv").read_text().splitlines()
    short = ",".join(lines[5].split(",")[:-1])  # one value too few: refused, whatever the schema
    few = tmp_path / "few.csv"  # 1 of 200 refused: within max_reject_share (1 %)
    few.write_text("\n".join([*lines[:5], short, *lines[6:]]) + "\n")
    assert main(["batch", "--input", str(few)]) == 0
    rejects = list(csv.reader((tmp_path / "few.rejects.csv").open()))
    assert len(rejects) == 2 and rejects[1][0] == "6" and "values, the header" in rejects[1][-1]
    assert len(pd.read_csv(tmp_path / "few.predictions.csv")) == 199

    many = tmp_path / "many.csv"  # 10 of 200 refused: past the share
    many.write_text("\n".join([lines[0], *(short if i % 20 == 0 else line for i, line in enumerate(lines[1:]))]) + "\n")
    assert main(["batch", "--input", str(many)]) == 1
    assert batch_files(tmp_path, "many") == {"many.csv", "many.rejects.csv"}  # no predictions, nothing partial
    assert len(list(csv.reader((tmp_path / "many.rejects.csv").open()))) == 11


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "does not exist"),
        ("", "is empty"),
        ("header-only", "holds a header and no rows"),
        ("no-feature", "lacks the feature column(s)"),
    ],
)
def test_batch_bad_input_gets_one_line_and_leaves_no_output(
    champion: Champion,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    content: str | None,
    message: str,
) -> None:
    source = tmp_path / "in.csv"
    frame = good_frame(20)
    if content == "header-only":
        source.write_text(",".join(frame.columns) + "\n")
    elif content == "no-feature":
        write_csv(frame.drop(columns=[SCHEMA.names[0]]), tmp_path, "in.csv")
    elif content is not None:
        source.write_text(content)
    monkeypatch.setenv("COLUMNS", "1000")  # the console wraps at the terminal's width
    assert main(["batch", "--input", str(source)]) == 1
    errors = [line for line in capsys.readouterr().out.splitlines() if not line.startswith("… ")]
    assert len(errors) == 1 and message in errors[0], errors
    assert batch_files(tmp_path, "in") <= {"in.csv"}


def test_batch_refuses_a_version_that_is_not_approved(
    champion: Champion, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ctx = fresh_context()
    served = ctx.backends.registry.get(1).package
    rejected = ctx.backends.registry.register(
        ModelPackage(served.model_uri, served.evaluation_uri, "rejected-for-batch", "Rejected", {}, {})
    )
    before = ctx.backends.desired_state.path.read_bytes()
    ctx.backends.desired_state.write(rejected.version)
    source = write_csv(good_frame(20), tmp_path, "in.csv")
    try:
        assert main(["batch", "--input", str(source)]) == 1
    finally:
        ctx.backends.desired_state.path.write_bytes(before)
    assert f"v{rejected.version} is Rejected: only Approved versions reach traffic" in capsys.readouterr().out
    assert batch_files(tmp_path, "in") == {"in.csv"}
