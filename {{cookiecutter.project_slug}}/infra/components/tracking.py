"""Experiment tracking in AWS: SageMaker's serverless MLflow (an MLflow App), beside the registry.

Serverless: no tracking server runs, or is billed, while nobody logs or looks. Its artifacts live in
the environment's artifacts bucket under mlflow/, encrypted with the environment's key; the app
reaches them as a role of its own. The pipeline logs to it with MLflow's own client through the
sagemaker-mlflow plugin (ml/tracking.py), as the deploy role, which may call its API and nothing
else of it (sagemaker:CallMlflowAppApi, the Service Authorization Reference's one data-plane action
for MLflow Apps). Automatic model registration stays off: the model package group is the registry.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from infra.components.roles import policy
from ml import names

ARTIFACT_PREFIX = "mlflow"


@dataclass
class TrackingArgs:
    prefix: str
    env: str
    account_id: str
    artifacts_bucket_name: pulumi.Input[str]
    artifacts_bucket_arn: pulumi.Input[str]
    kms_key_arn: pulumi.Input[str]


class Tracking(pulumi.ComponentResource):
    role: aws.iam.Role
    app: aws.sagemaker.MlflowApp

    def __init__(self, name: str, args: TrackingArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("mlops:tracking:Tracking", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.role = aws.iam.Role(
            f"{name}-mlflow",
            name=names.mlflow_role_name(args.prefix, args.env),
            description="Assumed by the SageMaker MLflow App to read and write its artifacts",
            assume_role_policy=policy(
                [
                    {
                        "Effect": "Allow",
                        "Principal": {"Service": "sagemaker.amazonaws.com"},
                        "Action": "sts:AssumeRole",
                        "Condition": {"StringEquals": {"aws:SourceAccount": args.account_id}},
                    }
                ]
            ),
            opts=child,
        )
        objects = pulumi.Output.concat(args.artifacts_bucket_arn, f"/{ARTIFACT_PREFIX}/*")
        access = aws.iam.RolePolicy(
            f"{name}-mlflow-policy",
            role=self.role.id,
            policy=policy(
                [
                    {
                        "Sid": "ArtifactObjects",
                        "Effect": "Allow",
                        "Action": ["s3:GetObject", "s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload"],
                        "Resource": objects,
                    },
                    {
                        "Sid": "ArtifactListing",
                        "Effect": "Allow",
                        "Action": "s3:ListBucket",
                        "Resource": args.artifacts_bucket_arn,
                        "Condition": {"StringLike": {"s3:prefix": [f"{ARTIFACT_PREFIX}/*", ARTIFACT_PREFIX]}},
                    },
                    {
                        # The bucket is SSE-KMS with the environment's key.
                        "Sid": "UseEnvironmentKey",
                        "Effect": "Allow",
                        "Action": ["kms:Decrypt", "kms:GenerateDataKey"],
                        "Resource": args.kms_key_arn,
                    },
                ]
            ),
            opts=child,
        )
        self.app = aws.sagemaker.MlflowApp(
            f"{name}-mlflow-app",
            name=names.mlflow_app_name(args.prefix, args.env),
            artifact_store_uri=pulumi.Output.concat("s3://", args.artifacts_bucket_name, f"/{ARTIFACT_PREFIX}"),
            role_arn=self.role.arn,
            model_registration_mode="AutoModelRegistrationDisabled",
            # IAM is eventually consistent: the app assumes its role as it is created.
            opts=pulumi.ResourceOptions(parent=self, depends_on=[access]),
        )
        self.register_outputs({"mlflow_app_arn": self.app.arn})
