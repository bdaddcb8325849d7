"""The same pipeline steps against AWS: S3, SageMaker training and processing, the Model Registry.

moto plays the account; tests/aws/emulator.py runs the real train.py and evaluate.py when a job
is created. The requests that reach SageMaker are checked field by field.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from ml.__main__ import main
from ml.config import load_config
from tests.aws.emulator import Outcome
from tests.aws.steps import CONFIG, desired_version, packages, run_steps
from tests.aws_fixtures import Account
from tests.conftest import write_config


def test_a_worse_model_is_rejected_never_approved_and_the_champion_stays(
    aws: Account, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_steps()
    worse = {"hyperparameters": {"n_estimators": 2, "max_depth": 1, "min_samples_leaf": 1, "random_state": 0}}
    monkeypatch.setenv("MLOPS_CONFIG", str(write_config(tmp_path, train=worse)))
    assert main(["pipeline"]) == 3
    first, second = packages(aws)
    assert (first["ModelApprovalStatus"], second["ModelApprovalStatus"]) == ("Approved", "Rejected")
    assert desired_version(aws) == "1"


@pytest.mark.parametrize(
    "outcome",
    [
        Outcome("Failed", "AlgorithmError: ValueError: bad input"),
        Outcome("Stopped", "Training job reached MaxRuntimeInSeconds", secondary="MaxRuntimeExceeded"),
    ],
    ids=["failed", "past-max-runtime"],
)
def test_a_failed_or_stopped_training_job_stops_the_run_and_registers_nothing(aws: Account, outcome: Outcome) -> None:
    aws.emulator.training_outcome = outcome
    assert main(["pipeline"]) == 1
    summary = json.loads((Path(load_config().state_dir) / "summary.json").read_text())
    assert f"{outcome.status}: {outcome.reason}" in summary["error"]
    assert packages(aws) == []
    assert desired_version(aws) == ""


def test_promoting_to_staging_edits_only_the_staging_stack_file(aws: Account) -> None:
    for step in ("data", "train", "evaluate", "register"):
        assert main([step]) == 0, step
    dev_before = (aws.stack_dir / "Pulumi.dev.yaml").read_text()
    assert main(["promote", "--to", "staging"]) == 0
    staging = yaml.safe_load((aws.stack_dir / "Pulumi.staging.yaml").read_text())["config"]
    assert staging[f"{CONFIG.project.resource_prefix}:model_version"] == "1"
    assert (aws.stack_dir / "Pulumi.dev.yaml").read_text() == dev_before
