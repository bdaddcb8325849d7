"""Validate every cookiecutter answer before a single file is written.

Each rule names what is wrong and how to fix it, then exits 1 so cookiecutter
raises FailedHookException and removes the half-made project directory.
The Jinja below is confined to the ANSWERS table (`quoted`, local_extensions.py: a JSON string,
which is also a Python literal; Jinja's tojson would turn an emoji into two surrogates); everything
after it is plain Python.
"""

from __future__ import annotations

import re
import sys
import unicodedata

ANSWERS = {
    "project_name": {{cookiecutter.project_name | quoted}},
    "project_slug": {{cookiecutter.project_slug | quoted}},
    "resource_prefix": {{cookiecutter.__resource_prefix | quoted}},
    "github_repository": {{cookiecutter.github_repository | quoted}},
    "aws_region": {{cookiecutter.aws_region | quoted}},
    "aws_account_id": {{cookiecutter.aws_account_id | quoted}},
    "account_layout": {{cookiecutter.account_layout | quoted}},
    "staging_aws_account_id": {{cookiecutter.staging_aws_account_id | quoted}},
    "prod_aws_account_id": {{cookiecutter.prod_aws_account_id | quoted}},
    "python_version": {{cookiecutter.python_version | quoted}},
    "staging_endpoint_type": {{cookiecutter.staging_endpoint_type | quoted}},
    "prod_endpoint_type": {{cookiecutter.prod_endpoint_type | quoted}},
}

# Commercial-partition regions where the SageMaker scikit-learn image this project
# pins is published (sagemaker-core image_uri_config/sklearn.json). GovCloud, China
# and ISO regions use another ARN partition, which the IAM policies here do not model.
SUPPORTED_REGIONS = (
    "af-south-1",
    "ap-east-1",
    "ap-northeast-1",
    "ap-northeast-2",
    "ap-northeast-3",
    "ap-south-1",
    "ap-south-2",
    "ap-southeast-1",
    "ap-southeast-2",
    "ap-southeast-3",
    "ap-southeast-4",
    "ca-central-1",
    "ca-west-1",
    "eu-central-1",
    "eu-central-2",
    "eu-north-1",
    "eu-south-1",
    "eu-south-2",
    "eu-west-1",
    "eu-west-2",
    "eu-west-3",
    "il-central-1",
    "me-central-1",
    "me-south-1",
    "sa-east-1",
    "us-east-1",
    "us-east-2",
    "us-west-1",
    "us-west-2",
)
# Only versions the template's CI proves: it bakes every combination on each, and runs a
# whole project's `make test` on each. 3.12 is the SageMaker scikit-learn image's Python.
SUPPORTED_PYTHON = ("3.11", "3.12")
ENDPOINT_TYPES = ("serverless", "real-time")
ACCOUNT_LAYOUTS = ("single", "per-environment")
ENVIRONMENTS = ("dev", "staging", "prod")

# The longest names generated from the prefix, per AWS limit. ml/names.py builds
# the real names; tests/test_bake.py checks a maximum-length slug against both.
S3_BUCKET_MAX = 63
LONGEST_BUCKET_SUFFIX = "-staging-access-logs-123456789012"  # <prefix>-<env>-<purpose>-<account>
SAGEMAKER_NAME_MAX = 63
LONGEST_SAGEMAKER_SUFFIX = "-staging-train-20260101-000000-abcd"  # training job names
IAM_ROLE_MAX = 64
LONGEST_ROLE_SUFFIX = "-staging-sagemaker-execution"
MAX_PREFIX = min(
    S3_BUCKET_MAX - len(LONGEST_BUCKET_SUFFIX),
    SAGEMAKER_NAME_MAX - len(LONGEST_SAGEMAKER_SUFFIX),
    IAM_ROLE_MAX - len(LONGEST_ROLE_SUFFIX),
)

# Matched with fullmatch: `match` with `$` accepts a trailing newline ("churn\n").
SLUG_RE = re.compile(r"[a-z][a-z0-9]*(?:[-_][a-z0-9]+)*")
GITHUB_OWNER_RE = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9]|-(?=[A-Za-z0-9])){0,38}")
GITHUB_REPO_RE = re.compile(r"[A-Za-z0-9._-]{1,100}")
ACCOUNT_RE = re.compile(r"[0-9]{12}")
# Characters no answer may hold: control characters (a newline would end a TOML or YAML
# string), surrogates, unassigned code points and the Unicode line and paragraph separators
# (YAML reads them as line breaks). What remains renders safely through the `quoted` filter.
UNSAFE_CATEGORIES = {"Cc": "a control character", "Cs": "a surrogate", "Cn": "an unassigned code point",
                     "Zl": "a line separator", "Zp": "a paragraph separator"}  # fmt: skip
# S3 reserves these prefixes; a bucket named with them cannot be created.
S3_RESERVED_PREFIXES = ("xn--", "sthree-", "amzn-s3-demo-")


def check_slug(slug: str, prefix: str) -> list[str]:
    errors = []
    if not SLUG_RE.fullmatch(slug):
        errors.append(
            f"project_slug {slug!r} is invalid: use lowercase letters and digits, "
            "separated by single '-' or '_', starting with a letter "
            "(S3 bucket and SageMaker names allow no other characters). "
            "Example: project_slug=churn-model"
        )
    if len(prefix) > MAX_PREFIX:
        errors.append(
            f"project_slug {slug!r} is {len(prefix)} characters; at most {MAX_PREFIX} fit, "
            f"because names such as '{prefix}{LONGEST_BUCKET_SUFFIX}' must stay within "
            f"the S3 bucket limit of {S3_BUCKET_MAX} characters. Choose a shorter project_slug."
        )
    for reserved in S3_RESERVED_PREFIXES:
        if prefix.startswith(reserved):
            errors.append(
                f"project_slug {slug!r} starts with {reserved!r}, which S3 reserves for "
                "its own bucket names. Choose a project_slug that does not start with it."
            )
    if "sagemaker" in prefix:
        errors.append(
            f"project_slug {slug!r} contains 'sagemaker'. AWS managed policies such as "
            "AmazonSageMakerFullAccess grant access to every bucket whose name contains "
            "'sagemaker', which would open this project's data to unrelated roles. "
            "Choose a project_slug without it."
        )
    if prefix.startswith("aws"):
        errors.append(
            f"project_slug {slug!r} starts with 'aws', which AWS reserves for its own "
            "resource and role names. Choose another project_slug."
        )
    return errors


def check_github_repository(value: str) -> list[str]:
    owner, sep, repo = value.partition("/")
    problems = []
    if not sep or "/" in repo:
        problems.append("it must have exactly one '/', as in owner/repo")
    else:
        if not GITHUB_OWNER_RE.fullmatch(owner):
            problems.append(
                f"owner {owner!r} must be 1-39 letters, digits or single hyphens, not starting or ending with a hyphen"
            )
        if not GITHUB_REPO_RE.fullmatch(repo) or repo in {".", ".."}:
            problems.append(f"repo {repo!r} must be 1-100 letters, digits, '.', '-' or '_'")
        elif repo.lower().endswith(".git"):
            problems.append(f"repo {repo!r} must not end with '.git'")
    if not problems:
        return []
    return [
        f"github_repository {value!r} is invalid: {'; '.join(problems)}. "
        "The OIDC trust policy pins this exact name. Example: github_repository=acme/churn-model"
    ]


def check_region(region: str) -> list[str]:
    if region in SUPPORTED_REGIONS:
        return []
    return [
        f"aws_region {region!r} is not supported: choose one of {', '.join(SUPPORTED_REGIONS)} "
        "(regions where the pinned SageMaker scikit-learn image is published, "
        "in the standard 'aws' partition)."
    ]


def check_account(account: str, key: str = "aws_account_id") -> list[str]:
    if ACCOUNT_RE.fullmatch(account):
        return []
    return [
        f"{key} {account!r} is invalid: it must be exactly 12 digits, "
        "as printed by 'aws sts get-caller-identity --query Account --output text'. "
        "Keep leading zeros."
    ]


def check_account_layout(answers: dict[str, str]) -> list[str]:
    layout = answers["account_layout"]
    if layout not in ACCOUNT_LAYOUTS:
        return [f"account_layout {layout!r} is not supported: choose one of {', '.join(ACCOUNT_LAYOUTS)}."]
    if layout == "single":
        return []  # staging_aws_account_id and prod_aws_account_id are not used
    errors = []
    for env in ("staging", "prod"):
        errors += check_account(answers[f"{env}_aws_account_id"], f"{env}_aws_account_id")
    accounts = [answers["aws_account_id"], answers["staging_aws_account_id"], answers["prod_aws_account_id"]]
    if not errors and len(set(accounts)) != 3:
        errors.append(
            "account_layout per-environment needs three different accounts: aws_account_id (dev), "
            f"staging_aws_account_id and prod_aws_account_id are {', '.join(accounts)}. "
            "Use account_layout=single to keep every environment in one account."
        )
    return errors


def check_choices(answers: dict[str, str]) -> list[str]:
    errors = []
    if answers["python_version"] not in SUPPORTED_PYTHON:
        errors.append(
            f"python_version {answers['python_version']!r} is not supported: use "
            f"{' or '.join(SUPPORTED_PYTHON)}, the version(s) every generated check is proven on. "
            "The project's requires-python has no upper bound, so a newer interpreter still runs it, untested."
        )
    for env in ("staging", "prod"):
        key = f"{env}_endpoint_type"
        if answers[key] not in ENDPOINT_TYPES:
            errors.append(f"{key} {answers[key]!r} is not supported: choose one of {', '.join(ENDPOINT_TYPES)}.")
    return errors


def check_characters(answers: dict[str, str]) -> list[str]:
    errors = []
    for key, value in answers.items():
        for position, char in enumerate(value):
            kind = UNSAFE_CATEGORIES.get(unicodedata.category(char))
            if kind:
                errors.append(
                    f"{key} {value!r} holds {kind} (U+{ord(char):04X}) at position {position + 1}: "
                    "answers are written into TOML, YAML and Markdown files. Type it again without it."
                )
                break
    return errors


def validate(answers: dict[str, str]) -> list[str]:
    errors = check_characters(answers)
    if not answers["project_name"].strip():
        errors.append("project_name is empty: give the project a human-readable name.")
    errors += check_slug(answers["project_slug"], answers["resource_prefix"])
    errors += check_github_repository(answers["github_repository"])
    errors += check_region(answers["aws_region"])
    errors += check_account(answers["aws_account_id"])
    errors += check_account_layout(answers)
    errors += check_choices(answers)
    return errors


def main() -> int:
    errors = validate(ANSWERS)
    for error in errors:
        print(f"ERROR: {error}", file=sys.stderr)
    if errors:
        print(f"\n{len(errors)} answer(s) rejected; nothing was generated.", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
