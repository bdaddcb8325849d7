"""A SageMaker endpoint, reconciled by Pulumi and invoked through sagemaker-runtime.

Pulumi owns the endpoint's lifecycle: deploy() runs `pulumi up` for the environment's stack,
whose file (the desired state) the promote step has just edited, then checks that the
endpoint serves the promoted version. In CI, deploy.yml runs the same `pulumi up` and then
`make verify-deployment`, which must not apply again: when the stack outputs say Pulumi applied
the version, deploy() only checks what the endpoint really runs. When SageMaker rolled a
blue/green update back, pulumi-aws reports success (terraform-provider-aws #48997); the endpoint
then runs another config than the stack's `endpoint_config_name`, and that is an error naming
the alarm that fired and the version still serving.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError

from ml.backends.base import EndpointStatus, ModelVersion
from ml.errors import EndpointError


class SageMakerEndpoint:
    def __init__(
        self,
        sagemaker_client: Any,
        runtime_client: Any,
        name: str,
        stack: str,
        infra_dir: Path,
        poll_seconds: float = 30.0,
        wait_seconds: float = 3600.0,
        s3_client: Any = None,
        capture_uri: str | None = None,
        cloudwatch_client: Any = None,
        autoscaling_client: Any = None,
        applied: tuple[int, str] | None = None,
        rollback_alarms: tuple[str, ...] = (),
    ) -> None:
        self._sm = sagemaker_client
        self._runtime = runtime_client
        self.name = name
        self._stack = stack
        self._infra = infra_dir
        self._poll = poll_seconds
        self._wait = wait_seconds
        self._s3 = s3_client
        self._capture_uri = capture_uri
        self._cloudwatch = cloudwatch_client
        self._autoscaling = autoscaling_client
        # (version, endpoint config) that the last `pulumi up` applied, from the stack outputs.
        self._applied = applied
        self._rollback_alarms = rollback_alarms

    def prepare(self) -> None:
        """Nothing to warm: Pulumi and SageMaker start the new variant."""

    def status(self) -> EndpointStatus | None:
        found = self._live()
        if found is None:
            return None
        return self._status_of(*found)

    def _status_of(self, endpoint: dict[str, Any], version: int) -> EndpointStatus:
        region = self._sm.meta.region_name
        url = f"https://runtime.sagemaker.{region}.amazonaws.com/endpoints/{self.name}/invocations"
        return EndpointStatus(self.name, version, url, endpoint["EndpointStatus"] == "InService")

    def _live(self) -> tuple[dict[str, Any], int] | None:
        """The endpoint's description and the model version its current config serves."""
        try:
            endpoint = self._sm.describe_endpoint(EndpointName=self.name)
        except ClientError as error:
            if "Could not find endpoint" in str(error):
                return None
            raise
        name = endpoint["EndpointConfigName"]
        try:
            config = self._sm.describe_endpoint_config(EndpointConfigName=name)
            model = self._sm.describe_model(ModelName=config["ProductionVariants"][0]["ModelName"])
        except ClientError as error:
            if "Could not find" not in str(error):
                raise
            raise EndpointError(
                f"endpoint {self.name} runs endpoint config {name}, whose config or model no longer exists: "
                "Pulumi deleted it after SageMaker rolled an update back (terraform-provider-aws #48997). The "
                f"endpoint still serves; run `pulumi up --stack {self._stack}` again to move it to the desired "
                "config (this template keeps configs and models when Pulumi deletes them)"
            ) from None
        package = model.get("PrimaryContainer", {}).get("ModelPackageName", "")
        version = int(package.rsplit("/", 1)[1]) if "/" in package else 0
        return endpoint, version

    def deploy(self, version: ModelVersion) -> EndpointStatus:
        if self._applied is not None and self._applied[0] == version.version:
            # `pulumi up` already applied this version (the stack outputs say so): check, never re-apply.
            return self._wait_for(version.version)
        current = self.status()
        if current and current.healthy and current.version == version.version:
            return current
        pulumi = shutil.which("pulumi")
        if pulumi is None:
            raise EndpointError(
                f"endpoint {self.name} must be reconciled to v{version.version} by Pulumi, and the Pulumi CLI is not "
                f"on PATH. Install it, or merge the stack-file change so deploy.yml runs `pulumi up --stack {self._stack}`."
            )
        result = subprocess.run(
            [pulumi, "up", "--stack", self._stack, "--yes", "--skip-preview", "--non-interactive"],
            cwd=self._infra,
            capture_output=True,
            text=True,
        )
        if result.returncode != 0:
            tail = "\n".join((result.stdout + result.stderr).splitlines()[-20:])
            raise EndpointError(
                f"`pulumi up --stack {self._stack}` failed; SageMaker keeps serving the previous version.\n{tail}"
            )
        return self._wait_for(version.version)

    def _wait_for(self, version: int) -> EndpointStatus:
        deadline = time.monotonic() + self._wait
        while True:
            found = self._live()
            current = self._status_of(*found) if found else None
            if found and current and current.healthy:
                endpoint, serving = found
                desired_config = self._applied[1] if self._applied and self._applied[0] == version else None
                if desired_config and endpoint["EndpointConfigName"] != desired_config:
                    raise EndpointError(self._rolled_back(version, serving, endpoint["EndpointConfigName"]))
                if serving == version:
                    return current
            if current and current.healthy and time.monotonic() > deadline:
                raise EndpointError(self._rolled_back(version, current.version, ""))
            if time.monotonic() > deadline:
                raise EndpointError(f"endpoint {self.name} did not become InService with v{version}")
            time.sleep(self._poll)

    def _rolled_back(self, version: int, serving: int, config: str) -> str:
        fired = self._alarms_in_alarm()
        why = (
            f"rollback alarm(s) in ALARM: {', '.join(fired)}"
            if fired
            else f"one of the rollback alarms ({', '.join(self._rollback_alarms) or 'none configured'}) fired; see its history"
        )
        on = f" on endpoint config {config}" if config else ""
        return (
            f"endpoint {self.name} still serves v{serving}{on}, not v{version}: SageMaker rolled the blue/green update "
            f"back ({why}). The stack file says v{version}: fix the model, or revert the promotion commit"
        )

    def _alarms_in_alarm(self) -> list[str]:
        if self._cloudwatch is None or not self._rollback_alarms:
            return []
        try:
            described = self._cloudwatch.describe_alarms(AlarmNames=list(self._rollback_alarms))
        except ClientError:
            return []
        return [a["AlarmName"] for a in described.get("MetricAlarms", []) if a.get("StateValue") == "ALARM"]

    def check_in_place(self, real_time: bool, instance_type: str | None) -> None:
        """Refuse the stack-file changes SageMaker cannot apply to the running endpoint, before `pulumi up`."""
        try:
            endpoint = self._sm.describe_endpoint(EndpointName=self.name)
        except ClientError as error:
            if "Could not find endpoint" in str(error):
                return  # nothing runs yet: anything can be created
            raise
        config = self._sm.describe_endpoint_config(EndpointConfigName=endpoint["EndpointConfigName"])
        variant = config["ProductionVariants"][0]
        if "ServerlessConfig" not in variant and not real_time:
            raise EndpointError(
                f"endpoint {self.name} runs on instances and the stack file asks for serverless: SageMaker cannot "
                "convert an instance-based endpoint to serverless. Empty model_version (the endpoint is removed), "
                "deploy, then set endpoint_type: serverless and the version again"
            )
        if real_time and instance_type and variant.get("InstanceType") not in (None, instance_type):
            resource = f"endpoint/{self.name}/variant/{variant['VariantName']}"
            targets = self._autoscaling.describe_scalable_targets(ServiceNamespace="sagemaker", ResourceIds=[resource])
            if targets.get("ScalableTargets"):
                raise EndpointError(
                    f"endpoint {self.name} is autoscaled on {variant['InstanceType']}; SageMaker cannot change the "
                    f"instance type of an autoscaled variant to {instance_type}. First set autoscaling_max_instances "
                    "equal to instance_count (no autoscaling) and deploy; then change instance_type and restore it"
                )

    def prune(self) -> list[str]:
        """Delete the endpoint configs and models of this endpoint that it no longer uses.

        Pulumi keeps them on delete (see infra/components/endpoint.py); this removes what a rollback
        can no longer need: everything named for this endpoint except what it runs and what the
        stack last applied.
        """
        keep_configs = set()
        found = self._live()
        if found is not None:
            keep_configs.add(found[0]["EndpointConfigName"])
        if self._applied is not None:
            keep_configs.add(self._applied[1])
        keep_models = set()
        for name in keep_configs:
            try:
                config = self._sm.describe_endpoint_config(EndpointConfigName=name)
            except ClientError:
                continue
            keep_models |= {v["ModelName"] for v in config["ProductionVariants"]}
        removed = []
        # Pulumi auto-names them "<endpoint>-config-<7 hex>" and "<endpoint>-model-<7 hex>"
        # (infra/components/endpoint.py); NameContains is only a substring match, so check the prefix too.
        configs, models = f"{self.name}-config-", f"{self.name}-model-"
        paginator = self._sm.get_paginator("list_endpoint_configs")
        for page in paginator.paginate(NameContains=configs):
            for item in page["EndpointConfigs"]:
                if item["EndpointConfigName"].startswith(configs) and item["EndpointConfigName"] not in keep_configs:
                    self._sm.delete_endpoint_config(EndpointConfigName=item["EndpointConfigName"])
                    removed.append(f"endpoint config {item['EndpointConfigName']}")
        for page in self._sm.get_paginator("list_models").paginate(NameContains=models):
            for item in page["Models"]:
                if item["ModelName"].startswith(models) and item["ModelName"] not in keep_models:
                    self._sm.delete_model(ModelName=item["ModelName"])
                    removed.append(f"model {item['ModelName']}")
        return removed

    def invoke(self, body: bytes, content_type: str, accept: str, inference_id: str | None = None) -> bytes:
        try:
            response = self._runtime.invoke_endpoint(
                EndpointName=self.name,
                Body=body,
                ContentType=content_type,
                Accept=accept,
                **({"InferenceId": inference_id} if inference_id else {}),
            )
        except ClientError as error:
            details = error.response
            code = details.get("OriginalStatusCode") or details.get("ResponseMetadata", {}).get("HTTPStatusCode")
            message = details.get("OriginalMessage") or details.get("Error", {}).get("Message", "")
            # The container answers every handler error with a bare 500; the reason is in its log.
            stream = details.get("LogStreamArn")
            where = f"; the container's log has the reason: {stream}" if stream else ""
            raise EndpointError(f"endpoint {self.name} answered HTTP {code}: {message}{where}") from None
        return bytes(response["Body"].read())

    def capture_location(self) -> str:
        """What the endpoint config's DataCaptureConfig writes to (real-time endpoints only)."""
        if self._capture_uri is None:
            raise EndpointError(
                f"endpoint {self.name} has no data-capture location; serverless endpoints cannot capture"
            )
        return f"{self._capture_uri.rstrip('/')}/AllTraffic/"

    def ground_truth_location(self) -> str:
        if self._capture_uri is None:
            raise EndpointError(f"endpoint {self.name} has no data-capture location, so no ground truth either")
        bucket = self._capture_uri[5:].split("/", 1)[0]
        return f"s3://{bucket}/ground-truth/{self.name}/"

    def record_ground_truth(self, path: Path, hour: str) -> str:
        if self._s3 is None:
            raise EndpointError(f"endpoint {self.name} was set up without an S3 client")
        bucket, _, prefix = self.ground_truth_location()[5:].partition("/")
        key = f"{prefix}{hour}/{path.name}"
        self._s3.upload_file(str(path), bucket, key, ExtraArgs={"ServerSideEncryption": "aws:kms"})
        return f"s3://{bucket}/{key}"

    def stop(self) -> bool:
        # Pulumi owns the endpoint; removing it is `pulumi destroy` or an empty model_version.
        return False
