"""Who may do what with dev's MLflow App, asked of principalmapper's evaluator with the policies the
Pulumi program declares, on ARNs built from the Service Authorization Reference's templates."""

from __future__ import annotations

import re

import pytest

from ml import names
from tests.infra.iam import aws_data
from tests.infra.iam.evaluate import allowed, role
from tests.infra.iam.scenarios import LAYOUTS, scenario

pytestmark = pytest.mark.xdist_group("iam")


@pytest.mark.parametrize("layout", list(LAYOUTS))
def test_the_pipeline_may_log_to_its_own_mlflow_app_and_no_other(layout: str) -> None:
    project = LAYOUTS[layout]
    found = scenario("dev", layout)
    run = found.runs[-1]
    app = run.outputs["mlflow_app_arn"]
    ((kind, template),) = aws_data.resource_arns("sagemaker:CallMlflowAppApi", required_only=True)
    assert kind == "mlflow-app"
    pattern = re.escape(template).replace(r"\$\{MLflowAppId\}", "[A-Za-z0-9-]+")
    pattern = re.sub(r"\\\$\\\{[A-Za-z]+\\\}", "[^:]+", pattern)
    assert re.fullmatch(pattern, app), (app, template)  # the ARN is of the kind the action is authorised on
    account = project.account("dev")
    deploy = role(f"arn:aws:iam::{account}:role/{names.deploy_role_name(project.resource_prefix, 'dev')}",
                  found.policy_of("dev-github-deploy-policy"))  # fmt: skip
    assert allowed(deploy, "sagemaker:CallMlflowAppApi", app)
    assert not allowed(
        deploy, "sagemaker:CallMlflowAppApi", re.sub(r"mlflow-app/.*", "mlflow-app/app-someoneelse", app)
    )
    assert not allowed(deploy, "sagemaker:DeleteMlflowApp", app)  # the administrator's `pulumi up` owns the app
    # Its artifacts, written by MLflow's client with the deploy role's own credentials.
    artifacts = f"arn:aws:s3:::{run.outputs['artifacts_bucket']}"
    assert allowed(deploy, "s3:PutObject", f"{artifacts}/mlflow/1/0a1b/artifacts/evaluation/roc_curve.png")


@pytest.mark.parametrize("layout", list(LAYOUTS))
def test_the_apps_own_role_reaches_its_artifacts_and_nothing_else(layout: str) -> None:
    project = LAYOUTS[layout]
    found = scenario("dev", layout)
    run = found.runs[-1]
    artifacts = f"arn:aws:s3:::{run.outputs['artifacts_bucket']}"
    arn = f"arn:aws:iam::{project.account('dev')}:role/{names.mlflow_role_name(project.resource_prefix, 'dev')}"
    app_role = role(arn, found.policy_of("dev-mlflow-policy"))
    assert allowed(app_role, "s3:GetObject", f"{artifacts}/mlflow/1/models/m-1/artifacts/model.pkl")
    assert allowed(app_role, "kms:GenerateDataKey", run.outputs["kms_key_arn"])
    assert not allowed(app_role, "s3:GetObject", f"{artifacts}/sha256/abc/model.tar.gz")  # the registry's models
    assert not allowed(app_role, "s3:GetObject", f"arn:aws:s3:::{run.outputs['data_bucket']}/data.csv")
    assert not allowed(app_role, "iam:PassRole", arn)
