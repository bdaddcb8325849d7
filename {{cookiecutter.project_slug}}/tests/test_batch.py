"""Batch scoring's engine (ml/batch.py) and the handlers' Batch Transform mode, for every task.

The whole command, with the registry, the desired state and the files it leaves, is tested end to
end in tests/test_pipeline_e2e.py.
"""

from __future__ import annotations

import csv
import io
import json
import tarfile
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from ml import batch, batch_request, inference
from ml.schema import Kind, Schema, Task
from tests.data_factory import csv_line, schema_frame, synthetic_schema
from tests.model_factory import model_tarball

TASKS = [Task.BINARY, Task.MULTICLASS, Task.REGRESSION]


def unpacked(tmp_path: Path, contract: Schema) -> Path:
    tarball = model_tarball(tmp_path / "build", contract=contract, frame=schema_frame(contract, 150, 0))
    model_dir = tmp_path / "model"
    with tarfile.open(tarball) as archive:
        archive.extractall(model_dir, filter="data")
    return model_dir


def a_bad_value(contract: Schema) -> tuple[str, str]:
    """A feature and a value for it that the schema refuses, whatever the schema."""
    feature = next((f for f in contract.features if f.kind is Kind.NUMERIC), None)
    if feature is not None:
        return feature.name, "not-a-number"
    refused = next(f for f in contract.features if not f.nullable)
    return refused.name, ""


def input_file(tmp_path: Path, contract: Schema, frame: pd.DataFrame, name: str = "input.csv") -> Path:
    """A file as a team would score it: an id column first, then the features and the label."""
    frame = frame.copy()
    frame.insert(0, "row_id", [f"r{i}" for i in range(len(frame))])
    path = tmp_path / name
    frame.to_csv(path, index=False)
    return path


def run_engine(tmp_path: Path, model_dir: Path, source: Path, *extra: str) -> tuple[int, dict[str, Any]]:
    out = tmp_path / "out"
    out.mkdir(exist_ok=True)
    code = batch.main(
        [
            "--model-dir", str(model_dir),
            "--input", str(source),
            "--output", str(out / "predictions.csv"),
            "--rejects", str(out / "rejects.csv"),
            "--summary", str(out / "summary.json"),
            "--statistics", str(model_dir / "baseline" / "statistics.json"),
            "--constraints", str(model_dir / "baseline" / "constraints.json"),
            *extra,
        ]
    )  # fmt: skip
    summary = json.loads((out / "summary.json").read_text()) if code == 0 else {}
    return code, summary


def read_rows(path: Path) -> list[list[str]]:
    return list(csv.reader(path.open(newline="")))


@pytest.mark.parametrize("task", TASKS, ids=str)
def test_the_handlers_refuse_a_bad_row_alone_in_batch_mode_and_the_whole_request_otherwise(
    tmp_path: Path, task: Task, monkeypatch: pytest.MonkeyPatch
) -> None:
    contract = synthetic_schema(task)
    model = inference.model_fn(str(unpacked(tmp_path, contract)))
    rows = schema_frame(contract, 6, seed=3)
    feature, value = a_bad_value(contract)
    rows[feature] = rows[feature].astype(object)
    rows.loc[2, feature] = value
    body = "\n".join(csv_line(row, contract.names) for _, row in rows.iterrows()) + "\n"
    with pytest.raises(ValueError, match=repr(feature)):
        inference.predict_fn(inference.input_fn(body, "text/csv"), model)  # the endpoint's contract

    monkeypatch.setenv(inference.REJECT_ROWS, "1")
    prediction = inference.predict_fn(inference.input_fn(body, "text/csv"), model)
    answers = inference.answers(prediction)
    assert len(answers) == 6
    assert set(answers[2]) == {"rejected"} and repr(feature) in answers[2]["rejected"]
    assert all("rejected" not in answer for index, answer in enumerate(answers) if index != 2)
    text, _ = inference.output_fn(prediction, "text/csv")
    lines = list(csv.reader(io.StringIO(text)))
    width = inference.csv_width(prediction)
    assert [len(line) for line in lines] == [width + 1] * 6
    assert lines[2][:width] == [""] * width and repr(feature) in lines[2][-1]
    assert all(line[-1] == "" and all(line[:width]) for index, line in enumerate(lines) if index != 2)
    json_answers = json.loads(inference.output_fn(prediction, "application/json")[0])["predictions"]
    assert json_answers == answers


@pytest.mark.parametrize("task", TASKS, ids=str)
def test_the_engine_joins_each_prediction_to_its_input_line_and_refuses_bad_rows_into_the_rejects(
    tmp_path: Path, task: Task
) -> None:
    contract = synthetic_schema(task)
    model_dir = unpacked(tmp_path, contract)
    frame = schema_frame(contract, 200, seed=5).astype(object)
    feature, value = a_bad_value(contract)
    frame.loc[7, feature] = value
    source = input_file(tmp_path, contract, frame)
    # One line too few values: refused before the handlers see it.
    lines = source.read_text().splitlines()
    lines[12] = ",".join(lines[12].split(",")[:-2])
    source.write_text("\n".join(lines) + "\n")

    code, summary = run_engine(tmp_path, model_dir, source)
    assert code == 0
    assert (summary["rows"], summary["scored"], summary["rejected"]) == (200, 198, 2)
    output = read_rows(tmp_path / "out" / "predictions.csv")
    header = next(csv.reader([lines[0]]))
    columns = batch.prediction_columns(task.value, list(contract.classes))
    assert output[0] == [*header, *columns]  # JoinSource Input: the input's columns, then the prediction's
    assert len(output) == 1 + 198
    kept = [line for index, line in enumerate(lines[1:]) if index not in (7, 11)]
    assert [row[: len(header)] for row in output[1:]] == [next(csv.reader([line])) for line in kept]
    rejects = read_rows(tmp_path / "out" / "rejects.csv")
    assert rejects[0] == ["line", *header, "reason"]
    assert [row[0] for row in rejects[1:]] == ["9", "13"]  # file lines: the header is line 1
    assert repr(feature) in rejects[1][-1]
    assert "values, the header" in rejects[2][-1]
    assert sum(summary["reasons"].values()) == 2


def test_the_output_filter_and_join_source_shape_the_predictions(tmp_path: Path) -> None:
    contract = synthetic_schema(Task.BINARY)
    model_dir = unpacked(tmp_path, contract)
    source = input_file(tmp_path, contract, schema_frame(contract, 30, seed=2))
    assert run_engine(tmp_path, model_dir, source, "--output-filter", "$[0,-2:]")[0] == 0
    output = read_rows(tmp_path / "out" / "predictions.csv")
    assert output[0] == ["row_id", "prediction", "probability"]
    assert [row[0] for row in output[1:]] == [f"r{i}" for i in range(30)]
    assert run_engine(tmp_path, model_dir, source, "--join-source", "None")[0] == 0
    assert read_rows(tmp_path / "out" / "predictions.csv")[0] == ["prediction", "probability"]


def test_the_engine_refuses_a_header_without_the_schemas_features(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    contract = synthetic_schema(Task.REGRESSION)
    model_dir = unpacked(tmp_path, contract)
    frame = schema_frame(contract, 10, seed=2).drop(columns=[contract.names[0]])
    source = input_file(tmp_path, contract, frame)
    assert run_engine(tmp_path, model_dir, source)[0] == 2
    assert f"lacks the feature column(s) {contract.names[0]}" in capsys.readouterr().err


def test_a_file_larger_than_a_mini_batch_is_scored_a_mini_batch_at_a_time(tmp_path: Path) -> None:
    contract = synthetic_schema(Task.MULTICLASS)
    model_dir = unpacked(tmp_path, contract)
    frame = schema_frame(contract, 30_000, seed=4)  # about 1.6 MB: two mini-batches of at most 1 MB
    source = input_file(tmp_path, contract, frame)
    assert source.stat().st_size > 1024 * 1024
    code, summary = run_engine(tmp_path, model_dir, source, "--max-payload-mb", "1")
    assert code == 0
    assert summary["mini_batches"] == 2 and summary["scored"] == 30_000
    assert len(read_rows(tmp_path / "out" / "predictions.csv")) == 30_001


@given(st.lists(st.text(alphabet="ab,1", min_size=0, max_size=30), max_size=40), st.integers(1, 64))
def test_mini_batches_keep_every_line_whole_in_order_within_the_payload(lines: list[str], limit: int) -> None:
    batches = list(batch.mini_batches(io.StringIO("".join(f"{line}\n" for line in lines)), limit))
    kept = [(number, line) for number, line in enumerate(lines, start=2) if line.strip()]
    assert [item for part in batches for item in part] == kept
    for part in batches:
        assert part  # never an empty mini-batch
        assert len(part) == 1 or sum(len(text.encode()) + 1 for _, text in part) <= limit


@pytest.mark.parametrize(
    ("expression", "expected"),
    [("$", list("abcde")), ("$[0]", ["a"]), ("$[0,-1]", ["a", "e"]), ("$[1:3]", ["b", "c"]), ("$[-2:]", ["d", "e"])],
)
def test_the_output_filter_reads_jsonpath_indices_and_slices(expression: str, expected: list[str]) -> None:
    assert batch.output_filter(expression)(list("abcde")) == expected


@pytest.mark.parametrize("expression", ["$.x", "$[a]", "[0]", "$[0"])
def test_an_output_filter_that_is_not_indices_and_slices_is_refused(expression: str) -> None:
    with pytest.raises(ValueError, match="output_filter"):
        batch.output_filter(expression)


def test_an_index_outside_the_row_is_refused_with_the_column_count() -> None:
    with pytest.raises(ValueError, match="outside the 5 columns"):
        batch.output_filter("$[7]")(list("abcde"))


def test_the_engine_and_the_container_code_name_the_same_switch() -> None:
    assert (
        batch_request.REJECT_ROWS == inference.REJECT_ROWS
    )  # inference.py imports nothing of ml/, so it keeps its own
