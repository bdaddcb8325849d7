"""The stack: wires the components together and returns the outputs that ml/ reads.

Settings are read and validated first (infra/settings.py), so a bad stack file stops
the program before any resource is declared.
"""

from __future__ import annotations

from typing import Any

import pulumi
import pulumi_aws as aws

from infra.components.batch_schedule import BatchSchedule, BatchScheduleArgs
from infra.components.endpoint import Endpoint, EndpointArgs
from infra.components.monitoring import Monitoring, MonitoringArgs
from infra.components.monitoring_job import MonitoringJob, MonitoringJobArgs
from infra.components.registry import Registry, RegistryArgs
from infra.components.roles import Roles, RolesArgs
from infra.components.storage import Storage, StorageArgs
from infra.components.tracking import Tracking, TrackingArgs
from infra.settings import KEYS, StackSettings, parse, schedule_seconds
from ml import names
from ml.config import ProjectSection, load_config


def load_settings(project: ProjectSection | None = None) -> StackSettings:
    project = project or load_config().project
    stack = pulumi.get_stack()
    config = pulumi.Config(project.resource_prefix)
    values = {key: config.get(key) for key in KEYS}
    return parse(stack, project, {k: v for k, v in values.items() if v is not None}, f"Pulumi.{stack}.yaml")


def monitor_image(region: str, image_version: str, provider: aws.Provider) -> pulumi.Output[str]:
    """The pinned scikit-learn image the model serves in; the monitor runs in it too (its libraries).

    The provider knows which AWS account publishes SageMaker's images in each region.
    """
    image = aws.sagemaker.get_prebuilt_ecr_image_output(
        repository_name="sagemaker-scikit-learn",
        image_tag=f"{image_version}-cpu-py3",
        region=region,
        opts=pulumi.InvokeOutputOptions(provider=provider),
    )
    return image.registry_path


# What the generated stack files hold until the administrator writes dev's real key ARN there.
PLACEHOLDER_KEY = "key/00000000-0000-0000-0000-000000000000"


def registry_readers(project: ProjectSection) -> list[str]:
    """Who in other accounts reads dev's registry (models, baselines): staging's and prod's execution
    roles (to serve and monitor) and deploy roles (to check and smoke-test). None in one account."""
    if not project.per_environment:
        return []
    prefix = project.resource_prefix
    return [
        f"arn:aws:iam::{project.account(env)}:role/{role(prefix, env)}"
        for env in ("staging", "prod")
        for role in (names.execution_role_name, names.deploy_role_name)
    ]


def build(settings: StackSettings) -> dict[str, Any]:
    """Declare every resource of one environment; return the stack outputs (the contract with ml/)."""
    prefix, env, project = settings.prefix, settings.stack, settings.project
    account = project.account(env)
    provider = aws.Provider(
        "aws",
        region=project.aws_region,
        # Refuse to touch any other account, whatever credentials are active.
        allowed_account_ids=[account],
        default_tags={"tags": {"project": prefix, "environment": env, "managed-by": "pulumi"}},
    )
    opts = pulumi.ResourceOptions(providers=[provider])

    storage = Storage(
        env,
        StorageArgs(
            prefix=prefix,
            env=env,
            account_id=account,
            noncurrent_version_days=settings.noncurrent_version_days,
            access_log_days=settings.access_log_days,
            # In the per-environment layout, dev's registry bucket and key serve staging and prod too.
            readers=registry_readers(project) if env == "dev" else [],
        ),
        opts,
    )

    # The stack that trains also owns the model registry; staging and prod deploy its versions.
    outputs: dict[str, Any] = {}
    registry_bucket_arn: pulumi.Input[str] | None = None
    registry_key_arn: pulumi.Input[str] | None = None
    if env == "dev":
        group_name = names.model_package_group_name(prefix, env)
        Registry(
            env,
            RegistryArgs(
                group_name,
                f"{project.name}: every trained version, with metrics",
                project.aws_region,
                account,
                [project.account(e) for e in ("staging", "prod")] if project.per_environment else [],
            ),
            opts,
        )
    else:
        group_name = names.model_package_group_name(prefix, "dev")
        registry_bucket_arn = f"arn:aws:s3:::{names.bucket_name(prefix, 'dev', 'artifacts', project.aws_account_id)}"
        if settings.registry_stack is not None:
            # One account: dev's outputs are read from the shared state.
            registry_key_arn = pulumi.StackReference(settings.registry_stack).require_output("kms_key_arn")
        else:
            # One account per environment: another account's state is out of reach; the stack file says.
            registry_key_arn = settings.registry_kms_key_arn
            if registry_key_arn and registry_key_arn.endswith(PLACEHOLDER_KEY):
                pulumi.log.warn(
                    f"registry_kms_key_arn in Pulumi.{env}.yaml is still the template's placeholder: {env} cannot "
                    f"read dev's models until it is dev's kms_key_arn (`pulumi stack output kms_key_arn --stack dev`)"
                )

    # MLflow beside the registry: the stack that trains logs its runs there (ml/tracking.py).
    tracking = None
    if env == "dev":
        tracking = Tracking(
            env,
            TrackingArgs(
                prefix=prefix,
                env=env,
                account_id=account,
                artifacts_bucket_name=storage.artifacts_bucket.bucket,
                artifacts_bucket_arn=storage.artifacts_bucket.arn,
                kms_key_arn=storage.key.arn,
            ),
            opts,
        )
        outputs["mlflow_app_arn"] = tracking.app.arn

    roles = Roles(
        env,
        RolesArgs(
            prefix=prefix,
            env=env,
            account_id=account,
            region=project.aws_region,
            github_repository=project.github_repository,
            kms_key_arn=storage.key.arn,
            data_bucket_arn=storage.data_bucket.arn,
            artifacts_bucket_arn=storage.artifacts_bucket.arn,
            model_package_group=group_name,
            registry_artifacts_bucket_arn=registry_bucket_arn,
            registry_kms_key_arn=registry_key_arn,
            registry_account_id=project.aws_account_id,
            reads_registry_state=settings.registry_stack is not None,
            mlflow_app_arn=tracking.app.arn if tracking is not None else None,
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
            account_id=account,
            endpoint_name=endpoint_name,
            real_time=settings.real_time,
            latency_alarm_ms=settings.latency_alarm_ms,
            error_alarm_count=settings.error_alarm_count,
            invocations_alarm_per_minute=settings.invocations_alarm_per_minute,
            budget_monthly_usd=settings.budget_monthly_usd,
            budget_alert_email=settings.budget_alert_email,
            alert_emails=settings.alert_emails,
            github_repository=project.github_repository,
            events_role_arn=roles.events_role.arn,
            github_token=pulumi.Output.secret(settings.github_dispatch_token)
            if settings.github_dispatch_token
            else None,
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
                log_retention_days=settings.log_retention_days,
            ),
            pulumi.ResourceOptions(providers=[provider], depends_on=[monitoring]),
        )
        outputs["endpoint_name"] = endpoint.endpoint.name
        # What the endpoint should run after `pulumi up`; verify compares it with what it runs.
        outputs["endpoint_config_name"] = endpoint.endpoint_config_name
        outputs["model_name"] = endpoint.model_name
        outputs["model_version"] = str(settings.model_version)
        if settings.monitored:
            monitor = load_config().monitor
            job = MonitoringJob(
                env,
                MonitoringJobArgs(
                    prefix=prefix,
                    env=env,
                    region=project.aws_region,
                    account_id=account,
                    github_repository=project.github_repository,
                    endpoint_name=endpoint.endpoint.name,
                    execution_role_arn=roles.execution_role.arn,
                    scheduler_role_arn=roles.scheduler_role.arn,
                    kms_key_arn=storage.key.arn,
                    artifacts_bucket=storage.artifacts_bucket.bucket,
                    image_uri=monitor_image(
                        project.aws_region, load_config().framework.sagemaker_image_version, provider
                    ),
                    model_version=settings.model_version,
                    baseline_statistics=settings.monitoring_baseline_statistics or "",
                    baseline_constraints=settings.monitoring_baseline_constraints or "",
                    evaluation=settings.monitoring_evaluation or "",
                    model_created_at=settings.monitoring_model_created_at or "",
                    job_arguments=monitor.job_arguments(),
                    schedule=settings.monitoring_schedule,
                    schedule_seconds=schedule_seconds(settings.monitoring_schedule),
                    alert_topic_arn=monitoring.alert_topic.arn,
                    dead_letter_queue_arn=monitoring.dead_letter_queue.arn,
                ),
                pulumi.ResourceOptions(providers=[provider], depends_on=[endpoint]),
            )
            outputs["monitoring_pipeline"] = job.pipeline.pipeline_name
        if settings.batch_scheduled and settings.batch_schedule and settings.batch_input:
            ml_config = load_config()
            nightly = BatchSchedule(
                env,
                BatchScheduleArgs(
                    prefix=prefix,
                    env=env,
                    model_name=endpoint.model_name,
                    model_version=settings.model_version,
                    input_uri=settings.batch_input,
                    execution_role_arn=roles.execution_role.arn,
                    scheduler_role_arn=roles.scheduler_role.arn,
                    kms_key_arn=storage.key.arn,
                    artifacts_bucket=storage.artifacts_bucket.bucket,
                    instance_type=ml_config.batch.instance_type,
                    max_payload_mb=ml_config.batch.max_payload_mb,
                    max_runtime_seconds=ml_config.train.max_runtime_seconds,
                    schedule=settings.batch_schedule,
                    alert_topic_arn=monitoring.alert_topic.arn,
                    dead_letter_queue_arn=monitoring.dead_letter_queue.arn,
                    image_uri=monitor_image(project.aws_region, ml_config.framework.sagemaker_image_version, provider),
                    region=project.aws_region,
                    baseline_statistics=settings.monitoring_baseline_statistics or "",
                    baseline_constraints=settings.monitoring_baseline_constraints or "",
                    model_created_at=settings.monitoring_model_created_at or "",
                    job_arguments=ml_config.monitor.job_arguments(),
                ),
                pulumi.ResourceOptions(providers=[provider], depends_on=[endpoint]),
            )
            outputs["batch_pipeline"] = nightly.pipeline.pipeline_name

    outputs.update(
        {
            "region": project.aws_region,
            "data_bucket": storage.data_bucket.bucket,
            "artifacts_bucket": storage.artifacts_bucket.bucket,
            "kms_key_arn": storage.key.arn,
            "execution_role_arn": roles.execution_role.arn,
            "deploy_role_arn": roles.deploy_role.arn,
            "preview_role_arn": roles.preview_role.arn,
            "model_package_group": group_name,
        }
    )
    return outputs
