"""Deploy step: make the endpoint serve the version named in the desired state."""

from __future__ import annotations

from dataclasses import dataclass

from ml.backends.base import ModelVersion
from ml.context import Context
from ml.errors import PipelineError


@dataclass(frozen=True)
class DeployResult:
    endpoint: str
    version: int
    url: str
    changed: bool


def deployable(ctx: Context, version: int) -> ModelVersion:
    """The registered version, if it may reach traffic: Approved, with its model stored.

    Every path that can put a model in front of traffic asks this first: promote, deploy, verify,
    and `make infra-up` before `pulumi up` creates the SageMaker model in AWS.
    """
    try:
        model = ctx.backends.registry.get(version)
    except LookupError as error:
        raise PipelineError(f"v{version} cannot be deployed: {error}") from None
    if not model.approved:
        raise PipelineError(
            f"v{version} is {model.package.approval_status}: only Approved versions reach traffic. "
            "Promote an approved version instead (`make status` lists them)."
        )
    if not ctx.backends.artifacts.exists(model.package.model_uri):
        raise PipelineError(
            f"v{version}'s model {model.package.model_uri} is missing from the artifact store, so it cannot be "
            "served; promote another version, or restore the artifact"
        )
    return model


def run(ctx: Context) -> DeployResult:
    backends = ctx.backends
    desired = backends.desired_state.read()
    if desired is None:
        raise PipelineError(
            f"{backends.desired_state.path} names no model version yet; run `make pipeline` (or `make promote`) first"
        )
    model = deployable(ctx, desired)
    before = backends.endpoint.status()
    with ctx.progress(f"deploying v{desired} to {backends.endpoint.name}"):
        status = backends.endpoint.deploy(model)
    changed = not (before and before.healthy and before.version == status.version)
    ctx.console.print(f"{'deployed' if changed else 'already serving'} v{status.version} at {status.url}")
    return DeployResult(status.name, status.version, status.url, changed)


def check_serving(ctx: Context, desired: int) -> DeployResult:
    """In AWS, after `pulumi up`: the endpoint serves the desired version and is healthy. Changes nothing."""
    deployable(ctx, desired)
    endpoint = ctx.backends.endpoint
    status = endpoint.status()
    if status is None or not status.healthy or status.version != desired:
        serving = "nothing" if status is None else f"v{status.version}" + ("" if status.healthy else " (not healthy)")
        if status is not None and status.detail:
            serving += f": {status.detail};"
        raise PipelineError(
            f"endpoint {endpoint.name} serves {serving}, not v{desired} ({ctx.backends.desired_state.path.name}): "
            f"`pulumi up --stack {ctx.config.env}` has not applied it, or SageMaker rolled the update back "
            "(see the endpoint's events and its alarms)"
        )
    ctx.console.print(f"{endpoint.name} serves v{desired}")
    return DeployResult(status.name, status.version, status.url, False)
