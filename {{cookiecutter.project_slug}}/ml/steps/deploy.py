"""Deploy step: make the endpoint serve the version named in the desired state."""

from __future__ import annotations

from dataclasses import dataclass

from ml.context import Context
from ml.errors import PipelineError


@dataclass(frozen=True)
class DeployResult:
    endpoint: str
    version: int
    url: str
    changed: bool


def run(ctx: Context) -> DeployResult:
    backends = ctx.backends
    desired = backends.desired_state.read()
    if desired is None:
        raise PipelineError(
            f"{backends.desired_state.path} names no model version yet; run `make pipeline` (or `make promote`) first"
        )
    model = backends.registry.get(desired)
    before = backends.endpoint.status()
    with ctx.progress(f"deploying v{desired} to {backends.endpoint.name}"):
        status = backends.endpoint.deploy(model)
    changed = not (before and before.healthy and before.version == status.version)
    ctx.console.print(f"{'deployed' if changed else 'already serving'} v{status.version} at {status.url}")
    return DeployResult(status.name, status.version, status.url, changed)
