"""Monitoring: endpoint alarms (also the blue/green rollback triggers), a dashboard, a budget."""

from __future__ import annotations

import json
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from infra.components.endpoint import VARIANT
from ml import names


@dataclass
class MonitoringArgs:
    prefix: str
    env: str
    region: str
    account_id: str
    endpoint_name: str | None
    real_time: bool
    latency_alarm_ms: int
    error_alarm_count: int
    invocations_alarm_per_minute: int
    budget_monthly_usd: float
    budget_alert_email: str


class Monitoring(pulumi.ComponentResource):
    rollback_alarm_names: list[str]

    def __init__(self, name: str, args: MonitoringArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("mlops:monitoring:Monitoring", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.rollback_alarm_names = []
        alarm_names: list[str] = []

        if args.endpoint_name is not None:
            dimensions = {"EndpointName": args.endpoint_name, "VariantName": VARIANT}
            # (signal, metric, namespace, statistic, threshold, rolls back a blue/green deployment)
            alarms = [
                ("5xx", "Invocation5XXErrors", "AWS/SageMaker", "Sum", args.error_alarm_count, True),
                # ModelLatency is reported in microseconds.
                ("latency", "ModelLatency", "AWS/SageMaker", "Average", args.latency_alarm_ms * 1000, True),
                ("invocations", "Invocations", "AWS/SageMaker", "Sum", args.invocations_alarm_per_minute, False),
            ]
            for signal, metric, namespace, statistic, threshold, rolls_back in alarms:
                alarm = names.alarm_name(args.prefix, args.env, signal)
                aws.cloudwatch.MetricAlarm(
                    f"{name}-{signal}",
                    name=alarm,
                    alarm_description=f"{metric} {statistic} above {threshold} on {args.endpoint_name}"
                    + (" (rolls back blue/green deployments)" if rolls_back else ""),
                    namespace=namespace,
                    metric_name=metric,
                    dimensions=dimensions,
                    statistic=statistic,
                    period=60,
                    evaluation_periods=3,
                    datapoints_to_alarm=2,
                    threshold=threshold,
                    comparison_operator="GreaterThanThreshold",
                    treat_missing_data="notBreaching",
                    opts=child,
                )
                alarm_names.append(alarm)
                if rolls_back:
                    self.rollback_alarm_names.append(alarm)
            aws.cloudwatch.Dashboard(
                f"{name}-dashboard",
                dashboard_name=f"{args.prefix}-{args.env}",
                dashboard_body=json.dumps(_dashboard(args, alarm_names)),
                opts=child,
            )

        aws.budgets.Budget(
            f"{name}-budget",
            name=f"{args.prefix}-{args.env}",
            budget_type="COST",
            limit_amount=f"{args.budget_monthly_usd:.2f}",
            limit_unit="USD",
            time_unit="MONTHLY",
            # Counts only resources carrying this environment's default tags.
            cost_filters=[{"name": "TagKeyValue", "values": [f"user:environment${args.env}"]}],
            notifications=[
                {
                    "comparison_operator": "GREATER_THAN",
                    "notification_type": kind,
                    "threshold": threshold,
                    "threshold_type": "PERCENTAGE",
                    "subscriber_email_addresses": [args.budget_alert_email],
                }
                for kind, threshold in (("ACTUAL", 80), ("FORECASTED", 100))
            ],
            opts=child,
        )
        self.register_outputs({"alarm_names": alarm_names})


def _dashboard(args: MonitoringArgs, alarm_names: list[str]) -> dict[str, object]:
    def metric_widget(title: str, metrics: list[str], stat: str, x: int, y: int) -> dict[str, object]:
        return {
            "type": "metric",
            "x": x,
            "y": y,
            "width": 12,
            "height": 6,
            "properties": {
                "title": title,
                "region": args.region,
                "stat": stat,
                "period": 60,
                "metrics": [
                    ["AWS/SageMaker", metric, "EndpointName", args.endpoint_name, "VariantName", VARIANT]
                    for metric in metrics
                ],
            },
        }

    widgets = [
        metric_widget("Invocations", ["Invocations"], "Sum", 0, 0),
        metric_widget("Errors", ["Invocation4XXErrors", "Invocation5XXErrors"], "Sum", 12, 0),
        metric_widget("Latency (microseconds)", ["ModelLatency", "OverheadLatency"], "p90", 0, 6),
        {
            "type": "alarm",
            "x": 12,
            "y": 6,
            "width": 12,
            "height": 6,
            "properties": {
                "title": "Alarms",
                "alarms": [f"arn:aws:cloudwatch:{args.region}:{args.account_id}:alarm:{name}" for name in alarm_names],
            },
        },
    ]
    return {"widgets": widgets}
