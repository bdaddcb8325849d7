"""One run of the pipeline steps against AWS, inspected: S3, SageMaker training and processing, the Model Registry.

moto plays the account; tests/aws/emulator.py runs the real train.py and evaluate.py when a job
is created. The requests that reach SageMaker are checked field by field.
"""

from __future__ import annotations

import json

import pytest
import yaml

from ml import schema
from ml.__main__ import main
from tests.aws.iam_calls import Recorder
from tests.aws.steps import CONFIG, IMAGE_TAG, desired_version, packages, run_steps
from tests.aws_fixtures import Account
from tests.botocore_limits import refusals
from tests.test_model_card import assert_in_aws_schema

# One worker runs the whole module, so its shared account is set up once (--dist loadgroup).
pytestmark = pytest.mark.xdist_group("aws-requests")


@pytest.fixture(scope="module")
def calls(aws_module: Account) -> Recorder:
    """Every request the steps send, as botocore builds it."""
    return Recorder.on(aws_module)


@pytest.fixture(scope="module")
def trained(aws_module: Account, calls: Recorder) -> Account:
    """One run of the steps, shared by the tests that only inspect what it sent and stored."""
    run_steps()
    return aws_module


def test_training_request_has_kms_image_hyperparameters_and_tags(trained: Account) -> None:
    aws = trained
    (request,) = aws.emulator.requests["training"]
    key = aws.outputs["kms_key_arn"]
    assert request["ResourceConfig"]["VolumeKmsKeyId"] == key
    assert request["OutputDataConfig"]["KmsKeyId"] == key
    assert request["OutputDataConfig"]["S3OutputPath"] == f"s3://{aws.outputs['artifacts_bucket']}/training"
    assert request["AlgorithmSpecification"]["TrainingImage"].endswith(f".amazonaws.com/{IMAGE_TAG}")
    assert request["RoleArn"] == aws.outputs["execution_role_arn"]
    assert request["StoppingCondition"]["MaxRuntimeInSeconds"] == CONFIG.train.max_runtime_seconds
    expected = {name: str(value).lower() if isinstance(value, bool) else str(value)
                for name, value in CONFIG.train.hyperparameters.items()}  # fmt: skip
    assert {k: v for k, v in request["HyperParameters"].items() if k in expected} == expected
    assert request["HyperParameters"]["label"] == schema.for_config(CONFIG).label
    assert request["HyperParameters"]["estimator"] == CONFIG.train.estimator
    tags = {tag["Key"]: tag["Value"] for tag in request["Tags"]}
    assert set(tags) >= {"git-sha", "fingerprint"}
    channels = {c["ChannelName"]: c["DataSource"]["S3DataSource"]["S3Uri"] for c in request["InputDataConfig"]}
    assert channels["train"].startswith(f"s3://{aws.outputs['artifacts_bucket']}/sha256/")
    assert channels["schema"].startswith(f"s3://{aws.outputs['artifacts_bucket']}/sha256/")


def test_evaluation_runs_as_a_processing_job_with_kms(trained: Account) -> None:
    aws = trained
    (request,) = aws.emulator.requests["processing"]
    key = aws.outputs["kms_key_arn"]
    assert request["ProcessingResources"]["ClusterConfig"]["VolumeKmsKeyId"] == key
    assert request["ProcessingOutputConfig"]["KmsKeyId"] == key
    assert request["AppSpecification"]["ImageUri"].endswith(IMAGE_TAG)
    inputs = {i["InputName"]: i["S3Input"] for i in request["ProcessingInputs"]}
    assert set(inputs) == {"model", "test", "train", "judging", "code"}
    # The baselines are fitted on the split the candidate was trained on.
    (training,) = aws.emulator.requests["training"]
    channels = {c["ChannelName"]: c["DataSource"]["S3DataSource"]["S3Uri"] for c in training["InputDataConfig"]}
    assert inputs["train"]["S3Uri"] == channels["train"]
    # The slices to measure travel as a file: each container argument is capped at 256 characters.
    bucket, key = inputs["judging"]["S3Uri"][5:].split("/", 1)
    judging = json.loads(aws.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read())
    assert judging["primary_metric"] == CONFIG.gate.primary_metric
    assert {name: spec["column"] for name, spec in judging["slices"].items()} == {
        name: spec.column for name, spec in CONFIG.gate.slices.items()
    }
    assert inputs["judging"]["LocalPath"] == "/opt/ml/processing/input/judging"


def test_the_model_package_carries_metrics_lineage_and_approval(trained: Account) -> None:
    aws = trained
    (package,) = packages(aws)
    assert package["ModelApprovalStatus"] == "Approved"
    properties = package["CustomerMetadataProperties"]
    primary = f"metric.{CONFIG.gate.primary_metric}"  # the task's own (roc_auc for the example's binary data)
    assert set(properties) >= {"git_sha", "data_hash", "code_hash", "params_hash", "fingerprint", primary}
    container = package["InferenceSpecification"]["Containers"][0]
    assert container["Environment"]["SAGEMAKER_PROGRAM"] == "inference.py"
    assert container["Image"].endswith(IMAGE_TAG)
    s3 = aws.client("s3")
    for uri in (container["ModelDataUrl"], package["ModelMetrics"]["ModelQuality"]["Statistics"]["S3Uri"]):
        bucket, key = uri[5:].split("/", 1)
        assert key.startswith("sha256/")
        assert s3.head_object(Bucket=bucket, Key=key)["ServerSideEncryption"] == "aws:kms"
    bucket, key = package["ModelMetrics"]["ModelQuality"]["Statistics"]["S3Uri"][5:].split("/", 1)
    evaluation = json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
    scored = evaluation["candidate"]["metrics"][CONFIG.gate.primary_metric]
    assert scored == pytest.approx(float(properties[primary]), abs=1e-6)
    assert desired_version(aws) == "1"


def test_the_model_package_carries_its_model_card_in_aws_schema(trained: Account, calls: Recorder) -> None:
    """Created with the package (a model package model card), so there is never one without the other."""
    (request,) = [c.params for c in calls.calls if c.operation == "CreateModelPackage"]
    assert refusals("sagemaker", "CreateModelPackage", request) == []
    card = request["ModelCard"]
    assert card["ModelCardStatus"] == "PendingReview"  # approved by the gate; people review the promotion
    content = json.loads(card["ModelCardContent"])
    assert_in_aws_schema(content)
    assert content["model_overview"]["model_artifact"] == [
        request["InferenceSpecification"]["Containers"][0]["ModelDataUrl"]
    ]
    custom = content["additional_information"]["custom_details"]
    assert custom["fingerprint"] == request["CustomerMetadataProperties"]["fingerprint"]
    names = {group["name"] for group in content["evaluation_details"][0]["metric_groups"]}
    assert {"candidate", "simple baseline", "trivial baseline", "feature importance"} <= names


def test_an_unchanged_rerun_reuses_the_registered_model(trained: Account) -> None:
    aws = trained
    assert main(["data"]) == 0
    assert main(["train"]) == 0
    assert len(aws.emulator.requests["training"]) == 1
    assert len(packages(aws)) == 1


def test_the_baseline_is_stored_first_and_promoted_with_the_version(trained: Account) -> None:
    aws = trained
    (package,) = packages(aws)
    properties = package["CustomerMetadataProperties"]
    quality = package["DriftCheckBaselines"]["ModelDataQuality"]
    s3 = aws.client("s3")
    for name in ("statistics", "constraints"):
        uri = properties[f"baseline_{name}"]
        assert quality[name.capitalize()]["S3Uri"] == uri
        bucket, key = uri[5:].split("/", 1)
        assert json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())["version"] == 0.0
    config = yaml.safe_load((aws.stack_dir / "Pulumi.dev.yaml").read_text())["config"]
    prefix = CONFIG.project.resource_prefix
    assert config[f"{prefix}:monitoring_baseline_constraints"] == properties["baseline_constraints"]
    assert config[f"{prefix}:monitoring_baseline_statistics"] == properties["baseline_statistics"]
