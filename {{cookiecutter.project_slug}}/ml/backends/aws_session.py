"""One boto3 session per run: the stack's region, standard retries, credentials checked up front."""

from __future__ import annotations

from typing import Any

from botocore.config import Config as BotoConfig
from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

from ml.errors import ConfigError

# Standard mode retries throttling and transient 5xx errors with exponential backoff and jitter.
RETRIES = BotoConfig(retries={"mode": "standard", "max_attempts": 8}, user_agent_extra="mlops-template")


def make_session(region: str, env: str) -> Any:
    import boto3

    session = boto3.Session(region_name=region)
    try:
        session.client("sts", config=RETRIES).get_caller_identity()
    except (NoCredentialsError, ClientError, BotoCoreError) as error:
        raise ConfigError(
            f"no usable AWS credentials for {env!r} ({error}). Locally: `aws sso login` and set AWS_PROFILE; "
            "in GitHub Actions: aws-actions/configure-aws-credentials with role-to-assume set to the "
            f"stack's deploy_role_arn (`pulumi stack output deploy_role_arn --stack {env}`)."
        ) from None
    return session
