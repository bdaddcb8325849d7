"""Endpoint: serves one registered model version, serverless or real-time.

The model and the endpoint config are auto-named, so changing the version creates a new
config beside the old one and SageMaker switches over; a rollback (git revert) does the
same in reverse, and nothing that is serving is ever deleted first.

Both are kept when Pulumi replaces them (retain_on_delete): when SageMaker rolls a blue/green
update back, pulumi-aws still reports success and would delete the config and model that are
serving again (terraform-provider-aws #48997, #46663, #39099). `make verify-deployment` then
finds the endpoint on the old config and says so; `make prune-endpoint-configs` removes the
configs and models no endpoint uses.
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
    log_retention_days: int


class Endpoint(pulumi.ComponentResource):
    endpoint: aws.sagemaker.Endpoint
    endpoint_config_name: pulumi.Output[str]

    def __init__(self, name: str, args: EndpointArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("mlops:endpoint:Endpoint", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        kept = pulumi.ResourceOptions(parent=self, retain_on_delete=True)

        model = aws.sagemaker.Model(
            f"{args.endpoint_name}-model",
            execution_role_arn=args.execution_role_arn,
            primary_container={"model_package_name": args.model_package_arn},
            # The scikit-learn container needs no network (its start-up pip install is offline, see
            # ml/backends/sagemaker_registry.py). Serverless Inference does not support network
            # isolation (SageMaker guide, Serverless Inference, feature exclusions).
            enable_network_isolation=args.real_time,
            opts=kept,
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
            f"{args.endpoint_name}-config", production_variants=[variant], opts=kept, **config_args
        )
        # SageMaker creates the endpoint's log group on first use, with no retention: create it first.
        logs = aws.cloudwatch.LogGroup(
            f"{args.endpoint_name}-logs",
            name=f"/aws/sagemaker/Endpoints/{args.endpoint_name}",
            retention_in_days=args.log_retention_days,
            opts=child,
        )

        endpoint_args: dict[str, Any] = {}
        if args.real_time:
            endpoint_args["deployment_config"] = {
                "blue_green_update_policy": {
                    "traffic_routing_configuration": traffic_routing(args),
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
            opts=pulumi.ResourceOptions(parent=self, depends_on=[logs]),
            **endpoint_args,
        )

        # No scalable target when the fleet may not grow: changing the instance type of an autoscaled
        # variant needs its scalable target deregistered first (see README, "Changing the instance type").
        if args.real_time and args.autoscaling_max_instances > args.instance_count:
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
        self.endpoint_config_name = config.name
        self.register_outputs({"endpoint_name": self.endpoint.name, "endpoint_config_name": config.name})


def traffic_routing(args: EndpointArgs) -> dict[str, Any]:
    """Canary traffic shifting on two instances or more; with one, all at once after a baking period.

    SageMaker requires the canary to be at most half the fleet (deployment guardrails, blue/green
    canary), which one instance cannot give. The canary is counted in whole instances, at least one
    and at most half: canary_percent (1 to 50, infra/settings.py) of the fleet, rounded down.
    """
    if args.instance_count >= 2:
        canary = canary_instances(args.instance_count, args.canary_percent)
        return {
            "type": "CANARY",
            "canary_size": {"type": "INSTANCE_COUNT", "value": canary},
            "wait_interval_in_seconds": args.canary_wait_seconds,
        }
    return {"type": "ALL_AT_ONCE", "wait_interval_in_seconds": args.canary_wait_seconds}


def canary_instances(instance_count: int, canary_percent: int) -> int:
    return max(1, instance_count * canary_percent // 100)
