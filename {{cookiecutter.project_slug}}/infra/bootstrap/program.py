"""The account-level pieces every stack relies on, created once per account by an administrator:

- the S3 bucket that holds Pulumi state for the account's stacks (`pulumi login s3://...`),
- one KMS key per environment for its stack's secrets (`--secrets-provider awskms://alias/...`),
  so one environment's roles cannot read another's secrets,
- the GitHub OIDC provider that the deploy and preview roles trust (AWS allows one per account),
- the service-linked roles Application Auto Scaling (SageMaker variants) and EventBridge API
  destinations use, so no deploy role ever needs iam:CreateServiceLinkedRole,
- retention on the log groups SageMaker's training and processing jobs write to.

With account_layout "single" one stack, `bootstrap`, covers dev, staging and prod. With
"per-environment", each account gets its own: `bootstrap-dev`, `bootstrap-staging`, `bootstrap-prod`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_aws as aws

from infra.components.roles import GITHUB_OIDC_HOST
from infra.components.storage import rotating_key, secure_bucket
from infra.settings import StackConfigError
from ml import names
from ml.config import AWS_ENVIRONMENTS, ProjectSection

# The service-linked roles the stacks' resources need, by the service that creates them.
SERVICE_LINKED_ROLES = {
    "sagemaker.application-autoscaling.amazonaws.com": "Application Auto Scaling, for SageMaker endpoint variants",
    "apidestinations.events.amazonaws.com": "EventBridge API destinations, for the retrain dispatch's token",
}
JOB_LOG_GROUPS = ("/aws/sagemaker/TrainingJobs", "/aws/sagemaker/ProcessingJobs", "/aws/sagemaker/TransformJobs")
JOB_LOG_RETENTION_DAYS = 90


@dataclass
class StateBackendArgs:
    prefix: str
    account_id: str
    region: str
    environments: list[str]
    create_service_linked_roles: bool = True


class StateBackend(pulumi.ComponentResource):
    bucket: aws.s3.Bucket
    keys: dict[str, aws.kms.Key]
    state_key: aws.kms.Key
    oidc_provider: aws.iam.OpenIdConnectProvider

    def __init__(self, name: str, args: StateBackendArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("mlops:bootstrap:StateBackend", name, None, opts)
        # Losing these loses every stack: protected, and kept even if this stack is destroyed.
        kept = pulumi.ResourceOptions(parent=self, protect=True, retain_on_delete=True)
        child = pulumi.ResourceOptions(parent=self)
        self.keys = {
            env: rotating_key(
                f"{name}-{env}-secrets-key",
                f"{args.prefix} {env}: Pulumi stack secrets",
                names.secrets_key_alias(args.prefix, env),
                kept,
            )
            for env in args.environments
        }
        # The state bucket's own key: S3 uses it for every stack's checkpoint, while the secrets inside
        # a checkpoint stay encrypted with that stack's key above.
        self.state_key = rotating_key(
            f"{name}-state-key", f"{args.prefix}: the Pulumi state bucket", names.state_key_alias(args.prefix), kept
        )
        self.bucket = secure_bucket(
            f"{name}-state",
            names.state_bucket_name(args.prefix, args.account_id),
            key=self.state_key,
            log_bucket=None,
            noncurrent_version_days=365,
            account_id=args.account_id,
            parent=self,
        )
        self.oidc_provider = aws.iam.OpenIdConnectProvider(
            f"{name}-github-oidc",
            url=f"https://{GITHUB_OIDC_HOST}",
            client_id_lists=["sts.amazonaws.com"],
            opts=kept,
        )
        if args.create_service_linked_roles:
            for service, description in SERVICE_LINKED_ROLES.items():
                aws.iam.ServiceLinkedRole(
                    f"{name}-{service.split('.')[0]}-service-role",
                    aws_service_name=service,
                    description=description,
                    opts=child,
                )
        for group in JOB_LOG_GROUPS:
            aws.cloudwatch.LogGroup(
                f"{name}-{group.rsplit('/', 1)[-1]}-logs",
                name=group,
                retention_in_days=JOB_LOG_RETENTION_DAYS,
                opts=child,
            )
        self.register_outputs(
            {
                "state_bucket": self.bucket.bucket,
                "secrets_key_arns": {env: key.arn for env, key in self.keys.items()},
                "oidc": self.oidc_provider.arn,
            }
        )


def environments_of(project: ProjectSection, stack: str) -> list[str]:
    """The environments whose account a bootstrap stack sets up: all three, or the one it names."""
    if not project.per_environment:
        if stack != "bootstrap":
            raise StackConfigError(f"with account_layout single the bootstrap stack is `bootstrap`, not {stack!r}")
        return list(AWS_ENVIRONMENTS)
    env = stack.removeprefix("bootstrap-")
    if env not in AWS_ENVIRONMENTS:
        raise StackConfigError(
            f"with account_layout per-environment each account has its own bootstrap stack: "
            f"bootstrap-dev, bootstrap-staging or bootstrap-prod, not {stack!r}"
        )
    return [env]


def build(
    project: ProjectSection, stack: str = "bootstrap", create_service_linked_roles: bool = True
) -> dict[str, Any]:
    environments = environments_of(project, stack)
    account = project.account(environments[0])
    provider = aws.Provider(
        "aws",
        region=project.aws_region,
        allowed_account_ids=[account],
        default_tags={"tags": {"project": project.resource_prefix, "managed-by": "pulumi-bootstrap"}},
    )
    backend = StateBackend(
        stack,
        StateBackendArgs(
            project.resource_prefix, account, project.aws_region, environments, create_service_linked_roles
        ),
        pulumi.ResourceOptions(providers=[provider]),
    )
    state = backend.bucket.bucket
    return {
        "state_bucket": state,
        "login_url": pulumi.Output.concat("s3://", state, f"?region={project.aws_region}"),
        "secrets_providers": {
            env: names.secrets_provider(project.resource_prefix, env, project.aws_region) for env in environments
        },
        "github_oidc_provider_arn": backend.oidc_provider.arn,
    }
