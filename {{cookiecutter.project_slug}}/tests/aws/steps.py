"""Helpers shared by the AWS step tests: run the steps, read what landed in the registry and stack file."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import boto3
import yaml

from infra.mocks import StackRun
from ml.__main__ import main
from ml.config import load_config
from tests.aws_fixtures import Account

CONFIG = load_config()
IMAGE_TAG = f"sagemaker-scikit-learn:{CONFIG.framework.sagemaker_image_version}-cpu-py3"
STEPS = ("data", "train", "evaluate", "register", "promote")
MODEL = f"{CONFIG.project.resource_prefix}-dev-model-0a1b2c"  # as Pulumi names it: the name, then a suffix


def run_steps() -> None:
    for step in STEPS:
        assert main([step]) == 0, step


def packages(aws: Account) -> list[dict[str, Any]]:
    client = aws.client("sagemaker")
    summaries = client.list_model_packages(ModelPackageGroupName=aws.outputs["model_package_group"])
    return [
        client.describe_model_package(ModelPackageName=s["ModelPackageArn"])
        for s in sorted(summaries["ModelPackageSummaryList"], key=lambda s: s["ModelPackageVersion"])
    ]


def desired_version(aws: Account) -> str:
    return str(stack_values(aws)["model_version"])


def stack_values(aws: Account) -> dict[str, Any]:
    """The dev stack's settings as `make promote` left them in Pulumi.dev.yaml (the project's keys)."""
    config = yaml.safe_load((aws.stack_dir / "Pulumi.dev.yaml").read_text())["config"]
    prefix = f"{CONFIG.project.resource_prefix}:"
    return {key.removeprefix(prefix): value for key, value in config.items() if key.startswith(prefix)}


def upload_stack_code(aws: Account, run: StackRun) -> None:
    """What `pulumi up` uploads: the jobs' code, to the keys the pipelines read."""
    s3 = aws.client("s3")
    for code in run.of_type("aws:s3/bucketObjectv2:BucketObjectv2"):
        s3.put_object(
            Bucket=code.inputs["bucket"], Key=code.inputs["key"], Body=Path(code.inputs["source"].path).read_bytes()
        )


def serve_in_stack(aws: Account, version: int) -> None:
    """What `pulumi up` leaves after applying a promotion: the model, and the stack outputs naming it."""
    # Pulumi's calls, not the pipeline's: a client of its own, which the IAM recording does not see.
    control = boto3.session.Session().client("sagemaker", region_name=CONFIG.project.aws_region)
    group = aws.outputs["model_package_group"]
    listed = control.list_model_packages(ModelPackageGroupName=group)["ModelPackageSummaryList"]
    package = next(p for p in listed if p["ModelPackageVersion"] == version)
    control.create_model(
        ModelName=MODEL,
        ExecutionRoleArn=aws.outputs["execution_role_arn"],
        PrimaryContainer={"ModelPackageName": package["ModelPackageArn"]},
    )
    aws.outputs.update(model_name=MODEL, model_version=str(version))
    (aws.stack_dir.parent / "dev.json").write_text(json.dumps(aws.outputs))  # MLOPS_STACK_OUTPUTS
