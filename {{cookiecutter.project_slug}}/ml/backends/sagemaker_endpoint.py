"""A SageMaker endpoint, reconciled by Pulumi and invoked through sagemaker-runtime.

Pulumi owns the endpoint's lifecycle: deploy() runs `pulumi up` for the environment's stack,
whose file (the desired state) the promote step has just edited, then checks that the
endpoint serves the promoted version. In CI, deploy.yml runs the same `pulumi up`.
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

    def prepare(self) -> None:
        """Nothing to warm: Pulumi and SageMaker start the new variant."""

    def status(self) -> EndpointStatus | None:
        try:
            endpoint = self._sm.describe_endpoint(EndpointName=self.name)
        except ClientError as error:
            if "Could not find endpoint" in str(error):
                return None
            raise
        config = self._sm.describe_endpoint_config(EndpointConfigName=endpoint["EndpointConfigName"])
        model = self._sm.describe_model(ModelName=config["ProductionVariants"][0]["ModelName"])
        package = model.get("PrimaryContainer", {}).get("ModelPackageName", "")
        version = int(package.rsplit("/", 1)[1]) if "/" in package else 0
        region = self._sm.meta.region_name
        url = f"https://runtime.sagemaker.{region}.amazonaws.com/endpoints/{self.name}/invocations"
        return EndpointStatus(self.name, version, url, endpoint["EndpointStatus"] == "InService")

    def deploy(self, version: ModelVersion) -> EndpointStatus:
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
            current = self.status()
            if current and current.healthy and current.version == version:
                return current
            if current and current.healthy and time.monotonic() > deadline:
                raise EndpointError(
                    f"endpoint {self.name} still serves v{current.version}, not v{version}: the update was rolled "
                    "back (see the endpoint's events and the 5xx/latency alarms)"
                )
            if time.monotonic() > deadline:
                raise EndpointError(f"endpoint {self.name} did not become InService with v{version}")
            time.sleep(self._poll)

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
