"""The SageMaker Model Registry: one model package per registered version.

Each package carries the inference container (the pinned scikit-learn image and model.tar.gz),
ModelMetrics pointing at the evaluation JSON, the lineage and metrics in
CustomerMetadataProperties, and an approval status that follows the gate.
The champion is the latest Approved package.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any

from ml.backends.base import ArtifactStore, ModelPackage, ModelVersion

METRIC_PREFIX = "metric."
FINGERPRINT = "fingerprint"

# The scikit-learn container serves code/inference.py from inside model.tar.gz. At start-up it
# pip-installs that code/ directory; the image's pip (25.3 and later) would build it in an
# isolated environment and fetch setuptools from PyPI, which an endpoint with network isolation
# cannot reach. pip spells "no build isolation" PIP_NO_BUILD_ISOLATION=false ("1" keeps it on);
# the image's own setuptools and wheel then build it (tests/test_container_parity.py, template).
CONTAINER_ENVIRONMENT = {
    "SAGEMAKER_PROGRAM": "inference.py",
    "SAGEMAKER_SUBMIT_DIRECTORY": "/opt/ml/model/code",
    "PIP_NO_BUILD_ISOLATION": "false",
}


class SageMakerModelRegistry:
    def __init__(
        self,
        sagemaker_client: Any,
        group: str,
        artifacts: ArtifactStore,
        image_uri: Callable[[], str],
        region: str,
        account_id: str,
    ) -> None:
        self._sm = sagemaker_client
        self.group = group
        self._artifacts = artifacts
        self._image_uri = image_uri
        self._arn = f"arn:aws:sagemaker:{region}:{account_id}:model-package/{group}"

    def register(self, package: ModelPackage, card: str = "") -> ModelVersion:
        for uri in (package.model_uri, package.evaluation_uri):
            if not self._artifacts.exists(uri):
                raise FileNotFoundError(
                    f"refusing to register: artifact {uri} does not exist, so the package could never be deployed"
                )
        metadata = {
            **package.lineage,
            FINGERPRINT: package.fingerprint,
            **{f"{METRIC_PREFIX}{name}": f"{value:.6f}" for name, value in package.metrics.items()},
        }
        baseline = {}
        if "baseline_statistics" in package.lineage and "baseline_constraints" in package.lineage:
            baseline["DriftCheckBaselines"] = {
                "ModelDataQuality": {
                    "Statistics": {"ContentType": "application/json", "S3Uri": package.lineage["baseline_statistics"]},
                    "Constraints": {
                        "ContentType": "application/json",
                        "S3Uri": package.lineage["baseline_constraints"],
                    },
                }
            }
        response = self._sm.create_model_package(
            ModelPackageGroupName=self.group,
            ModelPackageDescription=f"fingerprint {package.fingerprint[:16]}, git {package.lineage.get('git_sha', '')[:12]}",
            InferenceSpecification={
                "Containers": [
                    {
                        "Image": self._image_uri(),
                        "ModelDataUrl": package.model_uri,
                        "Environment": CONTAINER_ENVIRONMENT,
                    }
                ],
                "SupportedContentTypes": ["text/csv", "application/json"],
                "SupportedResponseMIMETypes": ["application/json", "text/csv"],
            },
            ModelApprovalStatus=package.approval_status,
            ModelMetrics={
                "ModelQuality": {"Statistics": {"ContentType": "application/json", "S3Uri": package.evaluation_uri}}
            },
            CustomerMetadataProperties=metadata,
            # The card lives inside the package (a model package model card): created with it or
            # not at all. A rejected version's card stays a draft; an approved one awaits review.
            **(
                {
                    "ModelCard": {
                        "ModelCardContent": card,
                        "ModelCardStatus": "PendingReview" if package.approval_status == "Approved" else "Draft",
                    }
                }
                if card
                else {}
            ),
            **baseline,
        )
        return self.get(int(response["ModelPackageArn"].rsplit("/", 1)[1]))

    def get(self, version: int) -> ModelVersion:
        try:
            description = self._sm.describe_model_package(ModelPackageName=f"{self._arn}/{version}")
        except self._sm.exceptions.ClientError as error:
            if "does not exist" in str(error) or "not found" in str(error).lower():
                raise LookupError(f"model version {version} is not in the model package group {self.group}") from None
            raise
        return _to_version(description)

    def _summaries(self, **filters: str) -> Iterator[dict[str, Any]]:
        paginator = self._sm.get_paginator("list_model_packages")
        for page in paginator.paginate(
            ModelPackageGroupName=self.group, SortBy="CreationTime", SortOrder="Descending", **filters
        ):
            yield from page["ModelPackageSummaryList"]

    def champion(self) -> ModelVersion | None:
        for summary in self._summaries(ModelApprovalStatus="Approved"):
            return self.get(int(summary["ModelPackageVersion"]))
        return None

    def find_by_fingerprint(self, fingerprint: str) -> ModelVersion | None:
        # Newest first: a retrained, identical model is usually among the latest versions.
        for summary in self._summaries():
            version = self.get(int(summary["ModelPackageVersion"]))
            if version.package.fingerprint == fingerprint:
                return version
        return None

    def versions(self) -> list[ModelVersion]:
        return sorted((self.get(int(s["ModelPackageVersion"])) for s in self._summaries()), key=lambda v: v.version)


def _to_version(description: dict[str, Any]) -> ModelVersion:
    properties: dict[str, str] = dict(description.get("CustomerMetadataProperties") or {})
    metrics = {k.removeprefix(METRIC_PREFIX): float(v) for k, v in properties.items() if k.startswith(METRIC_PREFIX)}
    lineage = {k: v for k, v in properties.items() if not k.startswith(METRIC_PREFIX) and k != FINGERPRINT}
    statistics = description.get("ModelMetrics", {}).get("ModelQuality", {}).get("Statistics", {})
    created = description.get("CreationTime")
    created_at = created.isoformat(timespec="seconds") if isinstance(created, datetime) else str(created)
    return ModelVersion(
        version=int(description["ModelPackageVersion"]),
        group=str(description["ModelPackageGroupName"]),
        created_at=created_at,
        package=ModelPackage(
            model_uri=description["InferenceSpecification"]["Containers"][0]["ModelDataUrl"],
            evaluation_uri=statistics.get("S3Uri", ""),
            fingerprint=properties.get(FINGERPRINT, ""),
            approval_status=description["ModelApprovalStatus"],
            metrics=metrics,
            lineage=lineage,
        ),
    )
