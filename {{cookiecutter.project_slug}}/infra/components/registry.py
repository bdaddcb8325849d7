"""Model registry: the SageMaker model package group that holds every trained version."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_aws as aws


@dataclass
class RegistryArgs:
    group_name: str
    description: str


class Registry(pulumi.ComponentResource):
    group: aws.sagemaker.ModelPackageGroup

    def __init__(self, name: str, args: RegistryArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("mlops:registry:Registry", name, None, opts)
        self.group = aws.sagemaker.ModelPackageGroup(
            f"{name}-group",
            model_package_group_name=args.group_name,
            model_package_group_description=args.description,
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.register_outputs({"model_package_group": self.group.model_package_group_name})
