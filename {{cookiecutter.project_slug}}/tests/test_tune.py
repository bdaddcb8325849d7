"""`make tune`: successive halving on the training split, the same job locally and in AWS.

ml/tune.py runs scikit-learn's HalvingRandomSearchCV scored with the gate's own metric; these tests
run the job for every task, the command end to end, and every refusal before a job starts.
"""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Any

import pytest
import tomli_w

from ml import estimator, tune
from ml.__main__ import main
from ml.config import load_config
from ml.errors import ConfigError
from ml.schema import Task
from ml.steps.tune import write_hyperparameters
from tests.aws_fixtures import Account
from tests.botocore_limits import refusals
from tests.conftest import write_config
from tests.data_factory import project_schema, schema_frame, synthetic_schema, write_csv, write_schema
from tests.model_factory import SMALL_ESTIMATORS

TASKS = [Task.BINARY, Task.MULTICLASS, Task.REGRESSION]
METRIC = {Task.BINARY: "roc_auc", Task.MULTICLASS: "f1_macro", Task.REGRESSION: "rmse"}


def job(tmp_path: Path, task: Task, space: dict[str, list[Any]]) -> dict[str, Any]:
    contract = synthetic_schema(task)
    root = tmp_path / "processing"
    write_csv(schema_frame(contract, 150, seed=2), root / "input" / "train", "train.csv")
    write_schema(contract, root / "input" / "schema")
    settings = {"estimator": SMALL_ESTIMATORS[task], "fixed": {"random_state": 0}, "space": space,
                "metric": METRIC[task], "cv": 3, "factor": 2, "candidates": 4, "seed": 0}  # fmt: skip
    (root / "input" / "tuning").mkdir(parents=True)
    (root / "input" / "tuning" / "tuning.json").write_text(json.dumps(settings))
    assert tune.main(["--root", str(root)]) == 0
    report: dict[str, Any] = json.loads((root / "output" / "tuning" / "tuning.json").read_text())
    return report


@pytest.mark.parametrize("task", TASKS, ids=str)
def test_the_search_halves_its_candidates_and_keeps_the_fixed_parameters(tmp_path: Path, task: Task) -> None:
    space: dict[str, list[Any]] = {"max_depth": [2, 4, "none"], "min_samples_leaf": [1, 5]}
    report = job(tmp_path, task, space)
    assert report["metric"] == METRIC[task]
    assert report["best"]["random_state"] == 0  # held fixed, as [train] sets it
    assert report["best"]["max_depth"] in (2, 4, None) and report["best"]["min_samples_leaf"] in (1, 5)
    rounds = [c["round"] for c in report["candidates"]]
    assert rounds.count(0) == 4 and report["rounds"] == max(rounds) + 1 >= 2
    rows = {c["round"]: c["rows"] for c in report["candidates"]}
    assert rows[0] < rows[max(rows)]  # each round sees more rows
    final = [c for c in report["candidates"] if c["round"] == max(rounds)]
    better = min if METRIC[task] == "rmse" else max  # rmse: lower is better, reported as it is
    assert report["best_score"] == better(c["score"] for c in final)


def test_an_unknown_hyperparameter_or_a_value_the_estimator_refuses_fails_before_any_job(tmp_path: Path) -> None:
    forest = "sklearn.ensemble.RandomForestClassifier"
    with pytest.raises(ConfigError, match=r"\[tune.space\] in .* names n_estimatorz, which RandomForestClassifier"):
        estimator.check_space(forest, {}, {"n_estimatorz": (10,)}, tmp_path / "mlops.toml")
    with pytest.raises(
        ConfigError, match=r"\[tune.space\].max_depth in .* tries -3, which RandomForestClassifier refuses"
    ):
        estimator.check_space(forest, {}, {"max_depth": (4, -3)}, tmp_path / "mlops.toml")
    estimator.check_space(forest, {"random_state": "1"}, {"max_depth": (4, "none")}, tmp_path / "mlops.toml")


def test_an_empty_value_list_is_refused_at_config_load(make_config: Any) -> None:
    with pytest.raises(ConfigError, match=r"tune.space: .*max_depth lists no value to try"):
        make_config(tune={"space": {"max_depth": []}})


TEXT = """[train]
estimator = "sklearn.ensemble.RandomForestClassifier"

[train.hyperparameters]
# kept: a person's note
n_estimators = 200
max_depth = 8

[gate]
primary_metric = "roc_auc"
"""


def test_writing_the_best_values_keeps_every_comment_and_only_changes_those_keys(tmp_path: Path) -> None:
    path = write_config(tmp_path)
    original = path.read_text()
    path.write_text(original.replace("[train.hyperparameters]\n", "[train.hyperparameters]\n# kept: a person's note\n"))
    write_hyperparameters(path, {"max_depth": None, "min_samples_leaf": 4})
    text = path.read_text()
    assert "# kept: a person's note" in text
    hyper = tomllib.loads(text)["train"]["hyperparameters"]
    assert hyper["max_depth"] == "none" and hyper["min_samples_leaf"] == 4
    assert {k: v for k, v in hyper.items() if k not in ("max_depth", "min_samples_leaf")} == {
        k: v
        for k, v in tomllib.loads(original)["train"]["hyperparameters"].items()
        if k not in ("max_depth", "min_samples_leaf")
    }
    assert text.count("[train.hyperparameters]") == 1 and "[gate]" in text


def test_a_config_without_the_table_is_left_as_it_was(tmp_path: Path) -> None:
    path = tmp_path / "mlops.toml"
    path.write_text(
        TEXT.replace("[train.hyperparameters]\n# kept: a person's note\nn_estimators = 200\nmax_depth = 8\n\n", "")
    )
    before = path.read_text()
    with pytest.raises(ConfigError, match=r"no \[train.hyperparameters\] table"):
        write_hyperparameters(path, {"max_depth": 4})
    assert path.read_text() == before


def tiny_search(directory: Path) -> Path:
    """The project's config with a search of two candidates over a small forest of the task's kind."""
    config = write_config(directory)
    raw = tomllib.loads(config.read_text())
    task = project_schema().task
    raw["train"] = {**raw["train"], "estimator": SMALL_ESTIMATORS[task],
                    "hyperparameters": {"n_estimators": 10, "random_state": 0}}  # fmt: skip
    raw["tune"] = {"cv": 2, "factor": 2, "candidates": 2, "space": {"max_depth": [2, 3]}}
    config.write_text(tomli_w.dumps(raw))
    return config


@pytest.mark.e2e
def test_make_tune_searches_and_writes_the_best_into_the_config(
    tmp_path: Path, state_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tiny_search(tmp_path)
    monkeypatch.setenv("MLOPS_CONFIG", str(config))
    assert main(["tune"]) == 0
    assert tomllib.loads(config.read_text())["train"]["hyperparameters"] == {"n_estimators": 10, "random_state": 0}
    assert main(["tune", "--write"]) == 0
    written = tomllib.loads(config.read_text())["train"]["hyperparameters"]
    assert written["max_depth"] in (2, 3) and written["n_estimators"] == 10
    reports = sorted((state_dir / "tuning").glob("*/tuning.json"))
    assert len(reports) == 2 and json.loads(reports[-1].read_text())["best"]["max_depth"] == written["max_depth"]
    assert not (state_dir / "registry.sqlite").exists()  # tuning trains and registers nothing


def test_in_aws_the_same_search_runs_as_a_processing_job_with_kms(
    aws: Account, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The search runs in the scikit-learn container as a processing job (the emulator runs the real
    ml/tune.py when SageMaker is asked to), its request within every limit botocore's model sets."""
    config = tiny_search(tmp_path)
    monkeypatch.setenv("MLOPS_CONFIG", str(config))
    assert main(["tune"]) == 0
    (request,) = aws.emulator.requests["processing"]
    assert refusals("sagemaker", "CreateProcessingJob", request) == []
    assert request["AppSpecification"]["ContainerEntrypoint"][-1].endswith("/input/code/tune.py")
    assert {i["InputName"] for i in request["ProcessingInputs"]} == {"train", "schema", "tuning", "code"}
    key = aws.outputs["kms_key_arn"]
    assert request["ProcessingOutputConfig"]["KmsKeyId"] == key
    assert request["ProcessingResources"]["ClusterConfig"]["VolumeKmsKeyId"] == key
    assert request["RoleArn"] == aws.outputs["execution_role_arn"]
    (report,) = (load_config().state_dir / "tuning").glob("*/tuning.json")
    assert json.loads(report.read_text())["best"]["max_depth"] in (2, 3)
