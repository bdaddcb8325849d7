"""The stack: wires the components together and returns the outputs that ml/ reads.

Settings are read and validated first (infra/settings.py), so a bad stack file stops
the program before any resource is declared.
"""

from __future__ import annotations

from typing import Any

import pulumi
import pulumi_aws as aws

from infra.components.drift import DriftMonitoring, DriftMonitoringArgs, analyzer_image
from infra.components.endpoint import Endpoint, EndpointArgs
from infra.components.monitoring import Monitoring, MonitoringArgs
from infra.components.registry import Registry, RegistryArgs
from infra.components.roles import Roles, RolesArgs
from infra.components.storage import Storage, StorageArgs
from infra.settings import KEYS, StackConfigError, StackSettings, parse
from ml import names, schema
from ml.config import load_config


def load_settings() -> StackSettings:
    project = load_config().project
    stack = pulumi.get_stack()
    config = pulumi.Config(project.resource_prefix)
    values = {key: config.get(key) for key in KEYS}
    return parse(stack, project, {k: v for k, v in values.items() if v is not None}, f"Pulumi.{stack}.yaml")


def build(settings: StackSettings) -> dict[str, Any]:
    """Declare every resource of one environment; return the stack outputs (the contract with ml/)."""
    prefix, env, project = settings.prefix, settings.stack, settings.project
    monitor_image = analyzer_image(project.aws_region) if settings.drift_monitoring else None
    if settings.drift_monitoring and monitor_image is None:
        raise StackConfigError(
            f"Pulumi.{env}.yaml asks for drift monitoring (data_capture_percent > 0), but SageMaker Model Monitor "
            f"is not published in {project.aws_region}: set data_capture_percent: 0, or use another region"
        )
    provider = aws.Provider(
        "aws",
        region=project.aws_region,
        # Refuse to touch any other account, whatever credentials are active.
        allowed_account_ids=[project.aws_account_id],
        default_tags={"tags": {"project": prefix, "environment": env, "managed-by": "pulumi"}},
    )
    opts = pulumi.ResourceOptions(providers=[provider])

    storage = Storage(
        env,
        StorageArgs(
            prefix=prefix,
            env=env,
            account_id=project.aws_account_id,
            noncurrent_version_days=settings.noncurrent_version_days,
            access_log_days=settings.access_log_days,
        ),
        opts,
    )

    # The stack that trains also owns the model registry; staging and prod deploy its versions.
    outputs: dict[str, Any] = {}
    if settings.registry_stack is None:
        group_name = names.model_package_group_name(prefix, env)
        Registry(env, RegistryArgs(group_name, f"{project.name}: every trained version, with metrics"), opts)
        registry_bucket_arn: pulumi.Input[str] | None = None
        registry_key_arn: pulumi.Input[str] | None = None
    else:
        registry = pulumi.StackReference(settings.registry_stack)
        group_name = names.model_package_group_name(prefix, settings.registry_stack.rsplit("/", 1)[-1])
        registry_bucket_arn = pulumi.Output.concat("arn:aws:s3:::", registry.require_output("artifacts_bucket"))
        registry_key_arn = registry.require_output("kms_key_arn")

    roles = Roles(
        env,
        RolesArgs(
            prefix=prefix,
            env=env,
            account_id=project.aws_account_id,
            region=project.aws_region,
            github_repository=project.github_repository,
            kms_key_arn=storage.key.arn,
            data_bucket_arn=storage.data_bucket.arn,
            artifacts_bucket_arn=storage.artifacts_bucket.arn,
            model_package_group=group_name,
            registry_artifacts_bucket_arn=registry_bucket_arn,
            registry_kms_key_arn=registry_key_arn,
        ),
        opts,
    )

    endpoint_name = names.endpoint_name(prefix, env) if settings.model_version is not None else None
    monitoring = Monitoring(
        env,
        MonitoringArgs(
            prefix=prefix,
            env=env,
            region=project.aws_region,
            account_id=project.aws_account_id,
            endpoint_name=endpoint_name,
            real_time=settings.real_time,
            latency_alarm_ms=settings.latency_alarm_ms,
            error_alarm_count=settings.error_alarm_count,
            invocations_alarm_per_minute=settings.invocations_alarm_per_minute,
            budget_monthly_usd=settings.budget_monthly_usd,
            budget_alert_email=settings.budget_alert_email,
        ),
        opts,
    )

    if endpoint_name is not None and settings.model_version is not None:
        arn = f"arn:aws:sagemaker:{project.aws_region}:{project.aws_account_id}"
        endpoint = Endpoint(
            env,
            EndpointArgs(
                endpoint_name=endpoint_name,
                model_package_arn=f"{arn}:model-package/{group_name}/{settings.model_version}",
                execution_role_arn=roles.execution_role.arn,
                kms_key_arn=storage.key.arn,
                artifacts_bucket=storage.artifacts_bucket.bucket,
                real_time=settings.real_time,
                instance_type=settings.instance_type,
                instance_count=settings.instance_count,
                autoscaling_max_instances=settings.autoscaling_max_instances,
                serverless_memory_mb=settings.serverless_memory_mb,
                serverless_max_concurrency=settings.serverless_max_concurrency,
                data_capture_percent=settings.data_capture_percent,
                canary_percent=settings.canary_percent,
                canary_wait_seconds=settings.canary_wait_seconds,
                rollback_alarm_names=monitoring.rollback_alarm_names,
            ),
            pulumi.ResourceOptions(providers=[provider], depends_on=[monitoring]),
        )
        outputs["endpoint_name"] = endpoint.endpoint.name
        outputs["model_version"] = str(settings.model_version)
        if settings.drift_monitoring and monitor_image and settings.github_dispatch_token:
            drift = DriftMonitoring(
                env,
                DriftMonitoringArgs(
                    prefix=prefix,
                    env=env,
                    github_repository=project.github_repository,
                    endpoint_name=endpoint.endpoint.name,
                    execution_role_arn=roles.execution_role.arn,
                    kms_key_arn=storage.key.arn,
                    artifacts_bucket=storage.artifacts_bucket.bucket,
                    analyzer_image=monitor_image,
                    baseline_statistics=settings.monitoring_baseline_statistics or "",
                    baseline_constraints=settings.monitoring_baseline_constraints or "",
                    features=list(schema.FEATURES),
                    drift_threshold=settings.drift_threshold,
                    schedule=settings.monitoring_schedule,
                    github_token=pulumi.Output.secret(settings.github_dispatch_token),
                ),
                pulumi.ResourceOptions(providers=[provider], depends_on=[endpoint]),
            )
            outputs["monitoring_schedule"] = drift.schedule.name

    outputs.update(
        {
            "region": project.aws_region,
            "data_bucket": storage.data_bucket.bucket,
            "artifacts_bucket": storage.artifacts_bucket.bucket,
            "kms_key_arn": storage.key.arn,
            "execution_role_arn": roles.execution_role.arn,
            "deploy_role_arn": roles.deploy_role.arn,
            "model_package_group": group_name,
        }
    )
    return outputs
