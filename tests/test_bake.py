"""The rendered project: its files, its names, and its own checks run for real."""

from __future__ import annotations

import json
import os
import tomllib

import pytest

from scripts.bakery import Baked
from tests.conftest import Bake


def test_answers_land_in_the_one_config_file(bake_in: Bake) -> None:
    baked = bake_in(
        project_name="Churn Model",
        project_slug="churn_model",
        github_repository="acme/churn",
        aws_region="us-east-2",
        aws_account_id="000123456789",
    )
    project = tomllib.loads(baked.read("mlops.toml"))["project"]
    assert project == {
        "name": "Churn Model",
        "slug": "churn_model",
        "resource_prefix": "churn-model",
        "github_repository": "acme/churn",
        "aws_region": "us-east-2",
        "aws_account_id": "000123456789",
        "account_layout": "single",
    }
    assert baked.read(".python-version").strip() == baked.answers["python_version"]
    assert tomllib.loads(baked.read("pyproject.toml"))["project"]["name"] == "churn-model"
    assert 'name = "churn-model"' in baked.read("uv.lock")


def test_the_per_environment_layout_lists_each_environments_account(bake_in: Bake) -> None:
    baked = bake_in(
        account_layout="per-environment", staging_aws_account_id="222222222222", prod_aws_account_id="333333333333"
    )
    project = tomllib.loads(baked.read("mlops.toml"))["project"]
    assert project["account_layout"] == "per-environment"
    assert project["accounts"] == {"dev": project["aws_account_id"], "staging": "222222222222", "prod": "333333333333"}
    # Staging and prod cannot read dev's state in another account: their stack files name dev's key instead.
    for env in ("staging", "prod"):
        config = baked.stack_config(env)
        assert "registry_stack" not in config
        assert config["registry_kms_key_arn"].startswith(
            f"arn:aws:kms:{project['aws_region']}:{project['aws_account_id']}:key/"
        )


def test_default_endpoints_are_serverless_in_staging_and_real_time_in_prod(default_project: Baked) -> None:
    staging, prod = default_project.stack_config("staging"), default_project.stack_config("prod")
    assert staging["endpoint_type"] == "serverless"
    assert prod["endpoint_type"] == "real-time"
    assert prod["instance_count"] == 2
    assert staging["model_version"] == prod["model_version"] == ""
    assert default_project.stack_config("dev")["aws:region"] == default_project.answers["aws_region"]


def test_endpoint_type_answers_shape_the_stack_files(bake_in: Bake) -> None:
    baked = bake_in(staging_endpoint_type="real-time", prod_endpoint_type="serverless")
    staging, prod = baked.stack_config("staging"), baked.stack_config("prod")
    assert staging["endpoint_type"] == "real-time" and "instance_type" in staging
    assert prod["endpoint_type"] == "serverless" and "serverless_memory_mb" in prod
    # Serverless endpoints cannot capture data, so the prod file must not ask for it.
    assert "data_capture_percent" not in prod


def test_the_project_starts_as_a_git_repository(default_project: Baked) -> None:
    assert (default_project.path / ".git").is_dir()


@pytest.mark.slow
def test_the_baked_project_runs_its_pipeline_end_to_end(default_project: Baked) -> None:
    env = {"UV": os.environ.get("UV", "uv")}
    try:
        default_project.run_check("make", "pipeline", env=env)
        summary = json.loads(default_project.read(".mlops/summary.json"))
        assert summary["status"] == "succeeded"
        assert [step["status"] for step in summary["steps"]] == ["ok"] * 7
        assert summary["model"]["approval"] == "Approved"
        assert summary["model"]["promoted"] == summary["model"]["version"] == 1
        again = default_project.run_check("make", "pipeline", env=env)
        assert "training skipped" in again
        assert json.loads(default_project.read(".mlops/summary.json"))["model"]["reused"] is True
    finally:
        default_project.run("make", "stop", env=env)
