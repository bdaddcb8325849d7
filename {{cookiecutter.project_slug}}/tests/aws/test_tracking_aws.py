"""Tracking in AWS: the stack's MLflow App is where runs go, reached through the sagemaker-mlflow
plugin's own resolution (its endpoint and its signer), and CI's one-step-per-job run gets a record.
The calls themselves are made to a local MLflow server in tests/workflows/test_rehearsal.py."""

from __future__ import annotations

import json

import pytest
from mlflow import MlflowClient
from mlflow.tracking._tracking_service.utils import _use_tracking_uri

from ml import tracking
from ml.__main__ import main
from ml.config import load_config
from ml.context import make_context
from ml.errors import ConfigError
from tests.aws_fixtures import Account
from tests.conftest import quiet_console


def test_runs_go_to_the_stacks_mlflow_app_through_the_sagemaker_plugin(aws: Account) -> None:
    config = load_config()
    arn = aws.outputs["mlflow_app_arn"]
    assert tracking.tracking_uri(config) == arn
    store = MlflowClient(arn)._tracking_client.store
    creds = store.get_host_creds()
    # The app's endpoint, as the plugin builds it from the ARN, and its request signer by name.
    assert creds.host == f"https://mlflow.sagemaker.{aws.outputs['region']}.app.aws"
    assert creds.auth == "arn"
    from sagemaker_mlflow.auth_provider import AuthProvider

    with _use_tracking_uri(arn):
        provider = AuthProvider()
        provider.get_auth()  # resolves the ARN the way every call does
        # Signed for service "sagemaker": the IAM action is sagemaker:CallMlflowAppApi (infra/components/roles.py).
        assert provider._get_auth_service_name() == "sagemaker"


def test_a_stack_without_the_app_names_the_fix(aws: Account, tmp_path: object, monkeypatch: pytest.MonkeyPatch) -> None:
    outputs = {k: v for k, v in aws.outputs.items() if k != "mlflow_app_arn"}
    path = aws.stack_dir.parent / "no-app.json"
    path.write_text(json.dumps(outputs))
    monkeypatch.setenv("MLOPS_STACK_OUTPUTS", str(path))
    with pytest.raises(ConfigError, match=r"no mlflow_app_arn: `pulumi up` the dev stack"):
        tracking.tracking_uri(load_config())
    report = tracking.sync(make_context(load_config(), quiet_console()))
    assert report.logged == [] and "mlflow_app_arn" in report.failed["*"]


def test_ci_steps_make_one_run_record_per_workflow_run_attempt(aws: Account, monkeypatch: pytest.MonkeyPatch) -> None:
    for step in ("data", "train", "evaluate", "register"):
        assert main([step]) in (0, 3), step  # 3: the gate refused; the record says rejected
    monkeypatch.setenv("GITHUB_RUN_ID", "7001")
    monkeypatch.setenv("GITHUB_RUN_ATTEMPT", "2")
    ctx = make_context(load_config(), quiet_console())
    path = tracking.record_from_steps(ctx)
    assert path is not None and path.name == "ci-7001-2.json"
    record = json.loads(path.read_text())
    registered = json.loads((ctx.steps_dir / "register.json").read_text())
    assert record["model"]["version"] == registered["version"]
    assert record["status"] == ("succeeded" if registered["approval_status"] == "Approved" else "rejected")
    assert record["metrics"] and record["evaluation"]["baselines"] and record["data"]["hash"]
    assert tracking.record_from_steps(ctx) == path  # a second `make track` in the same attempt adds none
