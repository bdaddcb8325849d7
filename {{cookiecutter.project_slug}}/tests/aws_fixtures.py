"""An AWS account in moto with the stack infra/ would create, and the pipeline pointed at it."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from ml import names
from ml.backends import aws_session, sagemaker_jobs
from ml.config import PROJECT_ROOT, load_config
from tests.aws.emulator import ContainerEmulator

PROJECT = load_config().project
REGION = PROJECT.aws_region
ACCOUNT = PROJECT.aws_account_id  # moto plays this account (MOTO_ACCOUNT_ID below)


@dataclass
class Account:
    session: Any
    emulator: ContainerEmulator
    outputs: dict[str, str]
    stack_dir: Path

    def client(self, service: str) -> Any:
        return self.session.client(service)


@contextmanager
def account(state: Path, patch: pytest.MonkeyPatch) -> Iterator[Account]:
    """A moto account holding what `pulumi up --stack dev` creates, with the pipeline pointed at it."""
    for key, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": REGION,
        "MOTO_ACCOUNT_ID": ACCOUNT,
        "MLOPS_ENV": "dev",
        "MLOPS_HOME": str(state / "state"),
    }.items():
        patch.setenv(key, value)
    patch.delenv("AWS_PROFILE", raising=False)
    # As an administrator's shell: nothing turns the sagemaker SDK's role validation off but the job runner.
    patch.delenv("SAGEMAKER_VALIDATE_ROLE", raising=False)
    patch.delenv("MLOPS_CONFIG", raising=False)
    with mock_aws():
        session = boto3.Session(region_name=REGION)
        emulator = ContainerEmulator(session, REGION, ACCOUNT)
        emulator.install()
        prefix = PROJECT.resource_prefix
        artifacts = names.bucket_name(prefix, "dev", "artifacts", ACCOUNT)
        data = names.bucket_name(prefix, "dev", "data", ACCOUNT)
        s3 = session.client("s3")
        for bucket in (artifacts, data):
            s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": REGION})
        key = session.client("kms").create_key(Description="dev")["KeyMetadata"]["Arn"]
        trust = {
            "Version": "2012-10-17",
            "Statement": [
                {"Effect": "Allow", "Principal": {"Service": "sagemaker.amazonaws.com"}, "Action": "sts:AssumeRole"}
            ],
        }
        role = session.client("iam").create_role(
            RoleName=names.execution_role_name(prefix, "dev"), AssumeRolePolicyDocument=json.dumps(trust)
        )["Role"]["Arn"]
        group = names.model_package_group_name(prefix, "dev")
        session.client("sagemaker").create_model_package_group(ModelPackageGroupName=group)
        outputs = {
            "region": REGION,
            "data_bucket": data,
            "artifacts_bucket": artifacts,
            "kms_key_arn": key,
            "execution_role_arn": role,
            "model_package_group": group,
            "deploy_role_arn": f"arn:aws:iam::{ACCOUNT}:role/{names.deploy_role_name(prefix, 'dev')}",
            # AWS makes the id up (CreateMlflowApp returns the ARN; infra/components/tracking.py).
            "mlflow_app_arn": f"arn:aws:sagemaker:{REGION}:{ACCOUNT}:mlflow-app/app-0a1b2c3d4e5f",
        }
        stack_outputs = state / "dev.json"
        stack_outputs.write_text(json.dumps(outputs))
        patch.setenv("MLOPS_STACK_OUTPUTS", str(stack_outputs))
        # Promotion edits a copy of the stack files, never the committed ones.
        stack_dir = state / "infra"
        stack_dir.mkdir()
        for path in (PROJECT_ROOT / "infra").glob("Pulumi.*.yaml"):
            shutil.copy(path, stack_dir / path.name)
        patch.setenv("MLOPS_STACK_DIR", str(stack_dir))
        # The pipeline builds its session through make_session; hand it this one, whose events the
        # emulator hooks. make_session's own credential check is tested on its own.
        patch.setattr(aws_session, "make_session", lambda region, env: session)
        # moto holds a log line the moment it is put, so CloudWatch's ingest pause before a finished job's
        # last read has nothing to wait for here (5 s of sleep per job, for every train and evaluate).
        # test_a_finished_job_is_read_once_more_after_cloudwatchs_ingest_pause keeps the pause itself.
        patch.setattr(sagemaker_jobs, "LAST_LINES_SECONDS", 0.0)
        try:
            yield Account(session, emulator, outputs, stack_dir)
        finally:
            emulator.close()


@pytest.fixture
def aws(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Account]:
    with account(tmp_path, monkeypatch) as created:
        yield created


@pytest.fixture(scope="module")
def aws_module(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Account]:
    """One account per module, for tests that only read what a shared run produced."""
    with pytest.MonkeyPatch.context() as patch, account(tmp_path_factory.mktemp("aws"), patch) as created:
        yield created
