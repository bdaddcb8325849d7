"""Promote step: write an approved version into the environment's desired-state file."""

from __future__ import annotations

from dataclasses import dataclass

from ml.backends.base import DesiredState
from ml.context import Context
from ml.errors import PipelineError
from ml.steps.deploy import deployable


@dataclass(frozen=True)
class PromoteResult:
    version: int
    previous: int | None
    changed: bool
    desired_state: str


def monitoring_keys(lineage: dict[str, str]) -> dict[str, str]:
    """The stack keys a Model Monitor schedule reads: this version's baseline (infra/settings.py)."""
    return {f"monitoring_{key}": value for key, value in lineage.items() if key.startswith("baseline_")}


def run(ctx: Context, version: int, target: DesiredState | None = None) -> PromoteResult:
    """Promote version; target is another environment's desired state (default: this one's)."""
    backends = ctx.backends
    try:
        model = deployable(ctx, version)
    except PipelineError as exc:
        raise PipelineError(f"cannot promote: {exc}") from None
    state = target or backends.desired_state
    previous = state.read()
    changed = state.write(version, monitoring_keys(model.package.lineage))
    verb = "promoted" if changed else "already promoted"
    ctx.console.print(f"{verb} v{version} in {state.path}" + (f" (was v{previous})" if changed and previous else ""))
    return PromoteResult(version, previous, changed, str(state.path))
