"""Helpers shared by the AWS step tests: run the steps, read what landed in the registry and stack file."""

from __future__ import annotations

from typing import Any

import yaml

from ml.__main__ import main
from ml.config import load_config
from tests.aws_fixtures import Account

CONFIG = load_config()
IMAGE_TAG = f"sagemaker-scikit-learn:{CONFIG.framework.sagemaker_image_version}-cpu-py3"
STEPS = ("data", "train", "evaluate", "register", "promote")


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
    config = yaml.safe_load((aws.stack_dir / "Pulumi.dev.yaml").read_text())["config"]
    return str(config[f"{CONFIG.project.resource_prefix}:model_version"])
