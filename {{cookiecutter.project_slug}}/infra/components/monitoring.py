"""Monitoring: the alert topic, endpoint alarms (also the blue/green rollback triggers), a dashboard,
a budget, the dead-letter queue for events that could not be delivered, and the retrain dispatch.

Every alarm notifies the environment's alert topic (SNS, encrypted with a key whose policy lets
CloudWatch and AWS Budgets publish); the stack file's alert_emails (and budget_alert_email)
subscribe to it. The retrain dispatch (an EventBridge rule on the monitoring job's alarms, an API
destination to GitHub) is declared here, with the administrator's first `pulumi up`, not with the
monitoring job a promotion creates: so the deploy role never handles the GitHub token.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from infra.components.endpoint import VARIANT
from infra.components.monitoring_job import retraining_alarm_names
from infra.components.roles import policy
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
    alert_emails: list[str]
    github_repository: str
    events_role_arn: pulumi.Input[str]
    github_token: pulumi.Input[str] | None  # no token, no retrain dispatch (settings require one to monitor)


# The services that publish alerts to the topic, and that send undeliverable events to the queue
# under the queue's policy. (EventBridge Scheduler sends its dead letters as the schedule's role.)
TOPIC_PUBLISHERS = ["cloudwatch.amazonaws.com", "budgets.amazonaws.com"]
QUEUE_SENDERS = ["events.amazonaws.com"]


class Monitoring(pulumi.ComponentResource):
    rollback_alarm_names: list[str]
    alert_topic: aws.sns.Topic
    dead_letter_queue: aws.sqs.Queue

    def __init__(self, name: str, args: MonitoringArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("mlops:monitoring:Monitoring", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.rollback_alarm_names = []
        alarm_names: list[str] = []
        scoped = f"{args.prefix}-{args.env}"
        own_account = {"StringEquals": {"aws:SourceAccount": args.account_id}}

        key = aws.kms.Key(
            f"{name}-alerts-key",
            description=f"{scoped}: the alert topic and the dead-letter queue",
            enable_key_rotation=True,
            deletion_window_in_days=30,
            policy=json.dumps(
                {
                    "Version": "2012-10-17",
                    "Statement": [
                        {
                            "Sid": "AccountAdministersTheKey",
                            "Effect": "Allow",
                            "Principal": {"AWS": f"arn:aws:iam::{args.account_id}:root"},
                            "Action": "kms:*",
                            "Resource": "*",
                        },
                        {
                            # An encrypted topic or queue needs its publishers to use the key; the AWS
                            # managed key for SNS cannot be granted to them, hence this key.
                            "Sid": "ServicesPublishAlerts",
                            "Effect": "Allow",
                            "Principal": {"Service": TOPIC_PUBLISHERS + QUEUE_SENDERS},
                            "Action": ["kms:Decrypt", "kms:GenerateDataKey*"],
                            "Resource": "*",
                            "Condition": own_account,
                        },
                    ],
                }
            ),
            # Like every key here: deleting it would make what it encrypted unreadable.
            opts=pulumi.ResourceOptions(parent=self, protect=True, retain_on_delete=True),
        )
        aws.kms.Alias(
            f"{name}-alerts-key-alias",
            name=names.alerts_key_alias(args.prefix, args.env),
            target_key_id=key.key_id,
            opts=child,
        )
        self.alert_topic = aws.sns.Topic(
            f"{name}-alerts", name=f"{scoped}-alerts", kms_master_key_id=key.arn, opts=child
        )
        aws.sns.TopicPolicy(
            f"{name}-alerts-policy",
            arn=self.alert_topic.arn,
            policy=policy(
                [
                    {
                        "Sid": "ServicesPublishAlerts",
                        "Effect": "Allow",
                        "Principal": {"Service": TOPIC_PUBLISHERS},
                        "Action": "sns:Publish",
                        "Resource": self.alert_topic.arn,
                        "Condition": own_account,
                    }
                ]
            ),
            opts=child,
        )
        for number, address in enumerate(dict.fromkeys([args.budget_alert_email, *args.alert_emails])):
            aws.sns.TopicSubscription(
                f"{name}-alerts-email-{number}",
                topic=self.alert_topic.arn,
                protocol="email",
                endpoint=address,
                opts=child,
            )
        self.dead_letter_queue = aws.sqs.Queue(
            f"{name}-dead-letters",
            name=f"{scoped}-dead-letters",
            kms_master_key_id=key.arn,
            message_retention_seconds=14 * 24 * 3600,
            opts=child,
        )
        aws.sqs.QueuePolicy(
            f"{name}-dead-letters-policy",
            queue_url=self.dead_letter_queue.url,
            policy=policy(
                [
                    {
                        "Sid": "UndeliveredEvents",
                        "Effect": "Allow",
                        "Principal": {"Service": QUEUE_SENDERS},
                        "Action": "sqs:SendMessage",
                        "Resource": self.dead_letter_queue.arn,
                        "Condition": own_account,
                    }
                ]
            ),
            opts=child,
        )
        dead_letters = names.alarm_name(args.prefix, args.env, "dead-letters")
        aws.cloudwatch.MetricAlarm(
            f"{name}-dead-letters",
            name=dead_letters,
            alarm_description="events that could not be delivered (a schedule or a retrain dispatch) wait in the queue",
            namespace="AWS/SQS",
            metric_name="ApproximateNumberOfMessagesVisible",
            dimensions={"QueueName": self.dead_letter_queue.name},
            statistic="Maximum",
            period=300,
            evaluation_periods=1,
            threshold=0,
            comparison_operator="GreaterThanThreshold",
            treat_missing_data="notBreaching",
            alarm_actions=[self.alert_topic.arn],
            opts=child,
        )
        alarm_names.append(dead_letters)
        if args.github_token is not None:
            alarm_names.append(self._retrain_dispatch(name, args, child))

        if args.endpoint_name is not None:
            dimensions = {"EndpointName": args.endpoint_name, "VariantName": VARIANT}
            # (signal, metric, namespace, statistic, threshold); names.ROLLBACK_SIGNALS roll an update back.
            alarms = [
                ("5xx", "Invocation5XXErrors", "AWS/SageMaker", "Sum", args.error_alarm_count),
                # ModelLatency is reported in microseconds.
                ("latency", "ModelLatency", "AWS/SageMaker", "Average", args.latency_alarm_ms * 1000),
                ("invocations", "Invocations", "AWS/SageMaker", "Sum", args.invocations_alarm_per_minute),
            ]
            for signal, metric, namespace, statistic, threshold in alarms:
                rolls_back = signal in names.ROLLBACK_SIGNALS
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
                    alarm_actions=[self.alert_topic.arn],
                    ok_actions=[self.alert_topic.arn],
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
                    "subscriber_sns_topic_arns": [self.alert_topic.arn],
                }
                for kind, threshold in (("ACTUAL", 80), ("FORECASTED", 100))
            ],
            opts=child,
        )
        self.register_outputs({"alarm_names": alarm_names, "alert_topic_arn": self.alert_topic.arn})

    def _retrain_dispatch(self, name: str, args: MonitoringArgs, child: pulumi.ResourceOptions) -> str:
        """A drift, quality or age alarm sends `repository_dispatch` `retrain` to GitHub (retrain.yml)."""
        scoped = f"{args.prefix}-{args.env}"
        alarms = retraining_alarm_names(args.prefix, args.env)
        connection = aws.cloudwatch.EventConnection(
            f"{name}-github",
            name=f"{scoped}-github",
            description=f"GitHub API for {args.github_repository}; the token is kept in Secrets Manager",
            authorization_type="API_KEY",
            auth_parameters={
                "api_key": {"key": "Authorization", "value": pulumi.Output.concat("Bearer ", args.github_token or "")}
            },
            opts=child,
        )
        destination = aws.cloudwatch.EventApiDestination(
            f"{name}-dispatch",
            name=f"{scoped}-retrain-dispatch",
            connection_arn=connection.arn,
            http_method="POST",
            invocation_endpoint=f"https://api.github.com/repos/{args.github_repository}/dispatches",
            invocation_rate_limit_per_second=1,
            opts=child,
        )
        rule = aws.cloudwatch.EventRule(
            f"{name}-on-monitor-alarm",
            name=f"{scoped}-monitor-to-retrain",
            description="A drift, quality or model-age alarm starts retraining (retrain.yml) through repository_dispatch",
            event_pattern=json.dumps(
                {
                    "source": ["aws.cloudwatch"],
                    "detail-type": ["CloudWatch Alarm State Change"],
                    "detail": {"alarmName": alarms, "state": {"value": ["ALARM"]}},
                }
            ),
            opts=child,
        )
        aws.cloudwatch.EventTarget(
            f"{name}-dispatch-target",
            rule=rule.name,
            arn=destination.arn,
            role_arn=args.events_role_arn,
            http_target={"header_parameters": {"Accept": "application/vnd.github+json"}},
            input=json.dumps(
                {"event_type": "retrain", "client_payload": {"environment": args.env, "reason": "monitoring"}}
            ),
            dead_letter_config={"arn": self.dead_letter_queue.arn},
            retry_policy={"maximum_retry_attempts": 10, "maximum_event_age_in_seconds": 3600},
            opts=child,
        )
        # A dispatch that keeps failing (an expired token) is said, not lost.
        failed = names.alarm_name(args.prefix, args.env, "retrain-dispatch-failed")
        aws.cloudwatch.MetricAlarm(
            f"{name}-dispatch-failures",
            name=failed,
            alarm_description="EventBridge could not send repository_dispatch retrain to GitHub (check the token)",
            namespace="AWS/Events",
            metric_name="FailedInvocations",
            dimensions={"RuleName": rule.name},
            statistic="Sum",
            period=300,
            evaluation_periods=1,
            threshold=0,
            comparison_operator="GreaterThanThreshold",
            treat_missing_data="notBreaching",
            alarm_actions=[self.alert_topic.arn],
            opts=child,
        )
        return failed


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
