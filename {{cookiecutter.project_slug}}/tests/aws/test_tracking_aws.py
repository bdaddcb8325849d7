"""Tracking in AWS: the stack's MLflow App is where runs go, reached through the sagemaker-mlflow
plugin's own resolution (its endpoint and its signer), and CI's one-step-per-job run gets a record.
The calls themselves are made to a local MLflow server in tests/workflows/test_rehearsal.py."""

from __future__ import annotations

import json

import pytest
import requests

from ml import tracking
from ml.__main__ import main
from ml.config import load_config
from ml.context import make_context
from ml.errors import ConfigError
from tests.aws_fixtures import Account
from tests.conftest import quiet_console


def test_a_sync_in_aws_sends_signed_calls_to_the_stacks_mlflow_app(
    aws: Account, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Through the sagemaker-mlflow plugin as it is: each call goes to the app's endpoint, names the app
    and is signed for service "sagemaker" (sagemaker:CallMlflowAppApi, infra/components/roles.py).
    The plugin reads the ARN from MLflow's process-wide URI, not the client's: a sync that set only
    the client's sent nothing (an IndexError splitting the sqlite default). The wire is cut below
    requests, at the point the request would leave."""
    config = load_config()
    arn = aws.outputs["mlflow_app_arn"]
    assert tracking.tracking_uri(config) == arn
    (config.state_dir / "runs").mkdir(parents=True, exist_ok=True)
    (config.state_dir / "runs" / "20990101-000000-000002.json").write_text(
        json.dumps({"run_id": "20990101-000000-000002", "started_at": "2099-01-01T00:00:00+00:00"})
    )
    sent: list[requests.PreparedRequest] = []

    def offline(self: requests.Session, request: requests.PreparedRequest, **_: object) -> requests.Response:
        sent.append(request)
        raise requests.exceptions.ConnectionError("HTTPSConnectionPool(port=443): Max retries exceeded (offline here)")

    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setattr(requests.Session, "send", offline)
    report = tracking.sync(make_context(config, quiet_console()))
    assert report.logged == [] and "did not answer" in report.failed["20990101-000000-000002"]
    assert sent, report.failed
    first = sent[0]
    assert str(first.url).startswith(f"https://mlflow.sagemaker.{aws.outputs['region']}.app.aws/")
    assert first.headers["x-sm-mlflow-app-arn"] == arn
    authorization = str(first.headers["Authorization"])
    assert authorization.startswith("AWS4-HMAC-SHA256 ")
    assert f"/{aws.outputs['region']}/sagemaker/aws4_request" in authorization


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
