"""The account-level pieces every stack relies on, created once by an administrator:

- the S3 bucket that holds Pulumi state for all stacks (`pulumi login s3://...`),
- the KMS key that encrypts stack secrets (`--secrets-provider awskms://alias/...`),
- the GitHub OIDC provider that the deploy roles trust (AWS allows one per account).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_aws as aws

from infra.components.roles import GITHUB_OIDC_HOST
from infra.components.storage import rotating_key, secure_bucket
from ml import names
from ml.config import ProjectSection


@dataclass
class StateBackendArgs:
    prefix: str
    account_id: str
    region: str


class StateBackend(pulumi.ComponentResource):
    bucket: aws.s3.Bucket
    key: aws.kms.Key
    oidc_provider: aws.iam.OpenIdConnectProvider

    def __init__(self, name: str, args: StateBackendArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("mlops:bootstrap:StateBackend", name, None, opts)
        child = pulumi.ResourceOptions(parent=self, protect=True)  # losing these loses every stack
        self.key = rotating_key(
            f"{name}-secrets-key",
            f"{args.prefix}: Pulumi state and stack secrets",
            names.secrets_key_alias(args.prefix),
            child,
        )
        self.bucket = secure_bucket(
            f"{name}-state",
            names.state_bucket_name(args.prefix, args.account_id),
            key=self.key,
            log_bucket=None,
            noncurrent_version_days=365,
            account_id=args.account_id,
            parent=self,
        )
        self.oidc_provider = aws.iam.OpenIdConnectProvider(
            f"{name}-github-oidc",
            url=f"https://{GITHUB_OIDC_HOST}",
            client_id_lists=["sts.amazonaws.com"],
            opts=child,
        )
        self.register_outputs(
            {"state_bucket": self.bucket.bucket, "secrets_key_arn": self.key.arn, "oidc": self.oidc_provider.arn}
        )


def build(project: ProjectSection) -> dict[str, Any]:
    provider = aws.Provider(
        "aws",
        region=project.aws_region,
        allowed_account_ids=[project.aws_account_id],
        default_tags={"tags": {"project": project.resource_prefix, "managed-by": "pulumi-bootstrap"}},
    )
    backend = StateBackend(
        "bootstrap",
        StateBackendArgs(project.resource_prefix, project.aws_account_id, project.aws_region),
        pulumi.ResourceOptions(providers=[provider]),
    )
    state = backend.bucket.bucket
    return {
        "state_bucket": state,
        "login_url": pulumi.Output.concat("s3://", state),
        "secrets_provider": f"awskms://{names.secrets_key_alias(project.resource_prefix)}?region={project.aws_region}",
        "github_oidc_provider_arn": backend.oidc_provider.arn,
    }
