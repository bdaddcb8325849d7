"""The same pipeline steps against AWS: S3, SageMaker training and processing, the Model Registry.

moto plays the account; tests/aws/emulator.py runs the real train.py and evaluate.py when a job
is created. One champion is trained per module; each test builds on it and checks that what it
does (a worse model, a failed job, a promotion) leaves the champion as it was.
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

# One worker runs the whole module, so its shared account is set up once (--dist loadgroup).
pytestmark = pytest.mark.xdist_group("aws-pipeline")


@pytest.fixture(scope="module")
def champion(aws_module: Account) -> Account:
    """The steps run once: v1 trained, evaluated, registered Approved and promoted in dev."""
    run_steps()
    return aws_module


def statuses(aws: Account) -> list[str]:
    return [package["ModelApprovalStatus"] for package in packages(aws)]


def test_the_champion_is_registered_approved_and_promoted(champion: Account) -> None:
    assert statuses(champion)[0] == "Approved"
    assert desired_version(champion) == "1"


def test_a_worse_model_is_rejected_never_approved_and_the_champion_stays(
    champion: Account, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = statuses(champion)
    worse = {"hyperparameters": {"n_estimators": 2, "max_depth": 1, "min_samples_leaf": 1, "random_state": 0}}
    monkeypatch.setenv("MLOPS_CONFIG", str(write_config(tmp_path, train=worse)))
    assert main(["pipeline"]) == 3
    assert statuses(champion) == [*before, "Rejected"]
    assert desired_version(champion) == "1"


@pytest.mark.parametrize(
    "outcome",
    [
        Outcome("Failed", "AlgorithmError: ValueError: bad input"),
        Outcome("Stopped", "Training job reached MaxRuntimeInSeconds", secondary="MaxRuntimeExceeded"),
    ],
    ids=["failed", "past-max-runtime"],
)
def test_a_failed_or_stopped_training_job_stops_the_run_and_registers_nothing(
    champion: Account, outcome: Outcome, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = statuses(champion)
    # New parameters, so the run must train rather than reuse the champion.
    changed = {"hyperparameters": {**CONFIG.train.hyperparameters, "min_samples_leaf": 3}}
    monkeypatch.setenv("MLOPS_CONFIG", str(write_config(tmp_path, train=changed)))
    champion.emulator.training_outcome = outcome
    try:
        assert main(["pipeline"]) == 1
    finally:
        champion.emulator.training_outcome = None
    summary = json.loads((Path(load_config().state_dir) / "summary.json").read_text())
    assert f"{outcome.status}: {outcome.reason}" in summary["error"]
    assert statuses(champion) == before
    assert desired_version(champion) == "1"


def test_promoting_to_staging_edits_only_the_staging_stack_file(champion: Account) -> None:
    dev_before = (champion.stack_dir / "Pulumi.dev.yaml").read_text()
    assert main(["promote", "--to", "staging", "--version", "1"]) == 0
    staging = yaml.safe_load((champion.stack_dir / "Pulumi.staging.yaml").read_text())["config"]
    assert staging[f"{CONFIG.project.resource_prefix}:model_version"] == "1"
    assert (champion.stack_dir / "Pulumi.dev.yaml").read_text() == dev_before


def test_a_rejected_version_in_a_stack_file_never_reaches_pulumi_up(champion: Account) -> None:
    # `make infra-up` runs check-deployable before `pulumi up`: a stack file that names a version
    # the registry holds as Rejected (an edit by hand, a bad merge) stops there.
    champion_package = packages(champion)[0]
    client = champion.client("sagemaker")
    rejected = client.create_model_package(
        ModelPackageGroupName=champion.outputs["model_package_group"],
        InferenceSpecification=champion_package["InferenceSpecification"],
        ModelApprovalStatus="Rejected",
        CustomerMetadataProperties=champion_package.get("CustomerMetadataProperties", {}),
    )
    version = int(rejected["ModelPackageArn"].rsplit("/", 1)[1])
    stack = champion.stack_dir / "Pulumi.dev.yaml"
    before = stack.read_text()
    key = f"{CONFIG.project.resource_prefix}:model_version"
    stack.write_text(before.replace(f'{key}: "1"', f'{key}: "{version}"').replace(f"{key}: '1'", f"{key}: '{version}'"))
    try:
        assert desired_version(champion) == str(version)
        assert main(["check-deployable"]) == 1
    finally:
        stack.write_text(before)
    assert main(["check-deployable"]) == 0
