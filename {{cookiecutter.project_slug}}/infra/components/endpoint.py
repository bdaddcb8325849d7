"""Endpoint: serves one registered model version, serverless or real-time.

The model and the endpoint config are auto-named, so changing the version creates a new
config beside the old one and SageMaker switches over; a rollback (git revert) does the
same in reverse, and nothing that is serving is ever deleted first.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_aws as aws

VARIANT = "AllTraffic"


@dataclass
class EndpointArgs:
    endpoint_name: str
    model_package_arn: str
    execution_role_arn: pulumi.Input[str]
    kms_key_arn: pulumi.Input[str]
    artifacts_bucket: pulumi.Input[str]
    real_time: bool
    instance_type: str
    instance_count: int
    autoscaling_max_instances: int
    serverless_memory_mb: int
    serverless_max_concurrency: int
    data_capture_percent: int
    canary_percent: int
    canary_wait_seconds: int
    rollback_alarm_names: list[str]


class Endpoint(pulumi.ComponentResource):
    endpoint: aws.sagemaker.Endpoint

    def __init__(self, name: str, args: EndpointArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("mlops:endpoint:Endpoint", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)

        model = aws.sagemaker.Model(
            f"{args.endpoint_name}-model",
            execution_role_arn=args.execution_role_arn,
            primary_container={"model_package_name": args.model_package_arn},
            # The scikit-learn container needs no network: nothing leaves the VPC-less sandbox.
            enable_network_isolation=True,
            opts=child,
        )
        config_args: dict[str, Any] = {}
        if args.real_time:
            variant = aws.sagemaker.EndpointConfigurationProductionVariantArgs(
                variant_name=VARIANT,
                model_name=model.name,
                instance_type=args.instance_type,
                initial_instance_count=args.instance_count,
            )
            config_args["kms_key_arn"] = args.kms_key_arn
            if args.data_capture_percent:
                config_args["data_capture_config"] = {
                    "enable_capture": True,
                    "initial_sampling_percentage": args.data_capture_percent,
                    "destination_s3_uri": pulumi.Output.concat("s3://", args.artifacts_bucket, "/data-capture"),
                    "kms_key_id": args.kms_key_arn,
                    "capture_options": [{"capture_mode": "Input"}, {"capture_mode": "Output"}],
                    "capture_content_type_header": {
                        "csv_content_types": ["text/csv"],
                        "json_content_types": ["application/json"],
                    },
                }
        else:
            # Serverless endpoints have no instance volume to encrypt and cannot capture data;
            # the model artifact itself stays KMS-encrypted in S3.
            variant = aws.sagemaker.EndpointConfigurationProductionVariantArgs(
                variant_name=VARIANT,
                model_name=model.name,
                serverless_config=aws.sagemaker.EndpointConfigurationProductionVariantServerlessConfigArgs(
                    memory_size_in_mb=args.serverless_memory_mb, max_concurrency=args.serverless_max_concurrency
                ),
            )
        config = aws.sagemaker.EndpointConfiguration(
            f"{args.endpoint_name}-config", production_variants=[variant], opts=child, **config_args
        )

        endpoint_args: dict[str, Any] = {}
        if args.real_time:
            endpoint_args["deployment_config"] = {
                "blue_green_update_policy": {
                    "traffic_routing_configuration": {
                        "type": "CANARY",
                        "canary_size": {"type": "CAPACITY_PERCENT", "value": args.canary_percent},
                        "wait_interval_in_seconds": args.canary_wait_seconds,
                    },
                    "termination_wait_in_seconds": 300,
                    "maximum_execution_timeout_in_seconds": 3600,
                },
                "auto_rollback_configuration": {
                    "alarms": [{"alarm_name": alarm} for alarm in args.rollback_alarm_names]
                },
            }
        self.endpoint = aws.sagemaker.Endpoint(
            f"{args.endpoint_name}-endpoint",
            name=args.endpoint_name,
            endpoint_config_name=config.name,
            opts=child,
            **endpoint_args,
        )

        if args.real_time:
            target = aws.appautoscaling.Target(
                f"{args.endpoint_name}-scaling-target",
                service_namespace="sagemaker",
                resource_id=f"endpoint/{args.endpoint_name}/variant/{VARIANT}",
                scalable_dimension="sagemaker:variant:DesiredInstanceCount",
                min_capacity=args.instance_count,
                max_capacity=args.autoscaling_max_instances,
                opts=pulumi.ResourceOptions(parent=self, depends_on=[self.endpoint]),
            )
            aws.appautoscaling.Policy(
                f"{args.endpoint_name}-scaling-policy",
                policy_type="TargetTrackingScaling",
                service_namespace=target.service_namespace,
                resource_id=target.resource_id,
                scalable_dimension=target.scalable_dimension,
                target_tracking_scaling_policy_configuration={
                    "predefined_metric_specification": {
                        "predefined_metric_type": "SageMakerVariantInvocationsPerInstance"
                    },
                    "target_value": 1000.0,
                    "scale_in_cooldown": 300,
                    "scale_out_cooldown": 60,
                },
                opts=child,
            )
        self.register_outputs({"endpoint_name": self.endpoint.name, "endpoint_config_name": config.name})
