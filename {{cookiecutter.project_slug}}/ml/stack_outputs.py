"""The contract between infra/ and ml/: a stack's outputs, as `pulumi stack output --json` prints them.

`make stack-outputs MLOPS_ENV=dev` writes .mlops/stack-outputs/dev.json; MLOPS_STACK_OUTPUTS
points at another file (CI writes it the same way). ml/ never hard-codes a resource name.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from pydantic import BaseModel, ConfigDict, ValidationError

from ml.config import Config
from ml.errors import ConfigError


class StackOutputs(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    region: str
    data_bucket: str
    artifacts_bucket: str
    kms_key_arn: str
    execution_role_arn: str
    model_package_group: str
    deploy_role_arn: str | None = None
    endpoint_name: str | None = None
    endpoint_config_name: str | None = None
    model_version: str | None = None
    model_name: str | None = None  # the SageMaker model the endpoint serves; Batch Transform runs it too
    mlflow_app_arn: str | None = None  # dev's MLflow App (infra/components/tracking.py): where runs are logged


def outputs_path(config: Config) -> Path:
    override = os.environ.get("MLOPS_STACK_OUTPUTS")
    return Path(override) if override else config.state_dir / "stack-outputs" / f"{config.env}.json"


def load_stack_outputs(config: Config) -> StackOutputs:
    path = outputs_path(config)
    fix = (
        f"run `make stack-outputs MLOPS_ENV={config.env}` (it runs "
        f"`pulumi stack output --stack {config.env} --json` in infra/), after `pulumi up --stack {config.env}`"
    )
    if not path.is_file():
        raise ConfigError(f"no stack outputs for {config.env!r} at {path}: {fix}")
    try:
        raw = json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise ConfigError(f"{path} is not JSON ({error}): {fix}") from None
    try:
        return StackOutputs.model_validate(raw)
    except ValidationError as error:
        missing = [".".join(map(str, e["loc"])) for e in error.errors()]
        raise ConfigError(
            f"{path} lacks stack output(s) {', '.join(missing)}: the stack may predate them or the file "
            f"may be stale; {fix}"
        ) from None
