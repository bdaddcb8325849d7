"""Every bad answer is refused by hooks/pre_gen_project.py, with the rule and the fix."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
import yaml
from cookiecutter.exceptions import FailedHookException

from tests.conftest import Bake

BAD_ANSWERS = [
    pytest.param({"project_slug": "My Project"}, "lowercase letters and digits", id="slug-spaces"),
    pytest.param({"project_slug": "9lives"}, "starting with a letter", id="slug-leading-digit"),
    pytest.param({"project_slug": "double--hyphen"}, "single '-' or '_'", id="slug-double-hyphen"),
    pytest.param({"project_slug": "trailing-"}, "single '-' or '_'", id="slug-trailing-hyphen"),
    pytest.param({"project_slug": "a" * 29}, "at most 28 fit", id="slug-too-long-for-suffixes"),
    pytest.param({"project_slug": "sthree-model"}, "S3 reserves", id="slug-s3-reserved-prefix"),
    pytest.param({"project_slug": "my-sagemaker-model"}, "AmazonSageMakerFullAccess", id="slug-contains-sagemaker"),
    pytest.param({"project_slug": "aws-model"}, "AWS reserves", id="slug-aws-prefix"),
    pytest.param({"project_name": "   ", "project_slug": "ok"}, "project_name is empty", id="empty-name"),
    pytest.param({"aws_region": "mars-north-1"}, "is not supported: choose one of", id="region-unknown"),
    pytest.param({"aws_region": "cn-north-1"}, "'aws' partition", id="region-china-partition"),
    pytest.param({"aws_region": "us-gov-west-1"}, "'aws' partition", id="region-govcloud"),
    pytest.param({"aws_account_id": "12345678901"}, "exactly 12 digits", id="account-11-digits"),
    pytest.param({"aws_account_id": "12345678901a"}, "exactly 12 digits", id="account-letter"),
    pytest.param(
        {"account_layout": "per-environment", "prod_aws_account_id": "12"},
        "prod_aws_account_id '12' is invalid",
        id="layout-prod-account-short",
    ),
    pytest.param(
        {"account_layout": "per-environment", "staging_aws_account_id": "123456789012"},
        "needs three different accounts",
        id="layout-shared-account",
    ),
    pytest.param({"github_repository": "acme"}, "exactly one '/'", id="github-no-slash"),
    pytest.param({"github_repository": "acme/x/y"}, "exactly one '/'", id="github-two-slashes"),
    pytest.param({"github_repository": "-acme/repo"}, "not starting or ending with a hyphen", id="github-owner"),
    pytest.param({"github_repository": "a" * 40 + "/repo"}, "1-39 letters", id="github-owner-too-long"),
    pytest.param({"github_repository": "acme/re po"}, "1-100 letters", id="github-repo-space"),
    pytest.param({"github_repository": "acme/repo.git"}, "must not end with '.git'", id="github-repo-dot-git"),
    # Whole strings: `re.match` with `$` let a trailing newline through.
    pytest.param({"project_slug": "churn-model\n"}, "is invalid: use lowercase", id="slug-trailing-newline"),
    pytest.param({"aws_account_id": "123456789012\n"}, "exactly 12 digits", id="account-trailing-newline"),
    pytest.param({"github_repository": "acme/repo\n"}, "1-100 letters", id="github-trailing-newline"),
    pytest.param(
        {"project_name": "Churn\nModel", "project_slug": "churn"}, "a control character (U+000A)", id="name-newline"
    ),
    pytest.param({"project_name": "Churn\x7f", "project_slug": "churn"}, "(U+007F)", id="name-delete"),
    pytest.param({"project_name": "Churn\u2028", "project_slug": "churn"}, "a line separator", id="name-line-sep"),
]


@pytest.mark.parametrize(("answers", "message"), BAD_ANSWERS)
def test_bad_answer_is_rejected_with_a_clear_message(
    bake_in: Bake, tmp_path: Path, capfd: pytest.CaptureFixture[str], answers: dict[str, str], message: str
) -> None:
    with pytest.raises(FailedHookException):
        bake_in(**answers)
    error = capfd.readouterr().err
    assert message in error
    assert "nothing was generated" in error
    # cookiecutter removes the half-made project when the hook fails.
    assert [p.name for p in tmp_path.iterdir()] == []


def test_a_name_with_quotes_backslashes_and_emoji_renders_into_files_that_parse(bake_in: Bake) -> None:
    # Before the `quoted` filter, a '"' in the name ended the TOML string and pyproject.toml did not parse.
    name = 'Tom\'s "Best" \\ Model: 🚀 #1'
    baked = bake_in(project_name=name, project_slug="toms-model")
    assert tomllib.loads(baked.read("pyproject.toml"))["project"]["description"].startswith(f"{name}: ")
    assert tomllib.loads(baked.read("mlops.toml"))["project"]["name"] == name
    for stack in ("infra/Pulumi.yaml", "infra/bootstrap/Pulumi.yaml"):
        assert yaml.safe_load(baked.read(stack))["description"].startswith(f"{name}: ")
    assert baked.read("README.md").startswith(f"# {name}\n")


def test_every_problem_is_reported_at_once(bake_in: Bake, capfd: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(FailedHookException):
        bake_in(project_slug="Bad Slug", github_repository="acme/ok", aws_account_id="1", aws_region="nowhere")
    error = capfd.readouterr().err
    assert "3 answer(s) rejected" in error
    assert all(key in error for key in ("project_slug", "aws_account_id", "aws_region"))


@pytest.mark.parametrize(
    ("answer", "value"),
    [("staging_endpoint_type", "batch"), ("prod_endpoint_type", "gpu"), ("python_version", "3.13")],
)
def test_choices_outside_the_list_are_refused_before_generation(bake_in: Bake, answer: str, value: str) -> None:
    # cookiecutter itself checks choice variables; the hook re-checks replayed answers.
    with pytest.raises(ValueError, match="choices are"):
        bake_in(**{answer: value})


@pytest.mark.parametrize(
    "answers",
    [
        pytest.param({"project_slug": "a" * 28}, id="longest-slug"),
        pytest.param({"project_slug": "churn_model"}, id="underscore-slug"),
        pytest.param({"github_repository": "Acme-Corp/churn.model_v2"}, id="github-mixed-case-dots"),
        pytest.param({"aws_account_id": "000123456789"}, id="account-leading-zeros"),
        pytest.param({"aws_region": "ap-southeast-4"}, id="newer-region"),
        # The other environments' accounts are not used, so not checked, in the single layout.
        pytest.param({"account_layout": "single", "prod_aws_account_id": "unused"}, id="single-layout-ignores"),
    ],
)
def test_edge_values_that_are_valid_are_accepted(bake_in: Bake, answers: dict[str, str]) -> None:
    baked = bake_in(**answers)
    assert baked.has_file("mlops.toml")
