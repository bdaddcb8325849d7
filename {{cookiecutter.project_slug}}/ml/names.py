"""Every AWS and local resource name, derived from the one resource prefix.

The pre-generation hook limits the prefix so that the longest name built here still
fits its service's limit; tests/test_names.py checks the worst case of each.
"""

from __future__ import annotations

import re
import secrets
from datetime import UTC, datetime

S3_BUCKET_MAX = 63
SAGEMAKER_NAME_MAX = 63
IAM_ROLE_MAX = 64

_SAGEMAKER_NAME = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$")
_BUCKET_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$")

BUCKET_PURPOSES = ("data", "artifacts", "access-logs")


def bucket_name(prefix: str, env: str, purpose: str, account_id: str) -> str:
    # The account id makes the name unique in S3's global namespace without a random suffix,
    # so the name is known before the bucket exists.
    if purpose not in BUCKET_PURPOSES:
        raise ValueError(f"unknown bucket purpose {purpose!r}; use one of {BUCKET_PURPOSES}")
    return _checked(f"{prefix}-{env}-{purpose}-{account_id}", _BUCKET_NAME, S3_BUCKET_MAX)


def state_bucket_name(prefix: str, account_id: str) -> str:
    """The Pulumi state bucket that infra/bootstrap creates, one per account."""
    return _checked(f"{prefix}-pulumi-state-{account_id}", _BUCKET_NAME, S3_BUCKET_MAX)


def secrets_key_alias(prefix: str, env: str) -> str:
    """The KMS key that encrypts one stack's secrets (infra/bootstrap creates one per environment)."""
    return f"alias/{prefix}-{env}-pulumi-secrets"


def state_key_alias(prefix: str) -> str:
    """The KMS key of the Pulumi state bucket (infra/bootstrap), one per account."""
    return f"alias/{prefix}-pulumi-state"


def secrets_provider(prefix: str, env: str, region: str) -> str:
    """The value of `secretsprovider:` in infra/Pulumi.<env>.yaml."""
    return f"awskms://{secrets_key_alias(prefix, env)}?region={region}"


def pulumi_project(prefix: str) -> str:
    """The Pulumi project of infra/ (infra/Pulumi.yaml `name:`); its stacks' state lives under it."""
    return prefix


def state_prefixes(prefix: str, env: str) -> tuple[str, ...]:
    """Where one stack keeps its state in the S3 backend: Pulumi's DIY layout (pkg/backend/diy/store.go
    and lock.go): the checkpoint, its history, backups, the update journal and the lock."""
    project = pulumi_project(prefix)
    return (
        f".pulumi/stacks/{project}/{env}.json",  # also .json.gz / .json.zst, hence the prefix
        f".pulumi/history/{project}/{env}/",
        f".pulumi/backups/{project}/{env}/",
        f".pulumi/journal/{project}/{env}/",
        f".pulumi/locks/organization/{project}/{env}/",
    )


def preview_role_name(prefix: str, env: str) -> str:
    return _checked(f"{prefix}-{env}-github-preview", None, IAM_ROLE_MAX)


def preview_environment(env: str) -> str:
    """The GitHub environment whose jobs may assume the read-only preview role (pull requests)."""
    return f"{github_environment(env)}-preview"


def kms_key_alias(prefix: str, env: str) -> str:
    return f"alias/{prefix}-{env}"


def alerts_key_alias(prefix: str, env: str) -> str:
    return f"alias/{prefix}-{env}-alerts"


def scheduler_role_name(prefix: str, env: str) -> str:
    return _checked(f"{prefix}-{env}-monitor-scheduler", None, IAM_ROLE_MAX)


def events_role_name(prefix: str, env: str) -> str:
    return _checked(f"{prefix}-{env}-events-dispatch", None, IAM_ROLE_MAX)


def deploy_role_name(prefix: str, env: str) -> str:
    return _checked(f"{prefix}-{env}-github-deploy", None, IAM_ROLE_MAX)


# GitHub environments that hold each stack's deploy role. prod deploys from `production`, whose
# required reviewers gate every prod change; the deploy role trusts only that environment.
GITHUB_ENVIRONMENTS = {"dev": "dev", "staging": "staging", "prod": "production"}


def github_environment(env: str) -> str:
    return GITHUB_ENVIRONMENTS[env]


def metrics_namespace(prefix: str) -> str:
    """The CloudWatch namespace the monitoring job publishes in (and its alarms read)."""
    return f"MLOps/{prefix}"


# The endpoint alarms that roll a blue/green update back (infra/components/monitoring.py); verify names them.
ROLLBACK_SIGNALS = ("5xx", "latency")


def alarm_name(prefix: str, env: str, signal: str) -> str:
    return f"{prefix}-{env}-{signal}"


def model_package_group_name(prefix: str, env: str) -> str:
    return _checked(f"{prefix}-{env}", _SAGEMAKER_NAME, SAGEMAKER_NAME_MAX)


def endpoint_name(prefix: str, env: str) -> str:
    return _checked(f"{prefix}-{env}", _SAGEMAKER_NAME, SAGEMAKER_NAME_MAX)


def mlflow_app_name(prefix: str, env: str) -> str:
    # CreateMlflowApp's Name: [a-zA-Z0-9](-*[a-zA-Z0-9]){0,255} (botocore's model); the prefix is one already.
    return _checked(f"{prefix}-{env}", _SAGEMAKER_NAME, SAGEMAKER_NAME_MAX)


def mlflow_role_name(prefix: str, env: str) -> str:
    return _checked(f"{prefix}-{env}-mlflow", None, IAM_ROLE_MAX)


def execution_role_name(prefix: str, env: str) -> str:
    return _checked(f"{prefix}-{env}-sagemaker-execution", None, IAM_ROLE_MAX)


def job_name(prefix: str, env: str, kind: str, now: datetime | None = None) -> str:
    """A unique, sortable job name such as tumor-classifier-local-train-20261122-143000-1a2b."""
    stamp = (now or datetime.now(UTC)).strftime("%Y%m%d-%H%M%S")
    name = f"{prefix}-{env}-{kind}-{stamp}-{secrets.token_hex(2)}"
    return _checked(name, _SAGEMAKER_NAME, SAGEMAKER_NAME_MAX)


def _checked(name: str, pattern: re.Pattern[str] | None, limit: int) -> str:
    if len(name) > limit or (pattern is not None and not pattern.match(name)):
        raise ValueError(
            f"derived name {name!r} breaks the AWS naming rule (at most {limit} characters, "
            "letters, digits and hyphens); shorten resource_prefix in mlops.toml"
        )
    return name
