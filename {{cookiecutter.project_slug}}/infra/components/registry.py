"""Model registry: the SageMaker model package group that holds every trained version.

In the per-environment account layout, staging's and prod's accounts may read its packages
(a model package group policy); their own IAM policies say which of their roles.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import pulumi
import pulumi_aws as aws


@dataclass
class RegistryArgs:
    group_name: str
    description: str
    region: str
    account_id: str
    reader_accounts: list[str] = field(default_factory=list)


class Registry(pulumi.ComponentResource):
    group: aws.sagemaker.ModelPackageGroup

    def __init__(self, name: str, args: RegistryArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("mlops:registry:Registry", name, None, opts)
        # Every registered version's lineage lives here: protected, and kept if the stack goes.
        self.group = aws.sagemaker.ModelPackageGroup(
            f"{name}-group",
            model_package_group_name=args.group_name,
            model_package_group_description=args.description,
            opts=pulumi.ResourceOptions(parent=self, protect=True, retain_on_delete=True),
        )
        if args.reader_accounts:
            arn = f"arn:aws:sagemaker:{args.region}:{args.account_id}"
            aws.sagemaker.ModelPackageGroupPolicy(
                f"{name}-group-policy",
                model_package_group_name=self.group.model_package_group_name,
                resource_policy=json.dumps(
                    {
                        "Version": "2012-10-17",
                        "Statement": [
                            {
                                "Sid": "OtherEnvironmentsDeployRegisteredVersions",
                                "Effect": "Allow",
                                "Principal": {"AWS": [f"arn:aws:iam::{a}:root" for a in args.reader_accounts]},
                                "Action": [
                                    "sagemaker:DescribeModelPackage",
                                    "sagemaker:DescribeModelPackageGroup",
                                    "sagemaker:ListModelPackages",
                                ],
                                "Resource": [
                                    f"{arn}:model-package-group/{args.group_name}",
                                    f"{arn}:model-package/{args.group_name}/*",
                                ],
                            }
                        ],
                    }
                ),
                opts=pulumi.ResourceOptions(parent=self),
            )
        self.register_outputs({"model_package_group": self.group.model_package_group_name})
